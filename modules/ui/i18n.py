"""The page in French for a French browser, from one table: locales/fr.yaml (English -> French).

What the page shows when it is built (tab names, labels, help lines, placeholders, buttons,
fixed Markdown) is translated in the browser by Gradio's I18n: translate_page() runs once the
whole page is built and puts I18N("the English text") in place of every text the table knows,
so the tab modules go on writing plain English and a browser that prefers French sees French
(Gradio picks the language from navigator.language; anything else gets the English, which is
the key). tests/test_i18n.py lists every label of the built page and fails on one the table
lacks.

What the server writes while the page is open (toasts, status lines, the question on a Yes
button) is chosen per request, from its Accept-Language: notify.py translates toasts, and
translate_replies() wraps every event handler so the text it sends to a Markdown, HTML or
button is translated for a French request. Messages built from parts are matched against the
table's templates ("Renamed to “{title}”."); see docs/i18n.md for the conventions.
"""
from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path

import gradio as gr
import yaml
from gradio.blocks import Block

LOCALES = Path(__file__).resolve().parents[2] / "locales"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# Placeholders whose text is itself a message: translated too when the table knows it
# (else left as it is). STRICT ones must translate, or the template does not match: they
# tell apart templates that differ only in a short ending (" (stopped)").
LENIENT = {"message", "error", "reason"}
STRICT = {"ending", "noun", "where", "scope", "what"}
_LONGEST = 2000        # longer texts (a model's table, a chart) are never a message of ours
# Component fields that hold text a person reads, and whose "value" is fixed text too.
TEXT_FIELDS = ("label", "info", "placeholder")
VALUE_IS_TEXT = (gr.Button, gr.Markdown)
REPLY_TEXT = (gr.Button, gr.Markdown, gr.HTML)


class Table:
    """English -> French: exact texts, and templates with {placeholders} for built messages."""

    def __init__(self, entries: dict[str, str]):
        for english, french in entries.items():
            if not isinstance(english, str) or not isinstance(french, str):
                raise ValueError(f"locale entries are text: {english!r}: {french!r}")
        self.exact = {en: fr for en, fr in entries.items() if not _PLACEHOLDER.search(en)}
        # a strict placeholder matches only a text of the table (or nothing), so the regular
        # expression itself finds where "seed {seed}" ends and " (stopped)" begins
        known = "|".join(re.escape(text) for text in sorted(self.exact, key=len, reverse=True))
        self.templates = [(_pattern(en, known), fr, en) for en, fr in entries.items() if _PLACEHOLDER.search(en)]
        # the most literal text first, so "{n} tokens, seed {seed}{ending}" is tried before
        # "{n} tokens{ending}"
        self.templates.sort(key=lambda t: -len(_PLACEHOLDER.sub("", t[2])))

    @classmethod
    def load(cls, path: Path) -> "Table":
        entries = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(entries)

    def translate(self, text: str) -> str | None:
        """The French for `text`, or None when the table has no entry that fits."""
        if not text or len(text) > _LONGEST:
            return None
        found = self.exact.get(text)
        if found is not None:
            return found
        for pattern, french, _ in self.templates:
            match = pattern.fullmatch(text)
            if match is None:
                continue
            parts = {}
            for name, value in match.groupdict().items():
                parts[name] = self._part(name, value)
                if parts[name] is None:
                    break
            else:
                return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], french)
        return None

    def _part(self, name: str, value: str) -> str | None:
        if name in STRICT:
            return value if value == "" else self.translate(value)
        if name in LENIENT:
            return self.translate(value) or value
        return value


def _pattern(english: str, known: str) -> re.Pattern:
    pieces, end = [], 0
    for match in _PLACEHOLDER.finditer(english):
        name = match.group(1)
        pieces.append(re.escape(english[end:match.start()]))
        pieces.append(f"(?P<{name}>(?:{known})?)" if name in STRICT else f"(?P<{name}>.*?)")
        end = match.end()
    pieces.append(re.escape(english[end:]))
    return re.compile("".join(pieces), re.DOTALL)


FRENCH = Table.load(LOCALES / "fr.yaml")
# Gradio's own translation table, filled by translate_page() with the page's texts only:
# Gradio also looks up every choice of a radio or dropdown in it, and a chat or a preset
# named like a word of the table must keep its name.
I18N = gr.I18n(fr={})


# ---- which language a request wants --------------------------------------------------------

def preferred_language(accept_language: str | None) -> str:
    """The primary language tag the browser ranks first ("fr" for "fr-FR,fr;q=0.9,en;q=0.8")."""
    ranked = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        match = re.search(r"q=([\d.]+)", params)
        if match:
            try:
                quality = float(match.group(1))
            except ValueError:
                quality = 0.0
        if tag:
            ranked.append((-quality, position, tag.split("-")[0].lower()))
    return min(ranked)[2] if ranked else "en"


