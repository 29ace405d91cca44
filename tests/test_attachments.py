"""Files attached to chat messages: which ones are read and how (modules/attachments.py), and
how they travel with a message through the store, the view and the prompt (on the real model)."""
from __future__ import annotations

import pytest

from modules.attachments import Attachment, AttachmentRefused, add_files, prompt_text, read_file
from modules.chat_service import ChatService, ChatSettings
from modules.chat_session import SessionControl
from modules.front_door import FrontDoor
from modules.history_store import HistoryStore, StorageFull
from modules.limits import Limits
from modules.params import GenerationParams
from tests.pdf_files import text_pdf
from tests.chat_helpers import person, run

NOTES = "# Lighthouse\n\nThe keeper is called **Marguerite**.\n"
PDF_LINE = "The lighthouse was built in 1871 on Cape Sable."


@pytest.fixture
def files(tmp_path):
    """Writes a file into tmp_path; returns (its path, its name) as an upload gives them."""
    def write(name: str, data: bytes | str) -> tuple[str, str]:
        path = tmp_path / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return str(path), name
    return write


def test_markdown_code_and_pdf_files_are_read_into_the_prompt_under_their_names(files):
    chosen = [files("notes.md", NOTES), files("tally.py", "print(sum(range(10)))\n"),
              files("history.pdf", text_pdf(PDF_LINE, "Its light was electrified in 1932."))]
    attached, problems = add_files([], chosen, Limits())
    assert problems == []
    assert [(a.name, a.kind) for a in attached] == [("notes.md", "markdown"), ("tally.py", "code"),
                                                    ("history.pdf", "pdf")]
    assert attached[2].text == f"{PDF_LINE}\nIts light was electrified in 1932."
    prompt = prompt_text("Who keeps the lighthouse?", attached)
    assert prompt.startswith("Who keeps the lighthouse?\n\nFile: notes.md\n```markdown\n# Lighthouse")
    assert "File: tally.py\n```python\nprint(sum(range(10)))\n\n```" in prompt
    assert f"File: history.pdf\n```\n{PDF_LINE}" in prompt


def test_a_file_with_backticks_is_fenced_longer_than_them(files):
    attached, _ = add_files([], [files("readme.md", "Run:\n```\nmake\n```\n")], Limits())
    assert "File: readme.md\n````markdown\nRun:\n```\nmake\n```\n\n````" in prompt_text("", attached)


@pytest.mark.parametrize("name, data, says", [
    ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "photo.png is not a text, Markdown, code or PDF file"),
    ("data.txt", bytes(range(256)) * 4, "data.txt does not read as text"),
    ("report.txt", text_pdf(PDF_LINE), "report.txt is a PDF file; give it a name ending in .pdf"),
    ("broken.pdf", b"%PDF-1.7\nthis is not really a pdf at all\n", "broken.pdf could not be read as a PDF"),
    ("secret.pdf", text_pdf(PDF_LINE, password="hunter2"), "secret.pdf is protected by a password"),
    ("scan.pdf", text_pdf(), "scan.pdf has no text to read"),
])
def test_files_that_cannot_be_read_are_refused_with_why(files, name, data, says):
    attached, problems = add_files([], [files(name, data)], Limits())
    assert attached == [] and len(problems) == 1
    assert problems[0].startswith(says), problems


def test_text_in_other_encodings_is_decoded(files):
    attached, problems = add_files([], [files("utf16.txt", "Café crème".encode("utf-16")),
                                        files("latin1.csv", "name,city\nRené,Besançon\n".encode("cp1252"))],
                                   Limits())
    assert problems == []
    assert [a.text for a in attached] == ["Café crème", "name,city\nRené,Besançon\n"]


