"""Reply text assembly: no broken characters, no partial stop strings on screen."""
from modules.text_stream import ReplyText


def feed(reply: ReplyText, pieces) -> list[str]:
    return [reply.add(piece) for piece in pieces]


def test_multibyte_character_split_over_tokens_is_held_until_complete():
    emoji = "🐉".encode()               # four bytes
    reply = ReplyText()
    shown = feed(reply, [b"a ", emoji[:1], emoji[1:3], emoji[3:], b"!"])
    assert shown == ["a ", "", "", "🐉", "!"]
    assert reply.finish() == ""


def test_stop_string_prefix_is_held_back_then_released_when_it_does_not_complete():
    reply = ReplyText(["User:"])
    assert feed(reply, [b"Hello ", b"Us", b"ually"]) == ["Hello ", "", "Usually"]
    assert reply.stopped_by is None


def test_stop_string_across_tokens_cuts_the_reply_before_it():
    reply = ReplyText(["User:"])
    shown = feed(reply, [b"Done.\nUs", b"er", b": next"])
    assert "".join(shown) == "Done.\n"
    assert reply.stopped_by == "User:" and reply.shown == "Done.\n"
    assert reply.finish() == ""


def test_held_back_text_is_released_at_the_end():
    reply = ReplyText(["###"])
    assert feed(reply, [b"x #"]) == ["x "]
    assert reply.finish() == "#"
    assert reply.shown == "x #"


def test_earliest_of_several_stop_strings_wins():
    reply = ReplyText(["\n\n", "END"])
    "".join(feed(reply, [b"one END two\n\n"]))
    assert reply.shown == "one " and reply.stopped_by == "END"
