import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import argon2
import pytest
from argon2.profiles import CHEAPEST

from modules.accounts import (BROWSER_OWNER_PREFIX, COMMAND_LINE_WARNING, Accounts, AccountsError, Backoff,
                              LoginThrottle, owner_for, parse_auth_file, parse_auth_string,
                              trust_forwarded_headers_from)

ROOT = Path(__file__).resolve().parents[1]
TOOL = [sys.executable, str(ROOT / "tools" / "accounts.py")]
FAST = argon2.PasswordHasher.from_parameters(CHEAPEST)      # for tests that log in many times


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def private_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def hashed(password: str) -> str:
    return argon2.PasswordHasher().hash(password)


def run_tool(*args, password: str | None = None):
    return subprocess.run([*TOOL, *map(str, args)], input=password, capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


# ---- the file format -----------------------------------------------------------------------------
def test_parse_flag_string():
    entries = parse_auth_string('"alice:wonder, bob:b:u:i:l:d"')
    assert [(e.user, e.secret, e.hashed) for e in entries] == [("alice", "wonder", False), ("bob", "b:u:i:l:d", False)]


def test_parse_file_with_comments_plaintext_hashes_and_admin_marks(tmp_path):
    alice, bob = hashed("wonder"), hashed("builder")
    path = private_file(tmp_path / "users.txt",
                        f"# lab accounts\n\nalice:{alice}:admin\nbob:{bob}\n  carol : pa ss,with:colon  \n")
    entries = {e.user: e for e in parse_auth_file(path)}
    assert (entries["alice"].secret, entries["alice"].admin, entries["alice"].hashed) == (alice, True, True)
    assert (entries["bob"].secret, entries["bob"].admin) == (bob, False)
    assert (entries["carol"].secret, entries["carol"].hashed) == ("pa ss,with:colon", False)


@pytest.mark.parametrize("line", ["carol-no-colon-topsecret", ":topsecret", "carol:",
                                  "carol:$argon2id$topsecret", "carol:$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA:root"])
def test_malformed_line_names_the_line_not_the_password(tmp_path, line):
    path = private_file(tmp_path / "users.txt", f"alice:one\n# note\n{line}\n")
    with pytest.raises(AccountsError) as error:
        parse_auth_file(path)
    assert "line 3" in str(error.value)
    assert "topsecret" not in str(error.value)


def test_hashes_belong_in_the_file_not_on_the_command_line():
    with pytest.raises(AccountsError, match="plaintext passwords only"):
        parse_auth_string("alice:$argon2id$v=19$m=8")


def test_duplicate_user_is_an_error(tmp_path):
    with pytest.raises(AccountsError, match="twice"):
        parse_auth_string("alice:a,alice:b")
    path = private_file(tmp_path / "users.txt", "alice:b\n")
    with pytest.raises(AccountsError, match="both"):
        Accounts.from_flags("alice:a", str(path))


def test_from_flags_merges_both_and_none_means_no_login(tmp_path):
    path = private_file(tmp_path / "users.txt", f"bob:{hashed('b')}\n")
    assert Accounts.from_flags(None, None) is None
    assert Accounts.from_flags("alice:a", str(path)).users == ["alice", "bob"]
    only_comments = private_file(tmp_path / "empty.txt", "# nobody yet\n")
    with pytest.raises(AccountsError, match="no accounts"):      # not a server open to all
        Accounts.from_flags(None, str(only_comments))


# ---- passwords -----------------------------------------------------------------------------------
def test_hashed_entries_verify_and_admin_marks_are_exposed(tmp_path):
    path = private_file(tmp_path / "users.txt", f"alice:{hashed('wonder')}:admin\nbob:{hashed('builder')}\n")
    accounts = Accounts.from_flags(None, str(path))
    assert accounts.check("alice", "wonder") and accounts.check("bob", "builder")
    assert not accounts.check("alice", "builder")
    assert not accounts.check("alice", "wonder ")
    assert not accounts.check("nobody", "wonder")
    assert accounts.admins == {"alice"}
    assert accounts.warnings == []


def test_plaintext_lines_still_work_with_a_warning_naming_the_users_and_the_command(tmp_path):
    path = private_file(tmp_path / "users.txt", f"alice:{hashed('wonder')}\nbob:builder\ncarol:c:c\n")
    accounts = Accounts.from_flags(None, str(path))
    assert accounts.check("bob", "builder") and accounts.check("carol", "c:c") and accounts.check("alice", "wonder")
    assert not accounts.check("bob", "wonder")
    [warning] = accounts.warnings
    assert "bob, carol" in warning and "alice" not in warning
    assert f"python tools/accounts.py convert {path}" in warning
    assert "builder" not in warning


def test_passwords_on_the_command_line_are_warned_about():
    accounts = Accounts.from_flags("alice:wonder", None)
    assert accounts.check("alice", "wonder")
    assert accounts.warnings == [COMMAND_LINE_WARNING]
    assert "ps" in COMMAND_LINE_WARNING and "--gradio-auth-path" in COMMAND_LINE_WARNING


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o620, 0o602])
def test_an_accounts_file_others_can_read_or_write_is_refused(tmp_path, mode):
    path = private_file(tmp_path / "users.txt", f"alice:{hashed('wonder')}\n")
    path.chmod(mode)
    with pytest.raises(AccountsError) as error:
        Accounts.from_flags(None, str(path))
    assert f"chmod 600 {path}" in str(error.value)
    path.chmod(0o600)
    assert Accounts.from_flags(None, str(path)).users == ["alice"]