def test_the_limits_refuse_one_file_and_keep_the_others(files):
    limits = Limits(max_attachments_per_message=2, max_attachment_kb=1, max_message_attachments_kb=2,
                    max_attachment_chars=1500)
    attached, problems = add_files([], [files("big.txt", "x" * 1100), files("a.txt", "a" * 900),
                                        files("b.txt", "b" * 900)], limits)
    assert [a.name for a in attached] == ["a.txt"]
    assert problems[0] == "big.txt is 1.1 KiB; one file may be at most 1 KiB."
    assert problems[1].startswith("b.txt was not added: its text is 900 characters, and the files of one "
                                  "message may hold 600 more.")
    attached, problems = add_files(attached, [files("c.txt", "c" * 100), files("d.txt", "d"),
                                              files("e.txt", "e")], limits)
    assert [a.name for a in attached] == ["a.txt", "c.txt"]
    assert problems == ["d.txt was not added: one message may carry 2 files.",
                        "e.txt was not added: one message may carry 2 files."]
    together = Limits(max_attachment_kb=2, max_message_attachments_kb=2)
    attached, problems = add_files([], [files("f.txt", "f" * 1500), files("g.txt", "g" * 1500)], together)
    assert [a.name for a in attached] == ["f.txt"]
    assert problems[0] == ("g.txt was not added: with it the files of this message would be 2.9 KiB, over "
                           "the 2 KiB one message may carry.")


def test_names_are_kept_to_one_short_line(files):
    path, _ = files("plain.txt", "hello")
    attached = read_file(path, "a\nb`c.txt", 100)
    assert attached.name == "a\nb`c.txt"            # read_file takes the name as given...
    attached, _ = add_files([], [(path, "../../etc/" + "n" * 300 + ".md")], Limits())
    assert attached[0].name.endswith("….md") and len(attached[0].name) == 120 and "/" not in attached[0].name


def test_too_much_text_from_one_file_is_refused(files):
    with pytest.raises(AttachmentRefused, match="its text is 11 characters"):
        read_file(files("x.txt", "hello world")[0], "x.txt", 10)


# ---- with a message, on the real model -------------------------------------------------------------


SETTINGS = ChatSettings(GenerationParams(do_sample=False, max_new_tokens=12), mode="instruct")


@pytest.fixture
def service(scheduler, tmp_path):
    store = HistoryStore(tmp_path / "chats")
    yield ChatService(FrontDoor(scheduler, Limits()), store)
    store.close()


def test_a_message_with_files_is_stored_shown_with_chips_and_prompted_with_their_text(service, files):
    attached, _ = add_files([], [files("notes.md", NOTES), files("history.pdf", text_pdf(PDF_LINE))], Limits())
    control = SessionControl()
    last = run(service.send(person("alice"), None, "Who keeps the lighthouse?", SETTINGS, control,
                            attachments=attached))
    assert "File: notes.md\n```markdown\n# Lighthouse" in control.request.prompt
    assert f"File: history.pdf\n```\n{PDF_LINE}\n```" in control.request.prompt
    assert last.messages[0]["content"] == "Who keeps the lighthouse?\n\nFiles: `notes.md` `history.pdf`"
    stored = service.store.get_chat("alice", last.chat_id).messages[0]
    assert stored.content == "Who keeps the lighthouse?" and stored.attachments == attached
    assert service.store.usage("alice").chars == (len("Who keeps the lighthouse?") + len(NOTES) + len(PDF_LINE)
                                                  + len(last.messages[1]["content"]))

    again = SessionControl()                                  # Regenerate reads the files again
    run(service.regenerate(person("alice"), last.chat_id, SETTINGS, again))
    assert f"File: history.pdf\n```\n{PDF_LINE}\n```" in again.request.prompt

    # an edit of the message (the editor shows the chips line) keeps its files in the new branch
    run(service.send(person("alice"), last.chat_id, "Thanks.", SETTINGS, SessionControl()))
    assert service.edit_message("alice", last.chat_id, 0,
                                "Who built the lighthouse?\n\nFiles: `notes.md` `history.pdf`") is True
    branch = service.store.get_chat("alice", last.chat_id).messages[-1]
    assert branch.content == "Who built the lighthouse?" and branch.attachments == attached

    text, taken = service.take_last("alice", last.chat_id)    # Remove last gives them back
    assert (text, taken) == ("Who built the lighthouse?", attached)


def test_files_that_do_not_fit_the_storage_limit_are_refused_before_anything_is_stored(scheduler, tmp_path):
    store = HistoryStore(tmp_path, Limits(max_stored_chars_per_user=100))
    service = ChatService(FrontDoor(scheduler, Limits()), store)
    try:
        with pytest.raises(StorageFull):
            run(service.send(person("alice"), None, "Read this.", SETTINGS, SessionControl(),
                             attachments=[Attachment("big.txt", "text", 200, "x" * 200)]))
        assert store.list_chats("alice") == []
    finally:
        store.close()
