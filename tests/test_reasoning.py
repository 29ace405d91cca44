"""A reply's reasoning: split from the answer (whole, unterminated, streamed in pieces),
timed, shown as a Thinking block, left out of later prompts unless the template takes it,
and the enable_thinking switch reaching the template; the last part on the real model."""
from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from modules.chat_display import (SECONDS_KEY, THINKING, THINKING_NOW, ReplyThinking, chat_entries, edited_content,
                                  reply_view)
from modules.chat_prompt import FALLBACK_TEMPLATE, build_chat_prompt
from modules.chat_service import ChatService, ChatSettings, display_messages
from modules.chat_session import ReplyUpdate, SessionControl
from modules.front_door import FrontDoor
from modules.history_store import HistoryStore
from modules.limits import Limits
from modules.params import GenerationParams
from modules.reasoning import (KNOWN_MARKERS, THINK, ReasoningStream, ReasoningTimer, generation_opens,
                               markers_for, prompt_messages, reasoning_field, replace_part, split_reasoning)
from tests.chat_helpers import person, run

FIXTURES = Path(__file__).resolve().parent / "fixtures"
QWEN3_STYLE = (FIXTURES / "qwen3_style_template.jinja").read_text(encoding="utf-8")
OPENS_THINKING = (FIXTURES / "opens_thinking_template.jinja").read_text(encoding="utf-8")
GPT_OSS = KNOWN_MARKERS[-1]


# ---- splitting ---------------------------------------------------------------------------------

def test_a_reply_without_markers_is_all_answer():
    split = split_reasoning("Paris is the capital.")
    assert split.reasoning is None and split.answer == "Paris is the capital."


def test_reasoning_at_the_start_is_taken_out_of_the_answer():
    split = split_reasoning("\n<think>\nThe user asks about France.\n</think>\n\nParis.")
    assert split.reasoning == "The user asks about France." and split.answer == "Paris." and split.closed


def test_a_think_block_later_in_the_answer_stays_answer():
    text = "Use tags like <think>this</think> in your prompt."
    assert split_reasoning(text).reasoning is None
    assert split_reasoning(text).answer == text


def test_an_unterminated_reply_is_all_reasoning_and_still_open():
    split = split_reasoning("<think>Let me count: one, two")
    assert split.reasoning == "Let me count: one, two" and split.answer == "" and not split.closed


def test_a_reply_the_prompt_opened_starts_inside_the_reasoning():
    split = split_reasoning("Hmm, France.\n</think>\n\nParis.", opened=True)
    assert (split.reasoning, split.answer) == ("Hmm, France.", "Paris.")
    # stored without the opening marker: the closing one alone says where it ended
    assert split_reasoning("Hmm, France.\n</think>\n\nParis.").reasoning == "Hmm, France."
    assert split_reasoning("Hmm, France.</think>Paris.", closing_alone=False).reasoning is None


def test_partial_markers_are_held_back_while_the_reply_is_written():
    assert split_reasoning("<thi", partial=True).answer == ""
    assert split_reasoning("<thi").answer == "<thi"                  # finished: it was text
    assert split_reasoning("<think>abc</th", partial=True).reasoning == "abc"
    assert split_reasoning("<think>abc</th").reasoning == "abc</th"
    assert split_reasoning("<b>bold</b>", partial=True).answer == "<b>bold</b>"


def test_the_templates_own_markers_are_found_in_its_source():
    assert markers_for(None) == (THINK,)
    assert markers_for("... [THINK] ... [/THINK] ...")[1].open == "[THINK]"
    source = "{{ '<|channel|>analysis<|message|>' + message.thinking + '<|end|>' }}"
    assert GPT_OSS in markers_for(source)
    text = ("<|channel|>analysis<|message|>Simple question.<|end|>"
            "<|start|>assistant<|channel|>final<|message|>Paris.")
    split = split_reasoning(text, markers_for(source))
    assert (split.reasoning, split.answer) == ("Simple question.", "Paris.")


