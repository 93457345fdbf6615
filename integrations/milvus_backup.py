"""The REST API of a milvus-backup server (zilliztech/milvus-backup, ``milvus-backup server``).

It answers HTTP 200 even when a request failed, so every answer's ``code`` is checked (0 = success);
create and restore are started asynchronously and their ``state_code`` is polled until it settles.
"""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.errors import IntegrationError, NotFound

log = logging.getLogger("milvus_chatops.milvus_backup")

SUCCESS = 0
NOT_FOUND = 404
# BackupTaskStateCode / RestoreTaskStateCode
INITIAL, EXECUTING, DONE, FAILED, TIMEOUT = 0, 1, 2, 3, 4
STATE_NAMES = {INITIAL: "initial", EXECUTING: "running", DONE: "complete", FAILED: "failed", TIMEOUT: "timeout"}


@dataclass(frozen=True)
class RemoteBackup:
    id: str
    name: str
    state_code: int
    progress: int
    size: int
    start_time_ms: int
    end_time_ms: int
    collections: list[str]
    rows: int
    error: str = ""
    milvus_version: str = ""

    @property
    def state(self) -> str:
        return STATE_NAMES.get(self.state_code, f"state {self.state_code}")


@dataclass(frozen=True)
class RemoteRestore:
    id: str
    state_code: int
    progress: int
    error: str = ""
    collections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> str:
        return STATE_NAMES.get(self.state_code, f"state {self.state_code}")


def _backup_from(data: dict[str, Any]) -> RemoteBackup:
    collections, rows = [], 0
    for cb in data.get("collection_backups") or []:
        db = cb.get("db_name") or "default"
        name = cb.get("collection_name", "?")
        collections.append(name if db == "default" else f"{db}.{name}")
        for partition in cb.get("partition_backups") or []:
            for segment in partition.get("segment_backups") or []:
                rows += int(segment.get("num_of_rows", 0) or 0)
    return RemoteBackup(
        id=str(data.get("id", "")),
        name=str(data.get("name", "")),
        state_code=int(data.get("state_code", 0) or 0),
        progress=int(data.get("progress", 0) or 0),
        size=int(data.get("size", 0) or 0),
        start_time_ms=int(data.get("start_time", 0) or 0),
        end_time_ms=int(data.get("end_time", 0) or 0),
        collections=collections,
        rows=rows,
        error=str(data.get("errorMessage", "") or ""),
        milvus_version=str(data.get("milvus_version", "") or ""),
    )


class MilvusBackupClient:
    """Takes a ``requests.Session`` (or anything with ``request``); no I/O until a method is called."""

    def __init__(self, session: Any, base_url: str, *, timeout_s: float = 30.0) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None, what: str = "") -> dict[str, Any]:
        import requests

        url = f"{self.base_url}/api/v1/{path}"
        try:
            response = self.session.request(method, url, params=params, json=body, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise IntegrationError(
                f"milvus-backup at {self.base_url} is unreachable while trying to {what}: {type(exc).__name__}",
                system="milvus-backup",
            ) from exc
        if response.status_code >= 400:
            raise IntegrationError(
                f"milvus-backup at {self.base_url} answered HTTP {response.status_code} to {what}",
                system="milvus-backup",
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise IntegrationError(
                f"milvus-backup at {self.base_url} sent a non-JSON answer to {what}", system="milvus-backup"
            ) from exc
        code = int(payload.get("code", 0) or 0)
        if code == NOT_FOUND:
            raise NotFound(f"milvus-backup says: {payload.get('msg') or 'not found'}")
        if code != SUCCESS:
            raise IntegrationError(
                f"milvus-backup refused to {what}: {payload.get('msg') or f'code {code}'}", system="milvus-backup"
            )
        return dict(payload)

    def hello(self) -> str:
        return str(self._call("GET", "hello", what="say hello").get("msg", ""))

    def create(self, name: str, collections: list[str] | None = None) -> RemoteBackup:
        body: dict[str, Any] = {"async": True, "backup_name": name}
        if collections:
            body["collection_names"] = collections
        data = self._call("POST", "create", body=body, what=f"create backup {name}").get("data") or {}
        return _backup_from(data) if data else self.get(name)

    def get(self, name: str) -> RemoteBackup:
        payload = self._call("GET", "get_backup", params={"backup_name": name}, what=f"read backup {name}")
        data = payload.get("data") or {}
        if not data:
            raise NotFound(f"milvus-backup has no backup `{name}`.")
        return _backup_from(data)

    def list(self) -> list[RemoteBackup]:
        payload = self._call("GET", "list", what="list backups")
        return [_backup_from(d) for d in payload.get("data") or []]

    def delete(self, name: str) -> None:
        self._call("DELETE", "delete", params={"backup_name": name}, what=f"delete backup {name}")

    def restore(self, name: str, *, collections: builtins.list[str] | None = None, suffix: str = "",
                drop_existing: bool = False) -> RemoteRestore:
        body: dict[str, Any] = {
            "async": True,
            "backup_name": name,
            "collection_suffix": suffix,
            "dropExistCollection": drop_existing,
            "restoreIndex": True,
        }
        if collections:
            body["collection_names"] = collections
        data = self._call("POST", "restore", body=body, what=f"restore backup {name}").get("data") or {}
        return self._restore_from(data)

    def get_restore(self, restore_id: str) -> RemoteRestore:
        data = self._call("GET", "get_restore", params={"id": restore_id}, what=f"read restore {restore_id}")
        return self._restore_from(data.get("data") or {})

    @staticmethod
    def _restore_from(data: dict[str, Any]) -> RemoteRestore:
        return RemoteRestore(
            id=str(data.get("id", "")),
            state_code=int(data.get("state_code", 0) or 0),
            progress=int(data.get("progress", 0) or 0),
            error=str(data.get("errorMessage", "") or ""),
            collections=list(data.get("collection_restore_tasks") or []),
        )

    def wait_backup(self, name: str, *, timeout_s: float, poll_s: float = 2.0,
                    on_progress: Callable[[RemoteBackup], None] | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> RemoteBackup:
        """Poll until the backup settles; a failed or timed-out one raises with the server's reason."""
        deadline = time.monotonic() + timeout_s
        while True:
            backup = self.get(name)
            if on_progress:
                on_progress(backup)
            if backup.state_code == DONE:
                return backup
            if backup.state_code in (FAILED, TIMEOUT):
                raise IntegrationError(
                    f"milvus-backup could not create backup {name}: {backup.error or backup.state}",
                    system="milvus-backup",
                )
            if time.monotonic() >= deadline:
                raise IntegrationError(
                    f"milvus-backup backup {name} still {backup.state} after {timeout_s:.0f} s", system="milvus-backup"
                )
            sleep(poll_s)

    def wait_restore(self, restore_id: str, *, timeout_s: float, poll_s: float = 2.0,
                     on_progress: Callable[[RemoteRestore], None] | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> RemoteRestore:
        deadline = time.monotonic() + timeout_s
        while True:
            task = self.get_restore(restore_id)
            if on_progress:
                on_progress(task)
            if task.state_code == DONE:
                return task
            if task.state_code in (FAILED, TIMEOUT):
                raise IntegrationError(
                    f"milvus-backup restore {restore_id} failed: {task.error or task.state}", system="milvus-backup"
                )
            if time.monotonic() >= deadline:
                raise IntegrationError(
                    f"milvus-backup restore {restore_id} still {task.state} after {timeout_s:.0f} s",
                    system="milvus-backup",
                )
            sleep(poll_s)
