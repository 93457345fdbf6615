"""Milvus through pymilvus' MilvusClient: a server (http://host:19530) or Milvus Lite (a .db path)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
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
        from pymilvus.exceptions import MilvusException

        def scrub(text: str) -> str:
            return text.replace(secret, "***") if secret else text

        try:
            return fn(*args, timeout=self.timeout_s, **kwargs)
        except MilvusException as exc:
            message = scrub(str(exc.message))
            if "not found" in message.lower() or "not exist" in message.lower():
                raise NotFound(f"Milvus at {self.uri} says: {message}") from None
            raise IntegrationError(f"Milvus at {self.uri} failed to {what}: {message}", system="milvus") from None
        except Exception as exc:
            raise IntegrationError(
                f"Milvus at {self.uri} failed to {what}: {scrub(str(exc))}", system="milvus"
            ) from None

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
