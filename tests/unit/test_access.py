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


# -- fail closed: nothing a typo produces admits everyone (issue 10) -------------------------


@pytest.mark.parametrize("rule", ["", " ", ",", " , ", "127.0.0.1,", ",127.0.0.1", "127.0.0.1,,::1", "[]"])
@pytest.mark.parametrize("kind", ["allow", "deny"])
def test_empty_or_blank_rules_are_errors(rule: str, kind: str) -> None:
    with pytest.raises(UsageError, match=f"empty {kind} rule"):
        AccessList.from_rules(**{kind: [rule]})


def test_empty_rule_is_a_value_error_for_library_callers() -> None:
    with pytest.raises(ValueError, match="empty allow rule"):
        AccessList.from_rules(allow=[""])


@pytest.mark.parametrize("rule", ["127.0.0.1/0", "198.51.100.7/0", "::1/0", "fe80::1/0"])
def test_a_slash_zero_with_a_nonzero_address_is_an_error(rule: str) -> None:
    with pytest.raises(UsageError, match="covers every address"):
        AccessList.from_rules(allow=[rule])


@pytest.mark.parametrize("rule", ["0.0.0.0/0", "::/0"])
def test_everyone_written_as_such_is_accepted(rule: str) -> None:
    assert AccessList.from_rules(allow=[rule]).admits("198.51.100.1") is (rule != "::/0")


def test_a_string_is_one_rule_not_a_list_of_characters() -> None:
    rules = AccessList.from_rules(allow="127.0.0.1,::1")
    assert rules.admits("127.0.0.1")
    assert not rules.admits("127.0.0.2")


def test_a_peer_that_is_not_an_address_is_refused_when_there_are_rules() -> None:
    assert not AccessList.from_rules(deny=["192.0.2.1"]).admits("not-an-address")
    assert AccessList().admits("not-an-address")  # no rules: no restriction to keep


def test_rules_refuse_a_unix_listener() -> None:
    with pytest.raises(UsageError, match="Unix socket"):
        AccessList.from_rules(allow=["127.0.0.1"]).check_applies(unix=True)
    AccessList.from_rules(allow=["127.0.0.1"]).check_applies(unix=False)
    AccessList().check_applies(unix=True)
