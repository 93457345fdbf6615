"""Object stores against moto's S3 server on loopback, and the local-directory store, through one interface."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bot.errors import IntegrationError
from integrations.s3 import LocalStore, MiB, ObjectMissing, S3Store, make_s3_client
from tests.commands.backup.helpers import aws_env  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("aws_env")
BUCKET = "store-test"


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    client = moto_s3.client()
    client.create_bucket(Bucket=BUCKET)
    return client


def _s3_store(url: str, **kwargs: Any) -> S3Store:
    client = make_s3_client(endpoint_url=url, region="us-east-1", connect_timeout=2, read_timeout=10)
    return S3Store(client, BUCKET, "pre/fix", **kwargs)


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    moto = request.getfixturevalue("moto_s3")
    request.getfixturevalue("s3")
    return _s3_store(moto.url)


def test_put_get_head_list_delete(store: Any) -> None:
    assert store.put("a/one.bin", b"hello") == 5
    assert store.put("a/b/two.bin", b"x" * 1000) == 1000
    assert store.put("other/three.bin", b"") == 0

    assert store.get("a/one.bin") == b"hello"
    head = store.head("a/b/two.bin")
    assert head is not None and head.size == 1000 and head.key == "a/b/two.bin"
    assert store.head("a/missing") is None
    assert sorted(o.key for o in store.list("a/")) == ["a/b/two.bin", "a/one.bin"]
    assert sorted(o.key for o in store.list()) == ["a/b/two.bin", "a/one.bin", "other/three.bin"]
    with pytest.raises(ObjectMissing):
        store.get("a/missing")

    assert store.delete(["a/one.bin", "a/b/two.bin"]) == 2
    assert [o.key for o in store.list()] == ["other/three.bin"]


def test_large_object_goes_multipart_with_sse_on_every_part(moto_s3: Any, s3: Any) -> None:
    store = _s3_store(moto_s3.url, sse="AES256", multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    data = os.urandom(12 * MiB + 123)

    assert store.put("big.bin", data) == len(data)

    head = s3.head_object(Bucket=BUCKET, Key="pre/fix/big.bin")
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # three parts
    assert head["ServerSideEncryption"] == "AES256"
    assert store.get("big.bin") == data
    store.put("small.bin", b"tiny")
    assert s3.head_object(Bucket=BUCKET, Key="pre/fix/small.bin")["ServerSideEncryption"] == "AES256"


def test_sse_kms_sends_the_key_id(moto_s3: Any, s3: Any) -> None:
    import boto3

    kms = boto3.client("kms", endpoint_url=moto_s3.url, region_name="us-east-1")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    store = _s3_store(moto_s3.url, sse="aws:kms", kms_key_id=key_id)

    store.put("secret.bin", b"payload")

    head = s3.head_object(Bucket=BUCKET, Key="pre/fix/secret.bin")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)


def test_unreachable_endpoint_is_a_clear_integration_error() -> None:
    store = _s3_store("http://127.0.0.1:9")
    with pytest.raises(IntegrationError) as failed:
        store.put("x", b"1")
    assert failed.value.system == "s3"
    assert "S3 is unreachable" in failed.value.message and "127.0.0.1:9" in failed.value.message
    with pytest.raises(IntegrationError, match="S3 is unreachable"):
        list(store.list())


def test_missing_bucket_names_the_fix(moto_s3: Any) -> None:
    client = make_s3_client(endpoint_url=moto_s3.url, region="us-east-1")
    store = S3Store(client, "no-such-bucket")
    with pytest.raises(IntegrationError) as failed:
        store.put("x", b"1")
    assert "NoSuchBucket" in failed.value.message
    assert "no-such-bucket" in str(failed.value.hint)


def test_config_cannot_hold_s3_credentials() -> None:
    """Credentials come from boto3's default chain only; a config that tries to carry them is rejected."""
    from pydantic import ValidationError

    from bot.config import BackupTarget

    with pytest.raises(ValidationError, match="aws_secret_access_key"):
        BackupTarget.model_validate({"bucket": "b", "aws_secret_access_key": "x"})


def test_local_store_hides_nothing_half_written_and_stays_inside_its_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    store.put("b/obj", b"data")
    (tmp_path / "root" / "b" / "next.partial").write_bytes(b"half")
    # A killed writer's leftovers are listed so cleanup can find and delete them.
    assert sorted(o.key for o in store.list("b/")) == ["b/next.partial", "b/obj"]
    assert store.delete(["b/obj", "b/next.partial"]) == 2
    assert not (tmp_path / "root" / "b").exists()
    with pytest.raises(IntegrationError, match="escapes"):
        store.put("../outside", b"x")
