"""A hung Milvus must slow only its own environment (issue 11).

`serve` with two environments: `ok` on Milvus Lite and `hung`, a TCP listener that accepts and never
answers (what a wedged proxy or a half-dead node looks like). Measures the time from posting a signed
slash command until its reply reaches the fake Slack's response_url, for `status ok` and `whoami`:
first alone (the baseline), then while 40 `status hung` are in flight (and 40 more are sent every
few seconds, so the hung environment stays saturated for the whole measurement).

    .venv/bin/python bench/bench_isolation.py [--samples 20] [--hung-timeout 5]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_serve import percentile  # noqa: E402
from tests.support.bot_server import BotServer  # noqa: E402
from tests.support.fake_slack import FakeSlack  # noqa: E402

ADMIN = "U0ADMIN"


def reply_latency(server: BotServer, slack: FakeSlack, text: str, rid: str) -> float:
    started = time.perf_counter()
    ack = server.slack.slash_command(text, user_id=ADMIN, response_url=slack.response_url(rid))
    assert ack.status_code == 200 and "busy" not in ack.text, ack.text
    slack.wait_for_response(rid, timeout=120)
    return time.perf_counter() - started


def series(server: BotServer, slack: FakeSlack, tag: str, samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"status ok": [], "whoami": []}
    for i in range(samples):
        for text in out:
            out[text].append(reply_latency(server, slack, text, f"{tag}-{text.replace(' ', '_')}-{i}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--hung-timeout", type=float, default=5.0)
    args = parser.parse_args()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    with FakeSlack() as slack, tempfile.TemporaryDirectory() as tmp:
        from pymilvus import MilvusClient

        db = str(Path(tmp) / "ok.db")
        client = MilvusClient(db)
        client.create_collection("docs", dimension=4)
        client.close()
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(db)
        config = f"""
environments:
  ok:
    milvus: {{uri: "{db}"}}
  hung:
    milvus: {{uri: "http://127.0.0.1:{listener.getsockname()[1]}", timeout_s: {args.hung_timeout}}}
access:
  - {{role: admin, users: [{ADMIN}]}}
"""
        (Path(tmp) / "bot").mkdir()
        server = BotServer(Path(tmp) / "bot", slack.url, config, {"MILVUS_CHATOPS_LOG_LEVEL": "WARNING"})
        server.start()
        reply_latency(server, slack, "status ok", "warm")  # Milvus Lite's first open is start-up, not waiting
        normal = series(server, slack, "normal", args.samples)

        stop = threading.Event()
        busy_acks = [0, 0]

        def flood() -> None:
            n = 0
            while not stop.is_set():
                for _ in range(40):
                    n += 1
                    ack = server.slack.slash_command("status hung", user_id=ADMIN,
                                                     response_url=slack.response_url(f"hung-{n}"))
                    busy_acks[0 if "busy" in ack.text else 1] += 1
                stop.wait(args.hung_timeout / 2)

        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        time.sleep(0.5)
        loaded = series(server, slack, "loaded", args.samples)
        stop.set()
        flooder.join()
        print(f"hung environment: {busy_acks[0] + busy_acks[1]} `status hung` sent during the measurement, "
              f"{busy_acks[0]} refused at once as busy (bounded queue), {busy_acks[1]} queued")
        for text in normal:
            n50, n99 = statistics.median(normal[text]) * 1000, percentile(normal[text], 0.99) * 1000
            l50, l99 = statistics.median(loaded[text]) * 1000, percentile(loaded[text], 0.99) * 1000
            print(f"{text:10s} reply latency: alone p50 {n50:.0f} ms, max {n99:.0f} ms; while `hung` hangs p50 "
                  f"{l50:.0f} ms, max {l99:.0f} ms; ratio p50 {l50 / n50:.2f}x (target < 2x)")
        server.close()
    listener.close()


if __name__ == "__main__":
    main()