@pytest.mark.parametrize("text, opened", [
    ("<think>\nFrance is in Europe.\n</think>\n\nThe capital is Paris.", False),
    ("France is in Europe.\n</think>\n\nThe capital is Paris.", True),
    ("Just an answer, with a < sign and </b> tags.", False),
    ("<think>\nNever finished thinking about </thin", False),
    ("[THINK]Short.[/THINK]Answer.", False),
])
def test_streamed_pieces_add_up_to_the_whole_split_wherever_the_markers_are_cut(text, opened):
    markers = KNOWN_MARKERS
    whole = split_reasoning(text, markers, opened=opened, closing_alone=False)
    chunkings = [[1] * len(text)] + [[random.Random(seed).randint(1, 6) for _ in text] for seed in range(20)]
    for sizes in chunkings:
        stream, reasoning, answer, at = ReasoningStream(markers, opened), "", "", 0
        for size in sizes:
            if at >= len(text):
                break
            r, a = stream.feed(text[at:at + size])
            # nothing shown is ever a piece of a marker
            assert "<think" not in r + a and "</think" not in r + a or "</b>" in text
            reasoning, answer, at = reasoning + r, answer + a, at + size
        r, a = stream.finish()
        assert (reasoning + r, answer + a) == (whole.reasoning or "", whole.answer), sizes


def test_replacing_one_part_keeps_the_other_and_the_markers():
    text = "<think>\nOld thought.\n</think>\n\nOld answer."
    split = split_reasoning(text)
    assert replace_part(text, split, answer="New answer.") == "<think>\nOld thought.\n</think>\n\nNew answer."
    assert replace_part(text, split, reasoning="New thought.") == "<think>\nNew thought.\n</think>\n\nOld answer."


def test_the_timer_measures_from_the_first_reasoning_to_its_end():
    now = [100.0]
    timer = ReasoningTimer(lambda: now[0])
    timer.observe(split_reasoning("", partial=True))
    assert timer.started is None
    timer.observe(split_reasoning("<think>a", partial=True))
    now[0] = 102.5
    timer.observe(split_reasoning("<think>ab", partial=True))
    now[0] = 103.25
    timer.observe(split_reasoning("<think>ab</think>Answer", partial=True))
    now[0] = 110.0
    timer.observe(split_reasoning("<think>ab</think>Answer, longer", partial=True))
    timer.finish()
    assert timer.seconds == 3.2


# ---- the prompt ------------------------------------------------------------------------------

HISTORY = [
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "<think>\nSECRET-THOUGHT about France.\n</think>\n\nParis."},
    {"role": "user", "content": "And of Italy?"},
]


def render(template, messages=HISTORY, **kwargs):
    return build_chat_prompt(messages, template, lambda text: 0, 10_000, **kwargs).text


def test_earlier_reasoning_is_left_out_of_a_template_that_does_not_take_it():
    prompt = render(FALLBACK_TEMPLATE)
    assert "SECRET-THOUGHT" not in prompt and "<think>" not in prompt
    assert "<|im_start|>assistant\nParis.<|im_end|>" in prompt


def test_a_template_that_takes_reasoning_content_gets_it_and_decides():
    assert reasoning_field(QWEN3_STYLE) == "reasoning_content"
    assert reasoning_field(FALLBACK_TEMPLATE) is None
    assert reasoning_field("{{ message.thinking }}") == "thinking"
    given = prompt_messages(HISTORY, QWEN3_STYLE)
    assert given[1] == {"role": "assistant", "content": "Paris.", "reasoning_content": "SECRET-THOUGHT about France."}
    # before the last user message, Qwen3's way leaves it out
    assert "SECRET-THOUGHT" not in render(QWEN3_STYLE)
    # a reply after it (a tool round of the current turn) keeps it
    current = HISTORY[:1] + HISTORY[1:2]
    assert "<think>\nSECRET-THOUGHT about France.\n</think>\n\nParis." in render(QWEN3_STYLE, current)


