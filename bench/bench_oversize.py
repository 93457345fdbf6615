"""Memory of `serve` under oversize requests (issue 11): 100 requests each declaring 50 MB, sent by
raw sockets the way an attacker would (no client library politely stopping at a 413).

Three kinds, in turns: unsigned (refused from the headers, 401), with a fresh-looking signature
header (refused from Content-Length, 413) and chunked with no length (cut off once past the 1 MiB
cap, 413). Each sender keeps writing until the server closes on it, so what the server reads is what
it chose to read. Prints idle RSS, RSS after the 100 requests, the ratio, the bytes the server took
before refusing, and how much the log grew.

    .venv/bin/python bench/bench_oversize.py [--requests 100] [--declared-mb 50]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_serve import rss_mib  # noqa: E402
from tests.support.bot_server import SIGNING_SECRET, BotServer  # noqa: E402
from tests.support.fake_slack import FakeSlack  # noqa: E402
from tests.support.slack_signing import sign  # noqa: E402

CHUNK = b"x" * 65536


def attack(url: str, kind: str, declared: int) -> tuple[int, str]:
    """(bytes the server accepted before closing, status line)."""
    parsed = urlparse(url)
    headers = ["POST /slack/events HTTP/1.1", "Host: bot", "Content-Type: application/x-www-form-urlencoded"]
    if kind != "unsigned":
        headers += [f"{k}: {v}" for k, v in sign(b"not this body", SIGNING_SECRET).items()]
    headers.append("Transfer-Encoding: chunked" if kind == "chunked" else f"Content-Length: {declared}")
    sent = 0
    with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        try:
            while sent < declared:
                piece = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if kind == "chunked" else CHUNK
                sock.sendall(piece)
                sent += len(CHUNK)
        except OSError:
            pass  # the server closed on us: that is the point
        try:
            status = sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
        except OSError:
            status = "(connection reset)"
    return sent, status


def settled_rss(pid: int, timeout: float = 30.0) -> float:
    """RSS once serve's background warm-up (matplotlib and friends, ~15 MiB) has finished: no change
    over two seconds. Taken too early, the warm-up would be counted against the requests."""
    deadline = time.monotonic() + timeout
    last = rss_mib(pid)
    while time.monotonic() < deadline:
        time.sleep(2)
        now = rss_mib(pid)
        if abs(now - last) < 0.5:
            return now
        last = now
    return last


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--declared-mb", type=int, default=50)
    args = parser.parse_args()
    declared = args.declared_mb * 1024 * 1024
    with FakeSlack() as slack, tempfile.TemporaryDirectory() as tmp:
        server = BotServer(Path(tmp), slack.url, None, {"MILVUS_CHATOPS_LOG_LEVEL": "INFO"})
        server.start()
        assert server.proc is not None
        idle = settled_rss(server.proc.pid)
        log_before = server.log_path.stat().st_size
        kinds = ["unsigned", "signed-header", "chunked"]
        accepted: dict[str, list[int]] = {k: [] for k in kinds}
        statuses: dict[str, set[str]] = {k: set() for k in kinds}
        started = time.perf_counter()
        for i in range(args.requests):
            kind = kinds[i % 3]
            sent, status = attack(server.url, kind, declared)
            accepted[kind].append(sent)
            statuses[kind].add(status)
        elapsed = time.perf_counter() - started
        after = rss_mib(server.proc.pid)
        log_growth = server.log_path.stat().st_size - log_before
        healthy = server.http.get("/healthz").status_code
        print(f"{args.requests} requests declaring {args.declared_mb} MB each, {elapsed:.1f} s")
        for kind in kinds:
            mib = max(accepted[kind]) / 1024 / 1024
            print(f"  {kind:13s}: answers {sorted(statuses[kind])}; at most {mib:.1f} MiB written before the "
                  "server closed (kernel socket buffers included)")
        print(f"serve RSS: idle {idle:.0f} MiB, after {after:.0f} MiB, ratio {after / idle:.2f} "
              f"(target <= 1.1); log grew {log_growth / 1024:.1f} KiB; /healthz {healthy}")
        server.close()


if __name__ == "__main__":
    main()
