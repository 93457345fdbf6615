"""/milvus loadtest on the embedded default (Milvus Lite in the data dir), on collections the test
makes: real searches, recall against exact search, results stored and compared; production caps and
approval."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands.readiness.helpers import OPERATOR, Bot, make_collection, vectors

CONTRACT_KEYS = {"environment", "collection", "duration_s", "requests", "errors", "qps", "latency_ms", "k",
                 "recall_at_k", "recall_sample"}


@pytest.fixture
def bot(tmp_path: Path):
    bot = Bot(tmp_path / "data")
    yield bot
    bot.close()


def test_flat_index_has_perfect_recall_and_the_run_is_stored_charted_and_compared(bot: Bot) -> None:
    make_collection(bot.client(), "flat_items", vectors(3000))
    outcome = bot.run("/milvus loadtest local --collection flat_items --duration 2s --concurrency 2")
    assert outcome.exit_code == 0, outcome.reply.text
    data = outcome.reply.data
    assert set(data) >= CONTRACT_KEYS
    assert data["environment"] == "local" and data["collection"] == "flat_items" and data["k"] == 10
    assert data["recall_at_k"] == 1.0 and data["recall_sample"] == 20
    assert data["requests"] > 0 and data["errors"] == 0 and data["qps"] > 0
    lat = data["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert data["duration_s"] >= 2
    assert data["previous"] is None
    [chart] = outcome.reply.files
    assert chart.content.startswith(b"\x89PNG")
    assert any("searches" in line for line in bot.progress)  # progress while it ran

    again = bot.run("/milvus loadtest local --collection flat_items --duration 1s --qps 20")
    assert again.exit_code == 0, again.reply.text
    assert again.reply.data["previous"]["run_id"] == data["run_id"]
    assert "Last run" in str(again.reply.blocks)
    # An open loop at 20/s sends about 20 searches a second, not as many as the collection answers.
    assert 10 <= again.reply.data["requests"] <= 30


def test_coarse_ivf_with_a_small_nprobe_loses_recall_that_exact_search_exposes(bot: Bot) -> None:
    make_collection(bot.client(), "ivf_items", vectors(20000, seed=1), index="IVF_FLAT", params={"nlist": 256})
    outcome = bot.run("/milvus loadtest local --collection ivf_items --duration 1s --search-params nprobe=4 "
                      "--recall-sample 50")
    assert outcome.exit_code == 0, outcome.reply.text
    data = outcome.reply.data
    assert data["index_type"] == "IVF_FLAT" and data["search_params"] == {"nprobe": 4}
    assert data["recall_sample"] == 50
    assert 0.5 < data["recall_at_k"] < 1.0

    wide = bot.run("/milvus loadtest local --collection ivf_items --duration 1s --search-params "
                   '\'{"nprobe": 256}\' --recall-sample 50')
    assert wide.reply.data["recall_at_k"] == 1.0  # every list probed: exact again


def test_targets_judge_the_run(tmp_path: Path) -> None:
    from bot.config import Targets, embedded_default

    config = embedded_default(tmp_path / "data")
    config.environments["local"].targets = Targets(search_p99_ms=60_000, qps=1_000_000, recall=0.9)
    bot = Bot(tmp_path / "data", config)
    try:
        make_collection(bot.client(), "items", vectors(1000))
        data = bot.run("/milvus loadtest local --collection items --duration 1s").reply.data
    finally:
        bot.close()
    assert data["targets"]["search_p99_ms"]["met"] is True
    assert data["targets"]["recall"]["met"] is True
    assert data["targets"]["qps"]["met"] is False
    assert data["met_targets"] is False


def test_bad_input_is_refused_with_what_to_type(bot: Bot) -> None:
    missing = bot.run("/milvus loadtest local --collection nothing_here --duration 1s")
    assert missing.exit_code == 1 and "nothing_here" in missing.reply.text
    make_collection(bot.client(), "items", vectors(100))
    bad_params = bot.run("/milvus loadtest local --collection items --search-params nprobe")
    assert bad_params.exit_code == 1 and "name=value" in bad_params.reply.text
    bad_duration = bot.run("/milvus loadtest local --collection items --duration forever")
    assert bad_duration.exit_code == 1 and "30s" in bad_duration.reply.text


def test_production_caps_rate_and_duration_and_asks_for_approval(tmp_path: Path) -> None:
    from bot.config import embedded_default

    config = embedded_default(tmp_path / "data").model_dump()
    local = config["environments"]["local"]
    local.update(production=True, loadtest={"max_qps": 10, "max_duration_s": 30},
                 approval={"required": True, "approvers": ["UAPPROVER"]}, channels={"approvals": "CAPPROVALS"})
    config["access"].append({"role": "operator", "users": ["UAPPROVER"]})
    bot = Bot(tmp_path / "data", config)
    try:
        make_collection(bot.client(), "items", vectors(100))
        too_long = bot.run("/milvus loadtest local --collection items --duration 5m")
        assert too_long.exit_code == 1 and "at most 30s" in too_long.reply.text
        too_fast = bot.run("/milvus loadtest local --collection items --qps 50")
        assert too_fast.exit_code == 1 and "--qps 10" in too_fast.reply.text
        asked = bot.run("/milvus loadtest local --collection items --duration 2s")
        assert asked.exit_code == 0, asked.reply.text
        request = asked.reply.data["approval"]
        # Without --qps, production runs at its capped rate: that is what the approver sees and approves.
        assert request["kind"] == "loadtest"
        assert any("10 searches/s" in str(p["message"].blocks) for p in bot.messenger.posts)

        from commands.approvals.workflow import Approvals

        approved = bot.run(f"/milvus approve {request['id']}", user="UAPPROVER")
        assert approved.exit_code == 0, approved.reply.text
        assert Approvals.wait(request["id"], timeout=120)
        done = Approvals(bot.runtime).get(request["id"])
        assert done.state == "done", done.result
        [result] = bot.messenger.thread(f"approval:{request['id']}")[-1:]
        assert result.startswith("Load test of items in local:")
        ran = bot.runtime.store.engine.connect()
        try:
            stored = ran.exec_driver_sql("SELECT created_by, result FROM readiness_runs").all()
        finally:
            ran.close()
        assert [row[0] for row in stored] == [OPERATOR]  # recorded as the requester's run
    finally:
        bot.close()


@pytest.mark.slow
def test_load_test_on_a_real_milvus_shows_up_in_its_own_search_metrics(tmp_path: Path, milvus_server) -> None:
    """Milvus 2.3.5 counts the searches it served; the load test's count must match what it reports."""
    import re
    import urllib.request

    def searches_served() -> float:
        with urllib.request.urlopen(milvus_server.metrics_url, timeout=10) as resp:
            text = resp.read().decode()
        found = re.findall(r'^milvus_proxy_req_count\{[^}]*function_name="Search"[^}]*status="success"[^}]*\} (\S+)',
                           text, flags=re.MULTILINE)
        return sum(float(v) for v in found)

    config = {"environments": {"real": {"milvus": {"uri": milvus_server.uri, "timeout_s": 30}}},
              "access": [{"role": "operator", "users": ["ULOCALOPERATOR"]}]}
    bot = Bot(tmp_path / "data", config)
    try:
        client = bot.client("real")
        if client.has_collection("readiness_lt"):
            client.drop_collection("readiness_lt")
        make_collection(client, "readiness_lt", vectors(5000, seed=3), index="IVF_FLAT", params={"nlist": 64})
        before = searches_served()
        outcome = bot.run("/milvus loadtest real --collection readiness_lt --duration 2s --recall-sample 10 "
                          "--search-params nprobe=64")
        after = searches_served()
        client.drop_collection("readiness_lt")
    finally:
        bot.close()
    assert outcome.exit_code == 0, outcome.reply.text
    data = outcome.reply.data
    assert data["errors"] == 0 and data["recall_at_k"] == 1.0
    # The load plus one search for the recall sample; the server may publish its counters a moment late.
    assert after - before >= data["requests"] * 0.9
    assert after - before <= data["requests"] + 1
