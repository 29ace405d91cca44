"""Chat tools: the shipped calculator, loading tool files, running calls under a time limit,
the choice stored per chat, and the chat's tool loop on the real model."""
from __future__ import annotations

import json
import textwrap
import time

import pytest

from modules.chat_service import ChatService, ChatSettings
from modules.chat_session import SessionControl
from modules.chat_tools import DEFAULT_FOLDER, MAX_RESULT_CHARS, ToolCatalog, ToolFileError
from modules.front_door import FrontDoor
from modules.history_store import HistoryStore
from modules.limits import Limits
from modules.params import GenerationParams
from modules.roles import Identity
from modules.tool_calls import ToolCall

SHIPPED = ToolCatalog()

# text-generation-webui's own format, as its user_data/tools files are written.
TGW_TOOL = '''
import random

tool = {
    "type": "function",
    "function": {
        "name": "roll_dice",
        "description": "Roll one or more dice with the specified number of sides.",
        "parameters": {
            "type": "object",
            "properties": {
                "count": {"type": "integer", "description": "Number of dice to roll.", "default": 1},
                "sides": {"type": "integer", "description": "Number of sides per die.", "default": 20},
            },
        }
    }
}


def execute(arguments):
    count = arguments.get("count", 1)
    sides = arguments.get("sides", 20)
    rolls = [random.randint(1, sides) for _ in range(count)]
    return {"rolls": rolls, "total": sum(rolls)}
'''


def tool_file(name: str, execute_body: str, parameters: dict | None = None) -> str:
    parameters = parameters or {"type": "object", "properties": {}}
    return textwrap.dedent(f'''
        import time
        tool = {{"type": "function", "function": {{"name": "{name}", "description": "A test tool.",
                                                 "parameters": {parameters!r}}}}}
        def execute(arguments):
        ''') + textwrap.indent(textwrap.dedent(execute_body).strip(), "    ") + "\n"


def write_tools(folder, **files) -> ToolCatalog:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.py").write_text(text, encoding="utf-8")
    return ToolCatalog(folder, timeout=1.0)


def calculate(expression):
    result = SHIPPED.toolset(["calculate"]).run(ToolCall("calculate", {"expression": expression}))
    return json.loads(result.content)


# ---- the shipped tools ------------------------------------------------------------------------

def test_the_shipped_tools_are_listed_and_load():
    assert {"calculate", "get_datetime"} <= set(SHIPPED.names())
    assert SHIPPED.problems() == []
    assert SHIPPED.folder == DEFAULT_FOLDER


@pytest.mark.parametrize("expression, result", [
    ("2 * (3 + 4) ** 2", 98), ("7 / 2", 3.5), ("-7 // 2", -4), ("7 % 3", 1), ("2 ** -1", 0.5),
    ("2 ** 4000 // 2 ** 3999", 2), ("1.5e3 + 1", 1501.0),
])
def test_the_calculator_works_out_arithmetic(expression, result):
    assert calculate(expression) == {"expression": expression, "result": result}


@pytest.mark.parametrize("expression, says", [
    ("__import__('os').system('touch /tmp/calculated')", "not allowed"),
    ("x + 1", "Names such as 'x' are not allowed"),
    ("(1).real", "Attributes are not allowed"),
    ("[1, 2]", "List is not allowed"),
    ("'a' * 3", "'a' is not a number"),
    ("True + 1", "True is not a number"),
    ("1 if 1 else 2", "not allowed"),
    ("lambda: 1", "not allowed"),
    ("9 ** 9 ** 9", "too large"),
    ("10 ** 5000", "too large"),
    ("(2 ** 4000) * (2 ** 4000)", "too large"),
    ("2.5 ** 100000", "too large"),
    ("1e308 * 10", "too large"),
    ("1 / 0", "Division by zero"),
    ("1 +", "Not an arithmetic expression"),
    ("1" * 501, "longer than 500"),
])
def test_the_calculator_refuses_what_is_not_plain_arithmetic(expression, says):
    started = time.monotonic()
    answer = calculate(expression)
    assert "result" not in answer and says in answer["error"]
    assert time.monotonic() - started < 1.0          # refused before any work, not after


