"""HTTPS between real agent and server processes on 127.0.0.1, with a throwaway CA (trustme).

The server serves HTTPS (optionally requiring client certificates); ``dcmon agent --once``
delivers only when it trusts the server's CA and, where required, presents its certificate.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from tests.e2e.processes import DCMON, ServerSpec, agent_argv, running, server_spec, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODE = "tls-node"
RUN_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def context(self, client: bool = False) -> ssl.SSLContext:
        """Returns: what a test's own HTTPS client uses: trust the CA, maybe present the client."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if client:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    client = ca.issue_cert("tls-node.example")
    pki = Pki(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )
    ca.cert_pem.write_to_path(str(pki.ca))
    server.cert_chain_pems[0].write_to_path(str(pki.server_cert))
    server.private_key_pem.write_to_path(str(pki.server_key))
    client.cert_chain_pems[0].write_to_path(str(pki.client_cert))
    client.private_key_pem.write_to_path(str(pki.client_key))
    return pki


def https_spec(tmp_path: Path, pki: Pki, client_auth: str = "none") -> ServerSpec:
    spec = server_spec(tmp_path)
    argv = [
        *spec.argv,
        "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key),
    ]  # fmt: skip
    if client_auth != "none":
        argv += ["--tls-client-ca-file", str(pki.ca), "--tls-client-auth", client_auth]
    return dataclasses.replace(spec, url=f"https://127.0.0.1:{spec.port}", argv=argv)


@contextmanager
def https_server(
    tmp_path: Path, spec: ServerSpec, pki: Pki, client: bool = False
) -> Iterator[None]:
    """Run the server until the block ends; ready once /readyz answers over HTTPS."""
    with running(spec.argv, tmp_path / "server.log") as server:
        wait_for(
            lambda: _get(spec.url + "/readyz", pki, client).status_code == 200,
            30,
            "the HTTPS server to be ready",
        )
        assert f"on https://127.0.0.1:{spec.port}" in server.output()
        yield
        assert server.stop() == 0, server.output()


def run_agent(
    tmp_path: Path, spec: ServerSpec, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``dcmon agent --once``: exit 0 when its batch was delivered, 1 when not."""
    argv = agent_argv(tmp_path, spec, "--once", "--gpu-backend", "none", "--node-name", NODE)
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        env={**os.environ, **env},
        check=False,
    )


def trust(pki: Pki, client: bool = False) -> dict[str, str]:
    env = {"DCMON_AGENT_TRANSPORT__CA_FILE": str(pki.ca)}
    if client:
        env["DCMON_AGENT_TRANSPORT__CLIENT_CERT_FILE"] = str(pki.client_cert)
        env["DCMON_AGENT_TRANSPORT__CLIENT_KEY_FILE"] = str(pki.client_key)
    return env


def node_known(spec: ServerSpec, pki: Pki, client: bool = False) -> bool:
    response = _get(f"{spec.url}/api/v1/nodes/{NODE}", pki, client)
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def _get(url: str, pki: Pki, client: bool) -> httpx.Response:
    return httpx.get(url, verify=pki.context(client), timeout=5.0)


def test_an_agent_trusting_the_ca_delivers_over_https(tmp_path: Path, pki: Pki) -> None:
    spec = https_spec(tmp_path, pki)
    with https_server(tmp_path, spec, pki):
        result = run_agent(tmp_path, spec, trust(pki))
        assert result.returncode == 0, result.stderr
        assert "delivered batch" in result.stdout
        assert node_known(spec, pki)


def test_an_agent_without_the_ca_refuses_the_server(tmp_path: Path, pki: Pki) -> None:
    spec = https_spec(tmp_path, pki)
    with https_server(tmp_path, spec, pki):
        result = run_agent(tmp_path, spec, {})
        assert result.returncode == 1, result.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
        assert "not delivered" in result.stderr
        assert not node_known(spec, pki)


def test_required_client_certificates_keep_out_an_agent_without_one(
    tmp_path: Path, pki: Pki
) -> None:
    spec = https_spec(tmp_path, pki, client_auth="required")
    with https_server(tmp_path, spec, pki, client=True):
        with pytest.raises(httpx.HTTPError):
            _get(spec.url + "/readyz", pki, client=False)
        refused = run_agent(tmp_path, spec, trust(pki))
        assert refused.returncode == 1, refused.stderr
        assert "not delivered" in refused.stderr
        assert not node_known(spec, pki, client=True)
        accepted = run_agent(tmp_path, spec, trust(pki, client=True))
        assert accepted.returncode == 0, accepted.stderr
        assert node_known(spec, pki, client=True)


def test_unusable_tls_files_stop_the_server_with_a_clear_message(tmp_path: Path, pki: Pki) -> None:
    base = [*DCMON, "server", "--host", "127.0.0.1", "--data-dir", str(tmp_path / "server")]
    missing = subprocess.run(
        [*base, "--tls-cert-file", str(tmp_path / "absent.pem"),
         "--tls-key-file", str(pki.server_key)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "tls_cert_file" in missing.stderr and "No such file" in missing.stderr
    assert "Traceback" not in missing.stderr
    mismatched = subprocess.run(
        [*base, "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.client_key)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    assert mismatched.returncode == 2
    assert "matching key" in mismatched.stderr
    assert "Traceback" not in mismatched.stderr


def test_an_unusable_ca_file_stops_the_agent_with_a_clear_message(tmp_path: Path, pki: Pki) -> None:
    spec = https_spec(tmp_path, pki)  # not started: the agent stops before it connects
    result = run_agent(
        tmp_path, spec, {"DCMON_AGENT_TRANSPORT__CA_FILE": str(tmp_path / "absent.pem")}
    )
    assert result.returncode == 2
    assert "transport.ca_file" in result.stderr and "No such file" in result.stderr
    assert "Traceback" not in result.stderr