def test_a_reply_being_continued_is_given_as_written():
    partial = HISTORY[:2] + [{"role": "assistant", "content": "<think>\nStill thinking"}]
    assert prompt_messages(partial, FALLBACK_TEMPLATE, keep_last=True)[-1]["content"] == "<think>\nStill thinking"
    assert render(FALLBACK_TEMPLATE, partial, continue_last=True).endswith("<think>\nStill thinking")


def test_enable_thinking_reaches_the_template():
    on = render(QWEN3_STYLE, variables={"enable_thinking": True})
    off = render(QWEN3_STYLE, variables={"enable_thinking": False})
    assert on.endswith("<|im_start|>assistant\n")
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert render(FALLBACK_TEMPLATE, variables={"enable_thinking": False}) == render(FALLBACK_TEMPLATE)


def test_a_generation_prompt_that_opens_the_reasoning_is_found():
    assert generation_opens(OPENS_THINKING, (("enable_thinking", True),)) == "<think>\n"
    assert generation_opens(OPENS_THINKING, (("enable_thinking", False),)) == ""
    assert generation_opens(QWEN3_STYLE, (("enable_thinking", True),)) == ""
    assert generation_opens(FALLBACK_TEMPLATE) == ""
    assert generation_opens("{% for m in messages %}{{ m.nope.deeper }}{% endfor %}") == ""   # fails: not open


# ---- the chat view ---------------------------------------------------------------------------

def test_a_reply_being_written_shows_a_closed_block_titled_thinking_now_then_one_with_its_duration():
    now = [0.0]
    reply = ReplyThinking(opening="<think>\n", clock=lambda: now[0])
    shown = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]
    updates = list(reply.follow([_update("Let me"), _update("Let me think.</think>"),
                                 _update("Let me think.</think>\n\nHello!")]))
    assert updates[0].text == "<think>\nLet me"
    reply.show(shown, updates[0].text, None)
    assert shown[1:] == [{"role": "assistant", "content": "Let me",
                          "metadata": {"title": THINKING_NOW, "status": "done"}}]   # closed while written
    now[0] = 2.0
    reply.show(shown, updates[1].text, None)
    assert shown[1]["metadata"] == {"title": THINKING, "status": "done", "duration": 2.0} and len(shown) == 2
    now[0] = 5.0
    reply.show(shown, updates[2].text, finished=object())
    assert shown[1:] == [{"role": "assistant", "content": "Let me think.",
                          "metadata": {"title": THINKING, "status": "done", "duration": 2.0}},
                         {"role": "assistant", "content": "Hello!"}]
    assert reply.meta() == {SECONDS_KEY: 2.0}


def test_an_empty_thought_shows_no_block():
    assert reply_view(split_reasoning("<think>\n\n</think>\n\nHello!")) == [{"role": "assistant", "content": "Hello!"}]


def _update(text: str) -> ReplyUpdate:
    return ReplyUpdate(text, "Writing...")


@pytest.fixture
def store(tmp_path):
    store = HistoryStore(tmp_path)
    yield store
    store.close()


def test_stored_replies_show_their_block_and_an_edit_changes_only_its_part(store):
    chat_id = store.create_chat("alice", "t")
    store.append_message("alice", chat_id, "user", "Hi")
    reply = store.append_message("alice", chat_id, "assistant", "<think>\nA thought.\n</think>\n\nHello!",
                                 meta={SECONDS_KEY: 1.5})
    messages = store.get_chat("alice", chat_id).messages
    entries = chat_entries(messages, {})
    assert [entry for entry, _ in entries] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "A thought.", "metadata": {"title": THINKING, "status": "done",
                                                                     "duration": 1.5}},
        {"role": "assistant", "content": "Hello!"}]
    assert [message_id for _, message_id in entries][1:] == [reply, reply]
    assert edited_content(messages, entries[2], "Hi there!") == "<think>\nA thought.\n</think>\n\nHi there!"
    assert edited_content(messages, entries[1], "A better thought.") == (
        "<think>\nA better thought.\n</think>\n\nHello!")


