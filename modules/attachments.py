"""Files attached to a chat message: which ones may come, their text, and how it is shown.

A file is accepted by its extension (text, Markdown, code or PDF) and then by its content:
text must decode (UTF-8, a byte-order mark, or the encoding charset-normalizer finds) and
hold no binary data; a PDF must be one, and its text is read with pypdf (pure Python, kept
up, with its own guards against decompression bombs). What the model gets is that text,
never the file: the message's text, then each file as a fenced block headed by its name.
The limits (modules/limits.py) are per file, per message and on the text read; each
refusal is a message for the person, and the other files of the same choice still come.
"""
from __future__ import annotations

import io
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePath

from modules.limits import Limits
from modules.request_limits import LimitExceeded

log = logging.getLogger(__name__)

TEXT, MARKDOWN, CODE, PDF = "text", "markdown", "code", "pdf"
_TEXT_EXTENSIONS = {".txt": "", ".text": "", ".log": "", ".csv": "csv", ".tsv": "", ".rst": "rst"}
_MARKDOWN_EXTENSIONS = {".md": "markdown", ".markdown": "markdown"}
# extension -> the fence's language, so the model (and a reader of the prompt) knows the syntax
_CODE_EXTENSIONS = {
    ".py": "python", ".js": "javascript", ".mjs": "javascript", ".ts": "typescript", ".tsx": "tsx",
    ".jsx": "jsx", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "ini",
    ".cfg": "ini", ".html": "html", ".htm": "html", ".css": "css", ".xml": "xml", ".svg": "xml",
    ".c": "c", ".h": "c", ".cpp": "cpp", ".cc": "cpp", ".hpp": "cpp", ".cs": "csharp",
    ".java": "java", ".kt": "kotlin", ".go": "go", ".rs": "rust", ".rb": "ruby", ".php": "php",
    ".swift": "swift", ".scala": "scala", ".lua": "lua", ".pl": "perl", ".r": "r", ".jl": "julia",
    ".m": "matlab", ".sh": "bash", ".bash": "bash", ".zsh": "zsh", ".ps1": "powershell",
    ".sql": "sql", ".tex": "latex", ".jinja": "jinja", ".j2": "jinja", ".ipynb": "json",
    ".dockerfile": "dockerfile", ".mk": "makefile",
}
EXTENSIONS = {**{e: TEXT for e in _TEXT_EXTENSIONS}, **{e: MARKDOWN for e in _MARKDOWN_EXTENSIONS},
              **{e: CODE for e in _CODE_EXTENSIONS}, ".pdf": PDF}
KINDS_SAID = "text, Markdown, code or PDF"
MAX_NAME_CHARS = 120
# Control characters other than tab, new line, form feed and carriage return: a text file
# with more of them than this share is binary data that happened to decode.
MAX_CONTROL_SHARE = 0.01


class AttachmentRefused(LimitExceeded):
    """Its message names the file and says why; show it as is."""


@dataclass(frozen=True)
class Attachment:
    name: str
    kind: str          # text, markdown, code or pdf
    size: int          # bytes of the file as it came
    text: str          # what the prompt gets

    @property
    def language(self) -> str:
        suffix = PurePath(self.name).suffix.lower()
        return {**_TEXT_EXTENSIONS, **_MARKDOWN_EXTENSIONS, **_CODE_EXTENSIONS}.get(suffix, "")


# ---- reading ---------------------------------------------------------------------------------

def add_files(pending: list[Attachment], files: list[tuple[str, str]],
              limits: Limits) -> tuple[list[Attachment], list[str]]:
    """`files`: (path on disk, name the person gave it) as uploaded. Returns the attachments
    with those that could be read added, and a message for each that could not."""
    kept, problems = list(pending), []
    for path, name in files:
        try:
            kept.append(_read_within(kept, path, clean_name(name), limits))
        except AttachmentRefused as refused:
            problems.append(str(refused))
    return kept, problems


def _read_within(kept: list[Attachment], path: str, name: str, limits: Limits) -> Attachment:
    if len(kept) >= limits.max_attachments_per_message:
        raise AttachmentRefused(f"{name} was not added: one message may carry "
                                f"{limits.max_attachments_per_message} files.")
    size = os.stat(path).st_size
    if size > limits.max_attachment_kb * 1024:
        raise AttachmentRefused(f"{name} is {_size(size)}; one file may be at most "
                                f"{_size(limits.max_attachment_kb * 1024)}.")
    together = size + sum(a.size for a in kept)
    if together > limits.max_message_attachments_kb * 1024:
        raise AttachmentRefused(f"{name} was not added: with it the files of this message would be "
                                f"{_size(together)}, over the {_size(limits.max_message_attachments_kb * 1024)} "
                                "one message may carry.")
    return read_file(path, name, limits.max_attachment_chars - sum(len(a.text) for a in kept))


