"""What `run`, `console`, `check-config` and `serve` put on a terminal when things go wrong: a short
message, no traceback (unless asked for with DEBUG), no library chatter, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY123456",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIexampleSECRETkey0000",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLEsessionTOKEN0000",
}
MILVUS_TOKEN = "root:Milvus-Token-0123456789"


def bot(*args: str, data_dir: Path, env: dict[str, str] | None = None, stdin: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(data_dir), **(env or {})}
    for name in ("MILVUS_CHATOPS_CONFIG", "MILVUS_CHATOPS_LOG_LEVEL", *AWS):
        if name not in (env or {}):
            full.pop(name, None)
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True,
                          env=full, cwd=ROOT, timeout=timeout)


@pytest.fixture
def down_config(tmp_path):
    """Milvus and S3 on a port where nothing listens: connections are refused at once."""
    path = tmp_path / "down.yaml"
    path.write_text("""
environments:
  down:
    milvus: {uri: "http://127.0.0.1:1", timeout_s: 2, token_env: MILVUS_TOKEN}
    backup: {bucket: b, endpoint_url: "http://127.0.0.1:1", region: us-east-1}
access:
  - {role: admin, users: [ULOCALOPERATOR]}
""")
    return str(path)


def test_an_integration_failure_is_one_line_and_its_traceback_is_for_debug(tmp_path, down_config):
    out = bot("run", "/milvus status down", "--config", down_config, data_dir=tmp_path)
    assert out.returncode == 2
    assert "Cannot connect to Milvus at http://127.0.0.1:1" in out.stdout
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and " WARNING milvus_chatops.errors ref=" in lines[0]

    debug = bot("run", "/milvus status down", "--config", down_config, data_dir=tmp_path,
                env={"MILVUS_CHATOPS_LOG_LEVEL": "DEBUG"})
    assert "  | Traceback (most recent call last):" in debug.stderr


def test_the_console_shows_the_reply_not_library_retries(tmp_path, down_config):
    out = bot("console", "--config", down_config, data_dir=tmp_path, stdin="/milvus status down\nexit\n")
    assert "Cannot connect to Milvus" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    assert all("milvus_chatops" in line for line in out.stderr.strip().splitlines())


def test_library_warnings_stay_off_the_screen_during_a_backup(tmp_path):
    from pymilvus import MilvusClient

    path = str(tmp_path / "milvus.db")
    client = MilvusClient(path)
    client.create_collection("docs", dimension=4)
    client.insert("docs", [{"id": i, "vector": [i / 10] * 4} for i in range(10)])
    client.close()
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)
    out = bot("run", "/milvus backup create local", data_dir=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    # What is left on stderr is the command's own progress; pymilvus' mvccTs warning is not.
    assert all(line.startswith("… ") for line in out.stderr.strip().splitlines()), out.stderr


def test_secrets_are_masked_in_debug_logs_and_tracebacks(tmp_path, down_config):
    # botocore logs each request's headers at DEBUG, session token included, and the failure's traceback.
    out = bot("run", "/milvus backup list down", "--config", down_config, data_dir=tmp_path,
              env={**AWS, "MILVUS_TOKEN": MILVUS_TOKEN, "MILVUS_CHATOPS_LOG_LEVEL": "DEBUG"})
    assert "  | Traceback" in out.stderr and "X-Amz-Security-Token" in out.stderr
    for value in [*AWS.values(), MILVUS_TOKEN]:
        assert value not in out.stdout + out.stderr


def test_a_milvus_token_typed_into_a_command_is_not_echoed_or_stored(tmp_path, down_config):
    env = {"MILVUS_TOKEN": MILVUS_TOKEN}
    out = bot("run", f"/milvus status {MILVUS_TOKEN}", "--json", "--config", down_config, data_dir=tmp_path, env=env)
    assert out.returncode == 1 and "There is no environment" in out.stdout
    audit = bot("run", "/milvus audit", "--json", "--config", down_config, data_dir=tmp_path, env=env)
    assert audit.returncode == 0
    for text in (out.stdout, out.stderr, audit.stdout):
        assert MILVUS_TOKEN not in text
    assert any(e["action"] == "status" for e in json.loads(audit.stdout)["data"]["entries"])


@pytest.mark.parametrize("command", [["check-config"], ["run", "/milvus whoami"], ["serve", "--port", "1"]])
def test_a_config_path_that_is_a_directory_or_not_utf8_gets_a_clear_error(tmp_path, command):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("environments:\n  caf\xe9: {milvus: {uri: x}}\n".encode("latin-1"))
    for path, message in ((tmp_path, "is a directory"), (latin1, "is not UTF-8 text")):
        out = bot(*command, "--config", str(path), data_dir=tmp_path / "data")
        assert out.returncode == 1
        assert message in out.stderr and "Traceback" not in out.stderr


@pytest.fixture
def root_logging():
    """setup_logging replaces the root handlers of this process; put pytest's back afterwards."""
    import logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)


def test_a_secret_inside_a_traceback_is_masked(tmp_path, monkeypatch, capfd, root_logging):
    """A capability whose backend echoes what it was given (as client libraries do in their errors)
    crashes on a line holding the Milvus token: the traceback in the log must not carry it."""
    from pydantic import BaseModel

    from bot.access import Identity
    from bot.args import positional
    from bot.dispatch import Dispatcher
    from bot.logs import setup_logging
    from bot.registry import Registry, command
    from bot.settings import Settings
    from tests.support.runtime import build_test_runtime

    class Args(BaseModel):
        value: str = positional(..., description="anything")

    @command("echo", summary="fails with what it was given", args=Args, role=None)
    def echo(ctx, args):
        raise RuntimeError(f"backend refused {args.value}")

    registry = Registry()
    registry.add(echo)
    monkeypatch.setenv("MILVUS_TOKEN", MILVUS_TOKEN)
    monkeypatch.setenv("MILVUS_CHATOPS_DATA_DIR", str(tmp_path))
    settings = Settings()
    settings.secret("MILVUS_TOKEN")  # what loading a config that names it does
    setup_logging(settings)
    runtime = build_test_runtime(settings=settings, registry=registry, messenger=None,  # type: ignore[arg-type]
                                 config={"environments": {"local": {"milvus": {"uri": str(tmp_path / "m.db")}}}})
    outcome = Dispatcher(runtime).run_command(f"echo {MILVUS_TOKEN}", Identity("U1"))
    assert outcome.exit_code == 2
    err = capfd.readouterr().err
    assert "  | RuntimeError: backend refused ***" in err
    assert MILVUS_TOKEN not in err
