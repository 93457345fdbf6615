"""Benchmark of the bot's own front door (issue 2).

- ``milvus-chatops --help`` wall time, against ``python -c pass`` measured in the same run;
- ``serve`` time until /readyz answers 200, and its idle RSS;
- acknowledgement latency of signed ``/milvus status`` slash commands over HTTP with 32 concurrent
  clients (Slack's hard ceiling is 3 s), against GET /healthz under the same load as the baseline.

The load comes from ``wrk`` (Debian package; a C client, so the harness does not compete with the
bot for the GIL) when it is installed, else from an asyncio client in its own process.
Every slash command is a real request: the bot runs ``status`` against Milvus Lite for each one and
answers through the response_url, so the acks are measured while that work goes on.

Run: .venv/bin/python bench/bench_serve.py [--seconds 10] [--clients 32]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
COMMAND_TEXT = "status"
sys.path.insert(0, str(ROOT))

from tests.support.bot_server import BotServer  # noqa: E402
from tests.support.fake_slack import FakeSlack  # noqa: E402
from tests.support.slack_signing import slash_command_body  # noqa: E402


def wall(argv: list[str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _load_in_child(
    url: str, secret: str, response_url: str, requests: int, clients: int, slash: bool, out: Any
) -> None:
    """Runs in its own process so the load generator does not share a GIL with the fake Slack."""
    import asyncio

    from tests.support.slack_signing import sign

    async def run() -> list[float]:
        latencies: list[float] = []
        async with httpx.AsyncClient(base_url=url, timeout=10, limits=httpx.Limits(max_connections=clients)) as http:

            async def client(n: int) -> None:
                for _ in range(n):
                    started = time.perf_counter()
                    if slash:
                        body = slash_command_body(COMMAND_TEXT, user_id="ULOCALOPERATOR", response_url=response_url)
                        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body, secret)}
                        response = await http.post("/slack/events", content=body, headers=headers)
                    else:
                        response = await http.get("/healthz")
                    latencies.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text

            await asyncio.gather(*(client(requests // clients) for _ in range(clients)))
        return latencies

    out.put(asyncio.run(run()))


def load(url: str, secret: str, response_url: str, requests: int, clients: int, slash: bool) -> list[float]:
    import multiprocessing

    queue: Any = multiprocessing.Queue()
    child = multiprocessing.Process(
        target=_load_in_child, args=(url, secret, response_url, requests, clients, slash, queue)
    )
    child.start()
    latencies: list[float] = queue.get(timeout=600)
    child.join()
    return latencies


def wrk(url: str, clients: int, seconds: int, lua: Path | None) -> tuple[float, float, float, int]:
    """(p50 ms, p99 ms, requests/s, non-2xx) from wrk's --latency report."""
    import re
    import shutil

    argv = [shutil.which("wrk") or "wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency"]
    if lua:
        argv += ["-s", str(lua)]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return ms("50"), ms("99"), rps, int(bad.group(1)) if bad else 0


def signed_post_script(directory: Path, host: str, response_url: str, secret: str, count: int = 30_000) -> Path:
    """A wrk script posting ``count`` distinct signed bodies in turn: a signed request is accepted once
    (replays get 401), so one body repeated would measure refusals, not acks."""
    import json

    from tests.support.slack_signing import sign

    lines = ["local requests = {}"]
    for i in range(count):
        body = slash_command_body(COMMAND_TEXT, user_id="ULOCALOPERATOR", response_url=response_url)
        # A headers table replaces wrk's own, Host included (HTTP/1.1 servers refuse requests without it).
        headers = {"Host": host, "Content-Type": "application/x-www-form-urlencoded", **sign(body, secret)}
        request = f'wrk.format("POST", nil, {_lua_table(headers)}, {json.dumps(body.decode())})'
        lines.append(f"requests[{i + 1}] = {request}")
    lines += [
        "local n = 0",
        "request = function()",
        f"  n = n % {count} + 1",
        "  return requests[n]",
        "end",
    ]
    script = directory / "slash.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def _lua_table(headers: dict[str, str]) -> str:
    import json

    return "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()) + "}"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    baseline = wall([sys.executable, "-c", "pass"])
    help_time = wall([sys.executable, "-m", "bot", "--help"])
    print(
        f"--help: {help_time * 1000:.0f} ms median (python -c pass: {baseline * 1000:.0f} ms; "
        f"ratio {help_time / baseline:.1f}x); target < 500 ms"
    )

    with FakeSlack() as slack, tempfile.TemporaryDirectory() as tmp:
        server = BotServer(Path(tmp), slack.url, None, {"MILVUS_CHATOPS_LOG_LEVEL": "WARNING"})
        started = time.perf_counter()
        server.start()
        ready = time.perf_counter() - started
        assert server.proc is not None
        idle = rss_mib(server.proc.pid)
        print(f"serve: ready in {ready:.2f} s (target < 3 s); idle RSS {idle:.0f} MiB")

        # Warm up: the first status opens Milvus Lite (seconds); acks must not wait for it anyway.
        load(server.url, server.slack.secret, slack.response_url("warm"), args.clients, args.clients, True)
        import shutil

        if shutil.which("wrk"):
            host = server.url.removeprefix("http://")
            script = signed_post_script(Path(tmp), host, slack.response_url("b"), server.slack.secret)
            h50, h99, hrps, _ = wrk(server.url + "/healthz", args.clients, args.seconds, None)
            p50, p99, rps, bad = wrk(server.url + "/slack/events", args.clients, args.seconds, script)
            tool = f"wrk, {args.seconds} s"
            assert bad == 0, f"{bad} requests were not acknowledged with 2xx"
        else:
            health = load(server.url, server.slack.secret, "", args.requests, args.clients, False)
            acks = load(server.url, server.slack.secret, slack.response_url("b"), args.requests, args.clients, True)
            p50, p99 = percentile(acks, 0.5) * 1000, percentile(acks, 0.99) * 1000
            h50, h99 = percentile(health, 0.5) * 1000, percentile(health, 0.99) * 1000
            rps = hrps = float("nan")
            tool = f"asyncio client, {args.requests} requests"
        print(
            f"ack of signed /milvus {COMMAND_TEXT}, {args.clients} clients ({tool}): p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms, {rps:.0f} acks/s (target p99 < 100 ms, ceiling 3000 ms)"
        )
        print(
            f"baseline GET /healthz, same clients: p50 {h50:.1f} ms, p99 {h99:.1f} ms, {hrps:.0f} req/s; "
            f"ack/healthz p99 ratio {p99 / h99:.1f}x"
        )
        print(f"serve RSS after the load: {rss_mib(server.proc.pid):.0f} MiB")
        server.close()


if __name__ == "__main__":
    main()
