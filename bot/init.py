"""``milvus-chatops init``: a starter config for one cluster."""

from __future__ import annotations

import argparse
from typing import Any

from bot.settings import Settings


def add_init_parser(sub: Any) -> None:
    sub.add_parser("init", help="write a starter config for one cluster")


def init(args: argparse.Namespace, settings: Settings) -> int:
    raise NotImplementedError
