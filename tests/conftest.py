"""Shared fixtures: the integration pipeline, settings for pure tests, a certificate for TLS tests."""

from __future__ import annotations

import datetime
import ipaddress
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/harness.py and tests/stripe_story.py

from revenue_webhooks.config import Settings, from_environ


@pytest.fixture(autouse=True)
def no_running_local_stack(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator tools find a running `make dev` through $DEVSTACK_DIR/stack.json: a developer's own must not
    answer for a test. Tests that want a local stack start one and point DEVSTACK_DIR at it."""
    monkeypatch.setenv("DEVSTACK_DIR", str(tmp_path_factory.mktemp("no-devstack")))


@pytest.fixture
def settings() -> Settings:
    return from_environ({"MODE": "any"})


@pytest.fixture
def pipeline() -> Iterator[object]:
    from harness import Pipeline

    running = Pipeline()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: its PEM (the CA bundle) and its key, for TLS tests."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "cert.pem", folder / "key.pem"