def test_an_unknown_user_costs_as_much_as_a_wrong_password():
    """So the answer time does not tell which user names exist (generous bounds: without the
    dummy check an unknown user would answer thousands of times faster)."""
    accounts = Accounts.from_passwords({"alice": "wonder"})

    def median_time(user):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            assert not accounts.check(user, "guess")
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    ratio = median_time("nobody") / median_time("alice")
    assert 0.3 < ratio < 3, ratio


# ---- the command ---------------------------------------------------------------------------------
def test_the_command_adds_changes_and_removes_users_reading_the_password_from_stdin(tmp_path):
    path = tmp_path / "users.txt"
    path.write_text("# our lab\nold:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g\n", encoding="utf-8")
    path.chmod(0o644)

    added = run_tool("add", path, "alice", "--admin", "--password-stdin", password="first secret\n")
    assert added.returncode == 0, added.stderr
    assert run_tool("add", path, "bob", password="builder22\n").returncode == 0     # stdin not a terminal
    assert (path.stat().st_mode & 0o777) == 0o600
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# our lab\nold:$argon2id$")                              # other lines kept
    assert "first secret" not in text and "builder22" not in text
    accounts = Accounts.from_flags(None, str(path))
    assert accounts.check("alice", "first secret") and accounts.check("bob", "builder22")
    assert accounts.admins == {"alice"}

    assert run_tool("password", path, "alice", "--password-stdin", password="second secret\n").returncode == 0
    accounts = Accounts.from_flags(None, str(path))
    assert accounts.check("alice", "second secret") and not accounts.check("alice", "first secret")
    assert accounts.admins == {"alice"}                          # the mark survives a new password

    assert run_tool("unmark-admin", path, "alice").returncode == 0
    assert run_tool("mark-admin", path, "bob").returncode == 0
    assert run_tool("remove", path, "old").returncode == 0
    accounts = Accounts.from_flags(None, str(path))
    assert accounts.users == ["alice", "bob"] and accounts.admins == {"bob"}
    assert path.read_text(encoding="utf-8").startswith("# our lab\nalice:")


def test_the_command_refuses_mistakes_without_touching_the_file(tmp_path):
    path = tmp_path / "users.txt"
    assert run_tool("add", path, "alice", password="wonder\n").returncode == 0
    before = path.read_text(encoding="utf-8")
    for args, password, message in [(("add", path, "alice"), "x\n", "already exists"),
                                    (("password", path, "nobody"), "x\n", "no user"),
                                    (("add", path, "bob"), "\n", "empty"),
                                    (("add", path, "has:colon"), "x\n", "not a usable user name")]:
        result = run_tool(*args, password=password)
        assert result.returncode == 1 and message in result.stderr, result.stderr
    assert path.read_text(encoding="utf-8") == before


def test_convert_hashes_plaintext_entries_in_place(tmp_path):
    path = private_file(tmp_path / "users.txt", f"# keep me\nalice:{hashed('wonder')}:admin\nbob: builder 2 \n")
    result = run_tool("convert", path)
    assert result.returncode == 0 and "bob" in result.stdout
    text = path.read_text(encoding="utf-8")
    assert "builder" not in text and text.startswith("# keep me\nalice:")
    accounts = Accounts.from_flags(None, str(path))
    assert accounts.warnings == []
    assert accounts.check("bob", "builder 2") and accounts.check("alice", "wonder")
    assert accounts.admins == {"alice"}


def test_the_command_explains_itself():
    result = run_tool("--help")
    assert result.returncode == 0
    for word in ("add", "password", "remove", "mark-admin", "convert", "mode 600", "--password-stdin"):
        assert word in result.stdout


