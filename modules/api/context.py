"""What the API's routes share: the front door, the model manager, the keys, the presets."""
from __future__ import annotations

from dataclasses import dataclass

from modules import model_files
from modules.api.auth import ApiKeys
from modules.front_door import FrontDoor
from modules.metrics import Metrics


SCOPE_KEY = "workbench.api"         # where app.py puts the context in each request's scope


def context_of(request) -> "ApiContext":
    return request.scope[SCOPE_KEY]


@dataclass
class ApiContext:
    door: FrontDoor
    models: object                  # modules.model_manager.ModelManager
    keys: ApiKeys
    preset_store: object            # presets.store(...): the named presets a request may ask for
    default_load_settings: object = None   # loaders.settings.LoadSettings for a load without args
    metrics: Metrics | None = None

    @property
    def limits(self):
        return self.door.limits

    def loaded_info(self):
        backend = self.door.scheduler.backend
        return backend.info if backend else None

    def model_names(self) -> list[str]:
        """Models in the models folder that a loader recognises."""
        return [entry.name for entry in model_files.list_models(self.models.model_dir) if entry.loader]

    def template_for(self, requested: str | None) -> str | None:
        """The request's own template (vLLM's chat_template field) or the model's."""
        if requested:
            return requested
        info = self.loaded_info()
        return info.chat_template if info else None
