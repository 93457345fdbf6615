"""Milvus through pymilvus' MilvusClient: a server (http://host:19530) or Milvus Lite (a .db path)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from bot.errors import IntegrationError, NotFound

log = logging.getLogger("milvus_chatops.milvus")


@dataclass(frozen=True)
class CollectionInfo:
    database: str
    name: str
    rows: int
    loaded: bool
    index_types: list[str] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "name": self.name,
            "rows": self.rows,
            "loaded": self.loaded,
            "index_types": self.index_types,
        }


def is_lite(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def open_client(uri: str, token: str | None, *, db_name: str = "default", timeout_s: float = 10.0) -> Any:
    """Open a MilvusClient (this is the I/O: Lite opens its file, a server is dialled)."""
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        if is_lite(uri):
            from pathlib import Path

            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            return MilvusClient(uri=uri)
        return MilvusClient(uri=uri, token=token or "", db_name=db_name, timeout=timeout_s)
    except MilvusException as exc:
        raise IntegrationError(f"Cannot connect to Milvus at {uri}: {exc.message}", system="milvus") from exc
    except Exception as exc:  # pymilvus raises plain exceptions for unreachable servers
        raise IntegrationError(f"Cannot connect to Milvus at {uri}: {exc}", system="milvus") from exc


class MilvusAdmin:
    """Read-mostly administrative view of one Milvus; takes an open MilvusClient."""

    def __init__(self, client: Any, *, uri: str, timeout_s: float = 10.0) -> None:
        self.client = client
        self.uri = uri
        self.timeout_s = timeout_s

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from pymilvus.exceptions import MilvusException

        try:
            return fn(*args, **kwargs)
        except MilvusException as exc:
            if "not found" in str(exc.message).lower() or "can't find" in str(exc.message).lower():
                raise NotFound(f"Milvus at {self.uri} says: {exc.message}") from exc
            raise IntegrationError(f"Milvus at {self.uri} failed to {what}: {exc.message}", system="milvus") from exc
        except Exception as exc:
            raise IntegrationError(f"Milvus at {self.uri} failed to {what}: {exc}", system="milvus") from exc

    def server_version(self) -> str:
        return str(self._call("report its version", self.client.get_server_version))

    def databases(self) -> list[str]:
        if is_lite(self.uri):
            return ["default"]
        return list(self._call("list databases", self.client.list_databases, timeout=self.timeout_s))

    def _use(self, database: str) -> None:
        if not is_lite(self.uri):
            self._call(f"switch to database {database}", self.client.use_database, database)

    def collections(self, database: str = "default") -> list[str]:
        self._use(database)
        return sorted(self._call("list collections", self.client.list_collections))

    def collection(self, name: str, database: str = "default") -> CollectionInfo:
        self._use(database)
        stats = self._call(f"read stats of {name}", self.client.get_collection_stats, name)
        state = self._call(f"read load state of {name}", self.client.get_load_state, name)
        index_types = []
        for index_name in self._call(f"list indexes of {name}", self.client.list_indexes, name):
            described = self._call(f"describe index {index_name}", self.client.describe_index, name, index_name)
            index_types.append(str(described.get("index_type", "?")))
        loaded = str(state.get("state", "")).endswith("Loaded")
        return CollectionInfo(database, name, int(stats.get("row_count", 0)), loaded, sorted(set(index_types)))

    def inventory(self) -> list[CollectionInfo]:
        result = []
        for database in self.databases():
            for name in self.collections(database):
                result.append(self.collection(name, database))
        return result
