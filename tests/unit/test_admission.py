"""The admission policy, sans-IO: one behaviour and one wording for every server."""

from __future__ import annotations

import errno

import pytest

from wirecat.access import AccessList
from wirecat.admission import (
    AcceptErrorAction,
    Admission,
    Refusal,
    accept_error_action,
    peer_host,
    peer_label,
)
from wirecat.errors import UsageError


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (errno.ECONNABORTED, AcceptErrorAction.SKIP),
        (errno.EPROTO, AcceptErrorAction.SKIP),
        (errno.EPERM, AcceptErrorAction.SKIP),
        (errno.ECONNRESET, AcceptErrorAction.SKIP),
        (errno.EAGAIN, AcceptErrorAction.SKIP),
        (errno.EMFILE, AcceptErrorAction.BACK_OFF),
        (errno.ENFILE, AcceptErrorAction.BACK_OFF),
        (errno.ENOBUFS, AcceptErrorAction.BACK_OFF),
        (errno.ENOMEM, AcceptErrorAction.BACK_OFF),
        (errno.EBADF, AcceptErrorAction.RAISE),
        (errno.EINVAL, AcceptErrorAction.RAISE),
        (None, AcceptErrorAction.RAISE),
    ],
)
def test_accept_errno_policy(code: int | None, action: AcceptErrorAction) -> None:
    assert accept_error_action(code) is action


def test_wait_stops_accepting_at_the_limit_and_refuse_goes_on() -> None:
    waiting = Admission(max_connections=2, when_full="wait")
    refusing = Admission(max_connections=2, when_full="refuse")
    assert waiting.should_accept(1)
    assert not waiting.should_accept(2)
    assert refusing.should_accept(2)
    assert refusing.decide("127.0.0.1", "127.0.0.1:1", 2) == Refusal("127.0.0.1:1", "full", 2)
    assert refusing.decide("127.0.0.1", "127.0.0.1:1", 1) is None


def test_rules_come_before_the_limit() -> None:
    policy = Admission(AccessList.from_rules(deny=["192.0.2.0/24"]), 1, "refuse")
    assert policy.decide("192.0.2.9", "192.0.2.9:5", 5) == Refusal("192.0.2.9:5", "access")
    assert policy.decide("", "a client of unix:/s", 0) is None  # Unix peers have no address


@pytest.mark.parametrize(
    ("refusal", "text"),
    [
        (Refusal("127.0.0.1:5", "access"), "refused 127.0.0.1:5: not allowed by the allow/deny rules"),
        (Refusal("127.0.0.1:5", "full", 1), "refused 127.0.0.1:5: at the limit of 1 connection"),
        (Refusal("[::1]:5", "full", 100), "refused [::1]:5: at the limit of 100 connections"),
        (Refusal("[::1]:5", "full", 3, "UDP session"), "refused [::1]:5: at the limit of 3 UDP sessions"),
    ],
)
def test_one_wording(refusal: Refusal, text: str) -> None:
    assert refusal.text() == text


@pytest.mark.parametrize(
    ("sockaddr", "local", "label"),
    [
        (("127.0.0.1", 5), "", "127.0.0.1:5"),
        (("::1", 5, 0, 0), "", "[::1]:5"),
        ("", "unix:/run/s", "a client of unix:/run/s"),
        ("/tmp/client.sock", "unix:/run/s", "unix:/tmp/client.sock"),
        (b"\0abstract", "", "unix:@abstract"),
    ],
)
def test_peer_labels(sockaddr: object, local: str, label: str) -> None:
    assert peer_label(sockaddr, local) == label


def test_peer_host_is_empty_for_unix_peers() -> None:
    assert peer_host(("127.0.0.9", 1)) == "127.0.0.9"
    assert peer_host("") == ""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_connections": 0},
        {"max_connections": -1},
        {"when_full": "drop"},
        {"allow": [""]},
        {"allow": ["127.0.0.1"], "unix": True},
    ],
)
def test_make_refuses_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        Admission.make(**kwargs)  # type: ignore[arg-type]
