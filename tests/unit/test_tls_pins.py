"""Pins and fingerprints (``wirecat.tls``): every form ``--pin`` takes, and PEM files in any order."""

from __future__ import annotations

import hashlib
import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirecat import tls
from wirecat.errors import UsageError


def _forms(digest: bytes) -> list[str]:
    """The ways a person may write one SHA-256 fingerprint."""
    plain = digest.hex()
    colons = ":".join(f"{b:02x}" for b in digest)
    return [
        f"sha256:{plain}",
        f"SHA256:{plain.upper()}",
        plain,
        colons.upper(),  # as `openssl x509 -fingerprint -sha256` prints it
        f"sha256:{colons}",
        f"  sha256:{plain}\n",  # pasted with its line end
    ]


@given(st.binary(min_size=32, max_size=32))
def test_parse_pin_round_trip(digest: bytes) -> None:
    expected = "sha256:" + digest.hex()
    for form in _forms(digest):
        assert tls.parse_pin(form) == expected
    assert tls.parse_pin(expected) == expected  # idempotent


@given(st.binary(min_size=1, max_size=64).filter(lambda b: len(b) != 32))
def test_parse_pin_wrong_length(digest: bytes) -> None:
    with pytest.raises(UsageError):
        tls.parse_pin("sha256:" + digest.hex())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256:",
        "sha1:" + "ab" * 20,
        "sha1:" + "ab" * 32,
        "sha256:" + "zz" * 32,
        "sha256:" + "ab" * 31 + "a",
        "md5:" + "ab" * 32,
    ],
)
def test_parse_pin_refuses(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        tls.parse_pin(text)
    assert caught.value.exit_code == 2
    assert "64 hex digits" in caught.value.hint


def test_fingerprint_of_der_and_pem_agree() -> None:
    certificate = tls.ephemeral_certificate(["localhost"])
    der = ssl.PEM_cert_to_DER_cert(certificate.cert_pem.decode())
    expected = "sha256:" + hashlib.sha256(der).hexdigest()
    assert tls.fingerprint(der) == expected
    assert tls.fingerprint(certificate.cert_pem) == expected
    assert tls.fingerprint(certificate.cert_pem.decode()) == expected
    assert certificate.fingerprint == expected


def test_fingerprint_of_pem_with_key_first_and_a_chain() -> None:
    leaf = tls.ephemeral_certificate(["localhost"])
    other = tls.ephemeral_certificate(["other"])
    # A key first, then the leaf, then more: the first certificate counts.
    bundle = leaf.key_pem + b"\n" + leaf.cert_pem + other.cert_pem
    assert tls.fingerprint(bundle) == leaf.fingerprint
    assert tls.fingerprint(bundle.decode()) == leaf.fingerprint


def test_fingerprint_of_pem_without_certificate() -> None:
    key = tls.ephemeral_certificate(["localhost"]).key_pem
    with pytest.raises(ValueError, match="no PEM certificate"):
        tls.fingerprint(key)
