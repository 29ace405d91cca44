"""The disk filling up, for real: a 2 MiB tmpfs mounted for the test and filled to the last
byte, so SQLite and file writes get ENOSPC from the kernel. Needs root (or CAP_SYS_ADMIN)
to mount; skipped, saying so, where that is not allowed."""
from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from modules import characters, presets
from modules.chat_service import ChatService, ChatSettings
from modules.front_door import FrontDoor
from modules.history_store import DiskFull, HistoryStore
from modules.limits import Limits
from modules.chat_session import SessionControl
from modules.params import GenerationParams
from modules.roles import Identity

OWNER = "someone"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


class Filler:
    """Takes every free byte of the disk, and gives them back."""

    def __init__(self, disk: Path):
        self.path = disk / "filler"

    def fill(self) -> None:
        with open(self.path, "ab", buffering=0) as handle:      # unbuffered: every byte lands
            for size in (1 << 16, 4096, 512, 1):
                try:
                    while handle.write(bytes(size)):
                        pass
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        assert os.statvfs(self.path).f_bavail == 0

    def free(self) -> None:
        self.path.unlink()


def test_a_reply_saved_on_a_full_disk_fails_clearly_and_keeps_what_was_saved(small_disk):
    store = HistoryStore(small_disk / "chats")
    chat = store.create_chat(OWNER, "Before")
    reply = store.append_message(OWNER, chat, "assistant", "first part", status="streaming")
    filler = Filler(small_disk)
    filler.fill()
    try:
        with pytest.raises(DiskFull, match="disk is full") as caught:
            store.update_message(OWNER, chat, reply, content="first part" + " and more" * 40_000)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(DiskFull):
            store.create_chat(OWNER, "x" * 100 + " " + "y" * 100_000)
        # What was saved before is intact and readable.
        assert store.get_chat(OWNER, chat).messages[-1].content == "first part"
    finally:
        filler.free()
    store.update_message(OWNER, chat, reply, content="first part, then the rest", status="done")
    assert store.get_chat(OWNER, chat).messages[-1].content == "first part, then the rest"
    check = sqlite3.connect(store.path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    store.close()


def test_a_chat_reply_when_the_disk_fills_midway_is_cancelled_with_a_clear_error(small_disk, scheduler):
    """Through the chat service, as the Chat tab sends: the disk fills while the reply is
    streaming; the next save fails, the generation is cancelled (its slot freed for
    others), the person gets the disk-full message, and the stored chat is still sound."""
    store = HistoryStore(small_disk / "chats")
    service = ChatService(FrontDoor(scheduler, Limits(max_requests_per_user=2)), store)
    who = Identity(owner=OWNER, user=OWNER, address="127.0.0.1", is_admin=False)
    settings = ChatSettings(params=GenerationParams(do_sample=False, max_new_tokens=2000, ban_eos_token=True),
                            mode="instruct")
    control = SessionControl()
    filler = Filler(small_disk)
    updates = service.send(who, None, "Write a long story about a dragon.", settings, control)
    with pytest.raises(DiskFull, match="disk is full"):
        for update in updates:
            if control.request is not None and len(control.request.generated) >= 5 \
                    and not filler.path.exists():
                filler.fill()
    try:
        finished = control.request.result()
        assert finished.reason == "cancelled" and finished.n_tokens < 2000
    finally:
        filler.free()
    chat = store.list_chats(OWNER)[0]
    messages = store.get_chat(OWNER, chat.id).messages
    assert messages[0].content == "Write a long story about a dragon."
    check = sqlite3.connect(store.path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    store.close()


@pytest.mark.parametrize("kind", ["preset", "character"])
def test_a_file_saved_on_a_full_disk_fails_and_leaves_the_old_one_whole(small_disk, kind):
    folder = small_disk / kind
    if kind == "preset":
        presets.save_preset("Mine", GenerationParams(temperature=0.5), folder=folder)
        save = lambda: presets.save_preset("Mine", GenerationParams(  # noqa: E731
            temperature=0.7, grammar_string="root ::= " + '"x" ' * 20_000), folder=folder)
    else:
        characters.save_character("Mine", "first context", folder=folder)
        save = lambda: characters.save_character("Mine", "second " * 50_000, folder=folder)  # noqa: E731
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    filler = Filler(small_disk)
    filler.fill()
    try:
        with pytest.raises(OSError) as caught:
            save()
        assert caught.value.errno == errno.ENOSPC
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, "the old file was touched"
    finally:
        filler.free()
    save()                                  # with room again the same save works
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