# ---- on the real model --------------------------------------------------------------------------

# The small model does not think by itself: the template opens the reasoning and a grammar
# makes it write a few words, close it and answer.
THINK_GRAMMAR = 'root ::= [a-zA-Z ,.]{8,40} "</think>" [a-zA-Z ,.]{1,40}'


@pytest.fixture
def service(scheduler, store):
    return ChatService(FrontDoor(scheduler, Limits(max_requests_per_user=2, max_input_chars=2000)), store)


def prompts(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "modules.scheduler" and "prompt tokens" in r.getMessage()]


def test_a_thinking_reply_on_the_real_model(service, caplog):
    caplog.set_level(logging.DEBUG, logger="modules.scheduler")
    params = GenerationParams(do_sample=False, max_new_tokens=40, grammar_string=THINK_GRAMMAR)
    settings = ChatSettings(params, OPENS_THINKING, mode="instruct")
    update = run(service.send(person("alice"), None, "Tell me the capital of France.", settings, SessionControl()))
    assert update.done and update.error is None
    stored = service.store.get_chat("alice", update.chat_id).messages[-1]
    assert stored.content.startswith("<think>\n") and "</think>" in stored.content
    reasoning = split_reasoning(stored.content).reasoning
    assert reasoning and isinstance(stored.meta[SECONDS_KEY], float)
    block, answer = update.messages[-2:]
    assert block == {"role": "assistant", "content": reasoning,
                     "metadata": {"title": THINKING, "status": "done", "duration": stored.meta[SECONDS_KEY]}}
    assert answer["content"] and "</think>" not in answer["content"]
    assert display_messages(service.store.get_chat("alice", update.chat_id))[-2:] == [block, answer]

    # the next turn: the reasoning is not in the prompt; thinking off closes it in the prompt
    caplog.clear()
    settings = ChatSettings(params.replace(grammar_string="", max_new_tokens=4), OPENS_THINKING, mode="instruct",
                            enable_thinking=False)
    run(service.send(person("alice"), update.chat_id, "And of Italy?", settings, SessionControl()))
    (prompt,) = prompts(caplog)
    assert reasoning not in prompt and answer["content"].strip() in prompt
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


# SmolLM3-style: the switch writes a flag into the system part, which every prompt has.
FLAGGED = ("{{ '/think' if enable_thinking is not defined or enable_thinking else '/no_think' }}\n"
           "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")


def test_impersonate_gets_the_same_thinking_switch_as_a_reply(service, caplog):
    caplog.set_level(logging.DEBUG, logger="modules.scheduler")
    params = GenerationParams(do_sample=False, max_new_tokens=4)
    for on, flag in ((False, "/no_think"), (True, "/think")):
        caplog.clear()
        settings = ChatSettings(params, FLAGGED, mode="instruct", enable_thinking=on)
        update = run(service.impersonate(person("alice"), None, "I would like", settings, SessionControl()))
        assert update.error is None
        (prompt,) = prompts(caplog)
        assert prompt.split("prompt tokens:\n", 1)[1].startswith(flag + "\n"), prompt


# ---- the API ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from tests.api_server import serve_with_keys
    yield from serve_with_keys(tmp_path_factory.mktemp("api-reasoning"))


@pytest.fixture(scope="module")
def client(api):
    import openai
    from tests.api_server import KEY
    return openai.OpenAI(base_url=api.url + "v1", api_key=KEY, max_retries=0, timeout=180)


def ask(client, messages=None, **extra):
    from tests.api_server import MODEL
    stream = extra.pop("stream", False)
    return client.chat.completions.create(
        model=MODEL, messages=messages or [{"role": "user", "content": "Tell me the capital of France."}],
        max_tokens=40, temperature=0, stream=stream,
        extra_body={"chat_template": OPENS_THINKING, "grammar_string": THINK_GRAMMAR, **extra})


