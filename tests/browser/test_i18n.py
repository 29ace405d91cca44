"""The page in the browser's language: a Chromium that asks for French (navigator.language and
Accept-Language fr-FR) reads the tabs, buttons, toasts and status lines in French; one that
asks for English reads English. Against the real server and model."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_ui import GENERATION_TIMEOUT, status, wait_ready

FRENCH_TABS = ["Discussion", "Par défaut", "Bloc-notes", "Paramètres", "Modèle", "Gabarit d'instructions",
               "Extensions"]
ENGLISH_TABS = ["Chat", "Default", "Notebook", "Parameters", "Model", "Instruction template", "Extensions"]


@pytest.fixture
def browser_in(new_visitor):
    """Pages of browsers set to a language (each a new visitor)."""
    return lambda locale: new_visitor(locale=locale, viewport={"width": 1400, "height": 1000})


def top_tabs(page: Page) -> list[str]:
    tabs = page.get_by_role("tab")
    expect(tabs.first).to_be_visible()
    return [text.strip() for text in tabs.all_inner_texts()][:len(FRENCH_TABS)]


def toast(page: Page, text: str):
    return page.locator("[data-testid='toast-body']").filter(has_text=text)


def test_a_french_browser_sees_the_tabs_and_buttons_in_french(browser_in, server_url):
    page = browser_in("fr-FR")
    page.goto(server_url)
    wait_ready(page)
    assert top_tabs(page) == FRENCH_TABS
    for name in ("Nouvelle discussion", "Envoyer", "Arrêter", "Régénérer", "Continuer", "Mode sombre"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(page.locator("#chat-input textarea")).to_have_attribute(
        "placeholder", "Écrire un message (Entrée pour envoyer, Maj+Entrée pour aller à la ligne)")
    expect(page.locator("#chat-mode")).to_contain_text("le contexte du personnage sert de prompt système")

    page.get_by_role("tab", name="Paramètres", exact=True).click()
    expect(page.get_by_label("Préréglage", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Enregistrer le préréglage")).to_be_visible()
    expect(page.get_by_role("button", name="Longueur")).to_be_visible()      # an accordion
    page.get_by_role("tab", name="Modèle", exact=True).click()
    for name in ("Charger", "Décharger", "Recharger"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(page.get_by_text("Fichiers et dossiers dans")).to_be_visible()     # built from a template


def test_an_english_browser_sees_english(browser_in, server_url):
    page = browser_in("en-US")
    page.goto(server_url)
    wait_ready(page)
    assert top_tabs(page) == ENGLISH_TABS
    for name in ("New chat", "Send", "Stop", "Dark mode"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(page.get_by_text("Envoyer")).to_have_count(0)


def test_a_french_browser_reads_warnings_and_status_lines_in_french(browser_in, server_url):
    page = browser_in("fr-FR")
    page.goto(server_url)
    wait_ready(page)
    # renaming with no chat open: the status line says why
    page.get_by_text("Renommer ou supprimer", exact=True).click()
    page.locator("#chat-rename").click()
    expect(status(page)).to_have_text("Ouvrez d'abord une discussion : il n'y en a aucune à renommer.")

    # a reply's summary line, built from numbers
    page.locator("#chat-input textarea").fill("Tell me the capital of France.")
    page.locator("#chat-input textarea").press("Enter")
    expect(status(page)).to_contain_text("jetons/s", timeout=GENERATION_TIMEOUT)
    expect(status(page)).not_to_contain_text("tokens")

    # the question on a button, asked by the server
    page.locator("#chat-delete").click()
    expect(page.locator("#chat-delete-confirm")).to_contain_text("C'est définitif.")
    page.locator("#chat-delete-cancel").click()
    expect(page.locator("#chat-delete")).to_be_visible()

    # saving a preset with no name: a warning toast built from two messages
    page.get_by_role("tab", name="Paramètres", exact=True).click()
    page.get_by_role("button", name="Enregistrer le préréglage").click()
    warning = toast(page, "Non enregistré : Le nom est vide.")
    expect(warning).to_be_visible()
    expect(page.locator("[data-testid='toast-body']").filter(has_text="Not saved")).to_have_count(0)
