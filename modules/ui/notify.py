"""Toasts whose text is shown as text.

Gradio renders a toast's message as HTML, and the messages shown here carry text from users,
models, templates (a template's raise_exception(...) message) and file names. Unescaped, such
text could run script in the page of whoever sees the toast, so every toast goes through here.
It is also where toasts take the language of the browser that asked (modules/ui/i18n.py):
French for a browser that prefers French, when the table knows the message.
"""
from __future__ import annotations

import html
import re

import gradio as gr

from modules.ui.i18n import for_request


def warn(message: object) -> None:
    """A warning toast that shows the message literally."""
    gr.Warning(html.escape(for_request(str(message))))


def info(message: object) -> None:
    """An info toast that shows the message literally."""
    gr.Info(html.escape(for_request(str(message))))


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]()!#|~{}])")


def plain(message: object) -> str:
    """Text for a gr.Markdown status line, shown literally: HTML escaped and Markdown's
    link, image and emphasis characters backslashed, so an error quoting a template, a file
    name or a model's words can neither add markup nor fetch an image."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(str(message)))
