"""Tools a person can give the model in the Chat tab: text-generation-webui's tool files.

A tool is one file, user_data/tools/<name>.py (the path text-generation-webui uses, so its
files are copied over unchanged): a `tool` dict in OpenAI's function format and
`execute(arguments)`, which returns a dict (sent to the model as JSON) or a string.
Tool files are Python that runs inside the server, so only what the server's admin puts
in the folder is offered; nothing can be added from the browser.

    catalog = ToolCatalog()                      # user_data/tools
    catalog.names()                              # the Chat tab's choices
    chosen = catalog.toolset(["calculate"])      # .problems: files that did not load
    result = chosen.run(call)                    # a worker thread under a time limit

A tool that raises, runs too long, gets arguments outside its parameters or returns
something that is not JSON gives the model an error result; nothing reaches the chat
as an exception.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from modules.tool_calls import ToolCall

DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / "user_data" / "tools"
TOOL_TIMEOUT = 20.0           # seconds one call (or loading one file) may take
MAX_RUNNING = 8               # tool threads at once, server-wide, hung ones included
MAX_RESULT_CHARS = 8000       # a longer result is cut: it goes into the prompt and the store
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")    # OpenAI's rule for function names
NO_PARAMETERS = {"type": "object", "properties": {}}

log = logging.getLogger(__name__)
# Released by the worker thread when the tool really returns, so tools that hang keep
# their places: at most MAX_RUNNING threads ever pile up.
_running = threading.BoundedSemaphore(MAX_RUNNING)


class ToolFileError(ValueError):
    """A tool file that cannot be used; the message names the file and says why."""


@dataclass(frozen=True)
class LoadedTool:
    file: str                    # the file's name without .py: what a chat stores
    definition: dict             # {"type": "function", "function": {...}} as the file gives it
    execute: Callable
    validator: Draft202012Validator

    @property
    def function(self) -> dict:
        return self.definition["function"]

    @property
    def name(self) -> str:
        return self.function["name"]


@dataclass
class ToolResult:
    content: str                 # what the model reads: JSON, or the tool's own text
    ok: bool


@dataclass
class ToolSet:
    """The tools chosen for one chat, by function name."""
    tools: dict[str, LoadedTool] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    timeout: float = TOOL_TIMEOUT

    def __bool__(self) -> bool:
        return bool(self.tools)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.tools)

    def definitions(self) -> list[dict]:
        """OpenAI-shaped, for the chat template's `tools` variable."""
        return [tool.definition for tool in self.tools.values()]

    def functions(self) -> list[dict]:
        """[{"name", "description", "parameters"}], for a grammar that makes the reply a call."""
        return [{"name": t.name, "description": t.function.get("description", ""),
                 "parameters": t.function.get("parameters") or NO_PARAMETERS} for t in self.tools.values()]

    def run(self, call: ToolCall) -> ToolResult:
        tool = self.tools.get(call.name)
        if tool is None:
            offered = ", ".join(sorted(self.tools)) or "none"
            return _error(f"There is no tool named {call.name!r}; the tools are: {offered}.")
        problem = next(iter(tool.validator.iter_errors(call.arguments)), None)
        if problem is not None:
            return _error(f"The arguments do not fit {tool.name}'s parameters: {problem.message}.")
        ok, value = run_with_limit(tool.execute, copy.deepcopy(call.arguments), self.timeout, tool.name)
        if not ok:
            return _error(f"{tool.name} failed: {value}")
        try:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            return _error(f"{tool.name} returned something that is not JSON: {exc}.")
        return ToolResult(_cut(text), True)