def wants_french(request=None) -> bool:
    """Does the browser behind `request` (default: the event being handled) prefer French?"""
    if request is None:
        from gradio.context import LocalContext
        request = LocalContext.request.get(None)
    headers = getattr(request, "headers", None)
    if headers is None:
        return False
    return preferred_language(headers.get("accept-language")) == "fr"


def for_request(text: str, request=None) -> str:
    """`text` in the language of the browser behind the request (French or as written)."""
    if not isinstance(text, str) or not wants_french(request):
        return text
    return FRENCH.translate(text) or text


# ---- the built page ---------------------------------------------------------------------------

def page_texts(app: gr.Blocks):
    """(component, field, text) for every fixed text of the built page a person reads."""
    for block in app.blocks.values():
        fields = TEXT_FIELDS + (("value",) if isinstance(block, VALUE_IS_TEXT) else ())
        for field in fields:
            text = getattr(block, field, None)
            if isinstance(text, str) and text.strip():
                yield block, field, text


def translate_page(app: gr.Blocks) -> None:
    """Puts I18N(text) in place of every fixed English text the table knows; Gradio then
    shows the browser's language. Set on the component and its constructor arguments, which
    Gradio copies when a handler updates the component."""
    french = I18N.translations_dict["fr"]
    for block in app.blocks.values():             # fixed choices ("When the model decides")
        for shown, _ in getattr(block, "choices", None) or []:
            if isinstance(shown, str) and shown in FRENCH.exact:
                french[shown] = FRENCH.exact[shown]
    for block, field, text in list(page_texts(app)):
        translated = FRENCH.translate(text)
        if translated is None:
            continue
        french[text] = translated
        setattr(block, field, I18N(text))
        for args in getattr(block, "_constructor_args", None) or []:
            if args.get(field) == text:
                args[field] = I18N(text)


def untranslated(app: gr.Blocks) -> list[str]:
    """Texts of the page with no French: what tests/test_i18n.py reports. Setting names as
    text-generation-webui writes them (temperature, ctx-size) and examples of paths and file
    patterns stay as they are in every language."""
    missing = []
    for block, field, text in page_texts(app):
        if FRENCH.translate(text) is None and not _kept_as_is(text):
            missing.append(f"{type(block).__name__}.{field}: {text!r}")
    return sorted(set(missing))


def _kept_as_is(text: str) -> bool:
    return (not re.search(r"[A-Za-z]", text)                                  # ‹ ›
            or bool(re.fullmatch(r"[a-z0-9][a-z0-9_\-.]*"                     # temperature, ctx-size
                                 r"|[\w.\-]+/[\w.\-]+|\*[\w.*\-]+|https?://\S+", text)))


# ---- what the server writes while the page is open -------------------------------------------

def translate_replies(app: gr.Blocks) -> None:
    """Wraps every event handler of the page so that, for a browser that prefers French, the
    text it sends to a Markdown, HTML or button (status lines, questions, notes) is
    translated through the table. Other outputs (chat messages, text boxes) are never
    touched, and an English browser gets exactly what the handler returned."""
    for block_fn in app.fns.values():
        if block_fn.fn is None or getattr(block_fn.fn, "_translates_replies", False):
            continue
        block_fn.fn = _wrapped(block_fn.fn, list(block_fn.outputs))


def _wrapped(fn, outputs: list):
    def fix(result):
        return _translate_result(result, outputs) if wants_french() else result

    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            async for item in fn(*args, **kwargs):
                yield fix(item)
    elif inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            return fix(await fn(*args, **kwargs))
    elif inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for item in fn(*args, **kwargs):
                yield fix(item)
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fix(fn(*args, **kwargs))
    wrapper._translates_replies = True
    return wrapper


def _translate_result(result, outputs: list):
    if len(outputs) == 1:
        return _translate_output(result, outputs[0])
    if isinstance(result, dict):
        return {key: _translate_output(value, key) if isinstance(key, Block) else value
                for key, value in result.items()}
    if isinstance(result, (tuple, list)) and len(result) == len(outputs):
        return type(result)(_translate_output(value, out) for value, out in zip(result, outputs))
    return result


def _translate_output(value, component):
    if isinstance(value, str):
        return (FRENCH.translate(value) or value) if isinstance(component, REPLY_TEXT) else value
    if isinstance(value, Block):        # an update such as gr.Button("Delete 'x'?", visible=True)
        args = value.constructor_args
        fields = TEXT_FIELDS + (("value",) if isinstance(component, REPLY_TEXT) else ())
        changes = {f: FRENCH.translate(args[f]) for f in fields if isinstance(args.get(f), str)}
        changes = {f: text for f, text in changes.items() if text is not None}
        if changes:
            return type(value)(**{**args, **changes})
    return value
