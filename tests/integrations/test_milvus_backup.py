"""The milvus-backup REST client and engine against FakeMilvusBackup, an HTTP server on loopback that
answers like milvus-backup's gin server: HTTP 200 with a ``code`` for success and failure alike,
async jobs whose ``state_code`` moves on as they are polled."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.errors import Conflict, IntegrationError, NotFound
from commands.backup.engine import create_backup, list_backups
from commands.backup.restore import restore_backup, verify_backup
from commands.backup.retention import delete_backup
from integrations.milvus_backup import DONE, FAILED, MilvusBackupClient
from tests.commands.backup.helpers import make_runtime


class FakeMilvusBackup:
    """FAKE milvus-backup server: keeps backups in memory; a job finishes after ``polls`` reads."""

    def __init__(self, polls: int = 2) -> None:
        self.polls = polls
        self.backups: dict[str, dict[str, Any]] = {}
        self.restores: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.refuse_next: str | None = None  # answer the next request with code 3 and this message
        self.fail_job: str | None = None  # let the next async job end in state 3 with this message
        self.on_restore: Callable[[dict[str, Any]], None] | None = None
        self._reads: dict[str, int] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeMilvusBackup:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _advance(self, key: str, job: dict[str, Any]) -> None:
        self._reads[key] = self._reads.get(key, 0) + 1
        if job["state_code"] in (0, 1):
            if self._reads[key] >= self.polls:
                if job.pop("_fail", None):
                    job["state_code"], job["errorMessage"] = FAILED, job.pop("_reason")
                else:
                    job["state_code"], job["progress"] = DONE, 100
                    if key.startswith("restore:") and self.on_restore:
                        self.on_restore(job)
            else:
                job["state_code"], job["progress"] = 1, 50

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        self.requests.append((method, path, body if body is not None else query))
        if self.refuse_next:
            msg, self.refuse_next = self.refuse_next, None
            return {"code": 3, "msg": msg}
        if path == "/api/v1/create":
            name = body["backup_name"]
            job: dict[str, Any] = {
                "id": f"id-{name}", "name": name, "state_code": 0, "progress": 0, "start_time": 1767225600000,
                "end_time": 1767225660000, "size": 4096,
                "collection_backups": [
                    {"collection_name": c, "db_name": "default",
                     "partition_backups": [{"segment_backups": [{"num_of_rows": 10}]}]}
                    for c in body.get("collection_names") or ["docs"]
                ],
            }
            if self.fail_job:
                job["_fail"], job["_reason"], self.fail_job = True, self.fail_job, None
            self.backups[name] = job
            return {"code": 0, "msg": "success", "data": {k: v for k, v in job.items() if not k.startswith("_")}}
        if path == "/api/v1/get_backup":
            job = self.backups.get(query.get("backup_name", ""))
            if job is None:
                return {"code": 404, "msg": "backup does not exist"}
            self._advance(f"backup:{job['name']}", job)
            return {"code": 0, "msg": "success", "data": {k: v for k, v in job.items() if not k.startswith("_")}}
        if path == "/api/v1/list":
            return {"code": 0, "msg": "success", "data": list(self.backups.values())}
        if path == "/api/v1/delete":
            if self.backups.pop(query.get("backup_name", ""), None) is None:
                return {"code": 404, "msg": "backup does not exist"}
            return {"code": 0, "msg": "success"}
        if path == "/api/v1/restore":
            task_id = f"restore-{len(self.restores) + 1}"
            task: dict[str, Any] = {"id": task_id, "state_code": 0, "progress": 0, "request": body}
            if self.fail_job:
                task["_fail"], task["_reason"], self.fail_job = True, self.fail_job, None
            self.restores[task_id] = task
            return {"code": 0, "msg": "success", "data": {"id": task_id, "state_code": 0}}
        if path == "/api/v1/get_restore":
            task = self.restores[query["id"]]
            self._advance(f"restore:{task['id']}", task)
            return {"code": 0, "msg": "success", "data": {k: v for k, v in task.items() if k[0] != "_"}}
        return {"code": 1, "msg": f"no route {path}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parsed = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(parsed.query))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                payload = json.dumps(fake.answer(self.command, parsed.path, query, body)).encode()
                self.send_response(200)  # always, as milvus-backup does
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                return None

        return Handler


@pytest.fixture
def fake() -> Iterator[FakeMilvusBackup]:
    with FakeMilvusBackup() as server:
        yield server


def _client(fake: FakeMilvusBackup) -> MilvusBackupClient:
    return MilvusBackupClient(requests.Session(), fake.url, timeout_s=5)


def test_create_polls_until_done_and_reports_progress(fake: FakeMilvusBackup) -> None:
    client = _client(fake)
    seen: list[str] = []
    client.create("nightly_1", ["docs", "reviews"])
    backup = client.wait_backup("nightly_1", timeout_s=10, poll_s=0.01, on_progress=lambda b: seen.append(b.state))

    assert backup.state == "complete" and backup.collections == ["docs", "reviews"] and backup.rows == 20
    assert seen == ["running", "complete"]
    assert fake.requests[0] == ("POST", "/api/v1/create",
                                {"async": True, "backup_name": "nightly_1", "collection_names": ["docs", "reviews"]})
    assert [b.name for b in client.list()] == ["nightly_1"]
    client.delete("nightly_1")
    with pytest.raises(NotFound):
        client.get("nightly_1")


def test_http_200_with_a_failure_code_is_an_error(fake: FakeMilvusBackup) -> None:
    fake.refuse_next = "collection not found: nope"
    with pytest.raises(IntegrationError) as failed:
        _client(fake).create("x", ["nope"])
    assert failed.value.message == "milvus-backup refused to create backup x: collection not found: nope"


def test_a_job_that_fails_while_polled_raises_its_reason(fake: FakeMilvusBackup) -> None:
    client = _client(fake)
    fake.fail_job = "segment 42 has no insert logs"
    client.create("bad", None)
    with pytest.raises(IntegrationError, match="segment 42 has no insert logs"):
        client.wait_backup("bad", timeout_s=10, poll_s=0.01)

    fake.fail_job = "no binlog to import"
    fake.backups["good"] = {"name": "good", "state_code": DONE}
    task = client.restore("good", suffix="_r")
    with pytest.raises(IntegrationError, match="no binlog to import"):
        client.wait_restore(task.id, timeout_s=10, poll_s=0.01)


def test_unreachable_server() -> None:
    client = MilvusBackupClient(requests.Session(), "http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(IntegrationError, match="unreachable"):
        client.list()


def test_engine_milvus_backup_create_list_restore_delete(fake: FakeMilvusBackup, tmp_path: Path,
                                                        milvus_lite_uri: str) -> None:
    from pymilvus import MilvusClient

    from tests.commands.backup.helpers import create_rich_collection

    config = {"environments": {"big": {
        "milvus": {"uri": milvus_lite_uri},
        "backup": {"engine": "milvus-backup", "milvus_backup_url": fake.url, "collections": ["docs"]},
    }}}
    runtime, _ = make_runtime(tmp_path, config)
    env = runtime.config.environments["big"]
    milvus = MilvusClient(uri=milvus_lite_uri)
    create_rich_collection(milvus, "docs", rows=10, dim=4)
    # What milvus-backup itself would do on restore: create the collection under its new name.
    fake.on_restore = lambda task: create_rich_collection(
        milvus, "docs" + task["request"]["collection_suffix"], rows=10, dim=4
    )

    record = create_backup(runtime, env, user="U1")
    assert record.engine == "milvus-backup" and record.state == "complete" and record.collections == ["docs"]
    listing = list_backups(runtime, env)
    assert [r.id for r in listing.usable] == [record.id]
    assert listing.usable[0].created_by == "U1"

    with pytest.raises(Conflict, match="already exist"):
        restore_backup(runtime, env, record.id, env)
    report = restore_backup(runtime, env, record.id, env, suffix="_r")
    assert [(c.target, c.rows_restored) for c in report.collections] == [("docs_r", 10)]
    restore_request = next(b for m, p, b in fake.requests if p == "/api/v1/restore")
    assert restore_request["collection_suffix"] == "_r" and restore_request["async"] is True

    assert verify_backup(runtime, env, record.id).ok
    delete_backup(runtime, env, record.id)
    assert list_backups(runtime, env).usable == []