class ToolCatalog:
    """The folder of tool files. Each file is loaded once, and again when it changes."""

    def __init__(self, folder: str | Path | None = None, timeout: float = TOOL_TIMEOUT):
        self.folder = Path(folder) if folder is not None else DEFAULT_FOLDER
        self.timeout = timeout
        self._loaded: dict[str, tuple[tuple, LoadedTool | ToolFileError]] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted((p.stem for p in self.folder.glob("*.py") if FILE_NAME.match(p.stem)), key=str.lower)

    def problems(self) -> list[str]:
        """Why each file that cannot be used cannot (for the Chat tab's note)."""
        found = []
        for name in self.names():
            try:
                self.load(name)
            except ToolFileError as exc:
                found.append(str(exc))
        return found

    def load(self, name: str) -> LoadedTool:
        if not isinstance(name, str) or not FILE_NAME.match(name):
            raise ToolFileError(f"{name!r} is not a tool file name.")
        path = self.folder / f"{name}.py"
        try:
            stat = path.stat()
        except OSError:
            raise ToolFileError(f"There is no tool file {name}.py in {self.folder}.") from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._loaded.get(name)
        if cached is None or cached[0] != stamp:
            try:
                outcome: LoadedTool | ToolFileError = _load_file(name, path, self.timeout)
            except ToolFileError as exc:
                outcome = exc
                log.warning("%s", exc)
            cached = (stamp, outcome)
            with self._lock:
                self._loaded[name] = cached
        if isinstance(cached[1], ToolFileError):
            raise cached[1]
        return cached[1]

    def toolset(self, names: list[str]) -> ToolSet:
        chosen = ToolSet(timeout=self.timeout)
        for name in names:
            try:
                tool = self.load(name)
            except ToolFileError as exc:
                chosen.problems.append(str(exc))
                continue
            if tool.name in chosen.tools:
                chosen.problems.append(f"{name}.py names its function {tool.name!r}, as "
                                       f"{chosen.tools[tool.name].file}.py does; only the first is used.")
                continue
            chosen.tools[tool.name] = tool
        return chosen


def _load_file(name: str, path: Path, timeout: float) -> LoadedTool:
    shown = f"Tool file {name}.py"
    spec = importlib.util.spec_from_file_location(f"chat_tool_file_{name}", path)
    module = importlib.util.module_from_spec(spec)
    ok, value = run_with_limit(spec.loader.exec_module, module, timeout, f"loading {name}.py")
    if not ok:
        raise ToolFileError(f"{shown} could not be loaded: {value}")
    definition, execute = getattr(module, "tool", None), getattr(module, "execute", None)
    if not isinstance(definition, dict) or not callable(execute):
        raise ToolFileError(f"{shown} needs a `tool` dict (OpenAI's function format) and an "
                            "`execute(arguments)` function.")
    function = definition.get("function")
    if not isinstance(function, dict):
        raise ToolFileError(f"{shown}: `tool` needs a \"function\" dict with the name, description "
                            "and parameters.")
    if not isinstance(function.get("name"), str) or not FUNCTION_NAME.match(function["name"]):
        raise ToolFileError(f"{shown}: the function's name must be 1 to 64 letters, digits, '_' or '-'.")
    parameters = function.get("parameters") or NO_PARAMETERS
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        raise ToolFileError(f"{shown}: the parameters are not a valid JSON schema: {exc.message}") from None
    if parameters.get("type", "object") != "object":
        raise ToolFileError(f"{shown}: the parameters must describe an object (\"type\": \"object\").")
    return LoadedTool(name, definition, execute, Draft202012Validator(parameters))


def run_with_limit(function: Callable, argument, timeout: float, what: str) -> tuple[bool, object]:
    """(True, what function(argument) returned) or (False, why not, as "it ..."), in a worker thread:
    Python cannot stop a thread, so one that runs too long is left to finish alone."""
    if not _running.acquire(timeout=min(timeout, 1.0)):
        return False, "too many tool calls are running on this server; try again in a moment."
    box: dict = {}
    done = threading.Event()

    def work():
        try:
            box["value"] = function(argument)
        except BaseException as exc:          # a tool's SystemExit must not end the server's thread
            log.warning("%s raised", what, exc_info=True)
            box["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            _running.release()
            done.set()

    threading.Thread(target=work, name=f"tool {what}", daemon=True).start()
    if not done.wait(timeout):
        log.warning("%s ran past its %s s limit", what, timeout)
        return False, f"it took longer than {timeout:g} seconds and was abandoned."
    if "error" in box:
        return False, f"it raised {box['error']}"
    return True, box.get("value")


def _error(message: str) -> ToolResult:
    return ToolResult(json.dumps({"error": message}, ensure_ascii=False), False)


def _cut(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"\n[cut here: the result was {len(text):,} characters]"
