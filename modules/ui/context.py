"""What every tab module receives: the server's shared services and the per-browser
session state components. Tabs build components and wire events; they keep no state
of their own at module level (several people use the page at once)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class UIContext:
    # shared services (one per server)
    scheduler: Any                 # modules.scheduler.Scheduler
    models: Any                    # modules.model_manager.ModelManager
    root: Any                      # pathlib.Path of the project (presets/, characters/, ...)
    default_load_settings: Any = None   # loaders.settings.LoadSettings from the flags
    chat: Any = None               # modules.chat_service.ChatService
    policy: Any = None             # modules.roles.AccessPolicy: who is an admin
    limits: Any = None             # modules.limits.Limits
    front_door: Any = None         # modules.front_door.FrontDoor: every generation enters here
    files: Any = None              # modules.named_files.Library: presets, characters, templates, prompts
    extensions: Any = None         # modules.extensions.ExtensionRegistry: the extensions and their state
    # per-browser state (gr.State components, created inside the Blocks)
    params_state: Any = None       # dict: the GenerationParams fields in use
    template_state: Any = None     # str | None: chosen instruction template source; None = the model's own
    character_state: Any = None    # dict: {"name", "context", "greeting", "picture"}
    browser_key: Any = None        # gr.BrowserState: this browser's random key (its owner without accounts)
    extras: dict = field(default_factory=dict)   # components other tabs need to reach
    on_load: list = field(default_factory=list)  # (fn, inputs, outputs) run when a page opens


    def identify(self, request, browser_key=None, *, need_owner: bool = True):
        """The modules.roles.Identity of the person behind a Gradio request, derived on the
        server (user name or client address) plus this browser's key."""
        from modules.roles import AccessPolicy
        policy = self.policy or AccessPolicy(accounts_on=False)
        return policy.identify(request, browser_key, need_owner=need_owner)

