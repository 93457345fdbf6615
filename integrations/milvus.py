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


# -- searching: load tests and drills -------------------------------------------------------------------


@dataclass(frozen=True)
class VectorField:
    """What a search of a collection needs to know: its vector field, primary key and index."""

    collection: str
    name: str
    dim: int
    primary_key: str
    metric: str  # L2 | IP | COSINE ...
    index_type: str  # FLAT, IVF_FLAT, HNSW, AUTOINDEX ... or "" when none is built
    index_params: dict[str, Any] = field(default_factory=dict)


_FLOAT_VECTOR = 101  # pymilvus DataType.FLOAT_VECTOR


class MilvusSearch:
    """Searches, samples and full scans of one collection's vectors; takes an open MilvusClient.

    Methods raise ``IntegrationError`` (``NotFound`` for a missing collection); ``search_raw`` is the
    exception: it is the load generator's hot path and lets pymilvus' exception through, so a
    failed request costs nothing more than the failure itself.
    """

    def __init__(self, client: Any, *, uri: str, timeout_s: float = 10.0) -> None:
        self.client = client
        self.uri = uri
        self.timeout_s = timeout_s
        self._admin = MilvusAdmin(client, uri=uri, timeout_s=timeout_s)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._admin._call(what, fn, *args, **kwargs)

    def collections(self) -> list[str]:
        return sorted(self._call("list collections", self.client.list_collections))

    def exists(self, collection: str) -> bool:
        return bool(self._call(f"look up {collection}", self.client.has_collection, collection))

    def vector_field(self, collection: str) -> VectorField:
        if not self.exists(collection):
            raise NotFound(f"There is no collection `{collection}` in Milvus at {self.uri}.")
        described = self._call(f"describe {collection}", self.client.describe_collection, collection)
        fields = described.get("fields", [])
        primary = next((f["name"] for f in fields if f.get("is_primary")), "id")
        vector = next((f for f in fields if int(f.get("type", 0)) == _FLOAT_VECTOR), None)
        if vector is None:
            raise NotFound(f"Collection `{collection}` has no FLOAT_VECTOR field to search.")
        dim = int((vector.get("params") or {}).get("dim", 0))
        index: dict[str, Any] = {}
        for index_name in self._call(f"list indexes of {collection}", self.client.list_indexes, collection):
            described_index = self._call(
                f"describe index {index_name}", self.client.describe_index, collection, index_name
            )
            if described_index.get("field_name") == vector["name"]:
                index = dict(described_index)
                break
        params = {k: v for k, v in index.items() if k not in _INDEX_STATE_KEYS}
        return VectorField(
            collection, vector["name"], dim, primary, str(index.get("metric_type") or "L2"),
            str(index.get("index_type") or ""), params,
        )

    def row_count(self, collection: str) -> int:
        rows = self._call(
            f"count rows of {collection}", self.client.query, collection, filter="", output_fields=["count(*)"],
            consistency_level="Strong", timeout=self.timeout_s,
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def loaded(self, collection: str) -> bool:
        state = self._call(f"read load state of {collection}", self.client.get_load_state, collection)
        return str(state.get("state", "")).endswith("Loaded")

    def load(self, collection: str) -> None:
        self._call(f"load {collection}", self.client.load_collection, collection, timeout=max(self.timeout_s, 120))

    def sample(self, vf: VectorField, limit: int) -> list[tuple[Any, list[float]]]:
        """Up to ``limit`` (primary key, vector) pairs read from the collection."""
        rows = self._call(
            f"read vectors of {vf.collection}", self.client.query, vf.collection, filter="",
            output_fields=[vf.primary_key, vf.name], limit=limit, timeout=self.timeout_s,
        )
        return [(r[vf.primary_key], list(r[vf.name])) for r in rows]

    def scan(self, vf: VectorField, *, filter: str = "", batch_size: int = 5000) -> Any:
        """Every (primary keys, vectors) batch of the collection (rows matching ``filter``)."""
        iterator = self._call(
            f"open a query iterator on {vf.collection}", self.client.query_iterator, vf.collection,
            batch_size=batch_size, filter=filter, output_fields=[vf.primary_key, vf.name], timeout=self.timeout_s,
        )
        try:
            while True:
                batch = self._call(f"read vectors of {vf.collection}", iterator.next)
                if not batch:
                    return
                yield [r[vf.primary_key] for r in batch], [r[vf.name] for r in batch]
        finally:
            iterator.close()

    def search_raw(self, collection: str, vectors: list[list[float]], *, anns_field: str, limit: int,
                   search_params: dict[str, Any], filter: str = "") -> Any:
        return self.client.search(
            collection, data=vectors, anns_field=anns_field, limit=limit, filter=filter,
            search_params=search_params, output_fields=[], timeout=self.timeout_s,
        )

    def search_ids(self, collection: str, vectors: list[list[float]], *, anns_field: str, limit: int,
                   search_params: dict[str, Any], filter: str = "") -> list[list[Any]]:
        hits = self._call(
            f"search {collection}", self.search_raw, collection, vectors, anns_field=anns_field, limit=limit,
            search_params=search_params, filter=filter,
        )
        return [[h["id"] for h in per_query] for per_query in hits]

    def drop(self, collection: str) -> None:
        self._call(f"drop {collection}", self.client.drop_collection, collection)


# Keys describe_index reports about the build state rather than how the index was built.
_INDEX_STATE_KEYS = {"field_name", "index_name", "total_rows", "indexed_rows", "pending_index_rows", "state",
                     "index_state", "fail_reason"}
