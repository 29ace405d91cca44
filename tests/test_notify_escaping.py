"""Toasts render HTML, so every toast must go through modules/ui/notify.py, which escapes it."""
from __future__ import annotations

import ast
import warnings
from pathlib import Path

from modules.ui import notify

ROOT = Path(__file__).resolve().parents[1]
NOTIFY = ROOT / "modules" / "ui" / "notify.py"
TOAST_NAMES = {"Warning", "Info"}


def _raw_toasts(path: Path) -> list[str]:
    """Where a file shows a toast without notify: gr.Warning(...) / gr.Info(...) (under any alias
    of gradio) or Warning / Info imported from gradio."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    gradio_names = {"gradio"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            gradio_names |= {a.asname or a.name for a in node.names if a.name == "gradio"}
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in TOAST_NAMES
                and isinstance(node.value, ast.Name) and node.value.id in gradio_names):
            found.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "gradio":
            found += [f"{where}:{node.lineno}: from gradio import {a.name}"
                      for a in node.names if a.name in TOAST_NAMES | {"*"}]
    return found


def test_no_toast_bypasses_notify():
    sources = [p for p in sorted((ROOT / "modules").rglob("*.py")) if p != NOTIFY]
    assert sources, "no sources found to check"
    offenders = [hit for path in sources for hit in _raw_toasts(path)]
    assert not offenders, ("Use modules.ui.notify.warn/info, which escape the text; gradio renders "
                           "toasts as HTML:\n" + "\n".join(offenders))


def test_the_scan_finds_a_raw_toast(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import gradio as g\nfrom gradio import Info\ng.Warning('x')\n", encoding="utf-8")
    assert len(_raw_toasts(sample)) == 2


def test_markup_reaches_gradio_as_text():
    # Outside an event, gradio hands a warning toast's message to warnings.warn.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        notify.warn('<img src=x onerror="alert(1)"> & "quoted"')
    shown = [str(w.message) for w in caught]
    assert '&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &quot;quoted&quot;' in shown


def test_status_lines_show_text_literally():
    from modules.ui.notify import plain
    shown = plain('Template error: ![x](http://127.0.0.1:9/leak?q=secret) <img src=x> **bold**')
    assert "<img" not in shown and "&lt;img src=x&gt;" in shown
    assert "![x](" not in shown and r"\!\[x\]\(" in shown       # no image, no link
    assert "**bold**" not in shown
