"""The session cookie's value: signed fields that round-trip, and nothing else accepted."""

from __future__ import annotations

import string

import pytest

from server.auth import cookie
from server.auth.cookie import MAX_COOKIE_LENGTH, Session
from server.auth.principal import Principal, Role

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SESSION = Session("s3ss10n-id", "tk_abcdef0123", Role.ADMIN, 1_800_000_000.0, 1_800_043_200.0)
B64_CHARS = string.ascii_letters + string.digits + "-_"


def test_a_cookie_round_trips() -> None:
    value = cookie.encode(KEY, SESSION)
    assert value.startswith("v1.") and value.count(".") == 2
    assert cookie.decode(KEY, value) == SESSION
    assert SESSION.principal() == Principal(Role.ADMIN, "tk_abcdef0123")


def test_every_changed_character_is_refused() -> None:
    """Each position of the value, payload and signature alike, changed to another character
    (including the signature's last one, whose spare bits base64 would ignore)."""
    value = cookie.encode(KEY, SESSION)
    for at, original in enumerate(value):
        replacement = "A" if original != "A" else "B"
        if original == ".":
            replacement = "x"
        flipped = value[:at] + replacement + value[at + 1 :]
        assert cookie.decode(KEY, flipped) is None, f"position {at} ({original!r})"


def test_the_last_signature_character_is_not_malleable() -> None:
    value = cookie.encode(KEY, SESSION)
    others = [value[:-1] + ch for ch in B64_CHARS if ch != value[-1]]
    assert all(cookie.decode(KEY, other) is None for other in others)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "v1",
        "v1..",
        "v2." + cookie.encode(KEY, SESSION).removeprefix("v1."),
        cookie.encode(KEY, SESSION) + "=",
        "v1.e30." + "A" * 43,  # "{}" with a made-up signature
        "x" * (MAX_COOKIE_LENGTH + 1),
    ],
)
def test_malformed_values_are_refused(value: str) -> None:
    assert cookie.decode(KEY, value) is None


def test_another_key_is_refused() -> None:
    assert cookie.decode(OTHER_KEY, cookie.encode(KEY, SESSION)) is None


def test_a_session_of_a_machine_role_is_refused_even_when_signed() -> None:
    node = Session("sid", "tk_node000000", Role.NODE, 1.0, 2.0)
    assert cookie.decode(KEY, cookie.encode(KEY, node)) is None


def test_the_csrf_token_is_per_session_and_not_the_signature() -> None:
    token = cookie.csrf_token(KEY, SESSION.session_id)
    assert cookie.csrf_matches(KEY, SESSION.session_id, token)
    assert not cookie.csrf_matches(KEY, SESSION.session_id, token[:-1] + "x")
    assert not cookie.csrf_matches(KEY, SESSION.session_id, "")
    assert not cookie.csrf_matches(KEY, SESSION.session_id, None)
    assert not cookie.csrf_matches(KEY, "another-session", token)
    assert not cookie.csrf_matches(OTHER_KEY, SESSION.session_id, token)
    assert token not in cookie.encode(KEY, SESSION)
