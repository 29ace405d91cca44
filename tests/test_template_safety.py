"""Chat templates cannot hurt the shared server: expensive expressions are refused at once,
a runaway template is stopped at the time limit without holding up the rest of the server,
and real templates render exactly as they did when they ran in-process."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import jinja2
import jinja2.ext
import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from loaders.gguf_metadata import read_metadata
from modules.limits import Limits
from modules.template_pool import TemplateWorkers
from modules.template_render import TemplateError, compile_template, configure, render_chat_template

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! é 🙂"},
    {"role": "user", "content": "Joke?"},
]
QUICK = 1.5        # seconds: "at once" on a busy 2-core box (a refusal takes a few ms)
# Pure template code that runs for minutes (100,000 x 100,000 steps).
LONG_LOOP = ("{% for m in messages %}{{ m.content }}{% endfor %}\n"
             "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")


@pytest.fixture(autouse=True)
def default_limits():
    configure(Limits())
    yield
    configure(Limits())


def render(source: str, messages=CONVERSATION) -> str:
    return render_chat_template(source, messages, bos_token="<s>", eos_token="</s>")


def refusal(source: str) -> tuple[str, float]:
    render("{{ messages[0].content }}")              # a started worker: time only the refusal
    start = time.perf_counter()
    with pytest.raises(TemplateError) as caught:
        render(source)
    return str(caught.value), time.perf_counter() - start


@pytest.mark.parametrize("source, expected", [
    ("{{ 9**(9**9) }}", "not allowed in a template: 9 ** 387420489 would be a number of about 369,693,100 digits"),
    ("{{ 7**(10**7) }}", "not allowed in a template: 7 ** 10000000 would be a number of about"),
    ("{{ 7**10000000 }}", "not allowed in a template: 7 ** 10000000"),
    ("{{ 'x' * 10**10 }}", "not allowed in a template: 'x' * 10000000000 would make a string of "
                           "10,000,000,000 characters; the limit is 1,000,000."),
    ("{{ 10**10 * 'x' }}", "would make a string of 10,000,000,000 characters"),
    ("{{ messages * 10**9 }}", "would make a list of 4,000,000,000 items; the limit is 100,000."),
    ("{{ range(10**10)|length }}", "not allowed in a template: range(10000000000) would have "
                                   "10,000,000,000 numbers; the limit is 100,000."),
    ("{{ (2**14000) * (2**14000) }}", "not allowed in a template: a product of about"),
])
def test_bombs_are_refused_at_once_with_a_clear_message(source, expected):
    message, seconds = refusal(source)
    assert message.startswith("Template error on line 1: ") and expected in message, message
    assert seconds < QUICK, seconds


def test_the_refusal_names_the_line_of_the_bomb():
    message, _ = refusal("{% for m in messages %}{{ m.content }}{% endfor %}\nok\n{{ 'ab' * 10**9 }}")
    assert message.startswith("Template error on line 3: not allowed in a template: 'ab' * 1000000000")


def test_nothing_is_evaluated_while_compiling():
    # jinja2 folds constants at compile time; 9**(9**9) would never finish compiling.
    start = time.perf_counter()
    compile_template("{{ 9**(9**9) }}\n{{ 'x' * 10**10 }}\n{{ 'x'|center(10000000000) }}")
    assert time.perf_counter() - start < QUICK


def test_power_and_repeat_within_the_limits_still_work():
    # jinja2 reads a**b**c as (a**b)**c, so 9**9**9 is a 78-digit number, not a bomb.
    assert render("{{ 9**9**9 }}") == str((9 ** 9) ** 9)
    assert render("{{ 2**10 }} {{ 2**-1 }} {{ 2.0**0.5 }} {{ '=' * 3 }} {{ 3 * 'ab' }} {{ [0] * 2 }}") == \
        f"1024 0.5 {2.0 ** 0.5} === ababab [0, 0]"
    assert render("{% for i in range(3) %}{{ i }}{% endfor %}") == "012"


def test_memory_bombs_that_get_past_the_checks_stop_at_the_memory_cap():
    message, seconds = refusal("{{ 'x'|center(5000000000) }}")
    assert message == "Template error on line 1: the template needed more memory than a template may use."
    assert seconds < QUICK
    assert render("{{ messages[1].content }}") == "Hi"


def test_output_far_larger_than_the_conversation_is_refused():
    message, _ = refusal("{% for i in range(3000) %}{{ 'x' * 1000 }}{% endfor %}")
    assert "the template wrote 3,000,000 characters; the limit for this conversation is" in message


def test_template_size_is_capped():
    with pytest.raises(TemplateError, match="the template is 50,001 characters long; the limit is 50,000"):
        render("x" * 50_001)
    configure(Limits(max_template_chars=100))
    with pytest.raises(TemplateError, match="the template is 101 characters long; the limit is 100"):
        compile_template("x" * 101)
    assert render("y" * 100) == "y" * 100


def test_a_long_running_template_is_stopped_at_the_time_limit_and_the_next_render_works():
    render("ok")
    start = time.perf_counter()
    with pytest.raises(TemplateError) as caught:
        render(LONG_LOOP)
    seconds = time.perf_counter() - start
    assert str(caught.value) == ("Template error on line 2: the template took longer than 2 s to "
                                 "render and was stopped.")
    assert 2.0 <= seconds < 10, seconds
    start = time.perf_counter()
    assert render("{{ messages[-1].content }}") == "Joke?"
    assert time.perf_counter() - start < QUICK


def test_the_time_limit_follows_the_configured_limit():
    configure(Limits(template_timeout=0.5))
    with pytest.raises(TemplateError, match="took longer than 0.5 s to render"):
        render(LONG_LOOP)


def test_a_worker_that_does_not_stop_by_itself_is_killed_and_replaced():
    workers = TemplateWorkers(memory_mb=512, max_workers=1)
    try:
        # The worker is told it has a minute, the caller waits 0.5 s (+ the grace second).
        request = {"op": "render", "source": LONG_LOOP, "variables": {"messages": []}, "timeout": 60}
        start = time.perf_counter()
        assert workers.call(json.dumps(request).encode(), 0.5, 10_000) is None
        assert time.perf_counter() - start < 5
        again = dict(request, source="{{ 6 * 7 }}", timeout=2)
        assert workers.call(json.dumps(again).encode(), 2, 10_000) == {"ok": True, "text": "42"}
    finally:
        workers.close()


def ticks_per_second(action) -> float:
    """How often another thread gets to run (wake from a 10 ms sleep) while `action` runs."""
    stop = threading.Event()
    ticks = [0]

    def tick():
        while not stop.is_set():
            time.sleep(0.01)
            ticks[0] += 1
    thread = threading.Thread(target=tick)
    thread.start()
    start = time.perf_counter()
    try:
        action()
    finally:
        stop.set()
        thread.join()
    return ticks[0] / (time.perf_counter() - start)


def test_other_threads_keep_running_while_a_runaway_template_renders():
    def runaway():
        with pytest.raises(TemplateError, match="took longer than"):
            render(LONG_LOOP)
    during = ticks_per_second(runaway)
    alone = ticks_per_second(lambda: time.sleep(2))
    assert during >= alone / 2, (during, alone)


def test_a_runaway_template_does_not_hold_up_another_users_prompt():
    render("ok")
    runaway = threading.Thread(target=lambda: pytest.raises(TemplateError, render, LONG_LOOP))
    runaway.start()
    slowest = 0.0
    while runaway.is_alive():           # chat turns go on for the 2 s the runaway renders
        start = time.perf_counter()
        assert render(SHIPPED_CHATML).endswith("<|im_start|>assistant\n")
        slowest = max(slowest, time.perf_counter() - start)
        time.sleep(0.05)
    runaway.join()
    assert slowest < QUICK, slowest


def test_unusual_text_passes_through_unchanged():
    text = "é 🙂 \u0000 \ud800 \n\t\"'\\"
    assert render("{{ messages[0].content }}", [{"role": "user", "content": text}]) == text


# ---- real templates render as they did in-process ----------------------------------------

class _Generation(jinja2.ext.Extension):
    tags = {"generation"}

    def parse(self, parser):
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _in_process(source: str, messages, add_generation_prompt: bool) -> str:
    """How templates were rendered before: jinja2's sandbox, in the server's process."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                       extensions=[jinja2.ext.loopcontrols, _Generation])

    def raise_exception(message):
        raise jinja2.TemplateError(message)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                          bos_token="<s>", eos_token="</s>")


