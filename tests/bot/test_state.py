"""The state store on SQLite and on a real PostgreSQL: migrations, claims, leases."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from bot.state import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = Store(url)
    store.migrate()
    yield store
    store.engine.dispose()


def test_a_claim_is_won_by_exactly_one_of_many_concurrent_callers(store):
    winners = []
    barrier = threading.Barrier(8)

    def contend(i: int) -> None:
        barrier.wait()
        if store.claim("approve:req-1", f"user{i}"):
            winners.append(i)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert store.claim_owner("approve:req-1") == f"user{winners[0]}"


def test_a_lease_blocks_others_until_released_or_expired(store):
    lease = store.acquire("deploy:prod", "U1", "deploy of 2.6.15 by U1", dt.timedelta(minutes=5))
    assert lease is not None
    assert store.acquire("deploy:prod", "U2", "deploy by U2", dt.timedelta(minutes=5)) is None
    holder = store.holder("deploy:prod")
    assert holder is not None and holder.description == "deploy of 2.6.15 by U1"
    store.release("deploy:prod", "U1")
    assert store.acquire("deploy:prod", "U2", "deploy by U2", dt.timedelta(seconds=-1)) is not None
    # U2's lease is already past its expiry, as if U2 crashed: U3 may take over.
    assert store.acquire("deploy:prod", "U3", "deploy by U3", dt.timedelta(minutes=5)) is not None


def test_key_value_round_trip(store):
    assert store.kv_get("plans", "p1") is None
    store.kv_put("plans", "p1", {"vectors": 100_000_000})
    store.kv_put("plans", "p1", {"vectors": 200_000_000})
    assert store.kv_get("plans", "p1") == {"vectors": 200_000_000}


def test_a_worker_lease_is_extended_by_its_holder_and_never_free_in_between(store):
    assert store.hold("outbox-worker", "A", "drains the outbox", dt.timedelta(seconds=30))
    first = store.holder("outbox-worker")
    assert store.hold("outbox-worker", "A", "drains the outbox", dt.timedelta(minutes=5))
    extended = store.holder("outbox-worker")
    assert first is not None and extended is not None and extended.expires_at > first.expires_at
    assert not store.hold("outbox-worker", "B", "drains the outbox", dt.timedelta(seconds=30))
    assert store.holder("outbox-worker").owner == "A"


def test_a_failed_write_gives_its_turn_back_so_other_threads_write_at_once(store):
    # SQLite writers of one process take turns (bot/state.py); a turn kept after a rollback would
    # stall every other writer, the alert webhook included, for the 30 s the turn is waited for.
    assert store.claim("deploy:1", "alice")
    assert not store.claim("deploy:1", "bob")  # IntegrityError: rolled back
    written = threading.Event()

    def write_elsewhere() -> None:
        store.claim("deploy:2", "carol")
        written.set()

    threading.Thread(target=write_elsewhere, daemon=True).start()
    assert written.wait(5), "a write from another thread waited for a turn nobody gave back"
    assert store.claim_owner("deploy:2") == "carol"


def test_many_threads_writing_at_once_all_succeed(store):
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        barrier.wait()
        try:
            for n in range(25):
                store.claim(f"key:{i}:{n}", f"writer{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert all(store.claim_owner(f"key:{i}:24") == f"writer{i}" for i in range(8))


def test_a_transaction_that_skips_the_flush_leaves_the_connection_flushing_for_the_next(store):
    """The alert intake answers Alertmanager only after a flushed commit; a pooled connection that
    served a non-durable transaction (the alert worker's) must not carry that over to it."""
    from sqlalchemy import insert, select

    from bot import schema
    from bot.state import utcnow

    sqlite = store.url.startswith("sqlite")

    def synchronous() -> int | None:
        if not sqlite:
            return None  # PostgreSQL commits the same way either way
        with store.begin() as conn:
            return int(conn.exec_driver_sql("PRAGMA synchronous").scalar())

    def row(key: str) -> dict[str, object]:
        return {"namespace": "test", "key": key, "value": {}, "updated_at": utcnow()}

    full = synchronous()
    assert full in (2, None)  # FULL
    with store.begin(durable=False) as conn:
        if sqlite:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL, for this one only
        conn.execute(insert(schema.kv).values(**row("k1")))
    assert synchronous() == full
    with pytest.raises(RuntimeError), store.begin(durable=False) as conn:
        conn.execute(insert(schema.kv).values(**row("k2")))
        raise RuntimeError("boom")
    assert synchronous() == full
    with store.begin() as conn:  # committed and visible; the failed one rolled back
        assert set(conn.execute(select(schema.kv.c.key).where(schema.kv.c.namespace == "test")).scalars()) == {"k1"}