def test_the_calculator_has_no_eval_or_exec():
    source = (DEFAULT_FOLDER / "calculate.py").read_text(encoding="utf-8")
    assert "eval(" not in source and "exec(" not in source and "compile(" not in source


def test_get_datetime_gives_the_date_and_time():
    answer = json.loads(SHIPPED.toolset(["get_datetime"]).run(ToolCall("get_datetime", {})).content)
    assert answer["date"] == time.strftime("%Y-%m-%d") or answer["date"] > time.strftime("%Y-%m-%d")
    assert set(answer) >= {"date", "time", "weekday", "timezone"}


# ---- loading tool files -------------------------------------------------------------------------

def test_a_text_generation_webui_tool_file_loads_unchanged_and_runs(tmp_path):
    catalog = write_tools(tmp_path / "tools", roll_dice=TGW_TOOL)
    chosen = catalog.toolset(["roll_dice"])
    assert chosen.names == {"roll_dice"} and not chosen.problems
    assert chosen.definitions()[0]["function"]["name"] == "roll_dice"
    result = chosen.run(ToolCall("roll_dice", {"count": 3, "sides": 6}))
    rolls = json.loads(result.content)
    assert result.ok and len(rolls["rolls"]) == 3 and rolls["total"] == sum(rolls["rolls"])


@pytest.mark.parametrize("text, says", [
    ("tool = {\n  'type': 'function',\n  oops\n}\n", "line 3"),
    ("def execute(arguments):\n    return 1\n", "needs a `tool` dict"),
    ("tool = {'type': 'function', 'function': {'name': 'x'}}\n", "execute(arguments)"),
    ("tool = {'type': 'function'}\ndef execute(a): return 1\n", "\"function\" dict"),
    ("tool = {'function': {'name': 'has spaces'}}\ndef execute(a): return 1\n", "name must be"),
    ("tool = {'function': {'name': 'x', 'parameters': {'type': 'objekt'}}}\ndef execute(a): return 1\n",
     "not a valid JSON schema"),
    ("import no_such_module_here\n", "ModuleNotFoundError"),
    ("raise RuntimeError('set-up failed')\n", "set-up failed"),
    ("import time\ntime.sleep(30)\n", "longer than 1 seconds"),
])
def test_a_broken_tool_file_gives_a_clear_message(tmp_path, text, says):
    catalog = write_tools(tmp_path / "tools", broken=text, roll_dice=TGW_TOOL)
    with pytest.raises(ToolFileError) as caught:
        catalog.load("broken")
    assert "broken.py" in str(caught.value) and says in str(caught.value)
    chosen = catalog.toolset(["broken", "roll_dice"])            # the others still work
    assert chosen.names == {"roll_dice"} and says in chosen.problems[0]
    assert says in catalog.problems()[0]


def test_a_changed_tool_file_is_loaded_again_and_odd_names_are_not_files(tmp_path):
    catalog = write_tools(tmp_path / "tools", ask=tool_file("ask", "return 'first'"))
    assert catalog.toolset(["ask"]).run(ToolCall("ask", {})).content == "first"
    (tmp_path / "tools" / "ask.py").write_text(tool_file("ask", "return 'second, longer'"), encoding="utf-8")
    assert catalog.toolset(["ask"]).run(ToolCall("ask", {})).content == "second, longer"
    for name in ("../ask", "missing", "", ".hidden"):
        assert catalog.toolset([name]).names == frozenset()
    (tmp_path / "tools" / "notes.txt").write_text("not a tool", encoding="utf-8")
    assert catalog.names() == ["ask"]
    assert ToolCatalog(tmp_path / "nowhere").names() == []


# ---- running calls ----------------------------------------------------------------------------------

