"""Starts the workbench: parse the flags, load the model, build the page, serve it."""
from __future__ import annotations

import logging
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
REQUIRED_MODULES = ("gradio", "psutil", "llama_cpp", "yaml", "jinja2")


def run_inside_the_projects_environment() -> None:
    """`python server.py` with a Python that lacks the requirements: start again inside the
    project's .venv when it exists, else say in one line what to run first."""
    import importlib.util
    import os
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return
    venv_python = ROOT / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.exit(f"{sys.executable} lacks what the server needs ({', '.join(missing)}). Run ./start.sh "
             f"first: it installs everything into .venv and starts the server (./start.sh --listen).")


if __name__ == "__main__":
    run_inside_the_projects_environment()

from loaders.specs import SPECS_BY_NAME  # noqa: E402
from modules import cli, model_files, template_render  # noqa: E402
from modules.accounts import (Accounts, AccountsError, client_address_middleware,  # noqa: E402
                              trust_forwarded_headers_from)
from modules.chat_service import ChatService  # noqa: E402
from modules.extensions import registry_from_flags  # noqa: E402
from modules.front_door import FrontDoor  # noqa: E402
from modules.history_store import HistoryStore  # noqa: E402
from modules.limits import limits_from_args  # noqa: E402
from modules.login_messages import login_messages_middleware  # noqa: E402
from modules.model_manager import ModelManager  # noqa: E402
from modules.named_files import Library  # noqa: E402
from modules.roles import AccessPolicy  # noqa: E402
from modules.safe_files import atomic_write_text  # noqa: E402
from modules.web_security import content_security_policy_middleware  # noqa: E402
from modules.scheduler import Scheduler  # noqa: E402
from modules.settings_file import SettingsError, load_default_params, load_settings_mapping  # noqa: E402
from modules.ui.app import CSS, build_app  # noqa: E402
from modules.ui.context import UIContext  # noqa: E402
from modules.api.app import start_api  # noqa: E402

log = logging.getLogger("server")
DEFAULT_PRESET = "Balanced"     # what the page starts with when --settings is not given


