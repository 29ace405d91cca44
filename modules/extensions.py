"""Extensions: folders with a `script.py` written for text-generation-webui's hook API.

The registry finds them (extensions/<name>/script.py), loads the ones enabled with
`--extensions a b`, the settings file's `default_extensions`, or by an admin in the
Extensions tab, and keeps the order they were enabled in (hooks chain in that order).
A script is imported once; disabling it only stops its hooks being called. What can go
wrong is reported and never stops the server: a script that fails to import, packages
from its requirements.txt that are missing (reported, never installed), a hook that
raises or hangs (modules/extension_runner.py). The hooks themselves are specified in
modules/extension_hooks.py.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from modules.extension_compat import install_tgw_modules
from modules.extension_guard import HookTimeout, call_with_time_limit
from modules.extension_hooks import HOOKS
from modules.extension_params import SessionOwners, SessionParams

log = logging.getLogger("extensions")

DEFAULT_TIMEOUT = 10.0        # seconds a per-request hook may take (--extension-timeout)
SETUP_TIMEOUT = 120.0         # setup() may load a model or read files
IGNORED_HOOKS = {"logits_processor_modifier": "logits_processor_modifier is not applied on this server "
                 "(see docs/extensions.md); the extension's other hooks work."}


@dataclass
class Extension:
    name: str
    folder: Path
    module: ModuleType | None = None
    load_error: str = ""
    missing: list[str] = field(default_factory=list)      # requirements.txt entries not installed
    failures: dict[str, str] = field(default_factory=dict)  # hook -> last error, until it works again
    stuck: list = field(default_factory=list)             # threads still running past the limit
    ui_on_page: bool = False                              # its ui() controls are on this page

    @property
    def hooks(self) -> set[str]:
        return {name for name in HOOKS if callable(getattr(self.module, name, None))} if self.module else set()

    @property
    def params(self) -> dict:
        params = getattr(self.module, "params", None)
        return params if isinstance(params, dict) else {}

    @property
    def display_name(self) -> str:
        return str(self.params.get("display_name") or self.name)

    @property
    def is_tab(self) -> bool:
        return bool(self.params.get("is_tab"))

    def is_stuck(self) -> bool:
        self.stuck = [thread for thread in self.stuck if thread.is_alive()]
        return bool(self.stuck)


@dataclass
class Row:
    """One line of the Extensions tab."""
    name: str
    display_name: str
    enabled: bool
    status: str            # "ok", "failing", "not loaded", "off"
    notes: list[str]


class ExtensionRegistry:
    def __init__(self, folders: list[Path], *, settings: dict | None = None,
                 timeout: float = DEFAULT_TIMEOUT, setup_timeout: float = SETUP_TIMEOUT):
        self.folders = [Path(f) for f in folders]
        self.settings = dict(settings or {})     # the settings file: `<name>-<key>` overrides
        self.timeout = timeout
        self.setup_timeout = setup_timeout
        self.sessions = SessionOwners()
        self._known: dict[str, Extension] = {}
        self._enabled: list[str] = []
        self._lock = threading.RLock()
        self._warned: set[tuple[str, str, str]] = set()  # (owner, extension, hook) already told
        self.page_built = False

    # ---- what there is --------------------------------------------------------------------
    def available(self) -> list[str]:
        names = set()
        for folder in self.folders:
            if folder.is_dir():
                names |= {p.parent.name for p in folder.glob("*/script.py") if not p.parent.name.startswith((".", "_"))}
        return sorted(names)

    def folder_of(self, name: str) -> Path | None:
        for folder in self.folders:
            if (folder / name / "script.py").is_file():
                return folder / name
        return None

    def get(self, name: str) -> Extension | None:
        return self._known.get(name)

    def enabled(self) -> list[Extension]:
        """The enabled, loaded extensions in chain order (a snapshot: safe to iterate)."""
        with self._lock:
            return [self._known[n] for n in self._enabled if self._known[n].module is not None]

    def enabled_names(self) -> list[str]:
        with self._lock:
            return list(self._enabled)

    # ---- enabling ---------------------------------------------------------------------------
    def enable(self, names: list[str]) -> list[str]:
        """Loads and enables `names` after those already on. Returns messages for the admin."""
        messages = []
        for name in names:
            messages += self._enable_one(name)
        return messages

    def set_enabled(self, names: list[str]) -> list[str]:
        """Exactly `names` on afterwards: those already on keep their place, new ones follow
        in the given order, the rest are switched off."""
        wanted = [n for n in dict.fromkeys(names)]
        messages = []
        with self._lock:
            for name in [n for n in self._enabled if n not in wanted]:
                self._enabled.remove(name)
                messages.append(f"'{name}' is off.{self._ui_left_note(name)}")
        for name in wanted:
            if name not in self._enabled:
                messages += self._enable_one(name)
        return messages

    def _enable_one(self, name: str) -> list[str]:
        folder = self.folder_of(name)
        if folder is None:
            log.error("No extension named '%s' (looked for %s).", name,
                      ", ".join(str(f / name / "script.py") for f in self.folders))
            return [f"There is no extension '{name}' (no {name}/script.py in extensions/)."]
        with self._lock:
            if name in self._enabled:
                return []
            extension = self._known.get(name) or Extension(name, folder)
            self._known[name] = extension
        if extension.module is None:
            self._load(extension)
        if extension.module is None:
            return [f"'{name}' could not be loaded: {extension.load_error}"]
        with self._lock:
            if name not in self._enabled:
                self._enabled.append(name)
        extension.failures.pop("load", None)
        log.info("Extension '%s' enabled (hooks: %s).", name, ", ".join(sorted(extension.hooks)) or "none")
        messages = [f"'{name}' is on."]
        if self.page_built and ("ui" in extension.hooks) and not extension.ui_on_page:
            messages.append(f"'{name}' has controls of its own (ui()): restart the server to show them; "
                            "its other hooks work now.")
        for hook, note in IGNORED_HOOKS.items():
            if hook in extension.hooks:
                log.warning("Extension '%s': %s", name, note)
        return messages

    def _load(self, extension: Extension) -> None:
        """Imports the script, puts the settings file's values into params, runs setup()."""
        name = extension.name
        extension.missing = missing_requirements(extension.folder / "requirements.txt")
        install_tgw_modules(self)
        module_name = f"extensions.{name}.script"
        try:
            spec = importlib.util.spec_from_file_location(module_name, extension.folder / "script.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except BaseException as exc:          # a script calling sys.exit() must not end the server
            sys.modules.pop(module_name, None)
            extension.load_error = _describe(exc)
            if extension.missing:
                extension.load_error += (f" (packages from its requirements.txt are not installed: "
                                         f"{', '.join(extension.missing)}; an admin can install them with "
                                         f"pip install -r {extension.folder / 'requirements.txt'})")
            log.error("Extension '%s' failed to load: %s\n%s", name, extension.load_error, traceback.format_exc())
            return
        params = getattr(module, "params", None)
        if isinstance(params, dict):
            defaults = dict(params)
            for key in list(defaults):
                if f"{name}-{key}" in self.settings:
                    defaults[key] = self.settings[f"{name}-{key}"]
            module.params = SessionParams(defaults, self.sessions)
        extension.module = module
        extension.load_error = ""
        if callable(getattr(module, "setup", None)):
            try:
                call_with_time_limit(module.setup, (), {}, self.setup_timeout, f"{name}.setup")
            except HookTimeout as exc:
                extension.stuck.append(exc.thread)
                self.record_failure(extension, "setup", f"setup() {exc}")
            except BaseException as exc:
                log.error("Extension '%s': setup() failed:\n%s", name, traceback.format_exc())
                self.record_failure(extension, "setup", f"setup() raised {_describe(exc)}")

    def _ui_left_note(self, name: str) -> str:
        extension = self._known.get(name)
        if extension is not None and extension.ui_on_page:
            return " Its controls stay on the page until a restart, without effect."
        return ""

    # ---- failures ---------------------------------------------------------------------------
    def record_failure(self, extension: Extension, hook: str, message: str) -> None:
        with self._lock:
            extension.failures[hook] = f"{message} ({time.strftime('%H:%M:%S')})"

    def record_success(self, extension: Extension, hook: str) -> None:
        if hook in extension.failures:
            with self._lock:
                extension.failures.pop(hook, None)
                self._warned = {w for w in self._warned if w[1:] != (extension.name, hook)}

    def first_warning(self, owner: str, extension: Extension, hook: str) -> bool:
        """True the first time this person is told about this extension's hook failing
        (again after the hook has worked in between)."""
        key = (owner, extension.name, hook)
        with self._lock:
            if key in self._warned:
                return False
            self._warned.add(key)
            return True

    # ---- what the Extensions tab shows ------------------------------------------------------
    def rows(self) -> list[Row]:
        rows = []
        enabled = self.enabled_names()
        for name in self.available():
            extension = self._known.get(name)
            notes = []
            on = name in enabled
            if extension is None:
                status = "off"
            elif extension.module is None:
                status = "not loaded"
                notes.append(extension.load_error)
            else:
                status = "failing" if extension.failures else ("ok" if on else "off")
                notes += [f"{hook}: {error}" for hook, error in extension.failures.items()]
                if extension.is_stuck():
                    notes.append("a hook is still running past the time limit; skipped until it returns")
                if on and "ui" in extension.hooks and not extension.ui_on_page:
                    notes.append("restart the server to show its controls")
                if not on and extension.ui_on_page:
                    notes.append("its controls stay on the page until a restart, without effect")
                notes += [note for hook, note in IGNORED_HOOKS.items() if hook in extension.hooks]
            if extension is not None and extension.missing:
                notes.append("missing packages (not installed automatically): " + ", ".join(extension.missing))
            display = extension.display_name if extension is not None and extension.module else name
            rows.append(Row(name, display, on, status, notes))
        return rows

    # ---- page hooks ---------------------------------------------------------------------------
    def page_text(self, hook: str) -> str:
        """The enabled extensions' custom_css() or custom_js(), joined; failures skipped."""
        parts = []
        for extension in self.enabled():
            fn = getattr(extension.module, hook, None)
            if not callable(fn):
                continue
            try:
                text = call_with_time_limit(fn, (), {}, self.timeout, f"{extension.name}.{hook}")
            except HookTimeout as exc:
                extension.stuck.append(exc.thread)
                self.record_failure(extension, hook, f"{hook}() {exc}")
                continue
            except BaseException as exc:
                log.error("Extension '%s': %s() failed:\n%s", extension.name, hook, traceback.format_exc())
                self.record_failure(extension, hook, f"{hook}() raised {_describe(exc)}")
                continue
            if isinstance(text, str):
                parts.append(text)
            else:
                self.record_failure(extension, hook, f"{hook}() returned {type(text).__name__}, not text")
        return "\n".join(parts)

    def custom_css(self) -> str:
        return self.page_text("custom_css")

    def custom_js(self) -> str:
        return self.page_text("custom_js")

    def runner(self, who):
        """The hooks of one request by `who` (a modules.roles.Identity)."""
        from modules.extension_runner import HookRunner
        return HookRunner(self, who.owner)


def missing_requirements(path: Path) -> list[str]:
    """Entries of a requirements.txt whose package is not installed (by distribution name,
    through importlib.metadata). Lines this cannot read (options, URLs) are skipped."""
    if not path.is_file():
        return []
    from packaging.requirements import InvalidRequirement, Requirement
    missing = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            missing.append(f"{line} (installed: {version})")
    return missing


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def registry_from_flags(root: Path, names: list[str], settings: dict, timeout: float = DEFAULT_TIMEOUT
                        ) -> tuple["ExtensionRegistry", list[str]]:
    """The server's registry: --extensions first, then the settings file's
    default_extensions, in that order. Returns it with messages for the start-up banner."""
    registry = ExtensionRegistry([root / "extensions"], settings=settings, timeout=timeout)
    messages = []
    from_settings = settings.get("default_extensions") or []
    if isinstance(from_settings, str):
        from_settings = from_settings.split()
    if not isinstance(from_settings, list) or not all(isinstance(n, str) for n in from_settings):
        messages.append("The settings file's default_extensions must be a list of extension names; ignored.")
        from_settings = []
    wanted = list(dict.fromkeys([*names, *from_settings]))
    messages += [m for m in registry.enable(wanted) if not m.endswith(" is on.")]
    return registry, messages
