"""MilvusData, the data plane backups and restores use, against a milvus-lite server."""

from __future__ import annotations

import pytest
from pymilvus import MilvusClient

from bot.errors import IntegrationError, NotFound
from integrations.milvus import MilvusData
from tests.commands.backup.helpers import create_rich_collection


@pytest.fixture
def data(milvus_lite_uri: str) -> MilvusData:
    return MilvusData(MilvusClient(uri=milvus_lite_uri), uri=milvus_lite_uri, timeout_s=30)


def test_a_schema_described_as_json_creates_the_same_collection(data: MilvusData) -> None:
    create_rich_collection(data.client, "docs", rows=30, dim=4)
    spec = data.schema("docs")
    assert spec["enable_dynamic_field"] and [f["name"] for f in spec["fields"]][:2] == ["id", "title"]

    data.create_collection("copy", spec)
    data.create_partition("copy", "recent")
    data.create_indexes("copy", data.indexes("docs"))
    data.load("copy")
    assert data.schema("copy")["fields"] == spec["fields"]
    assert data.partitions("copy") == data.partitions("docs")
    assert [i["index_type"] for i in data.indexes("copy")] == ["FLAT"]

    rows = [r for batch in data.iterate("docs", batch_size=7, output_fields=["*"]) for r in batch]
    assert len(rows) == data.count("docs") == 30
    data.insert("copy", [{k: v for k, v in r.items()} for r in rows])
    data.flush("copy")
    assert data.count("copy") == 30
    data.rename("copy", "copied")
    assert data.collections() == ["copied", "docs"]
    data.drop("copied")
    assert data.collections() == ["docs"]


def test_milvus_errors_become_ours(data: MilvusData, milvus_lite_uri: str) -> None:
    with pytest.raises(NotFound) as missing:
        data.schema("nope")
    assert f"Milvus at {milvus_lite_uri} says:" in missing.value.message
    create_rich_collection(data.client, "docs", rows=5, dim=4)
    with pytest.raises(IntegrationError) as refused:
        data.insert("docs", [{"id": 1, "vec": [1.0]}])
    assert refused.value.message.startswith(f"Milvus at {milvus_lite_uri} failed to insert into docs:")