# ---- throttling ----------------------------------------------------------------------------------
def throttled_accounts(clock, **throttle):
    return Accounts.from_passwords({"alice": "wonder", "bob": "builder"}, hasher=FAST,
                                   throttle=LoginThrottle(clock=clock, **throttle))


def test_backoff_doubles_after_the_free_failures_and_is_capped():
    rule = Backoff(free=3, base_s=1, cap_s=300)
    assert [rule.wait_after(n) for n in range(1, 9)] == [0, 0, 0, 1, 2, 4, 8, 16]
    assert rule.wait_after(1000) == 300


def test_guessing_from_one_address_backs_off_exponentially():
    clock = FakeClock()
    accounts = throttled_accounts(clock)
    waits = []
    for n in range(12):
        result = accounts.attempt("alice", f"guess{n}", "10.0.0.66")
        assert not result.ok
        waits.append(result.retry_after_s)
        clock.now += result.retry_after_s               # the guesser waits exactly as told
    assert waits == [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert accounts.attempt("alice", "guess", "10.0.0.66").retry_after_s == 300   # capped


def test_while_waiting_even_the_right_password_is_refused_unchecked_and_not_counted():
    clock = FakeClock()
    accounts = throttled_accounts(clock)
    for n in range(4):
        accounts.attempt("alice", f"guess{n}", "10.0.0.66")
    assert accounts.retry_after("alice", "10.0.0.66") == 1
    for _ in range(3):
        refused = accounts.attempt("alice", "wonder", "10.0.0.66")
        assert not refused.ok and refused.retry_after_s == 1       # refused, and the wait did not grow
    clock.now += refused.retry_after_s
    assert accounts.login("alice", "wonder", "10.0.0.66")


def test_unknown_user_and_wrong_password_get_the_same_answer():
    clock = FakeClock()
    accounts = throttled_accounts(clock)
    for n in range(6):
        assert accounts.attempt("nobody", "x", "10.0.0.1") == accounts.attempt("alice", "x", "10.0.0.2")
        clock.now += 100


def test_one_guesser_cannot_lock_another_address_out_of_the_account_for_long():
    clock = FakeClock()
    accounts = throttled_accounts(clock)
    for n in range(40):                              # an hour of patient guessing from one address
        clock.now += accounts.retry_after("alice", "10.0.0.66")
        accounts.attempt("alice", f"guess{n}", "10.0.0.66")
    assert accounts.retry_after("alice", "10.0.0.66") == 300
    assert accounts.retry_after("alice", "10.0.0.7") <= 10       # alice, at her desk: a short delay at most
    clock.now += 10
    assert accounts.login("alice", "wonder", "10.0.0.7")
    assert accounts.retry_after("alice", "10.0.0.66") > 200      # the guesser still waits


def test_an_address_that_logged_in_before_skips_the_account_delay():
    clock = FakeClock()
    accounts = throttled_accounts(clock)
    assert accounts.login("alice", "wonder", "10.0.0.7")
    for n in range(20):                              # many addresses, one guess each
        accounts.attempt("alice", f"guess{n}", f"198.51.100.{n}")
    assert accounts.retry_after("alice", "203.0.113.5") > 0       # a new address waits a little
    assert accounts.retry_after("alice", "10.0.0.7") == 0         # alice's known address does not
    assert accounts.login("alice", "wonder", "10.0.0.7")


def test_one_address_trying_many_accounts_backs_off():
    clock = FakeClock()
    accounts = throttled_accounts(clock)
    for n in range(11):                              # one guess for each of many user names
        accounts.attempt(f"user{n}", "password1", "10.0.0.66")
    assert accounts.retry_after("bob", "10.0.0.66") >= 1
    assert not accounts.login("bob", "builder", "10.0.0.66")
    assert accounts.login("bob", "builder", "10.0.0.7")          # other addresses are not affected


def test_success_clears_that_address_record_for_that_account_only():
    clock = FakeClock()
    accounts = throttled_accounts(clock)
    for _ in range(3):
        accounts.attempt("alice", "typo", "10.0.0.1")
        accounts.attempt("bob", "typo", "10.0.0.1")
    assert accounts.login("alice", "wonder", "10.0.0.1")
    assert accounts.attempt("alice", "typo", "10.0.0.1").retry_after_s == 0     # counting again from zero
    assert accounts.attempt("bob", "typo", "10.0.0.1").retry_after_s == 1       # bob's record is kept


def test_failures_are_forgotten_after_a_quiet_hour():
    clock = FakeClock()
    accounts = throttled_accounts(clock)
    for _ in range(8):
        clock.now += accounts.retry_after("alice", "10.0.0.1")
        accounts.attempt("alice", "typo", "10.0.0.1")
    assert accounts.retry_after("alice", "10.0.0.1") == 16
    clock.now += 3601
    assert accounts.attempt("alice", "typo", "10.0.0.1").retry_after_s == 0


def test_made_up_user_names_take_bounded_memory():
    throttle = LoginThrottle(clock=FakeClock(), max_records=100)
    for n in range(1000):
        throttle.record_failure(f"made-up-{n}", f"10.0.{n // 250}.{n % 250}")
    assert len(throttle._records) <= 100


# ---- owners --------------------------------------------------------------------------------------
def test_owner_for_logged_in_user_and_browser_key():
    assert owner_for(SimpleNamespace(username="alice"), "ignored") == "alice"
    key = "3f6c2b9e-1d2a-4c55-9a0b-6e7f8a9b0c1d"
    assert owner_for(SimpleNamespace(username=None), key) == BROWSER_OWNER_PREFIX + key
    assert owner_for(None, key) == BROWSER_OWNER_PREFIX + key
    assert ":" in BROWSER_OWNER_PREFIX            # user names can't contain ':' (see parsing)
    for bad_key in ("", "short", "x" * 129, "has spaces in it here", None):
        with pytest.raises(ValueError):
            owner_for(None, bad_key)
    with pytest.raises(PermissionError):
        owner_for(None, key, require_login=True)


# ---- the client address --------------------------------------------------------------------------
def test_gradio_login_is_throttled_by_client_address():
    """Through Gradio's real /login route: the middleware hands the client address to the
    auth callable, which Gradio awaits without the request."""
    gr = pytest.importorskip("gradio")
    from fastapi.testclient import TestClient
    from gradio.routes import App

    from modules.accounts import client_address_middleware

    clock = FakeClock()
    accounts = throttled_accounts(clock)
    with gr.Blocks() as demo:
        gr.Markdown("hi")
    demo.auth = accounts.gradio_auth
    app = App.create_app(demo, app_kwargs={"middleware": [client_address_middleware()]})
    with TestClient(app) as client:
        assert client.post("/login", data={"username": "alice", "password": "wonder"}).status_code == 200
        for n in range(11):
            assert client.post("/login", data={"username": f"u{n}", "password": "x"}).status_code == 400
        assert accounts.retry_after("bob", "testclient") > 0      # TestClient's address
        assert client.post("/login", data={"username": "bob", "password": "builder"}).status_code == 400
    assert accounts.retry_after("bob", "10.0.0.7") == 0


def test_forwarded_headers_are_trusted_only_from_listed_proxies(monkeypatch):
    import uvicorn
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "set here, so the test's end restores the outer value")
    monkeypatch.delenv("FORWARDED_ALLOW_IPS")
    assert uvicorn.Config(app=None).forwarded_allow_ips == "127.0.0.1,::1"     # uvicorn's own default
    trust_forwarded_headers_from("")
    assert uvicorn.Config(app=None).forwarded_allow_ips == ""
    trust_forwarded_headers_from(" 10.1.2.3, 192.168.0.0/24 ")
    assert uvicorn.Config(app=None).forwarded_allow_ips == "10.1.2.3,192.168.0.0/24"
    with pytest.raises(AccountsError, match="not an IP"):
        trust_forwarded_headers_from("proxy.example.org")


