"""A bot on a real SQLite store and Milvus Lite for the readiness tests, and collections to test on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Config, embedded_default
from bot.dispatch import Dispatcher, Outcome
from bot.settings import Settings
from tests.commands.approvals.test_approvals import RecordingMessenger
from tests.support.runtime import build_test_runtime

OPERATOR = "ULOCALOPERATOR"
DIM = 16


class Bot:
    def __init__(self, data_dir: Path, config: Config | dict[str, Any] | None = None, **settings: Any) -> None:
        self.messenger = RecordingMessenger()
        self.settings = Settings(data_dir=data_dir, **settings)
        self.runtime = build_test_runtime(settings=self.settings, config=config or embedded_default(data_dir),
                                          messenger=self.messenger)
        self.dispatcher = Dispatcher(self.runtime)
        self.progress: list[str] = []

    def run(self, text: str, user: str = OPERATOR) -> Outcome:
        return self.dispatcher.run_command(text, self.runtime.identity(user), channel="COPS",
                                           progress=self.progress.append)

    def client(self, env: str = "local") -> Any:
        return self.runtime.services.milvus_client(self.runtime.config.environments[env])

    def close(self) -> None:
        self.runtime.services.close_all()
        self.runtime.store.engine.dispose()


def vectors(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((rows, DIM), dtype=np.float32)


def make_collection(client: Any, name: str, data: np.ndarray, *, index: str = "FLAT",
                    params: dict[str, Any] | None = None) -> None:
    """A loaded collection of ``data`` (id = row number) with the given index, sealed so the index is used."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=data.shape[1])
    index_params = client.prepare_index_params()
    index_params.add_index("vec", index_type=index, metric_type="L2", params=params or {})
    client.create_collection(name, schema=schema, index_params=index_params)
    for start in range(0, len(data), 5000):
        client.insert(name, [{"id": i, "vec": data[i].tolist()} for i in range(start, min(start + 5000, len(data)))])
    client.flush(name)
    client.load_collection(name)
