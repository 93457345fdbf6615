"""Ack latency of signed slash commands at a fixed, open-loop rate (issue 11).

A closed-loop client (bench_serve.py's 32 clients) sends the next request only when the previous one
is answered, so when the server stalls it also stops sending and the stall is hidden (coordinated
omission). Here requests are scheduled at fixed times (100 per second by default) whatever happens,
and each latency is measured from its *scheduled* time: a stall shows up in every request it delayed.

Every request is a distinct, freshly signed `/milvus status` (the bot runs each one against Milvus Lite
in the background and answers through the response_url): signed requests are single-use, so a load
tool that repeats one body (`hey -D`, `ab -p`) would measure the 401s of replays, not acks.

The generator runs in its own process (asyncio, one connection per in-flight request up to a pool of
64), so it does not share a GIL with the fake Slack.

    .venv/bin/python bench/bench_open_loop.py [--rate 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_serve import percentile  # noqa: E402
from tests.support.bot_server import BotServer  # noqa: E402
from tests.support.fake_slack import FakeSlack  # noqa: E402


def _open_loop(url: str, secret: str, response_url: str, rate: float, seconds: float, out: Any) -> None:
    import asyncio

    import httpx

    from tests.support.slack_signing import sign, slash_command_body

    async def run() -> tuple[list[float], int, float]:
        count = int(rate * seconds)
        # Bodies are built and signed before the clock starts, so signing costs nothing in the run; the
        # timestamps stay inside Slack's 5-minute window for any sane duration.
        prepared = []
        for _ in range(count):
            body = slash_command_body("status", user_id="ULOCALOPERATOR", response_url=response_url)
            prepared.append((body, {"Content-Type": "application/x-www-form-urlencoded", **sign(body, secret)}))
        latencies: list[float] = []
        failures = 0
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            loop = asyncio.get_running_loop()
            start = loop.time() + 0.5

            async def one(i: int) -> None:
                nonlocal failures
                scheduled = start + i / rate
                await asyncio.sleep(max(0.0, scheduled - loop.time()))
                body, headers = prepared[i]
                response = await http.post("/slack/events", content=body, headers=headers)
                if response.status_code != 200 or "busy" in response.text:
                    failures += 1
                latencies.append(loop.time() - scheduled)

            await asyncio.gather(*(one(i) for i in range(count)))
            achieved = count / (loop.time() - start)
        return latencies, failures, achieved

    out.put(asyncio.run(run()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with FakeSlack() as slack, tempfile.TemporaryDirectory() as tmp:
        server = BotServer(Path(tmp), slack.url, None, {"MILVUS_CHATOPS_LOG_LEVEL": "WARNING"})
        server.start()
        server.slack.slash_command("status", user_id="ULOCALOPERATOR", response_url=slack.response_url("warm"))
        slack.wait_for_response("warm", timeout=60)  # Milvus Lite's first open is start-up, not ack latency
        queue: Any = multiprocessing.Queue()
        child = multiprocessing.Process(
            target=_open_loop,
            args=(server.url, server.slack.secret, slack.response_url("load"), args.rate, args.seconds, queue),
        )
        started = time.perf_counter()
        child.start()
        latencies, failures, achieved = queue.get(timeout=args.seconds * 10 + 120)
        child.join()
        p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
        worst = max(latencies) * 1000
        print(
            f"open loop, {args.rate:.0f} signed /milvus status per second for {args.seconds:.0f} s "
            f"({len(latencies)} requests, sent at {achieved:.1f}/s): ack latency from the scheduled time "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.0f} ms; {failures} not acknowledged with 200 "
            f"(target p99 < 100 ms, Slack's ceiling 3000 ms); wall {time.perf_counter() - started:.0f} s"
        )
        server.close()


if __name__ == "__main__":
    main()
