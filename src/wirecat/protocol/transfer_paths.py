"""Which names a receiver may write, sans-IO: the receiver trusts nothing the sender says.

A transfer's names come from the peer. Written as given, ``../../.bashrc``,
``/etc/cron.d/x`` or a symlink ``a -> /`` followed by a file ``a/etc/passwd``
would write anywhere the receiving user may. :class:`PathGuard` checks every
name of one transfer, in order, before anything touches the disk, and
refuses (with :class:`~wirecat.errors.UnsafePath`, one line saying why):

* an empty name, an absolute path (``/x``), a Windows drive (``C:x``) or
  separator (``\\``), an empty, ``.`` or ``..`` component;
* NUL and every other control character (Unicode category ``Cc``): they
  hide in terminals and logs, and NUL ends a C string early;
* a name over ``max_name`` bytes or a component over ``max_component`` (255,
  NAME_MAX) in UTF-8;
* a name (or any of its parent directories) that differs from one already
  in this transfer only by Unicode normalisation (``é`` as one code point or
  as ``e`` + combining accent): macOS file systems fold them into one file,
  so the second would silently replace the first; the same name twice too;
* a name under a symlink sent earlier in the same transfer (the link could
  point anywhere the next file would then be written through);
* a symlink whose target is absolute, or climbs out of the directory
  (resolved lexically from the link's own directory), or passes through a
  symlink of this transfer.

The names already on the receiver's disk are the I/O layer's to check (a
symlink planted there before the transfer began): see
:mod:`wirecat.transfer`. Nothing here does I/O.
"""

from __future__ import annotations

import unicodedata

from wirecat.errors import UnsafePath
from wirecat.protocol.transfer import DEFAULT_MAX_NAME, MAX_COMPONENT, FileHeader, Kind

__all__ = ["PathGuard", "check_name"]


#: Characters of a name shown in a refusal: enough to recognise it, and a
#: refusal stays one line (and small on the wire) whatever the sender sent.
_SHOWN = 80


def _show(text: str) -> str:
    """``text`` as a message shows it: quoted, control characters escaped, cut at ``_SHOWN``."""
    return repr(text) if len(text) <= _SHOWN else repr(text[:_SHOWN]) + "…"


def _check_text(text: str, what: str) -> None:
    for char in text:
        if unicodedata.category(char) == "Cc":
            raise UnsafePath(f"{what} {_show(text)} holds a control character ({ord(char):#04x})")
    if "\\" in text:
        raise UnsafePath(f"{what} {_show(text)} holds a backslash (a Windows separator)")
    if text.startswith("/"):
        raise UnsafePath(f"{what} {_show(text)} is an absolute path")
    if len(text) >= 2 and text[1] == ":" and text[0].isascii() and text[0].isalpha():
        raise UnsafePath(f"{what} {_show(text)} starts with a drive letter")


def check_name(
    name: str, *, max_name: int = DEFAULT_MAX_NAME, max_component: int = MAX_COMPONENT
) -> tuple[str, ...]:
    """The components of a relative name, checked on its own (no transfer state).

    Raises:
        UnsafePath: see the module docstring.
    """
    if not name:
        raise UnsafePath("an empty name")
    _check_text(name, "name")
    if len(name.encode("utf-8", "surrogatepass")) > max_name:
        raise UnsafePath(f"name {_show(name[:40])}… is over {max_name} bytes")
    parts = tuple(name.split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePath(f"name {_show(name)} has {'a ' + repr(part) if part else 'an empty'} component")
        if len(part.encode("utf-8", "surrogatepass")) > max_component:
            raise UnsafePath(f"name {_show(name[:40])} has a component over {max_component} bytes")
    return parts


def _key(parts: tuple[str, ...]) -> str:
    return unicodedata.normalize("NFC", "/".join(parts))


class PathGuard:
    """The names of one transfer, checked in the order they come.

    Args:
        max_name: longest name in bytes of UTF-8.
        max_component: longest component in bytes.

    A refused entry leaves no trace: the rest of the transfer goes on
    against the names accepted so far.
    """

    def __init__(self, *, max_name: int = DEFAULT_MAX_NAME, max_component: int = MAX_COMPONENT) -> None:
        self._max_name = max_name
        self._max_component = max_component
        #: NFC form of every accepted name and parent directory → its form as sent.
        self._seen: dict[str, str] = {}
        #: Names accepted as entries (not only as parents), NFC.
        self._entries: set[str] = set()
        #: Symlinks of this transfer, NFC.
        self._links: set[str] = set()

    def check(self, header: FileHeader) -> tuple[str, ...]:
        """Check one entry; its name's components, to join under the target directory.

        Raises:
            UnsafePath: the name or a symlink's target is refused (see the
                module docstring); nothing is recorded then.
        """
        parts = check_name(header.name, max_name=self._max_name, max_component=self._max_component)
        key = _key(parts)
        for depth in range(1, len(parts) + 1):
            prefix = parts[:depth]
            prefix_key = _key(prefix)
            raw = "/".join(prefix)
            known = self._seen.get(prefix_key)
            if known is not None and known != raw:
                raise UnsafePath(
                    f"name {_show(header.name)} differs from {_show(known)} only by Unicode normalisation"
                    " (one file on some file systems)"
                )
            if depth < len(parts) and prefix_key in self._links:
                raise UnsafePath(
                    f"name {_show(header.name)} passes through the symlink {_show(raw)} of this transfer"
                )
        if key in self._entries:
            raise UnsafePath(f"name {_show(header.name)} came twice in one transfer")
        if header.kind is Kind.SYMLINK:
            self._check_target(parts, header.target)
        for depth in range(1, len(parts) + 1):
            self._seen.setdefault(_key(parts[:depth]), "/".join(parts[:depth]))
        self._entries.add(key)
        if header.kind is Kind.SYMLINK:
            self._links.add(key)
        return parts

    def _check_target(self, parts: tuple[str, ...], target: str) -> None:
        name = "/".join(parts)
        if not target:
            raise UnsafePath(f"symlink {_show(name)} has no target")
        _check_text(target, f"symlink {_show(name)} target")
        if len(target.encode("utf-8", "surrogatepass")) > self._max_name:
            raise UnsafePath(f"symlink {_show(name)} has a target over {self._max_name} bytes")
        resolved = list(parts[:-1])
        for part in target.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    raise UnsafePath(f"symlink {_show(name)} -> {_show(target)} points outside the directory")
                resolved.pop()
                continue
            resolved.append(part)
            if _key(tuple(resolved)) in self._links:
                raise UnsafePath(
                    f"symlink {_show(name)} -> {_show(target)} passes through a symlink of this transfer"
                )
