"""Path safety of the receiver (wirecat.protocol.transfer_paths): every refusal, and properties."""

from __future__ import annotations

import posixpath
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirecat.errors import UnsafePath
from wirecat.protocol.transfer import FileHeader, Kind
from wirecat.protocol.transfer_paths import PathGuard, check_name


def link(name: str, target: str) -> FileHeader:
    return FileHeader(name, kind=Kind.SYMLINK, target=target)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty name"),
        ("/etc/passwd", "absolute"),
        ("../x", "'..' component"),
        ("a/../../x", "'..' component"),
        ("a/..", "'..' component"),
        ("./a", "'.' component"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
        ("C:x", "drive letter"),
        ("c:/windows", "drive letter"),
        ("a:b", "drive letter"),
        ("a\\..\\b", "backslash"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("a\x1b[31m", "control character"),
        ("a\x7f", "control character"),
        ("a\x85", "control character"),
        ("x" * 256, "over 255 bytes"),
        ("é" * 128, "over 255 bytes"),  # 256 bytes of UTF-8 in 128 characters
        ("a/" * 2048 + "b", "over 4096 bytes"),
    ],
)
def test_refused_names(name: str, why: str) -> None:
    with pytest.raises(UnsafePath, match=why.replace("(", r"\(")):
        PathGuard().check(FileHeader(name))


@pytest.mark.parametrize(
    "name",
    ["a", "a/b/c", "x" * 255, "é" * 127, "..a", "a..", ".hidden", "a b", "日本語/ファイル", "1:x", "ab:c"],
)
def test_accepted_names(name: str) -> None:
    assert PathGuard().check(FileHeader(name)) == tuple(name.split("/"))


def test_unicode_normalisation_collision() -> None:
    guard = PathGuard()
    guard.check(FileHeader("caf\u00e9"))
    with pytest.raises(UnsafePath, match="Unicode normalisation"):
        guard.check(FileHeader("cafe\u0301"))


def test_unicode_collision_in_a_parent_directory() -> None:
    guard = PathGuard()
    guard.check(FileHeader("\u00e9/a"))
    with pytest.raises(UnsafePath, match="Unicode normalisation"):
        guard.check(FileHeader("e\u0301/b"))
    guard.check(FileHeader("\u00e9/b"))  # the same spelling is the same directory


def test_the_same_name_twice() -> None:
    guard = PathGuard()
    guard.check(FileHeader("a"))
    with pytest.raises(UnsafePath, match="came twice"):
        guard.check(FileHeader("a"))


def test_a_directory_then_its_files() -> None:
    guard = PathGuard()
    guard.check(FileHeader("d", kind=Kind.DIRECTORY))
    guard.check(FileHeader("d/f"))


def test_a_symlink_planted_earlier_is_not_passed_through() -> None:
    guard = PathGuard()
    guard.check(link("a", "b"))
    with pytest.raises(UnsafePath, match="passes through the symlink 'a'"):
        guard.check(FileHeader("a/passwd"))
    with pytest.raises(UnsafePath, match="passes through the symlink"):
        guard.check(FileHeader("a/x/y", kind=Kind.DIRECTORY))


def test_a_symlink_planted_earlier_under_another_spelling() -> None:
    guard = PathGuard()
    guard.check(link("\u00e9", "b"))
    with pytest.raises(UnsafePath):
        guard.check(FileHeader("e\u0301/passwd"))


@pytest.mark.parametrize(
    ("name", "target", "why"),
    [
        ("a", "/etc", "absolute"),
        ("a", "..", "outside"),
        ("a", "../x", "outside"),
        ("d/a", "../../x", "outside"),
        ("d/a", "x/../../..", "outside"),
        ("a", "C:/x", "drive letter"),
        ("a", "x\ny", "control character"),
        ("a", "x\\..\\..", "backslash"),
    ],
)
def test_refused_symlink_targets(name: str, target: str, why: str) -> None:
    with pytest.raises(UnsafePath, match=why):
        PathGuard().check(link(name, target))


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("a", "b"),
        ("a", "./b"),
        ("d/a", "../b"),
        ("d/e/a", "../../b"),
        ("a", "x/y/../z"),
        ("a", "."),
        ("d/a", ".."),
    ],
)
def test_accepted_symlink_targets(name: str, target: str) -> None:
    PathGuard().check(link(name, target))


def test_a_symlink_through_another_symlink_of_the_transfer() -> None:
    guard = PathGuard()
    guard.check(link("up", "."))
    with pytest.raises(UnsafePath, match="passes through a symlink"):
        guard.check(link("b", "up/../../x"))


def test_a_refused_entry_leaves_no_trace() -> None:
    guard = PathGuard()
    with pytest.raises(UnsafePath):
        guard.check(link("a", "/etc"))
    guard.check(FileHeader("a/x"))  # 'a' was never a link of this transfer


def test_check_name_alone() -> None:
    assert check_name("a/b") == ("a", "b")
    with pytest.raises(UnsafePath):
        check_name("a/b", max_name=2)
    with pytest.raises(UnsafePath):
        check_name("abc", max_component=2)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_an_accepted_name_stays_inside(name: str) -> None:
    try:
        parts = PathGuard().check(FileHeader(name))
    except UnsafePath:
        return
    joined = posixpath.normpath(posixpath.join("/root/dir", *parts))
    assert joined.startswith("/root/dir/")
    assert all(unicodedata.category(c) != "Cc" for c in name)
    assert "\\" not in name


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "..", ".", "", "c", "/"]), max_size=8),
    st.sampled_from(["l", "d/l", "d/e/l"]),
)
def test_an_accepted_symlink_stays_inside(words: list[str], name: str) -> None:
    target = "/".join(words)
    try:
        PathGuard().check(link(name, target))
    except UnsafePath:
        return
    resolved = posixpath.normpath(posixpath.join("/root/dir", posixpath.dirname(name), target))
    assert resolved == "/root/dir" or resolved.startswith("/root/dir/")


def test_a_refusal_stays_short_whatever_the_name() -> None:
    with pytest.raises(UnsafePath) as caught:
        PathGuard().check(FileHeader("/" + "x" * 4000))
    assert len(str(caught.value)) < 140
    assert "…" in str(caught.value)
