"""Object stores for backups: S3 (boto3) and a local directory, behind one small interface.

Both take keys relative to their root (bucket + prefix, or a directory). Credentials for S3 come only
from boto3's default chain (environment variables, shared config, the pod's IAM role): never from the
bot's config file or from Slack. Server-side encryption, when configured, is sent with every put.
"""

from __future__ import annotations

import builtins
import datetime as dt
import io
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from bot.errors import IntegrationError, NotFound

log = logging.getLogger("milvus_chatops.s3")

MiB = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the store's root
    size: int
    last_modified: dt.datetime


class ObjectMissing(NotFound):
    """The key does not exist in the store."""


class ObjectStore(Protocol):
    location: str  # for messages: s3://bucket/prefix or a directory

    def put(self, key: str, data: bytes | BinaryIO) -> int: ...
    def get(self, key: str) -> bytes: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def delete(self, keys: builtins.list[str]) -> int: ...


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def make_s3_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    max_attempts: int = 3,
    max_pool_connections: int = 16,
) -> Any:
    """A boto3 S3 client with explicit timeouts; constructing it does no network I/O."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # total_max_attempts counts the first try too (botocore's max_attempts counts only retries).
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Store:
    """A bucket + prefix. ``put`` goes multipart above ``multipart_threshold`` bytes."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        sse: str = "none",
        kms_key_id: str | None = None,
        multipart_threshold: int = 16 * MiB,
        multipart_chunksize: int = 16 * MiB,
        max_concurrency: int = 8,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self.max_concurrency = max_concurrency
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    # -- helpers ---------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return _join(self.prefix, key)

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def put_args(self) -> dict[str, str]:
        """Server-side encryption arguments sent with every put (single and multipart)."""
        if self.sse == "AES256":
            return {"ServerSideEncryption": "AES256"}
        if self.sse == "aws:kms":
            args = {"ServerSideEncryption": "aws:kms"}
            if self.kms_key_id:
                args["SSEKMSKeyId"] = self.kms_key_id
            return args
        return {}

    def _fail(self, what: str, exc: Exception) -> IntegrationError:
        from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            config = getattr(getattr(self.client, "meta", None), "config", None)
            limit = getattr(config, "read_timeout" if isinstance(exc, ReadTimeoutError) else "connect_timeout", None)
            attempts = (getattr(config, "retries", None) or {}).get("total_max_attempts")
            waited = f" within {limit:g} s" if isinstance(limit, int | float) else ""
            tries = f" ({attempts} attempts)" if attempts else ""
            endpoint = getattr(getattr(self.client, "meta", None), "endpoint_url", None) or "its endpoint"
            return IntegrationError(
                f"S3 at {endpoint} did not answer{waited}{tries} "
                f"while trying to {what}.",
                hint="S3 (or the network path to it) is hung or overloaded; try again later, or check the endpoint.",
                system="s3",
            )
        if isinstance(exc, EndpointConnectionError):
            return IntegrationError(
                f"S3 is unreachable at {exc.kwargs.get('endpoint_url', 'its endpoint')} while trying to {what}.",
                hint="Check the endpoint, the network path and that the service is up.",
                system="s3",
            )
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            hint = None
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
                hint = "Check the bot's AWS credentials (environment or IAM role) and the bucket policy."
            elif code == "NoSuchBucket":
                hint = f"Create the bucket {self.bucket} or fix `backup.bucket` in the config."
            return IntegrationError(
                f"S3 refused to {what} in {self.location}: {code} {error.get('Message', '')}".rstrip(),
                hint=hint,
                system="s3",
            )
        return IntegrationError(f"S3 failed to {what} in {self.location}: {exc}", system="s3")

    # -- the interface ---------------------------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO) -> int:
        """Upload; returns the number of bytes written."""
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        body: BinaryIO = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
        start = body.tell()
        body.seek(0, os.SEEK_END)
        size = body.tell() - start
        body.seek(start)
        transfer = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
            use_threads=self.max_concurrency > 1,
        )
        try:
            self.client.upload_fileobj(
                body, self.bucket, self._key(key), ExtraArgs=self.put_args() or None, Config=transfer
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"upload {key}", exc) from exc
        except Exception as exc:  # s3transfer wraps failures of its worker threads
            raise self._fail(f"upload {key}", exc) from exc
        return size

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(response["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectMissing(f"{self.location}/{key} does not exist.") from exc
            raise self._fail(f"download {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"download {key}", exc) from exc

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._fail(f"read metadata of {key}", exc) from exc
        except BotoCoreError as exc:
            raise self._fail(f"read metadata of {key}", exc) from exc
        return ObjectInfo(key, int(response["ContentLength"]), response["LastModified"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(prefix)
        if prefix.endswith("/") or not prefix:
            full = full + "/" if full else ""
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield ObjectInfo(self._rel(item["Key"]), int(item["Size"]), item["LastModified"])
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"list {prefix or 'objects'}", exc) from exc

    def delete(self, keys: builtins.list[str]) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        deleted = 0
        try:
            for start in range(0, len(keys), 1000):  # the API's per-request limit
                chunk = keys[start : start + 1000]
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._key(k)} for k in chunk], "Quiet": True},
                )
                errors = response.get("Errors", [])
                if errors:
                    first = errors[0]
                    raise IntegrationError(
                        f"S3 could not delete {len(errors)} object(s) in {self.location}, e.g. "
                        f"{self._rel(first.get('Key', '?'))}: {first.get('Code', '?')}",
                        system="s3",
                    )
                deleted += len(chunk)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete objects", exc) from exc
        return deleted


class LocalStore:
    """A directory with the same interface; the embedded default backs up here.

    Writes go to a temporary name and are renamed into place, so a reader never sees half a file.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents and path != self.root.resolve():
            raise IntegrationError(f"key {key!r} escapes the backup directory", system="local")
        return path

    def put(self, key: str, data: bytes | BinaryIO) -> int:
        path = self._path(key)
        tmp = path.with_name(path.name + ".partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out, 4 * MiB)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            return path.stat().st_size
        except OSError as exc:
            raise IntegrationError(f"cannot write {path}: {exc.strerror}", system="local") from exc

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(f"{path} does not exist.") from exc
        except OSError as exc:
            raise IntegrationError(f"cannot read {path}: {exc.strerror}", system="local") from exc

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key, stat.st_size, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return
        root = self.root.resolve()
        for path in sorted(base.rglob("*")):
            # Half-written ``.partial`` files are listed too: cleanup of a dead backup must see them.
            if path.is_file():
                stat = path.stat()
                key = path.resolve().relative_to(root).as_posix()
                yield ObjectInfo(key, stat.st_size, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC))

    def delete(self, keys: builtins.list[str]) -> int:
        deleted = 0
        for key in keys:
            path = self._path(key)
            try:
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise IntegrationError(f"cannot delete {path}: {exc.strerror}", system="local") from exc
            # Leave no empty directories behind a deleted backup.
            parent = path.parent
            while parent != self.root.resolve() and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        return deleted
