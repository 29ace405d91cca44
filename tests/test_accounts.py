from types import SimpleNamespace

import pytest

from modules.accounts import (BROWSER_OWNER_PREFIX, Accounts, AccountsError, LoginRateLimiter,
                              owner_for, parse_auth_file, parse_auth_string)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_parse_flag_string():
    assert parse_auth_string('"alice:wonder, bob:b:u:i:l:d"') == {"alice": "wonder", "bob": "b:u:i:l:d"}


def test_parse_file_skips_blanks_and_comments(tmp_path):
    path = tmp_path / "users.txt"
    path.write_text("# lab accounts\n\nalice:pa ss,with comma\n  bob : secret  \n", encoding="utf-8")
    assert parse_auth_file(path) == {"alice": "pa ss,with comma", "bob": "secret"}


@pytest.mark.parametrize("line", ["carol-no-colon-topsecret", ":topsecret", "carol:"])
def test_malformed_line_names_the_line_not_the_password(tmp_path, line):
    path = tmp_path / "users.txt"
    path.write_text(f"alice:one\n# note\n{line}\n", encoding="utf-8")
    with pytest.raises(AccountsError) as error:
        parse_auth_file(path)
    assert "line 3" in str(error.value)
    assert "topsecret" not in str(error.value)


def test_duplicate_user_is_an_error(tmp_path):
    with pytest.raises(AccountsError, match="twice"):
        parse_auth_string("alice:a,alice:b")
    path = tmp_path / "users.txt"
    path.write_text("alice:b\n", encoding="utf-8")
    with pytest.raises(AccountsError, match="both"):
        Accounts.from_flags("alice:a", str(path))


def test_from_flags_merges_both_and_none_means_no_login(tmp_path):
    path = tmp_path / "users.txt"
    path.write_text("bob:b\n", encoding="utf-8")
    assert Accounts.from_flags(None, None) is None
    assert Accounts.from_flags("alice:a", str(path)).users == ["alice", "bob"]
    only_comments = tmp_path / "empty.txt"
    only_comments.write_text("# nobody yet\n", encoding="utf-8")
    with pytest.raises(AccountsError, match="no accounts"):      # not a server open to all
        Accounts.from_flags(None, str(only_comments))


def test_check_passwords():
    accounts = Accounts({"alice": "wonder"})
    assert accounts.check("alice", "wonder")
    assert not accounts.check("alice", "wonder ")
    assert not accounts.check("alice", "")
    assert not accounts.check("nobody", "wonder")


def test_unknown_user_and_wrong_password_look_the_same():
    accounts = Accounts({"alice": "wonder"})
    assert accounts.login("nobody", "x", "10.0.0.1") is False
    assert accounts.login("alice", "x", "10.0.0.2") is False


def test_rate_limit_per_user_then_released_after_lockout():
    clock = FakeClock()
    accounts = Accounts({"alice": "wonder"}, LoginRateLimiter(max_failures=5, window_s=60, lockout_s=300, clock=clock))
    for n in range(5):
        assert not accounts.login("alice", f"guess{n}", f"10.0.0.{n}")    # a different address each time
    # Locked: even the right password is refused, so a guesser can't tell when it hit.
    assert not accounts.login("alice", "wonder", "10.0.0.99")
    clock.now += 301
    assert accounts.login("alice", "wonder", "10.0.0.99")


def test_rate_limit_per_address_covers_many_user_names():
    clock = FakeClock()
    accounts = Accounts({"alice": "wonder", "bob": "builder"}, LoginRateLimiter(clock=clock))
    for n in range(5):
        assert not accounts.login(f"user{n}", "x", "10.0.0.66")
    assert not accounts.login("bob", "builder", "10.0.0.66")     # this address is locked out
    assert accounts.login("bob", "builder", "10.0.0.7")          # others are not


def test_failures_outside_the_window_do_not_add_up():
    clock = FakeClock()
    limiter = LoginRateLimiter(max_failures=5, window_s=60, clock=clock)
    for _ in range(10):
        limiter.record_failure("alice", "10.0.0.1")
        clock.now += 20                # at most three within any minute
    assert limiter.allowed("alice", "10.0.0.1")


def test_success_clears_the_user_count():
    limiter = LoginRateLimiter(max_failures=3, clock=FakeClock())
    accounts = Accounts({"alice": "wonder"}, limiter)
    for _ in range(2):
        accounts.login("alice", "typo")
    assert accounts.login("alice", "wonder")
    for _ in range(2):
        accounts.login("alice", "typo")
    assert limiter.allowed("alice")


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


def test_gradio_login_is_rate_limited_by_client_address():
    """Through Gradio's real /login route: the middleware hands the client address to the
    auth callable, which Gradio calls without the request."""
    gr = pytest.importorskip("gradio")
    from fastapi.testclient import TestClient
    from gradio.routes import App

    from modules.accounts import client_address_middleware

    accounts = Accounts({"alice": "wonder"})
    seen = []
    original = accounts.login
    accounts.login = lambda user, password, address=None: seen.append(address) or original(user, password, address)
    with gr.Blocks() as demo:
        gr.Markdown("hi")
    demo.auth = accounts.gradio_auth
    app = App.create_app(demo, app_kwargs={"middleware": [client_address_middleware()]})
    with TestClient(app) as client:
        assert client.post("/login", data={"username": "alice", "password": "wonder"}).status_code == 200
        for n in range(5):
            assert client.post("/login", data={"username": f"u{n}", "password": "x"}).status_code == 400
        assert client.post("/login", data={"username": "alice", "password": "wonder"}).status_code == 400
    assert seen and set(seen) == {"testclient"}
