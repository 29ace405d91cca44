"""Downloading models from a Hugging Face repository into models/.

A single GGUF file lands directly in models/ (llama.cpp loads it as it is); anything
else (a full repository, several files) lands in models/<owner>_<name>/, the folder
name text-generation-webui uses. The hub address is HF_ENDPOINT, as huggingface_hub
reads it, so a mirror or a local server works the same way as huggingface.co.

Errors come out as DownloadError with a message meant for the person who typed the
repository id: not found, no matching file, hub unreachable, invalid id, not enough disk.

Downloads change what everyone can load, so only admins start them (the Model tab checks
that); the server's HF_TOKEN is used only when the caller says the request is an admin's.
A model already in models/ is never overwritten: files are fetched into a hidden staging
folder and moved into place only when complete, and only if nothing has that name yet.
"""
from __future__ import annotations

import fnmatch
import functools
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, HFValidationError,
                                    LocalEntryNotFoundError, OfflineModeIsEnabled,
                                    RemoteEntryNotFoundError, RepositoryNotFoundError,
                                    RevisionNotFoundError)

STAGING_FOLDER = ".downloads"      # hidden, so list_models never shows half-done downloads
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_URL_PREFIX = re.compile(r"^https?://[^/]+/")
_FILES_SHOWN = 12


class DownloadError(Exception):
    """The download could not be done; the message says why in plain words."""


@dataclass
class DownloadResult:
    path: Path               # the GGUF file or the model folder in models/
    files: list[str]         # repository paths fetched
    total_bytes: int
    already_present: bool = False

    @property
    def message(self) -> str:
        if self.already_present:
            return f"{self.path.name} is already in the model list; nothing was downloaded."
        return (f"Downloaded {len(self.files)} file(s), {self.total_bytes / 2**20:.1f} MiB, "
                f"to {self.path.name}. It is in the model list now.")


def endpoint() -> str:
    """The hub address: HF_ENDPOINT read now (so a change needs no restart), else huggingface_hub's."""
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def parse_repo_id(text: str) -> str:
    """'owner/name', also accepted as a hub address such as https://huggingface.co/owner/name/tree/main."""
    text = (text or "").strip()
    if _URL_PREFIX.match(text):
        text = "/".join(_URL_PREFIX.sub("", text).split("/")[:2])
    text = text.strip("/")
    if not text:
        raise DownloadError("Enter a repository id such as 'bartowski/SmolLM2-135M-Instruct-GGUF'.")
    if not _REPO_ID.match(text) or ".." in text or text.endswith((".git", "-", ".")):
        raise DownloadError(f"'{text}' is not a valid repository id: it must look like 'owner/name' "
                            f"(letters, digits, '-', '_', '.').")
    return text


def target_folder_name(repo_id: str) -> str:
    owner, name = repo_id.split("/")
    return f"{owner}_{name}"


def choose_files(repo_id: str, all_files: list[str], pattern: str) -> list[str]:
    """The repository paths to fetch. Patterns are globs matched against the whole path
    and against the file name, so '*Q4_K_M.gguf' also finds files in subfolders."""
    patterns = [p.strip() for p in (pattern or "").split(",") if p.strip()]
    if patterns:
        chosen = [f for f in all_files
                  if any(fnmatch.fnmatchcase(f, p) or fnmatch.fnmatchcase(PurePosixPath(f).name, p)
                         for p in patterns)]
        if not chosen:
            raise DownloadError(f"No file in {repo_id} matches '{pattern.strip()}'. "
                                f"Files there: {_list_for_message(all_files)}")
        return chosen
    ggufs = [f for f in all_files if f.lower().endswith(".gguf")]
    has_config = "config.json" in all_files
    # A GGUF repository usually holds one file per quantization, each several GiB:
    # fetching all of them is almost never what anyone wants.
    if len(ggufs) > 1 and not has_config:
        raise DownloadError(f"{repo_id} holds {len(ggufs)} GGUF files; enter the one you want in the "
                            f"file box (a name or a pattern such as '*Q4_K_M.gguf'). "
                            f"GGUF files: {_list_for_message(ggufs)}")
    if len(ggufs) == 1 and not has_config:
        return ggufs
    return list(all_files)


