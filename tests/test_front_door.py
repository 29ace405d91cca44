"""The front door: one set of limits for every tab, checked on the real model, and
tokenising that can never race an unload."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from modules.chat_session import SessionControl
from modules.front_door import FrontDoor, NoModelLoaded, ParamsTooLarge, check_params
from modules.limits import Limits
from modules.params import GenerationParams
from modules.request_limits import InputTooLong, TooManyRequests
from modules.roles import Identity
from modules.scheduler import Scheduler
from tests.conftest import DEFAULT_GGUF, ROOT


def person(name: str, address: str = "192.0.2.10") -> Identity:
    return Identity(owner=name, user=name, address=address, is_admin=False)


def browser(key: str, address: str) -> Identity:
    return Identity(owner=f"browser:{key}", user=None, address=address, is_admin=False)


LONG = GenerationParams(max_new_tokens=400, ban_eos_token=True, do_sample=False)


def test_one_allowance_for_every_tab(scheduler):
    """A chat reply, a Notebook generation and the Tokens view all count against the same
    person's requests in flight."""
    door = FrontDoor(scheduler, Limits(max_requests_per_user=2))
    alice, bob = person("alice"), person("bob")
    chat, notebook = SessionControl(), SessionControl()
    with door.admit(alice, LONG) as chat_turn:
        chat_stream = chat_turn.stream_chat([{"role": "user", "content": "Tell me a long story."}], None, chat)
        next(chat_stream)
        notebook_stream = door.stream_completion(alice, "Once upon a time", LONG, notebook)
        next(notebook_stream)
        assert door.active(alice) == 2
        with pytest.raises(TooManyRequests, match="limit is 2"):
            door.token_view(alice, "Hello", GenerationParams())
        refused = list(door.stream_completion(alice, "More", LONG))
        assert refused[-1].finished.reason == "error" and "limit is 2" in refused[-1].status
        # someone else is not affected
        assert door.token_view(bob, "Hello", GenerationParams())
        chat.stop(), notebook.stop()
        chat_stream.close(), notebook_stream.close()
    assert door.active(alice) == 0


def test_browsers_without_accounts_also_share_an_allowance_per_address(scheduler):
    """A browser key is chosen by the client, so making up keys must not multiply what one
    machine may take; colleagues behind one address still each get their own allowance."""
    door = FrontDoor(scheduler, Limits(max_requests_per_user=1, max_requests_per_address=2))
    with door.admit(browser("a" * 20, "192.0.2.7"), LONG):
        with pytest.raises(TooManyRequests, match="limit is 1"):
            with door.admit(browser("a" * 20, "192.0.2.7"), LONG):
                pass
        with door.admit(browser("b" * 20, "192.0.2.7"), LONG):     # a colleague at the same address
            with pytest.raises(TooManyRequests, match="Browsers at your address have 2"):
                with door.admit(browser("c" * 20, "192.0.2.7"), LONG):
                    pass
            with door.admit(browser("d" * 20, "192.0.2.8"), LONG):     # another machine
                pass


def test_input_length_is_limited_in_the_notebook_too(scheduler):
    door = FrontDoor(scheduler, Limits(max_input_chars=1000))
    final = list(door.stream_completion(person("alice"), "x" * 1001, LONG))[-1]
    assert final.finished.reason == "error" and "1,001 characters" in final.status
    with pytest.raises(InputTooLong):
        door.token_view(person("alice"), "x" * 1001, GenerationParams())


@pytest.mark.parametrize("changes, message", [
    ({"custom_stopping_strings": tuple(f"s{i}" for i in range(40))}, "40 stop strings"),
    ({"custom_stopping_strings": ("x" * 500,)}, "stop string of 500"),
    ({"grammar_string": "root ::= " + '"a" ' * 20_000}, "grammar"),
    ({"logit_bias": {str(i): 1.0 for i in range(1500)}}, "logit_bias"),
    ({"dry_sequence_breakers": ", ".join(f'"w{i}"' for i in range(50))}, "DRY sequence breakers"),
])
def test_oversized_settings_are_refused_with_a_message(changes, message):
    with pytest.raises(ParamsTooLarge, match=message):
        check_params(GenerationParams(**changes), Limits())


