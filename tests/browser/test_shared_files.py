"""Shared and private presets and prompts, as a network visitor and as the admin see them.

The server listens on the network (--listen) without accounts, so the browser on this
machine (loopback) is the admin and a browser coming over the machine's network address is
a visitor: private files of its own, the shared ones read-only.
"""
from __future__ import annotations

import socket
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ROOT, ServerProcess
from tests.browser.test_ui import choose_option, open_app, tab
from tests.load_client import Endpoint, WebUser

REFUSED = "Only an admin can change or delete the shared"


def network_address() -> str | None:
    """This machine's address on its network (a UDP connect sends nothing), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def lan_server(tmp_path_factory):
    address = network_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    server = ServerProcess(tmp_path_factory.mktemp("lan-server"), extra_args=["--listen"])
    try:
        server.wait_ready()
        server.lan_url = f"http://{address}:{server.port}/"
        yield server
    finally:
        server.stop()


def test_a_network_visitor_keeps_private_presets_and_cannot_change_shared_ones(new_context, lan_server):
    name = f"visitor-{uuid.uuid4().hex[:8]}"
    visitor = new_context().new_page()
    open_app(visitor, lan_server.lan_url)
    tab(visitor, "Parameters")
    visitor.get_by_label("Save as", exact=True).fill(name)
    visitor.get_by_role("button", name="Save preset").click()
    expect(visitor.get_by_text(f"Saved preset {name} (private")).to_be_visible()
    expect(visitor.get_by_label("Shared with everyone")).to_have_count(0)
    assert not list((ROOT / "presets").glob(f"{name}.*"))

    choose_option(visitor, "Preset", "Balanced")
    expect(visitor.get_by_text("Preset Balanced applied.")).to_be_visible()
    visitor.get_by_role("button", name="Delete preset").click()
    expect(visitor.locator(".toast-body").filter(has_text=REFUSED)).to_be_visible()
    assert (ROOT / "presets" / "Balanced.yaml").is_file()

    other = new_context().new_page()
    open_app(other, lan_server.lan_url)
    tab(other, "Parameters")
    other.get_by_label("Preset", exact=True).click()
    expect(other.get_by_role("option", name="Balanced", exact=True)).to_be_visible()
    expect(other.get_by_role("option", name=f"{name} (private)")).to_have_count(0)


def test_a_visitor_asking_the_server_directly_cannot_share(lan_server):
    """The box is hidden from visitors; the handler refuses a request that ticks it anyway."""
    name = f"sneaky-{uuid.uuid4().hex[:8]}"
    user = WebUser(lan_server.lan_url, 0)
    try:
        user.open_page()
        config = user.client.get(user.base + "/config").json()
        save_id = next(c["id"] for c in config["components"]
                       if c.get("props", {}).get("elem_id") == "default-prompt-save")
        index, dep = next((d.get("id", i), d) for i, d in enumerate(config["dependencies"])
                          if [save_id, "click"] in [list(t) for t in d["targets"]])
        save = Endpoint(index, save_id, list(dep["inputs"]), list(dep["outputs"]), True)
        user.join(save, [name, "text", True, user.browser_key])    # name, Input, shared, key
        replies = []
        user.stream(lambda message: replies.append(message), time.monotonic() + 60)
        status = next(m for m in replies if m.get("msg") == "process_completed")["output"]["data"][1]
        assert status.startswith("⚠️ Not saved") and REFUSED in status
        assert not (ROOT / "prompts" / f"{name}.txt").exists()
    finally:
        user.close()
        (ROOT / "prompts" / f"{name}.txt").unlink(missing_ok=True)


def test_the_admin_shares_a_prompt_that_visitors_can_load(new_context, lan_server):
    name = f"shared-test-{uuid.uuid4().hex[:8]}"
    try:
        admin = new_context().new_page()
        open_app(admin, lan_server.url)
        tab(admin, "Default")
        admin.locator("#default-input textarea").fill("Shared prompt text")
        admin.locator("#default-prompt-name textarea").fill(name)
        admin.get_by_label("Shared with everyone").check()
        admin.locator("#default-prompt-save").click()
        expect(admin.locator("#default-prompt-status")).to_contain_text(
            f"Saved prompt {name} (shared with everyone)")
        assert (ROOT / "prompts" / f"{name}.txt").read_text() == "Shared prompt text"

        visitor = new_context().new_page()
        open_app(visitor, lan_server.lan_url)
        tab(visitor, "Default")
        choose_option(visitor, "Prompt", name)
        expect(visitor.locator("#default-input textarea")).to_have_value("Shared prompt text")
    finally:
        (ROOT / "prompts" / f"{name}.txt").unlink(missing_ok=True)