def download(repo_id: str, pattern: str, models_dir: str | os.PathLike,
             progress=None, *, use_token: bool = False, margin_bytes: int = 5 * 2**30) -> DownloadResult:
    """Fetches the matching files of repo_id into models_dir. progress(fraction, message)
    is called as bytes arrive. use_token: send the server's HF_TOKEN (admins only).
    margin_bytes: free disk the download must leave. Raises DownloadError."""
    progress = progress or (lambda fraction, message: None)
    repo_id = parse_repo_id(repo_id)
    models_dir = Path(models_dir)
    hub = endpoint()
    token = None if use_token else False        # False: never read HF_TOKEN or the saved login
    with _translated_errors(repo_id, hub):
        progress(0.0, f"Looking up {repo_id} on {hub}")
        info = HfApi(endpoint=hub, token=token).model_info(repo_id, files_metadata=True)
        sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
        if not sizes:
            raise DownloadError(f"{repo_id} has no files.")
        files = choose_files(repo_id, sorted(sizes), pattern)
        total = sum(sizes[f] for f in files)
        single_gguf = len(files) == 1 and files[0].lower().endswith(".gguf")
        final = models_dir / (PurePosixPath(files[0]).name if single_gguf else target_folder_name(repo_id))
        if single_gguf and final.is_file() and final.stat().st_size == total:
            return DownloadResult(final, files, total, already_present=True)
        if final.exists():
            raise DownloadError(f"{final.name} is already in the models folder and is not replaced. "
                                f"Delete or rename it on the server first to download it again.")
        check_free_space(models_dir, total, margin_bytes)
        staging = models_dir / STAGING_FOLDER / target_folder_name(repo_id)
        counter = _ByteCounter(total, progress)
        try:
            for name in files:
                counter.start_file(name, sizes[name])
                # revision=info.sha pins every file to the commit listed above
                fetched = hf_hub_download(repo_id, name, revision=info.sha, local_dir=staging, token=token,
                                          endpoint=hub, tqdm_class=functools.partial(_FileBar, counter))
                counter.finish_file()
            if final.exists():       # another download finished first while this one ran
                raise DownloadError(f"{final.name} appeared in the models folder during the download; "
                                    f"it is not replaced.")
            if single_gguf:
                os.replace(fetched, final)
            else:
                shutil.rmtree(staging / ".cache", ignore_errors=True)    # huggingface_hub's bookkeeping
                os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)      # a failed download leaves nothing behind
            _remove_if_empty(staging.parent)
    progress(1.0, "Downloaded")
    return DownloadResult(final, files, total)


def check_free_space(folder: Path, needed: int, margin_bytes: int) -> None:
    """Refuses a download that would leave less than margin_bytes free on the disk."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed + margin_bytes > free:
        raise DownloadError(f"Not enough disk space: the download needs {needed / 2**30:.2f} GiB and must "
                            f"leave {margin_bytes / 2**30:.1f} GiB free, but only {free / 2**30:.2f} GiB "
                            f"is free.")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:          # other downloads still in it, or already gone
        pass


# ---- progress ---------------------------------------------------------------------------

class _ByteCounter:
    """Adds up the bytes of all files, so one bar covers the whole download."""

    def __init__(self, total: int, progress):
        self.total, self.progress = total, progress
        self.done_before = 0        # bytes of the files already finished
        self.current = 0
        self.name, self.size = "", 0

    def start_file(self, name: str, size: int) -> None:
        self.name, self.size, self.current = name, size, 0
        self.report()

    def add(self, n: int) -> None:
        self.current += n
        self.report()

    def finish_file(self) -> None:
        self.done_before += max(self.size, self.current)
        self.current = 0

    def report(self) -> None:
        done = self.done_before + self.current
        fraction = min(done / self.total, 1.0) if self.total else 0.0
        self.progress(fraction, f"{self.name}: {done / 2**20:.1f} of {self.total / 2**20:.1f} MiB")


class _FileBar:
    """What huggingface_hub calls as a tqdm progress bar for one file (it accepts any callable)."""

    def __init__(self, counter: _ByteCounter, initial: int = 0, **_ignored):
        self.counter = counter
        if initial:                 # a resumed download starts part-way
            counter.add(initial)

    def update(self, n: int = 1) -> None:
        self.counter.add(n)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


# ---- errors -----------------------------------------------------------------------------

def _list_for_message(names: list[str]) -> str:
    shown = ", ".join(names[:_FILES_SHOWN])
    return shown + (f" (and {len(names) - _FILES_SHOWN} more)" if len(names) > _FILES_SHOWN else "")


class _translated_errors:
    """Turns huggingface_hub's and httpx's exceptions into DownloadError messages."""

    def __init__(self, repo_id: str, hub: str):
        self.repo_id, self.hub = repo_id, hub

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, DownloadError) or not isinstance(exc, Exception):
            return False
        raise DownloadError(self._message(exc)) from exc

    def _message(self, exc: Exception) -> str:
        repo, hub = self.repo_id, self.hub
        if isinstance(exc, GatedRepoError):
            return (f"{repo} is gated: accept its conditions on {hub}/{repo} and set the HF_TOKEN "
                    f"environment variable to an access token before starting the server.")
        if isinstance(exc, RepositoryNotFoundError):
            return (f"Repository {repo} was not found on {hub}. Check the spelling; a private "
                    f"repository also needs the HF_TOKEN environment variable.")
        if isinstance(exc, RevisionNotFoundError):
            return f"{repo} has no 'main' branch on {hub}."
        if isinstance(exc, RemoteEntryNotFoundError):
            return f"A file listed in {repo} could not be found on {hub}; try again later."
        if isinstance(exc, OfflineModeIsEnabled):
            return "Downloads are switched off (HF_HUB_OFFLINE is set)."
        if isinstance(exc, (httpx2.TransportError, LocalEntryNotFoundError, ConnectionError)):
            return (f"Could not reach {hub}: the network is unreachable or the hub is down "
                    f"({_first_line(exc)}). Check the connection, or HF_ENDPOINT if you use a mirror.")
        if isinstance(exc, HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else "?"
            return f"{hub} answered with an error (HTTP {status}): {_first_line(exc)}"
        if isinstance(exc, HFValidationError):
            return f"'{repo}' is not a valid repository id: {_first_line(exc)}"
        if isinstance(exc, OSError):
            return f"Could not write the download to disk: {exc}"
        return f"The download failed: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