def test_the_api_returns_the_reasoning_apart_whole_and_streamed(client):
    message = ask(client).choices[0].message
    reasoning = getattr(message, "reasoning_content", None)
    assert reasoning and message.content and "</think>" not in message.content and reasoning not in message.content
    chunks = [c.choices[0].delta for c in ask(client, stream=True) if c.choices]
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in chunks) == reasoning
    assert "".join(d.content or "" for d in chunks) == message.content
    # the reasoning streams first, then the answer
    kinds = [("reasoning" if getattr(d, "reasoning_content", None) else "content")
             for d in chunks if getattr(d, "reasoning_content", None) or d.content]
    assert kinds == sorted(kinds, key=lambda kind: kind == "content") and "reasoning" in kinds


def test_the_api_switches_thinking_and_leaves_earlier_reasoning_out(client):
    on = ask(client, grammar_string="", max_tokens=2)
    off = ask(client, grammar_string="", max_tokens=2, chat_template_kwargs={"enable_thinking": False})
    assert off.usage.prompt_tokens > on.usage.prompt_tokens          # "<think>\n\n</think>\n\n" vs "<think>\n"
    assert getattr(off.choices[0].message, "reasoning_content", None) is None

    def history(answer):
        return [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": answer},
                {"role": "user", "content": "And of Italy?"}]
    plain = ask(client, history("Paris."), grammar_string="", max_tokens=1, chat_template=FALLBACK_TEMPLATE)
    thought = ask(client, history("<think>\nA long thought about France and its many cities.\n</think>\n\nParis."),
                  grammar_string="", max_tokens=1, chat_template=FALLBACK_TEMPLATE)
    assert thought.usage.prompt_tokens == plain.usage.prompt_tokens


@pytest.fixture(scope="module")
def claude(api):
    import anthropic
    from tests.api_server import KEY
    return anthropic.Anthropic(base_url=api.url.rstrip("/"), api_key=KEY, max_retries=0, timeout=180)


def test_the_anthropic_api_gives_a_thinking_block_first_and_takes_it_back(claude):
    from tests.api_server import MODEL
    question = [{"role": "user", "content": "Tell me the capital of France."}]
    extra = {"chat_template": OPENS_THINKING, "grammar_string": THINK_GRAMMAR, "temperature": 0}
    message = claude.messages.create(model=MODEL, max_tokens=40, messages=question, extra_body=extra)
    assert [block.type for block in message.content] == ["thinking", "text"]
    thought, answer = message.content[0].thinking, message.content[1].text
    assert thought and answer and "</think>" not in answer

    with claude.messages.stream(model=MODEL, max_tokens=40, messages=question, extra_body=extra) as stream:
        streamed = stream.get_final_message()
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in streamed.content] == [
        ("thinking", thought), ("text", answer)]

    # sent back, the block is the reply's reasoning, which this template leaves out of the prompt
    def prompt_tokens(reply, count=False):
        messages = [*question, {"role": "assistant", "content": reply}, {"role": "user", "content": "And of Italy?"}]
        if count:
            return claude.messages.count_tokens(model=MODEL, messages=messages,
                                                extra_body={"chat_template": OPENS_THINKING}).input_tokens
        return claude.messages.create(model=MODEL, max_tokens=1, messages=messages,
                                      extra_body=dict(extra, grammar_string="")).usage.input_tokens
    with_thought = [{"type": "thinking", "thinking": thought, "signature": ""}, {"type": "text", "text": answer}]
    assert prompt_tokens(with_thought) == prompt_tokens(answer)
    assert prompt_tokens(with_thought, count=True) == prompt_tokens(answer, count=True) == prompt_tokens(answer)
    off = claude.messages.create(model=MODEL, max_tokens=1, messages=question, thinking={"type": "disabled"},
                                 extra_body=dict(extra, grammar_string=""))
    on = claude.messages.create(model=MODEL, max_tokens=1, messages=question, extra_body=dict(extra, grammar_string=""))
    assert off.usage.input_tokens > on.usage.input_tokens        # the template closed the reasoning
