"""The Model tab checks before it breaks, and an empty reply explains itself: what a
newcomer tripped over, done the way they did it."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.test_ui import open_app, tab

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
TIMEOUT = 120_000


def test_a_loader_that_cannot_read_the_model_is_refused_and_the_model_keeps_running(page, server_url):
    open_app(page, server_url)
    tab(page, "Model")
    expect(page.locator("#model-info")).to_contain_text(MODEL, timeout=TIMEOUT)
    expect(page.get_by_text("llama.cpp settings")).to_be_visible()
    page.get_by_label("Transformers").check()
    expect(page.get_by_text("Transformers and GPTQ settings")).to_be_visible()   # the heading follows
    page.locator("#model-load").click()
    status = page.locator("#model-status")
    expect(status).to_contain_text("GGUF file: choose llama.cpp", timeout=TIMEOUT)
    expect(status).to_contain_text(f"{MODEL} stays loaded")
    expect(status).not_to_contain_text("Errno")
    expect(page.locator("#model-info")).to_contain_text(f"{MODEL} with llama.cpp")


def test_an_out_of_range_number_gets_a_message_and_changes_nothing(page, server_url):
    open_app(page, server_url)
    tab(page, "Model")
    page.get_by_label("llama.cpp").check()
    box = page.get_by_label("ctx-size")
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("99999999")
    page.locator("#model-load").click()
    expect(page.locator("#model-status")).to_contain_text("ctx-size must be between 0 and 1,048,576",
                                                          timeout=TIMEOUT)
    expect(page.locator("#model-info")).to_contain_text("2048 tokens")       # still as started


def test_an_empty_reply_says_why_and_how_to_get_text(page, server_url):
    open_app(page, server_url)
    tab(page, "Default")
    box = page.locator("#default-input textarea")
    box.click()
    page.keyboard.type("Question: What is the capital of Germany?")
    page.keyboard.press("Enter")
    page.keyboard.type("Answer:")
    page.locator("#default-generate").click()
    status = page.locator("#default-status")
    expect(status).to_contain_text("ended its turn at once", timeout=TIMEOUT)
    expect(status).to_contain_text("ban_eos_token")


def test_the_remote_loader_shows_its_own_fields_and_an_unreachable_server_changes_nothing(page, server_url):
    open_app(page, server_url)
    tab(page, "Model")
    expect(page.locator("#model-info")).to_contain_text(MODEL, timeout=TIMEOUT)
    page.get_by_label("Remote").check()
    expect(page.get_by_text("Remote server settings")).to_be_visible()
    expect(page.get_by_text("llama.cpp settings")).to_be_hidden()
    expect(page.get_by_label("gpu-layers")).to_be_hidden()
    expect(page.get_by_label("remote-key")).to_have_value("")
    url = page.get_by_label("remote-url")
    url.click()
    page.keyboard.type("http://127.0.0.1:9/v1")          # the discard port: nothing answers
    page.locator("#model-load").click()
    status = page.locator("#model-status")
    expect(status).to_contain_text("cannot be reached", timeout=TIMEOUT)
    expect(status).to_contain_text(f"{MODEL} stays loaded")
    expect(page.locator("#model-info")).to_contain_text(f"{MODEL} with llama.cpp")
