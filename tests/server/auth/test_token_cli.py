"""``dcmon token create/list/revoke`` on the server's database, through the ``dcmon`` command;
and a token made by the CLI working against a server on the same database."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.cli import main
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.settings import ServerSettings
from tests.server.auth.conftest import bearer

NODE_ID = "0123456789abcdef0123456789abcdef"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["token", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _fields(out: str) -> dict[str, str]:
    """``key: value`` lines of the output."""
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def test_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--data-dir", str(tmp_path)]
    code, out, err = _run(
        capsys, "create", "--init", "--role", "node", "--node-id", NODE_ID.upper(),
        "--name", "gpu01", *where,
    )  # fmt: skip
    assert code == 0, err
    created = _fields(out)
    assert created["token"].startswith("dcm_") and created["token_id"].startswith("tk_")
    assert (created["role"], created["node_id"], created["expires"]) == ("node", NODE_ID, "never")
    assert "shown only now" in err

    code, out, _ = _run(capsys, "create", "--role", "read", "--ttl", "3600", *where)
    assert code == 0
    read = _fields(out)
    assert read["expires"].endswith("Z")

    code, out, _ = _run(capsys, "list", *where)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "TOKEN_ID",
        "ROLE",
        "STATE",
        "NODE_ID",
        "CREATED",
        "EXPIRES",
        "NAME",
    ]
    assert [line.split()[:3] for line in lines[1:]] == [
        [created["token_id"], "node", "active"],
        [read["token_id"], "read", "active"],
    ]
    assert created["token"] not in out and sha256_hex(created["token"]) not in out

    code, out, _ = _run(capsys, "revoke", created["token_id"], *where)
    assert code == 0 and out.startswith(f"revoked {created['token_id']} (node token) at ")

    code, out, _ = _run(capsys, "list", "--json", *where)
    assert [token["token_id"] for token in json.loads(out)] == [read["token_id"]]
    code, out, _ = _run(capsys, "list", "--json", "--all", "--role", "node", *where)
    (document,) = json.loads(out)
    assert document["token_id"] == created["token_id"] and document["state"] == "revoked"
    assert document["node_id"] == NODE_ID and document["created_by"] == "cli"
    assert not {"token", "sha256"} & set(document)


def test_database_commands_refuse_a_database_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in --data-dir must not make a new, empty database that no server reads."""
    typo = tmp_path / "dcmon-dta"
    for argv in (["create", "--role", "read"], ["list"], ["revoke", "tk_x"]):
        code, out, err = _run(capsys, *argv, "--data-dir", str(typo))
        assert (code, out) == (2, ""), argv
        assert f"no dcmon database at {typo / 'dcmon.db'}" in err, err
        assert "--init" in err
    assert not typo.exists()

    empty = tmp_path / "empty.db"
    empty.touch()  # a file that is no dcmon database (no schema) is refused too
    code, _, err = _run(capsys, "list", "--database-url", f"sqlite:///{empty}")
    assert code == 2 and "has no dcmon schema" in err, err

    code, out, err = _run(capsys, "create", "--init", "--role", "read", "--data-dir", str(typo))
    assert code == 0, err
    assert (typo / "dcmon.db").is_file()
    assert f"created the dcmon database at {typo / 'dcmon.db'}" in err
    code, out, _ = _run(capsys, "list", "--data-dir", str(typo))
    assert code == 0 and len(out.splitlines()) == 2


def test_help_is_plain_text_and_every_action_says_what_it_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["token", "--help"])
    out = capsys.readouterr().out
    assert "``" not in out and "dcmon token new" in out
    for action in ("new", "hash", "create", "list", "revoke"):
        with pytest.raises(SystemExit):
            main(["token", action, "--help"])
        _, _, rest = capsys.readouterr().out.partition("\n\n")
        description = rest.split("\n\n")[0]
        assert description and not description.startswith("options:"), (action, rest)


def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--data-dir", str(tmp_path)]
    assert _run(capsys, "list", "--init", *where)[0] == 0
    code, out, err = _run(capsys, "revoke", "tk_unknown", *where)
    assert (code, out) == (2, "")
    assert err.strip() == "dcmon token revoke: no token with id 'tk_unknown'"
    code, _, err = _run(capsys, "create", "--role", "node", *where)
    assert code == 2 and "needs the node id" in err
    code, _, err = _run(capsys, "create", "--role", "read", "--ttl", "-5", *where)
    assert code == 2 and "positive" in err
    code, _, err = _run(capsys, "list", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "does not exist" in err
    with pytest.raises(SystemExit) as exited:
        main(["token", "create", "--role", "ingest", *where])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_token_from_the_cli_works_on_the_server_and_its_revocation_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'data_dir = "{tmp_path}"\ncredential_cache_seconds = 0\n')
    code, out, _ = _run(capsys, "create", "--init", "--role", "admin", "--config", str(config))
    assert code == 0
    created = _fields(out)
    settings = ServerSettings(data_dir=tmp_path, credential_cache_seconds=0)
    with TestClient(create_app(settings)) as client:
        admin = bearer(created["token"])
        response = client.get("/api/v1/admin/tokens", headers=admin)
        assert response.status_code == 200
        assert [t["token_id"] for t in response.json()["tokens"]] == [created["token_id"]]
        assert _run(capsys, "revoke", created["token_id"], "--config", str(config))[0] == 0
        assert client.get("/api/v1/admin/tokens", headers=admin).status_code == 401


def test_new_and_hash_still_work(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _run(capsys, "new")
    fields = _fields(out)
    assert code == 0 and fields["sha256"] == sha256_hex(fields["token"])
    monkeypatch.setattr("sys.stdin", io.StringIO(fields["token"] + "\n"))
    code, out, _ = _run(capsys, "hash")
    assert (code, out.strip()) == (0, fields["sha256"])