def test_a_call_that_fails_in_any_way_gives_the_model_an_error_result(tmp_path):
    catalog = write_tools(
        tmp_path / "tools",
        raises=tool_file("raises", "raise ValueError('no such city')"),
        exits=tool_file("exits", "raise SystemExit(3)"),
        slow=tool_file("slow", "time.sleep(10)\nreturn 'late'"),
        odd=tool_file("odd", "return {'when': time}"),
        long=tool_file("long", "return 'x' * 100000"),
        typed=tool_file("typed", "return arguments['n'] * 2",
                        {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}))
    chosen = catalog.toolset(catalog.names())

    def error(call: ToolCall) -> str:
        result = chosen.run(call)
        assert not result.ok
        return json.loads(result.content)["error"]

    assert "raises failed: it raised ValueError: no such city" == error(ToolCall("raises", {}))
    assert "SystemExit" in error(ToolCall("exits", {}))
    started = time.monotonic()
    assert "longer than 1 seconds" in error(ToolCall("slow", {}))
    assert time.monotonic() - started < 5
    assert "not JSON" in error(ToolCall("odd", {}))
    assert "no tool named 'weather'" in error(ToolCall("weather", {"city": "Paris"}))
    assert "'n' is a required property" in error(ToolCall("typed", {}))
    assert "is not of type 'integer'" in error(ToolCall("typed", {"n": "two"}))
    assert chosen.run(ToolCall("typed", {"n": 21})).content == "42"
    cut = chosen.run(ToolCall("long", {}))
    assert cut.ok and len(cut.content) < MAX_RESULT_CHARS + 100 and "100,000 characters" in cut.content


# ---- the choice, per chat --------------------------------------------------------------------------

def test_a_chat_keeps_its_tools_and_choice(tmp_path):
    with HistoryStore(tmp_path) as store:
        chat_id = store.create_chat("alice", "Sums")
        assert (store.get_chat("alice", chat_id).tools, store.get_chat("alice", chat_id).tool_choice) == ([], "auto")
        store.set_chat_settings("alice", chat_id, tools=["calculate", "get_datetime"], tool_choice="required")
        store.set_chat_settings("alice", chat_id, mode="instruct")            # other settings leave them be
    with HistoryStore(tmp_path) as store:
        chat = store.get_chat("alice", chat_id)
        assert (chat.tools, chat.tool_choice, chat.mode) == (["calculate", "get_datetime"], "required", "instruct")
        assert store.list_chats("alice")[0].tools == ["calculate", "get_datetime"]
        with pytest.raises(ValueError):
            store.set_chat_settings("alice", chat_id, tool_choice="always")
        with pytest.raises(ValueError):
            store.set_chat_settings("alice", chat_id, tools="calculate")
        with pytest.raises(LookupError):
            store.set_chat_settings("bob", chat_id, tools=[])                  # not bob's chat


# ---- the chat's tool loop, on the real model ---------------------------------------------------------

GREEDY = GenerationParams(do_sample=False, max_new_tokens=40)
# A template that takes tools natively, as transformers passes them (Hermes style).
NATIVE_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools: {% for t in tools %}{{ t.function.name }} {% endfor %}"
    "Call one as <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>.<|im_end|>\n{% endif %}"
    "{% for m in messages %}"
    "{% if m.role == 'tool' %}<|im_start|>user\n<tool_response>{{ m.content }}</tool_response><|im_end|>\n"
    "{% elif m.tool_calls %}<|im_start|>assistant\n{% for c in m.tool_calls %}<tool_call>"
    "{\"name\": \"{{ c.function.name }}\"}</tool_call>{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture
def tool_service(scheduler, tmp_path):
    catalog = write_tools(
        tmp_path / "tools",
        lucky_number=tool_file("lucky_number", "return {'lucky_number': 7315}"),
        broken_lookup=tool_file("broken_lookup", "raise KeyError('the index is gone')"))
    store = HistoryStore(tmp_path / "data")
    yield ChatService(FrontDoor(scheduler, Limits(max_requests_per_user=2, max_input_chars=2000)), store, catalog)
    store.close()


def person(name: str) -> Identity:
    return Identity(owner=name, user=name, address="127.0.0.1", is_admin=False)


def required(tool: str, **changes) -> ChatSettings:
    return ChatSettings(GREEDY, mode="instruct", tools=[tool], tool_choice="required", **changes)


def run(updates) -> list:
    return list(updates)


