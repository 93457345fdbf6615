"""Fixtures of the backup tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.commands.backup.helpers import BUCKET


@pytest.fixture
def bucket(moto_s3: Any) -> Any:
    client = moto_s3.client()
    client.create_bucket(Bucket=BUCKET)
    return client