def read_file(path: str, name: str, max_chars: int) -> Attachment:
    """The file as an attachment, or AttachmentRefused saying why not."""
    kind = kind_of(name)
    with open(path, "rb") as handle:
        data = handle.read()
    if data.lstrip()[:5] == b"%PDF-" and kind != PDF:
        raise AttachmentRefused(f"{name} is a PDF file; give it a name ending in .pdf to attach it.")
    text = read_pdf(data, name) if kind == PDF else decode_text(data, name)
    text = text.replace("\x00", "\ufffd")       # SQLite's length() would stop counting at a NUL
    if len(text) > max_chars:
        raise AttachmentRefused(f"{name} was not added: its text is {len(text):,} characters, and the "
                                f"files of one message may hold {max(max_chars, 0):,} more.")
    return Attachment(name, kind, len(data), text)


def kind_of(name: str) -> str:
    suffix = PurePath(name).suffix.lower()
    if not suffix:
        return TEXT                  # README, Makefile: their content decides
    if suffix not in EXTENSIONS:
        raise AttachmentRefused(f"{name} is not a {KINDS_SAID} file, so it cannot be attached.")
    return EXTENSIONS[suffix]


def decode_text(data: bytes, name: str) -> str:
    text = _decoded(data)
    if text is None or _looks_binary(text):
        raise AttachmentRefused(f"{name} does not read as text (it holds binary data), so it cannot "
                                "be attached.")
    return text.replace("\r\n", "\n")


def _decoded(data: bytes) -> str | None:
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
                          (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes       # only for files that are not UTF-8
    best = from_bytes(data).best()
    return str(best) if best is not None else None


def _looks_binary(text: str) -> bool:
    controls = sum(1 for char in text if unicodedata.category(char) == "Cc" and char not in "\t\n\r\f")
    return controls > len(text) * MAX_CONTROL_SHARE


def read_pdf(data: bytes, name: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise AttachmentRefused(f"{name} is protected by a password, so its text cannot be read.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except AttachmentRefused:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError,
            RecursionError) as exc:     # what a damaged file makes pypdf raise
        log.info("Could not read the PDF %s: %s", name, exc)
        raise AttachmentRefused(f"{name} could not be read as a PDF (it may be damaged), so it "
                                "cannot be attached.") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise AttachmentRefused(f"{name} has no text to read (a scanned PDF holds pictures of its "
                                "pages), so it cannot be attached.")
    return text


def clean_name(name: str) -> str:
    """The file's own name, on one line, short enough for a chip."""
    name = PurePath(str(name or "").replace("\\", "/")).name
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    if len(name) > MAX_NAME_CHARS:
        suffix = PurePath(name).suffix[:16]
        name = name[:MAX_NAME_CHARS - len(suffix) - 1] + "…" + suffix
    return name or "file"


def _size(size: int) -> str:
    """1.1 KiB, 4 MiB, 300 bytes: one decimal at most, so that a file just over the limit
    does not read as the limit itself."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


# ---- the prompt and the screen ------------------------------------------------------------------

def prompt_text(text: str, attachments: list[Attachment]) -> str:
    """The message as the model reads it: its text, then each file under its name."""
    blocks = [f"File: {a.name}\n{fenced(a.text, a.language)}" for a in attachments]
    return "\n\n".join(part for part in (text, *blocks) if part)


def fenced(text: str, language: str = "") -> str:
    """A code block fenced longer than any run of backticks in the text: read as it is."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def chips(attachments: list[Attachment]) -> str:
    """The files as a line of chips (Markdown code spans: a name is shown, never read as markup)."""
    return "Files: " + " ".join(f"`{a.name.replace('`', chr(0x2019))}`" for a in attachments) if attachments else ""


def shown_text(text: str, attachments: list[Attachment]) -> str:
    """A message's text with its files' chips under it."""
    line = chips(attachments)
    return f"{text}\n\n{line}" if text and line else (text or line)


def without_chips(text: str, attachments: list[Attachment]) -> str:
    """An edited message's text without the chips line the editor started with."""
    line = chips(attachments)
    if line and text.rstrip().endswith(line):
        return text.rstrip()[: -len(line)].rstrip()
    return text