def test_a_required_call_runs_its_result_is_stored_and_the_model_goes_on(tool_service):
    control = SessionControl()
    updates = run(tool_service.send(person("alice"), None, "Give me a lucky number.", required("lucky_number"),
                                    control))
    last = updates[-1]
    assert last.done and last.error is None
    assert any(u.status == "Running the tool lucky_number..." for u in updates)
    chat = tool_service.store.get_chat("alice", last.chat_id)
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "assistant"]
    call = chat.messages[1].meta["tool_calls"][0]
    assert call["name"] == "lucky_number" and call["arguments"] == {}
    assert chat.messages[2].meta == {"tool_call_id": call["id"], "name": "lucky_number", "ok": True}
    assert json.loads(chat.messages[2].content) == {"lucky_number": 7315}
    # The model wrote on from the result (this template does not take tools: described in
    # the system message, the call and result as text), no longer held to a call.
    prompt, params = control.request.prompt, control.request.params
    assert "lucky_number" in prompt.split("<|im_start|>user")[0]          # the system message
    assert '<tool_call>\n{"name": "lucky_number", "arguments": {}}\n</tool_call>' in prompt
    assert '<tool_response>\n{"lucky_number": 7315}\n</tool_response>' in prompt
    assert params.grammar_string == "" and chat.messages[3].content.strip()
    assert (chat.tools, chat.tool_choice) == (["lucky_number"], "required")
    # The chat view: the call and its result as one collapsible block, then the reply.
    block = last.messages[1]
    assert block["metadata"]["title"] == "Tool call: lucky_number" and "7315" in block["content"]
    assert last.messages[2] == {"role": "assistant", "content": chat.messages[3].content}


def test_a_failing_tool_gives_an_error_result_and_the_reply_goes_on(tool_service):
    last = run(tool_service.send(person("alice"), None, "Look it up.", required("broken_lookup"),
                                 SessionControl()))[-1]
    assert last.done and last.error is None
    chat = tool_service.store.get_chat("alice", last.chat_id)
    assert [m.role for m in chat.messages][:3] == ["user", "assistant", "tool"]
    assert chat.messages[2].meta["ok"] is False
    assert "the index is gone" in json.loads(chat.messages[2].content)["error"]
    assert last.messages[1]["metadata"]["title"] == "Tool call: broken_lookup (failed)"


def test_tools_reach_a_template_that_takes_them_and_regenerate_replaces_the_whole_round(tool_service):
    who, settings, control = person("bob"), required("lucky_number", template=NATIVE_TEMPLATE), SessionControl()
    last = run(tool_service.send(who, None, "Give me a lucky number.", settings, control))[-1]
    chat = tool_service.store.get_chat("bob", last.chat_id)
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "assistant"]
    # The template drew the tools, the call and the result itself.
    prompt = control.request.prompt
    assert prompt.startswith("<|im_start|>system\nTools: lucky_number ")
    assert '<|im_start|>assistant\n<tool_call>{"name": "lucky_number"}</tool_call><|im_end|>' in prompt
    assert '<tool_response>{"lucky_number": 7315}</tool_response>' in prompt
    first_call = chat.messages[1].meta["tool_calls"][0]["id"]
    with pytest.raises(IndexError, match="cannot be edited"):
        tool_service.edit_message("bob", last.chat_id, 1, "not a call")          # the block
    run(tool_service.regenerate(who, last.chat_id, settings, SessionControl()))
    chat = tool_service.store.get_chat("bob", last.chat_id)
    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "assistant"]
    assert chat.messages[1].meta["tool_calls"][0]["id"] != first_call
    assert tool_service.remove_last("bob", last.chat_id) == "Give me a lucky number."
    assert tool_service.store.get_chat("bob", last.chat_id).messages == []


def test_a_chat_without_tools_reads_no_calls_and_a_missing_tool_is_named(tool_service):
    last = run(tool_service.send(person("carol"), None, "Tell me the capital of France.",
                                 ChatSettings(GREEDY, mode="instruct"), SessionControl()))[-1]
    assert [m.role for m in tool_service.store.get_chat("carol", last.chat_id).messages] == ["user", "assistant"]
    updates = run(tool_service.send(person("carol"), last.chat_id, "And of Germany?", required("gone_tool"),
                                    SessionControl()))
    notices = [n for u in updates for n in u.notices]
    assert any("gone_tool.py" in n for n in notices)
    assert updates[-1].done and "metadata" not in updates[-1].messages[-1]
