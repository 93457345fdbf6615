"""Backups through ``milvus-chatops run`` as an operator sees them on the terminal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.config import LOCAL_OPERATOR
from tests.commands.backup.helpers import aws_env  # noqa: F401  (fixture)

ROOT = Path(__file__).parents[3]
pytestmark = pytest.mark.usefixtures("aws_env")

MAKE_COLLECTION = """
import sys
from pymilvus import MilvusClient
from tests.commands.backup.helpers import create_rich_collection
client = MilvusClient(uri=sys.argv[1])
create_rich_collection(client, "docs", rows=300)
client.close()
"""


def run(command: str, config: Path, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "run", command, "--config", str(config)],
        capture_output=True, text=True, cwd=ROOT, timeout=240,
        env={**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(data_dir), **env},
    )


def test_run_keeps_pymilvus_noise_off_the_terminal(tmp_path: Path) -> None:
    """Milvus Lite in process: pymilvus warns about mvccTs on every backup and the embedded gRPC server
    logs a traceback for AllocTimestamp on every restore. Neither belongs on the operator's screen."""
    lite = tmp_path / "milvus.db"
    subprocess.run([sys.executable, "-c", MAKE_COLLECTION, str(lite)], check=True, cwd=ROOT, timeout=240,
                   capture_output=True)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "environments": {"local": {"milvus": {"uri": str(lite)}, "backup": {"local_dir": str(tmp_path / "b")}}},
        "access": [{"role": "admin", "users": [LOCAL_OPERATOR]}],
    }))

    created = run("/milvus backup create local", config, tmp_path)
    assert created.returncode == 0, created.stderr
    backup_id = next(w for w in created.stdout.split() if w.startswith("local-"))
    restored = run(f"/milvus restore {backup_id} --to local --suffix _r", config, tmp_path)
    assert restored.returncode == 0, restored.stderr
    assert "row counts match the manifest" in restored.stdout

    for out in (created, restored):
        for noise in ("mvccTs", "Traceback", "Method not implemented", "WARNING", "ERROR"):
            assert noise not in out.stderr, out.stderr
    # Progress still reaches the terminal, from the first step on.
    assert "… reading the schema, indexes and row count of docs" in created.stderr
    assert "… backed up rows 300 of 300" in created.stderr

    # Kept in our log at DEBUG, for whoever asks for it.
    debug = run("/milvus backup create local", config, tmp_path, MILVUS_CHATOPS_LOG_LEVEL="DEBUG")
    noise = [line for line in debug.stderr.splitlines() if "mvccTs" in line]
    assert noise and all(" DEBUG pymilvus." in line for line in noise), debug.stderr[-2000:]


class HungServer:
    """Accepts TCP connections and never answers: an S3 whose process is stuck."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def hung_s3() -> Iterator[HungServer]:
    server = HungServer()
    yield server
    server.close()


def test_backup_list_answers_in_bounded_time_when_s3_hangs(tmp_path: Path, hung_s3: HungServer) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "environments": {"dev": {"milvus": {"uri": "http://127.0.0.1:9"},
                                 "backup": {"bucket": "b", "endpoint_url": hung_s3.url, "region": "us-east-1"}}},
        "access": [{"role": "admin", "users": [LOCAL_OPERATOR]}],
    }))
    started = time.monotonic()
    listed = run("/milvus backup list dev", config, tmp_path)
    took = time.monotonic() - started

    assert listed.returncode == 2, listed.stdout + listed.stderr
    assert f"S3 at {hung_s3.url}" in listed.stdout and "did not answer within 10 s (2 attempts)" in listed.stdout
    assert "Traceback" not in listed.stdout
    # A user waits for an answer about half a minute, not the 4 minutes three 60 s attempts took.
    assert took < 60, f"backup list took {took:.0f} s against a hung S3"

