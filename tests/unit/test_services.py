"""Ports by service name (``http``, ``ssh``), as nc takes them: :func:`wirecat.resolve.service_port`.

The lookup reads the services database (``/etc/services``, a local file: no
query leaves the machine); the error cases use a stand-in ``getservbyname``
so they do not depend on what the machine's database holds.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import wirecat.resolve
from wirecat.errors import UsageError
from wirecat.resolve import service_port


def _database_has(name: str, protocol: str) -> bool:
    try:
        socket.getservbyname(name, protocol)
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _database_has("http", "tcp"), reason="no services database (netbase) here")
def test_the_systems_database_is_read() -> None:
    assert service_port("http") == 80
    assert service_port("ssh") == 22


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], int]:
    """A services database of our own: what the test puts in it, nothing else."""
    table: dict[tuple[str, str], int] = {}

    def getservbyname(name: str, protocol: str = "") -> int:
        try:
            return table[name, protocol]
        except KeyError:
            raise OSError("service/proto not found") from None

    monkeypatch.setattr(socket, "getservbyname", getservbyname)
    return table


def test_the_transport_picks_the_protocol(stand_in: dict[tuple[str, str], int]) -> None:
    stand_in["domain", "udp"] = 53
    stand_in["domain", "tcp"] = 5353  # (not so in any real database: to tell them apart)
    assert service_port("domain", datagram=True) == 53
    assert service_port("domain") == 5353


@pytest.mark.parametrize(
    ("table", "datagram", "message"),
    [
        (
            {},
            False,
            "bad port 'nosuch': no such service in {file}: give a number from 1 to 65535,"
            " or a service name such as http",
        ),
        (
            {("nosuch", "tcp"): 22},
            True,
            "'nosuch' is a TCP service in {file}, not a UDP one: give the port as a number",
        ),
        (
            {("nosuch", "udp"): 53},
            False,
            "'nosuch' is a UDP service in {file}, not a TCP one: give the port as a number",
        ),
    ],
)
def test_an_unknown_name_says_what_the_database_holds(
    stand_in: dict[tuple[str, str], int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    table: dict[tuple[str, str], int],
    datagram: bool,
    message: str,
) -> None:
    database = tmp_path / "services"
    database.write_text("# the stand-in's\n")
    monkeypatch.setattr(wirecat.resolve, "SERVICES_FILE", str(database))
    stand_in.update(table)
    with pytest.raises(UsageError) as caught:
        service_port("nosuch", datagram=datagram)
    assert str(caught.value) == message.format(file=database)


def test_no_database_says_so(
    stand_in: dict[tuple[str, str], int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(wirecat.resolve, "SERVICES_FILE", f"{tmp_path}/services")
    with pytest.raises(UsageError) as caught:
        service_port("http")
    assert str(caught.value) == (
        f"cannot look up port 'http': this system has no services database ({tmp_path}/services):"
        " give the port as a number (on Debian and Ubuntu, the netbase package provides it)"
    )