def main(argv: list[str] | None = None) -> None:
    args = cli.build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs each request's address at INFO (the remote loader's openai client included).
    for name in ("httpx", "httpx2", "urllib3", "gradio"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in cli.not_implemented_messages(args):
        log.warning(message)

    notices = []
    try:
        default_params = load_default_params(args.settings or None, ROOT / "presets",
                                             fallback_preset=DEFAULT_PRESET)
    except SettingsError as exc:
        log.error("%s", exc)
        notices.append(f"**Settings file ignored:** {exc}")
        default_params = None
    try:
        settings_values = load_settings_mapping(args.settings or None)
    except SettingsError:
        settings_values = {}                    # reported just above
    extensions, messages = registry_from_flags(ROOT, args.extensions, settings_values, args.extension_timeout)
    for message in messages:
        log.warning("Extensions: %s", message)
    notices += [f"**Extensions:** {message}" for message in messages]

    data_dir = Path(args.data_dir) if Path(args.data_dir).is_absolute() else ROOT / args.data_dir
    limits = limits_from_args(args)
    template_render.configure(limits)       # template size and render time limits
    scheduler = Scheduler()
    models = ModelManager(scheduler, ROOT / args.model_dir if not Path(args.model_dir).is_absolute()
                          else args.model_dir)
    load_settings = cli.load_settings_from_args(args)
    notices += load_startup_model(models, args.model, load_settings)

    host = (args.listen_host or "0.0.0.0") if args.listen else "127.0.0.1"
    try:
        trust_forwarded_headers_from(args.forwarded_allow_ips)     # before launch() builds uvicorn's config
        accounts = Accounts.from_flags(args.gradio_auth, args.gradio_auth_path)
    except AccountsError as exc:
        sys.exit(f"Accounts: {exc}")
    for warning in accounts.warnings if accounts else ():
        log.warning("%s", warning)
    auth = accounts.gradio_auth if accounts else None
    policy = AccessPolicy(accounts_on=accounts is not None, everyone_admin=args.everyone_admin,
                          admin_users=_admin_names(args.admin_users, accounts))
    log.info("%s", policy.describe())
    if args.listen and auth is None:
        warning = ("This server is open to the network with no accounts: anyone who can reach "
                   f"{host}:{args.listen_port} can use it. Add --gradio-auth or --gradio-auth-path.")
        log.warning(warning)
        notices.append(f"**Open to the network:** {warning}")

    store = HistoryStore(data_dir / "chats", limits=limits)
    if store.recovery_notice:
        notices.append(f"**Chat history:** {store.recovery_notice}")
    interrupted = store.mark_interrupted()
    if interrupted:
        log.info("%d reply(ies) cut off by the last shutdown are kept, marked as interrupted.", interrupted)
    door = FrontDoor(scheduler, limits, extensions=extensions)
    ctx = UIContext(scheduler=scheduler, models=models, root=ROOT, default_load_settings=load_settings,
                    chat=ChatService(door, store), policy=policy, limits=limits, front_door=door,
                    files=Library(ROOT, data_dir), extensions=extensions)
    ctx.extras["data_dir"] = data_dir
    if not args.settings and default_params is not None:
        ctx.extras["start_preset"] = DEFAULT_PRESET          # what the sliders start with
    ctx.extras["browser_secret"] = persistent_secret(data_dir / "browser-state.secret")
    app = build_app(ctx, banner="\n\n".join(notices), default_params=default_params)
    app.queue(default_concurrency_limit=None)
    api_routes = start_api(args, host, door=door, models=models, policy=policy,
                           preset_store=ctx.files.presets, load_settings=load_settings)
    log.info("Serving on http://%s:%d", host if host != "0.0.0.0" else "localhost", args.listen_port)
    app.launch(server_name=host, server_port=args.listen_port, auth=auth, show_error=True,
               inbrowser=False, quiet=True, ssr_mode=False, css=CSS + extensions.custom_css(),
               js=extensions.custom_js() or None,
               max_file_size=limits.max_upload_mb * 2**20,     # bytes; a larger upload gets 413
               # the policy wraps everything, the log-in middleware's own answers included;
               # the client address feeds the log-in throttle
               app_kwargs={"routes": api_routes,       # /v1, /health, /metrics with --api
                           "middleware": [content_security_policy_middleware(),
                                                      client_address_middleware(),
                                                      *([login_messages_middleware(accounts)] if accounts else [])]})


def _admin_names(flag: str, accounts) -> set[str]:
    """--admin-users plus the accounts marked admin in the accounts file."""
    names = {name.strip() for name in (flag or "").split(",") if name.strip()}
    marked = getattr(accounts, "admins", None) if accounts else None
    names |= set(marked or ())
    if accounts is None and names:
        log.warning("--admin-users has no effect without accounts (--gradio-auth or --gradio-auth-path).")
    elif accounts is not None:
        unknown = names - set(accounts.users)
        if unknown:
            log.warning("--admin-users names no account: %s", ", ".join(sorted(unknown)))
    return names


def persistent_secret(path: Path) -> str:
    """The key that encrypts what the page keeps in the browser. It must outlive restarts,
    or every browser would lose track of its chats when the server restarts."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    atomic_write_text(path, secret)
    path.chmod(0o600)
    return secret


def load_startup_model(models: ModelManager, requested: str | None, settings) -> list[str]:
    """Loads --model, or the default model. A failure is reported, never fatal."""
    spec = SPECS_BY_NAME.get(settings.loader or "")
    if spec is not None and not spec.reads_files:
        target = ""                         # a remote server: no file here to look for
    elif requested:
        target = requested
    else:
        found = model_files.default_model(models.model_dir)
        if found is None:
            message = (f"No model found in {models.model_dir}. Put a .gguf file or a model folder "
                       f"there (./start.sh installs the default one) and load it in the Model tab.")
            log.warning(message)
            return [f"**No model loaded:** {message}"]
        target = found.name
    log.info("Loading %s", target or settings.loader)
    result = models.load(target, settings)
    if result.ok:
        log.info(result.message)
        return []
    log.error("Could not load the model: %s", result.message)
    return [f"**Could not load the model:** {result.message} The server is running; choose "
            f"another model in the Model tab."]


if __name__ == "__main__":
    main()
