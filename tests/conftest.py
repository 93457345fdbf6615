"""Shared fixtures live in tests/support: real local servers start once per session, fakes are
reset for each test, and ``bot_server`` runs the real ``milvus-chatops serve`` against them."""

pytest_plugins = ["tests.support.fixtures", "tests.support.bot_server"]