@pytest.mark.parametrize("allow_ips, seen_as", [(None, "127.0.0.1"), ("127.0.0.1", "203.0.113.9")])
def test_the_real_server_believes_x_forwarded_for_only_from_listed_proxies(tmp_path, monkeypatch, allow_ips, seen_as):
    """The real server on loopback with accounts: a log-in that claims another address in
    X-Forwarded-For is logged (and throttled) under the address it really came from, unless
    --forwarded-allow-ips names the connecting address as a proxy."""
    from tests.browser.conftest import ServerProcess
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)       # only the flag decides
    users = private_file(tmp_path / "users.txt", f"alice:{hashed('wonderland1')}\n")
    extra = ["--gradio-auth-path", str(users)] + (["--forwarded-allow-ips", allow_ips] if allow_ips else [])
    server = ServerProcess(tmp_path / "server", extra_args=extra, settings=None)
    try:
        server.wait_ready()
        form = urllib.parse.urlencode({"username": "alice", "password": "not-her-password"}).encode()
        request = urllib.request.Request(server.url + "login", data=form,
                                         headers={"X-Forwarded-For": "203.0.113.9"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 400
        deadline = time.monotonic() + 30
        while "Failed log-in" not in server.log_tail() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert f"Failed log-in for alice from {seen_as}\n" in server.log_tail()
    finally:
        server.stop()
