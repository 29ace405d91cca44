"""The French table (locales/fr.yaml) and how the page and the server's messages use it.

The page is built here as server.py builds it (real scheduler, model manager, stores,
extensions registry; no model needs to be loaded for the page to exist), then every text a
person reads on it is checked to have its French: a new label without one fails here.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import gradio as gr
import pytest
import yaml
from gradio.context import LocalContext

from modules.ui import i18n, notify

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from modules.chat_service import ChatService
    from modules.extensions import registry_from_flags
    from modules.front_door import FrontDoor
    from modules.history_store import HistoryStore
    from modules.model_manager import ModelManager
    from modules.named_files import Library
    from modules.roles import AccessPolicy
    from modules.scheduler import Scheduler
    from modules.ui.app import build_app
    from modules.ui.context import UIContext

    data = tmp_path_factory.mktemp("i18n-data")
    scheduler = Scheduler()
    extensions, _ = registry_from_flags(ROOT, [], {})
    door = FrontDoor(scheduler, None, extensions=extensions)
    ctx = UIContext(scheduler=scheduler, models=ModelManager(scheduler, ROOT / "models"), root=ROOT,
                    chat=ChatService(door, HistoryStore(data / "chats")), front_door=door,
                    policy=AccessPolicy(accounts_on=True), files=Library(ROOT, data), extensions=extensions)
    ctx.extras["data_dir"] = data
    return build_app(ctx, banner="")


def request_in(language: str) -> gr.Request:
    return gr.Request(headers={"accept-language": language})


@pytest.fixture
def french_event():
    """Handlers and toasts below run as for a browser that prefers French."""
    token = LocalContext.request.set(request_in("fr-FR,fr;q=0.9,en;q=0.8"))
    yield
    LocalContext.request.reset(token)


# ---- the table --------------------------------------------------------------------------

def test_the_table_has_no_repeated_entry_and_keeps_every_placeholder():
    seen, repeated = set(), []

    class Strict(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            for key_node, _ in node.value:
                key = self.construct_object(key_node)
                (repeated.append(key) if key in seen else seen.add(key))
            return super().construct_mapping(node, deep)

    entries = yaml.load((ROOT / "locales" / "fr.yaml").read_text(encoding="utf-8"), Loader=Strict)
    assert not repeated, f"entries given twice (the last one silently wins): {repeated}"
    for english, french in entries.items():
        assert sorted(i18n._PLACEHOLDER.findall(english)) == sorted(i18n._PLACEHOLDER.findall(french)), english


def test_messages_built_from_parts_are_translated_whole():
    table = i18n.FRENCH
    assert table.translate("Renamed to “Voyage à Lyon”.") == "Renommée en « Voyage à Lyon »."
    assert table.translate("7 tokens, 0.8 tokens/s, seed 42") == "7 jetons, 0.8 jetons/s, graine 42"
    assert table.translate("7 tokens, 0.8 tokens/s, seed 42 (stopped)") == "7 jetons, 0.8 jetons/s, graine 42 (arrêtée)"
    assert (table.translate("Not saved: Only an admin can change or delete the shared presets. Ask the person "
                            "who runs this server.")
            == "Non enregistré : Seul un admin peut modifier ou supprimer les préréglages partagés. Demandez à "
               "la personne qui gère ce serveur.")
    # a message of the table's form around text it does not know: the known part in French
    assert table.translate("Error: disk on fire") == "Erreur : disk on fire"
    # names are copied, never translated (a chat called "Stop")
    assert table.translate("Renamed to “Stop”.") == "Renommée en « Stop »."
    assert table.translate("Something the table has never seen.") is None


@pytest.mark.parametrize("header, language", [
    ("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "fr"), ("en-GB,en;q=0.9,fr;q=0.8", "en"),
    ("de;q=0.5,fr;q=0.9", "fr"), ("", "en"), (None, "en"), ("*", "*"),
])
def test_the_language_a_browser_ranks_first(header, language):
    assert i18n.preferred_language(header) == language


# ---- the page ----------------------------------------------------------------------------

def test_every_text_of_the_page_has_its_french(app):
    missing = i18n.untranslated(app)
    assert not missing, ("Texts of the page with no French in locales/fr.yaml (add them; see "
                         "docs/i18n.md):\n" + "\n".join(missing))


def test_the_page_sends_translation_keys_and_the_french_table(app):
    config = json.loads(json.dumps(app.get_config_file(), default=str))     # as the browser gets it
    props = [block["props"] for block in config["components"]]
    send = next(p for p in props if p.get("elem_id") == "chat-send")
    assert send["value"] == str(i18n.I18N("Send"))            # the browser looks it up
    french = i18n.I18N.translations_dict["fr"]
    assert french["Send"] == "Envoyer"
    labels = [_key(p["label"]) for p in props if str(p.get("label", "")).startswith("__i18n__")]
    assert "Parameters" in labels and french["Parameters"] == "Paramètres"     # a tab's name
    # a text built from a template (the models folder) is in the browser's table too
    model_help = next(p["info"] for p in props if p.get("elem_id") == "model-choice")
    assert french[_key(model_help)].startswith("Fichiers et dossiers dans ")


def _key(serialised: str) -> str:
    return json.loads(serialised.removeprefix("__i18n__"))["key"]


# ---- what the server writes ----------------------------------------------------------------

def _handler(app, elem_id: str, event: str = "click"):
    for block_fn in app.fns.values():
        for target_id, name in block_fn.targets:
            if name == event and getattr(app.blocks.get(target_id), "elem_id", None) == elem_id:
                return block_fn
    raise LookupError(elem_id)


def test_status_lines_follow_the_browser_and_chat_content_never_does(app, french_event):
    from modules.ui.chat_tab import ChatPage
    rename = _handler(app, "chat-rename")
    listing, title, line = rename.fn(None, ChatPage(), "x", "")       # nobody known yet: refused
    assert line == "Ouvrez d'abord une discussion : il n'y en a aucune à renommer."
    LocalContext.request.set(request_in("en-US,en"))
    assert rename.fn(None, ChatPage(), "x", "")[2] == "Open a chat first: there is no chat to rename."


def test_a_toast_is_french_for_a_french_browser(french_event):
    with warnings.catch_warnings(record=True) as caught:     # outside an event gradio warns instead
        warnings.simplefilter("always")
        notify.warn("Not saved: The name is empty.")
    assert [str(w.message) for w in caught] == ["Non enregistré : Le nom est vide."]
