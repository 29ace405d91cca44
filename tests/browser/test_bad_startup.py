"""A bad --model never stops the server: the console and the page say what is wrong."""
from __future__ import annotations

import shutil

from tests.browser.conftest import ServerProcess
from tests.conftest import DEFAULT_GGUF


def test_text_file_named_gguf_is_reported_and_the_server_serves(tmp_path, new_context):
    models = tmp_path / "models"
    models.mkdir()
    (models / "notes.gguf").write_text("These are my notes, not a model.")
    shutil.copy(DEFAULT_GGUF, models / DEFAULT_GGUF.name)
    server = ServerProcess(tmp_path / "run", extra_args=["--model-dir", str(models), "--model", "notes.gguf"])
    try:
        server.wait_ready()
        assert "not a GGUF model file" in server.log_tail()
        page = new_context().new_page()
        page.goto(server.url)
        banner = page.locator("#banner")
        banner.wait_for()
        assert "Could not load the model" in banner.inner_text()
        assert "not a GGUF model file" in banner.inner_text()
        # The server still works: load the real model from the Model tab, then chat.
        page.get_by_role("tab", name="Model", exact=True).click()
        page.locator("#model-choice input").click()
        page.get_by_role("option").filter(has_text="SmolLM2").first.click()
        page.locator("#model-load").click()
        page.wait_for_function(
            "() => (document.querySelector('#model-status')?.innerText || '').includes('Loaded')",
            timeout=60_000)
        page.get_by_role("tab", name="Chat", exact=True).click()
        page.fill("#chat-input textarea", "Tell me the capital of France.")
        page.click("#chat-send")
        page.wait_for_function(
            "() => (document.querySelector('#chat-status')?.innerText || '').includes('tokens/s')",
            timeout=120_000)
        assert "Paris" in page.inner_text("#chat-view")
    finally:
        server.stop()


def test_missing_model_is_named_on_the_console_and_the_page(tmp_path, new_context):
    server = ServerProcess(tmp_path, extra_args=["--model", "does-not-exist.gguf"])
    try:
        server.wait_ready()
        assert "does-not-exist.gguf" in server.log_tail() and "not found" in server.log_tail()
        page = new_context().new_page()
        page.goto(server.url)
        page.locator("#banner").wait_for()
        assert "not found" in page.inner_text("#banner")
    finally:
        server.stop()