def test_max_new_tokens_is_lowered_to_the_ceiling_with_a_notice(scheduler):
    door = FrontDoor(scheduler, Limits(max_new_tokens_limit=5))
    updates = list(door.stream_completion(person("alice"), "Once upon a time",
                                          GenerationParams(max_new_tokens=1000, ban_eos_token=True)))
    assert updates[-1].finished.n_tokens == 5
    notices = [notice for update in updates for notice in update.notices]
    assert any("lowered to this server's limit, 5" in notice for notice in notices), notices


def test_no_model_is_a_clear_refusal():
    door = FrontDoor(Scheduler(), Limits())
    with pytest.raises(NoModelLoaded, match="admin can load one"):
        door.token_view(person("alice"), "Hello", GenerationParams())
    final = list(door.stream_completion(person("alice"), "Hello", GenerationParams()))[-1]
    assert "No model is loaded" in final.status


UNLOAD_WHILE_TOKENISING = textwrap.dedent("""
    import sys, threading
    sys.path.insert(0, {root!r})
    from loaders.settings import LoadSettings
    from modules.front_door import FrontDoor, NoModelLoaded
    from modules.limits import Limits
    from modules.model_manager import ModelManager
    from modules.params import GenerationParams
    from modules.roles import Identity
    from modules.scheduler import Scheduler

    scheduler = Scheduler()
    models = ModelManager(scheduler, {models!r})
    settings = LoadSettings(ctx_size=512, parallel=1)
    assert models.load({gguf!r}, settings).ok
    door = FrontDoor(scheduler, Limits(max_input_chars=2_000_000, max_requests_per_user=10))
    who = Identity(owner="t", user="t", address="127.0.0.1", is_admin=True)
    text = ("The quick brown fox jumps over the lazy dog. " * 23_000)[:1_000_000]
    done = threading.Event()
    counts = {{"tokenised": 0, "no_model": 0}}

    def tokenise():
        while not done.is_set():
            try:
                tokens = door.token_view(who, text, GenerationParams())
                assert len(tokens) > 100_000, len(tokens)
                counts["tokenised"] += 1
            except NoModelLoaded:
                counts["no_model"] += 1

    worker = threading.Thread(target=tokenise)
    worker.start()
    for cycle in range(50):
        models.unload()
        assert models.load({gguf!r}, settings).ok
    done.set()
    worker.join()
    print("cycles 50 tokenised", counts["tokenised"], "refused", counts["no_model"])
""")


def test_unloading_50_times_while_a_megabyte_is_tokenised_never_crashes(tmp_path):
    """The use-after-free this guards against killed the process (exit 139), so the run is
    a child process: a crash shows as its exit code instead of taking pytest down."""
    script = tmp_path / "unload_while_tokenising.py"
    script.write_text(UNLOAD_WHILE_TOKENISING.format(root=str(ROOT), models=str(DEFAULT_GGUF.parent),
                                                     gguf=DEFAULT_GGUF.name))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    tokenised = int(done.stdout.split("tokenised")[1].split()[0])
    assert tokenised >= 1, done.stdout        # the race was really exercised


def test_every_limit_is_listed_in_docs_sharing_with_its_default():
    from modules.limits import LIMIT_SPECS, flag_name
    docs = (ROOT / "docs" / "sharing.md").read_text(encoding="utf-8")
    for spec in LIMIT_SPECS:
        default = f"{spec.default:,}" if isinstance(spec.default, int) else f"{spec.default:g}"
        assert f"| `{flag_name(spec)}` | {default} |" in docs, flag_name(spec)


def test_no_chosen_template_means_the_models_own(scheduler, llama_backend):
    """The Template tab's "the model's own template" is the None choice: the prompt must
    be the one the model's template makes (SmolLM2's adds its own system prompt)."""
    door = FrontDoor(scheduler, Limits())
    messages = [{"role": "user", "content": "Hello"}]
    with door.admit(person("alice"), GenerationParams()) as admission:
        default = admission.chat_prompt(messages, None).text
        explicit = admission.chat_prompt(messages, llama_backend.info.chat_template).text
    assert default == explicit and "SmolLM" in default
