"""The agent's TLS context: verification always on, client certificates, clear errors for files.

Certificates come from a throwaway CA (trustme); the handshake tests talk to a TLS socket on
127.0.0.1 served from a thread.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from agent.config import ConfigError, TransportSettings
from agent.transport.tls import client_context

URL = "https://127.0.0.1:8470"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(ca: trustme.CA, tmp_path: Path) -> dict[str, Path]:
    """A CA bundle, and a client certificate with its key, as PEM files."""
    client = ca.issue_cert("node-1.example")
    paths = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "client.pem",
        "key": tmp_path / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    return paths


def test_https_context_verifies_the_server_and_refuses_old_protocols(
    files: dict[str, Path],
) -> None:
    context = client_context(TransportSettings(ca_file=files["ca"]), URL)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert any(cert["subject"] for cert in context.get_ca_certs())


def test_without_a_ca_file_the_system_store_is_used() -> None:
    context = client_context(TransportSettings(), URL)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_plain_http_needs_no_context_and_refuses_tls_files(files: dict[str, Path]) -> None:
    assert client_context(TransportSettings(), "http://127.0.0.1:8470") is None
    with pytest.raises(ConfigError, match=r"transport.ca_file .* is not https://"):
        client_context(TransportSettings(ca_file=files["ca"]), "http://127.0.0.1:8470")
    pair = TransportSettings(client_cert_file=files["cert"], client_key_file=files["key"])
    with pytest.raises(ConfigError, match=r"transport.client_cert_file"):
        client_context(pair, "http://127.0.0.1:8470")


def test_a_missing_ca_file_names_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"
    with pytest.raises(ConfigError, match=r"transport.ca_file .*absent.pem: No such file"):
        client_context(TransportSettings(ca_file=missing), URL)


def test_a_ca_file_without_certificates_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"transport.ca_file .*junk.pem holds no usable PEM"):
        client_context(TransportSettings(ca_file=junk), URL)
    with pytest.raises(ConfigError, match=r"transport.ca_file .*: Is a directory"):
        client_context(TransportSettings(ca_file=tmp_path), URL)


def test_a_client_key_that_does_not_match_the_certificate_is_refused(
    ca: trustme.CA, files: dict[str, Path], tmp_path: Path
) -> None:
    other = tmp_path / "other.key"
    ca.issue_cert("node-2.example").private_key_pem.write_to_path(str(other))
    settings = TransportSettings(
        ca_file=files["ca"], client_cert_file=files["cert"], client_key_file=other
    )
    with pytest.raises(ConfigError, match=r"not a usable PEM certificate and matching key"):
        client_context(settings, URL)


def test_an_unreadable_or_garbage_client_key_is_refused(
    files: dict[str, Path], tmp_path: Path
) -> None:
    missing = TransportSettings(client_cert_file=files["cert"], client_key_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"transport.client_key_file .*nope: No such file"):
        client_context(missing, URL)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    bad = TransportSettings(client_cert_file=files["cert"], client_key_file=garbage)
    with pytest.raises(ConfigError, match=r"client_key_file .*garbage.key"):
        client_context(bad, URL)


def test_an_encrypted_client_key_is_refused_without_prompting(
    files: dict[str, Path], tmp_path: Path
) -> None:
    key = serialization.load_pem_private_key(files["key"].read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass phrase"),
        )
    )
    settings = TransportSettings(client_cert_file=files["cert"], client_key_file=encrypted)
    with pytest.raises(ConfigError, match=r"client_key_file .*encrypted.key is encrypted"):
        client_context(settings, URL)


# --- handshakes against a TLS socket on 127.0.0.1 ------------------------------------------------


@pytest.fixture
def tls_listener(ca: trustme.CA) -> Iterator[tuple[int, list[dict[str, object] | None]]]:
    """A TLS server for 127.0.0.1 that asks for (but does not require) a client certificate.

    Yields: (port, the client certificates it saw, one per accepted handshake).
    """
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_OPTIONAL
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    seen: list[dict[str, object] | None] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                try:
                    with server_context.wrap_socket(connection, server_side=True) as tls:
                        seen.append(dict(tls.getpeercert() or {}) or None)
                except (ssl.SSLError, OSError):
                    seen.append(None)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


def _handshake(context: ssl.SSLContext, port: int, host: str = "127.0.0.1") -> None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(b"x")


def test_the_context_trusts_the_ca_and_presents_the_client_certificate(
    files: dict[str, Path], tls_listener: tuple[int, list[dict[str, object] | None]]
) -> None:
    port, seen = tls_listener
    settings = TransportSettings(
        ca_file=files["ca"], client_cert_file=files["cert"], client_key_file=files["key"]
    )
    context = client_context(settings, f"https://127.0.0.1:{port}")
    assert context is not None
    _handshake(context, port)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(context, port, host="other.example")
    _wait(lambda: len(seen) >= 1)
    presented = seen[0]
    assert presented is not None
    assert ("DNS", "node-1.example") in presented["subjectAltName"]  # type: ignore[operator]


def test_the_system_store_does_not_trust_a_private_ca(
    tls_listener: tuple[int, list[dict[str, object] | None]],
) -> None:
    port, _ = tls_listener
    context = client_context(TransportSettings(), f"https://127.0.0.1:{port}")
    assert context is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(context, port)


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")
