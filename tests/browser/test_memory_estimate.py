"""The Model tab's memory estimate, as a person sees it: a line that follows the context
size, sequences and cache type typed into the form, and a plot of memory against context."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.test_ui import open_app, tab

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
TIMEOUT = 60_000


def _type_number(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Tab")


def test_the_estimate_follows_the_context_size_and_the_plot_shows(page, server_url, tmp_path):
    open_app(page, server_url)
    tab(page, "Model")
    expect(page.locator("#model-info")).to_contain_text(MODEL, timeout=TIMEOUT)
    page.get_by_label("llama.cpp").check()
    line = page.locator("#memory-estimate")
    # the server runs with --ctx-size 2048
    expect(line).to_contain_text("2,048 tokens", timeout=TIMEOUT)
    expect(line).to_contain_text("weights 94 MiB")
    before = line.inner_text()

    _type_number(page, "ctx-size", "8192")
    expect(line).to_contain_text("8,192 tokens", timeout=TIMEOUT)
    assert line.inner_text() != before
    _type_number(page, "parallel", "1")
    expect(line).to_contain_text("8,192 tokens × 1 sequence,", timeout=TIMEOUT)
    # 8192 tokens of f16 cache for this model is 180 MiB (tests/test_kv_memory.py checks
    # that figure against llama.cpp's own report)
    expect(line).to_contain_text("cache 180 MiB")

    page.get_by_label("cache-type").click()
    page.get_by_role("option", name="q8_0").click()
    expect(line).to_contain_text("q8_0", timeout=TIMEOUT)
    expect(line).to_contain_text("cache 96 MiB")

    plot = page.locator("#memory-estimate-plot")
    expect(plot).to_be_visible()
    expect(plot.locator("canvas, svg").first).to_be_visible(timeout=TIMEOUT)
    plot.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "memory_estimate.png"), full_page=True)