def _shipped_templates() -> dict[str, str]:
    sources = {}
    for path in sorted((ROOT / "instruction-templates").iterdir()):
        if path.suffix in (".yaml", ".yml"):
            sources[path.stem] = yaml.safe_load(path.read_text(encoding="utf-8"))["instruction_template"]
        elif path.suffix == ".jinja":
            sources[path.stem] = path.read_text(encoding="utf-8")
    return sources


SHIPPED = _shipped_templates()
SHIPPED_CHATML = SHIPPED["ChatML"]


def test_the_shipped_templates_are_all_checked():
    assert {"ChatML", "Llama-3", "Mistral", "Alpaca", "Vicuna-v1.1", "Gemma"} <= set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED) + ["the model's own"])
def test_real_templates_render_as_before(name):
    if name == "the model's own":
        if not MODEL.is_file():
            pytest.skip("model file not present")
        source = read_metadata(MODEL)["tokenizer.chat_template"]
    else:
        source = SHIPPED[name]
    conversations = [CONVERSATION, CONVERSATION[1:], CONVERSATION[:2],
                     [CONVERSATION[0], CONVERSATION[2], CONVERSATION[1]]]
    for messages in conversations:
        for add_generation_prompt in (True, False):
            assert render_chat_template(source, messages, add_generation_prompt, bos_token="<s>",
                                        eos_token="</s>") == \
                _in_process(source, messages, add_generation_prompt)
