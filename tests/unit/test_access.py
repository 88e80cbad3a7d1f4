"""--allow / --deny decisions."""

from __future__ import annotations

import pytest

from wirecat.access import AccessList
from wirecat.errors import UsageError


def test_no_rules_admits_everyone() -> None:
    assert AccessList().admits("198.51.100.1")


def test_allow_list_admits_only_listed() -> None:
    rules = AccessList.from_rules(allow=["127.0.0.0/8,::1"])
    assert rules.admits("127.0.0.5")
    assert rules.admits("::1")
    assert not rules.admits("198.51.100.1")


def test_deny_beats_allow() -> None:
    rules = AccessList.from_rules(allow=["127.0.0.0/8"], deny=["127.0.0.2"])
    assert rules.admits("127.0.0.1")
    assert not rules.admits("127.0.0.2")


def test_ipv4_mapped_ipv6_peer_matches_ipv4_rule() -> None:
    assert not AccessList.from_rules(deny=["127.0.0.1"]).admits("::ffff:127.0.0.1")


def test_unix_peers_have_no_address_and_are_admitted() -> None:
    assert AccessList.from_rules(allow=["127.0.0.1"]).admits("")


@pytest.mark.parametrize("rule", ["not-an-ip", "203.0.113.0/33", "::1/129"])
def test_bad_rules_are_usage_errors(rule: str) -> None:
    with pytest.raises(UsageError):
        AccessList.from_rules(allow=[rule])
