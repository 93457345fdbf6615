"""Milvus through pymilvus' MilvusClient: a server (http://host:19530) or Milvus Lite (a .db path).

``MilvusAdmin`` is the read-mostly view (status, inventory); ``MilvusData`` the data plane backups and
restores use (describe, iterate, insert, create, rename, drop). Both take an open client and go through
``call``, the one place pymilvus exceptions become our errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.errors import IntegrationError, NotFound

T = TypeVar("T")
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


def tls_options(*, ca_file: str | None = None, server_name: str | None = None, client_cert_file: str | None = None,
                client_key_file: str | None = None) -> dict[str, str]:
    """pymilvus' keyword arguments for TLS: one-way with a private CA, or mutual with a client pair."""
    options: dict[str, str] = {}
    if client_cert_file and client_key_file:
        options.update(client_pem_path=client_cert_file, client_key_path=client_key_file)
        if ca_file:
            options["ca_pem_path"] = ca_file
    elif ca_file:
        options["server_pem_path"] = ca_file
    if server_name:
        options["server_name"] = server_name
    return options


def is_lite(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def open_client(uri: str, token: str | None, *, db_name: str = "default", timeout_s: float = 10.0,
                tls: Mapping[str, str] | None = None) -> Any:
    """Open a MilvusClient (this is the I/O: Lite opens its file, a server is dialled).

    ``tls``: pymilvus' TLS options (``tls_options`` builds them): the CA of a private certificate,
    and for mutual TLS the client certificate and key.
    """
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        if is_lite(uri):
            from pathlib import Path

            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            return MilvusClient(uri=uri)
        return MilvusClient(uri=uri, token=token or "", db_name=db_name, timeout=timeout_s, **dict(tls or {}))
    except MilvusException as exc:
        raise IntegrationError(f"Cannot connect to Milvus at {uri}: {exc.message}", system="milvus") from exc
    except Exception as exc:  # pymilvus raises plain exceptions for unreachable servers
        raise IntegrationError(f"Cannot connect to Milvus at {uri}: {exc}", system="milvus") from exc


def call(where: str, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one pymilvus call; its failures become ours (NotFound when Milvus says so)."""
    from pymilvus.exceptions import MilvusException

    try:
        return fn(*args, **kwargs)
    except MilvusException as exc:
        text = str(exc.message)
        if any(phrase in text.lower() for phrase in ("not found", "can't find", "does not exist")):
            raise NotFound(f"Milvus at {where} says: {text}") from exc
        raise IntegrationError(f"Milvus at {where} failed to {what}: {text}", system="milvus") from exc
    except Exception as exc:  # grpc and connection errors surface as plain exceptions
        raise IntegrationError(f"Milvus at {where} failed to {what}: {exc}", system="milvus") from exc


class MilvusAdmin:
    """Read-mostly administrative view of one Milvus; takes an open MilvusClient."""

    def __init__(self, client: Any, *, uri: str, timeout_s: float = 10.0) -> None:
        self.client = client
        self.uri = uri
        self.timeout_s = timeout_s

    def server_version(self) -> str:
        return str(call(self.uri, "report its version", self.client.get_server_version))

    def databases(self) -> list[str]:
        if is_lite(self.uri):
            return ["default"]
        return list(call(self.uri, "list databases", self.client.list_databases, timeout=self.timeout_s))

    def _use(self, database: str) -> None:
        if not is_lite(self.uri):
            call(self.uri, f"switch to database {database}", self.client.use_database, database)

    def collections(self, database: str = "default") -> list[str]:
        self._use(database)
        return sorted(call(self.uri, "list collections", self.client.list_collections))

    def collection(self, name: str, database: str = "default") -> CollectionInfo:
        self._use(database)
        stats = call(self.uri, f"read stats of {name}", self.client.get_collection_stats, name)
        state = call(self.uri, f"read load state of {name}", self.client.get_load_state, name)
        index_types = []
        for index_name in call(self.uri, f"list indexes of {name}", self.client.list_indexes, name):
            described = call(self.uri, f"describe index {index_name}", self.client.describe_index, name, index_name)
            index_types.append(str(described.get("index_type", "?")))
        loaded = str(state.get("state", "")).endswith("Loaded")
        return CollectionInfo(database, name, int(stats.get("row_count", 0)), loaded, sorted(set(index_types)))

    def inventory(self) -> list[CollectionInfo]:
        result = []
        for database in self.databases():
            for name in self.collections(database):
                result.append(self.collection(name, database))
        return result


# Keys the server reports about an index's build state rather than how to build it.
_INDEX_STATE_KEYS = {"field_name", "index_name", "index_type", "metric_type", "total_rows", "indexed_rows",
                     "pending_index_rows", "state", "index_state", "fail_reason"}


def _plain(value: Any) -> Any:
    """describe_collection output (enums, protobuf default values) as plain JSON values."""
    from enum import Enum

    if isinstance(value, Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "ListFields"):  # a protobuf ValueField (default_value)
        fields = value.ListFields()
        return _plain(fields[0][1]) if fields else None
    return value


def build_schema(spec: dict[str, Any]) -> Any:
    """A pymilvus CollectionSchema from the plain description ``MilvusData.schema`` returns."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    collection_schema = MilvusClient.create_schema(
        auto_id=spec["auto_id"], enable_dynamic_field=spec["enable_dynamic_field"], description=spec["description"]
    )
    for f in spec["fields"]:
        kwargs: dict[str, Any] = {}
        for flag in ("is_primary", "is_partition_key", "is_clustering_key", "nullable", "is_function_output"):
            if f.get(flag):
                kwargs[flag] = True
        if f.get("is_primary") and spec["auto_id"]:
            kwargs["auto_id"] = True
        if "default_value" in f and f["default_value"] is not None:
            kwargs["default_value"] = f["default_value"]
        if f.get("element_type"):
            kwargs["element_type"] = DataType[f["element_type"]]
        for key, value in (f.get("params") or {}).items():
            if key in ("dim", "max_length", "max_capacity"):
                kwargs[key] = int(value)
            elif isinstance(value, str) and value in ("true", "false"):
                kwargs[key] = value == "true"
            else:
                kwargs[key] = value
        kwargs.pop("is_function_output", None)
        collection_schema.add_field(f["name"], DataType[f["type"]], description=f.get("description", ""), **kwargs)
    for fn in spec.get("functions", []):
        collection_schema.add_function(
            Function(
                name=fn["name"],
                function_type=FunctionType[fn["type"]],
                input_field_names=fn["input_field_names"],
                output_field_names=fn["output_field_names"],
                description=fn.get("description", ""),
                params=fn.get("params") or None,
            )
        )
    return collection_schema


class MilvusData:
    """The data plane of one Milvus, for backups and restores; takes an open MilvusClient.

    Metadata calls are bounded by ``timeout_s``; one batch of rows (an insert, an iterator page, a
    query or count) by ``batch_timeout_s``; work on a whole collection (load, flush, index build,
    create, drop), which grows with its size, by ``build_timeout_s``.
    """

    def __init__(self, client: Any, *, uri: str, timeout_s: float = 10.0, batch_timeout_s: float = 300.0,
                 build_timeout_s: float = 3600.0) -> None:
        self.client = client
        self.uri = uri
        self.timeout_s = timeout_s
        self.batch_timeout_s = max(batch_timeout_s, timeout_s)
        self.build_timeout_s = max(build_timeout_s, self.batch_timeout_s)

    # -- reading what is there ---------------------------------------------------------------------

    def server_version(self) -> str:
        return str(call(self.uri, "report its version", self.client.get_server_version, timeout=self.timeout_s))

    def collections(self) -> list[str]:
        return sorted(call(self.uri, "list collections", self.client.list_collections, timeout=self.timeout_s))

    def partitions(self, name: str) -> list[str]:
        return list(call(self.uri, f"list partitions of {name}", self.client.list_partitions, name,
                         timeout=self.timeout_s))

    def schema(self, name: str) -> dict[str, Any]:
        """A collection's schema as plain JSON (``build_schema`` turns it back into a pymilvus one)."""
        described = call(self.uri, f"describe {name}", self.client.describe_collection, name, timeout=self.timeout_s)
        fields = [{k: _plain(v) for k, v in f.items() if k != "field_id"} for f in described["fields"]]
        return {
            "name": name,
            "description": described.get("description", ""),
            "auto_id": bool(described.get("auto_id", False)),
            "enable_dynamic_field": bool(described.get("enable_dynamic_field", False)),
            "num_shards": int(described.get("num_shards", 1) or 1),
            "consistency_level": described.get("consistency_level_name") or "Bounded",
            "properties": _plain(described.get("properties", {}) or {}),
            "fields": fields,
            "functions": [
                {
                    "name": fn["name"],
                    "type": _plain(fn["type"]),
                    "description": fn.get("description", ""),
                    "input_field_names": list(fn.get("input_field_names", [])),
                    "output_field_names": list(fn.get("output_field_names", [])),
                    "params": _plain(fn.get("params", {}) or {}),
                }
                for fn in described.get("functions", []) or []
            ],
        }

    def indexes(self, name: str) -> list[dict[str, Any]]:
        """How each index of a collection is built: name, field, type, metric and build parameters."""
        result = []
        for index_name in call(self.uri, f"list indexes of {name}", self.client.list_indexes, name,
                               timeout=self.timeout_s):
            described = call(self.uri, f"describe index {index_name} of {name}", self.client.describe_index, name,
                             index_name, timeout=self.timeout_s)
            result.append(
                {
                    "index_name": index_name,
                    "field_name": described.get("field_name"),
                    "index_type": described.get("index_type"),
                    "metric_type": described.get("metric_type") if described.get("metric_type") != "NONE" else None,
                    "params": {k: v for k, v in described.items() if k not in _INDEX_STATE_KEYS and k != "params"}
                    | dict(described.get("params") or {}),
                }
            )
        return result

    def is_loaded(self, name: str) -> bool:
        state = call(self.uri, f"read load state of {name}", self.client.get_load_state, name, timeout=self.timeout_s)
        return str(state.get("state", "")).endswith("Loaded")

    def count(self, name: str, partition: str | None = None) -> int:
        kwargs: dict[str, Any] = {"partition_names": [partition]} if partition else {}
        result = call(self.uri, f"count rows of {name}", self.client.query, name, filter="",
                      output_fields=["count(*)"], timeout=self.batch_timeout_s, **kwargs)
        return int(result[0]["count(*)"]) if result else 0

    def query(self, name: str, expr: str, output_fields: list[str]) -> list[dict[str, Any]]:
        return list(call(self.uri, f"read rows of {name}", self.client.query, name, filter=expr,
                         output_fields=output_fields, timeout=self.batch_timeout_s))

    def iterate(self, name: str, *, batch_size: int, output_fields: list[str],
                partition: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every row of a collection (or one partition), a batch at a time."""
        kwargs: dict[str, Any] = {"partition_names": [partition]} if partition else {}
        iterator = call(self.uri, f"read {name}", self.client.query_iterator, name, batch_size=batch_size,
                        filter="", output_fields=output_fields, timeout=self.batch_timeout_s, **kwargs)
        try:
            while True:
                rows = call(self.uri, f"read {name}", iterator.next)
                if not rows:
                    return
                yield rows
        finally:
            iterator.close()

    # -- changing it ----------------------------------------------------------------------------------

    def load(self, name: str) -> None:
        call(self.uri, f"load {name}", self.client.load_collection, name, timeout=self.build_timeout_s)

    def flush(self, name: str) -> None:
        call(self.uri, f"flush {name}", self.client.flush, name, timeout=self.build_timeout_s)

    def create_collection(self, name: str, spec: dict[str, Any], *, num_partitions: int | None = None) -> None:
        """Create ``name`` with the schema ``spec`` (as ``schema`` returns it), shards and consistency kept."""
        kwargs: dict[str, Any] = {"consistency_level": spec.get("consistency_level") or "Bounded"}
        if spec.get("num_shards"):
            kwargs["num_shards"] = spec["num_shards"]
        if num_partitions:
            kwargs["num_partitions"] = num_partitions
        call(self.uri, f"create {name}", self.client.create_collection, name, schema=build_schema(spec),
             timeout=self.build_timeout_s, **kwargs)

    def create_partition(self, name: str, partition: str) -> None:
        call(self.uri, f"create partition {partition} of {name}", self.client.create_partition, name, partition,
             timeout=self.timeout_s)

    def create_indexes(self, name: str, indexes: list[dict[str, Any]]) -> None:
        """Build indexes described as ``indexes`` returns them."""
        if not indexes:
            return
        params = self.client.prepare_index_params()
        for index in indexes:
            extra = {k: v for k, v in (index.get("params") or {}).items() if v is not None}
            kwargs: dict[str, Any] = {"index_type": index.get("index_type") or "", "index_name": index["index_name"]}
            if index.get("metric_type"):
                kwargs["metric_type"] = index["metric_type"]
            if extra:
                kwargs["params"] = extra
            params.add_index(index["field_name"], **kwargs)
        call(self.uri, f"create indexes on {name}", self.client.create_index, name, params,
             timeout=self.build_timeout_s)

    def insert(self, name: str, rows: list[dict[str, Any]], partition: str = "") -> None:
        call(self.uri, f"insert into {name}", self.client.insert, name, rows, partition_name=partition,
             timeout=self.batch_timeout_s)

    def rename(self, old: str, new: str) -> None:
        call(self.uri, f"rename {old} to {new}", self.client.rename_collection, old, new, timeout=self.timeout_s)

    def drop(self, name: str) -> None:
        call(self.uri, f"drop {name}", self.client.drop_collection, name, timeout=self.build_timeout_s)


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


class MilvusSearch(MilvusData):
    """The data plane plus searching: samples of vectors, full scans and searches of one collection.

    ``search_raw`` is the load generator's hot path: it lets pymilvus' exception through, so a failed
    request costs nothing more than the failure itself; every other method raises our errors.
    """

    def exists(self, collection: str) -> bool:
        return collection in self.collections()

    def vector_field(self, collection: str) -> VectorField:
        if not self.exists(collection):
            raise NotFound(f"There is no collection `{collection}` in Milvus at {self.uri}.")
        spec = self.schema(collection)
        primary = next((f["name"] for f in spec["fields"] if f.get("is_primary")), "id")
        vector = next((f for f in spec["fields"] if f.get("type") == "FLOAT_VECTOR"), None)
        if vector is None:
            raise NotFound(f"Collection `{collection}` has no FLOAT_VECTOR field to search.")
        index = next((i for i in self.indexes(collection) if i["field_name"] == vector["name"]), {})
        return VectorField(
            collection, vector["name"], int((vector.get("params") or {}).get("dim", 0)), primary,
            str(index.get("metric_type") or "L2"), str(index.get("index_type") or ""), dict(index.get("params") or {}),
        )

    def sample(self, vf: VectorField, limit: int) -> list[tuple[Any, list[float]]]:
        """Up to ``limit`` (primary key, vector) pairs read from the collection."""
        rows = call(self.uri, f"read vectors of {vf.collection}", self.client.query, vf.collection, filter="",
                    output_fields=[vf.primary_key, vf.name], limit=limit, timeout=self.batch_timeout_s)
        return [(r[vf.primary_key], list(r[vf.name])) for r in rows]

    def scan(self, vf: VectorField, *, filter: str = "", batch_size: int = 5000) -> Iterator[
        tuple[list[Any], list[list[float]]]
    ]:
        """Every (primary keys, vectors) batch of the collection (rows matching ``filter``)."""
        iterator = call(self.uri, f"read {vf.collection}", self.client.query_iterator, vf.collection,
                        batch_size=batch_size, filter=filter, output_fields=[vf.primary_key, vf.name],
                        timeout=self.batch_timeout_s)
        try:
            while True:
                batch = call(self.uri, f"read {vf.collection}", iterator.next)
                if not batch:
                    return
                yield [r[vf.primary_key] for r in batch], [r[vf.name] for r in batch]
        finally:
            iterator.close()

    def search_raw(self, collection: str, vectors: list[list[float]], *, anns_field: str, limit: int,
                   search_params: dict[str, Any], filter: str = "") -> Any:
        return self.client.search(collection, data=vectors, anns_field=anns_field, limit=limit, filter=filter,
                                  search_params=search_params, output_fields=[], timeout=self.timeout_s)

    def search_ids(self, collection: str, vectors: list[list[float]], *, anns_field: str, limit: int,
                   search_params: dict[str, Any], filter: str = "") -> list[list[Any]]:
        hits = call(self.uri, f"search {collection}", self.search_raw, collection, vectors, anns_field=anns_field,
                    limit=limit, search_params=search_params, filter=filter)
        return [[h["id"] for h in per_query] for per_query in hits]
# -- users, roles and privileges -------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    object: str  # Collection, Global, User, Database ...
    object_name: str
    privilege: str
    database: str

    def as_data(self) -> dict[str, Any]:
        return {"object": self.object, "object_name": self.object_name, "privilege": self.privilege,
                "database": self.database}


def probe_login(uri: str, user: str | None, password: str | None, *, timeout_s: float = 10.0,
                tls: Mapping[str, str] | None = None) -> str | None:
    """Try one connection with these credentials (none: anonymous) and one call that needs them.

    Returns None when Milvus let it in, else Milvus' reason. A server that cannot be reached at
    all is an ``IntegrationError``: that says nothing about authentication.
    """
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    extra = dict(tls or {})
    client = None
    try:
        # dedicated: pymilvus would otherwise hand back a connection shared with the bot's own client.
        client = MilvusClient(uri=uri, user=user or "", password=password or "", timeout=timeout_s, dedicated=True,
                              **extra)
        client.list_collections(timeout=timeout_s)
        return None
    except Exception as exc:
        refusal = _auth_refusal(exc)
        if refusal is not None:
            return refusal
        text = str(exc.message) if isinstance(exc, MilvusException) else type(exc).__name__
        raise IntegrationError(f"Cannot reach Milvus at {uri} to probe its login: {text}", system="milvus") from None
    finally:
        if client is not None:
            try:
                client.close()
            except Exception:  # the probe's answer is already known
                log.debug("closing probe client failed", exc_info=True)


def _auth_refusal(exc: BaseException) -> str | None:
    """Milvus' words when ``exc`` (or what caused it) is a refused login, else None.

    pymilvus reports a refused login while connecting as a generic "Fail connecting" error; the gRPC
    status underneath says UNAUTHENTICATED. Later refusals come back as a MilvusException of their own.
    """
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(seen, "code", None)
        if callable(code):
            try:
                name = getattr(code(), "name", "")
            except Exception:  # not a gRPC error after all
                name = ""
            if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
                details = getattr(seen, "details", None)
                return str(details() if callable(details) else name)
        text = str(getattr(seen, "message", "") or "").lower()
        if any(word in text for word in ("auth check failure", "unauthenticated", "permission deny")):
            return str(getattr(seen, "message", ""))
        seen = seen.__cause__ or seen.__context__
    return None


class MilvusSecurity:
    """Users, roles and grants of one Milvus (needs authorization on); takes an open MilvusClient.

    Passwords pass through and are never part of an error: Milvus' message is scrubbed of them.
    """

    def __init__(self, client: Any, *, uri: str, timeout_s: float = 10.0) -> None:
        self.client = client
        self.uri = uri
        self.timeout_s = timeout_s

    def _call(self, what: str, fn: Any, *args: Any, secret: str | None = None, **kwargs: Any) -> Any:
        try:
            return call(self.uri, what, fn, *args, timeout=self.timeout_s, **kwargs)
        except NotFound as exc:
            if not secret:
                raise
            # Without the cause: a traceback of it would carry the unscrubbed text.
            raise NotFound(exc.message.replace(secret, "***")) from None
        except IntegrationError as exc:
            if not secret:
                raise
            raise IntegrationError(exc.message.replace(secret, "***"), system="milvus") from None

    def users(self) -> list[str]:
        return sorted(self._call("list users", self.client.list_users))

    def roles_of(self, user: str) -> list[str]:
        described = self._call(f"describe user {user}", self.client.describe_user, user) or {}
        return sorted(str(r) for r in described.get("roles") or [])

    def users_with_roles(self) -> dict[str, list[str]]:
        return {user: self.roles_of(user) for user in self.users()}

    def create_user(self, user: str, password: str) -> None:
        self._call(f"create user {user}", self.client.create_user, user, password, secret=password)

    def drop_user(self, user: str) -> None:
        self._call(f"drop user {user}", self.client.drop_user, user)

    def reset_password(self, user: str, password: str) -> list[str]:
        """Give ``user`` a new password without knowing the old one: recreate it with its roles.

        Milvus' update_password wants the old password, which nobody should know here.
        """
        roles = self.roles_of(user)
        self.drop_user(user)
        self.create_user(user, password)
        for role in roles:
            self.grant_role(user, role)
        return roles

    def change_password(self, user: str, old_password: str, new_password: str) -> None:
        """For users that cannot be recreated (root): Milvus checks the old password."""
        from pymilvus.exceptions import MilvusException

        try:
            self.client.update_password(user, old_password, new_password, timeout=self.timeout_s)
        except MilvusException as exc:
            message = str(exc.message).replace(old_password, "***").replace(new_password, "***")
            raise IntegrationError(f"Milvus at {self.uri} failed to change the password of {user}: {message}",
                                   system="milvus") from None

    def roles(self) -> list[str]:
        return sorted(self._call("list roles", self.client.list_roles))

    def create_role(self, role: str) -> None:
        self._call(f"create role {role}", self.client.create_role, role)

    def drop_role(self, role: str) -> None:
        self._call(f"drop role {role}", self.client.drop_role, role)

    def grant_role(self, user: str, role: str) -> None:
        self._call(f"grant role {role} to {user}", self.client.grant_role, user, role)

    def revoke_role(self, user: str, role: str) -> None:
        self._call(f"revoke role {role} from {user}", self.client.revoke_role, user, role)

    def grants(self, role: str) -> list[Grant]:
        described = self._call(f"describe role {role}", self.client.describe_role, role) or {}
        result = []
        for item in described.get("privileges") or []:
            result.append(Grant(
                object=str(item.get("object_type", "")), object_name=str(item.get("object_name", "")),
                privilege=str(item.get("privilege", "")), database=str(item.get("db_name", "") or "default"),
            ))
        return sorted(result, key=lambda g: (g.object, g.object_name, g.privilege, g.database))

    def grant(self, role: str, object_type: str, privilege: str, object_name: str, database: str) -> None:
        self._call(f"grant {privilege} on {object_type} {object_name} to {role}", self.client.grant_privilege,
                   role, object_type, privilege, object_name, db_name=database)

    def revoke(self, role: str, object_type: str, privilege: str, object_name: str, database: str) -> None:
        self._call(f"revoke {privilege} on {object_type} {object_name} from {role}", self.client.revoke_privilege,
                   role, object_type, privilege, object_name, db_name=database)
