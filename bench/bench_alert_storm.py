"""Alert storm: 1,000 alerts in 100 groups delivered to `milvus-chatops serve` by webhook, as fast as
a few parallel senders can, the way Alertmanager does it (each group's notification lists all its
alerts so far, so a group of 10 alerts arrives as 10 growing notifications).

Measures, against the real server process (uvicorn, SQLite with synchronous=FULL, the outbox) and the
fake Slack API on loopback:
- webhook latency (p50 / p99 / max) — target p99 < 50 ms;
- time from the first webhook until the first critical group is in Slack — target < 2 s;
- total drain time (until every group's message shows all its alerts and the outbox is empty) against
  the minimum Slack's rate limit allows (1 post per second per channel, for the posts actually made);
- messages lost (groups missing or not showing their final state) and duplicated (a ref posted twice).

    .venv/bin/python bench/bench_alert_storm.py [--groups 100] [--alerts-per-group 10] [--senders 8]
    .venv/bin/python bench/bench_alert_storm.py --in-process   # the intake alone, without HTTP
    .venv/bin/python bench/bench_alert_storm.py --versus-alertmanager   # side by side, see below

``--versus-alertmanager``: the same storm (1,000 alerts in 100 groups, 20 critical, pushed into one
real Alertmanager in the first second) goes both to Alertmanager's own Slack receiver (slack_configs
with api_url at the fake Slack) and to `serve`; the fake Slack enforces
one post per second per channel with 429 + Retry-After. Prints for both: groups lost, time until every
group is visible (in any message or digest), first critical, messages and updates sent, 429s, and for
the bot the time from each critical group's first webhook to its first Slack call (p50/p99).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.commands.alerts.helpers import alert, notification  # noqa: E402
from tests.support.bot_server import BotServer  # noqa: E402
from tests.support.fake_slack import FakeSlack  # noqa: E402

CONFIG = """
environments:
  prod:
    milvus: {uri: "http://127.0.0.1:9"}
channels:
  ops: C0OPS
  alerts: {critical: C0CRIT, warning: C0WARN, default: C0INFO}
access:
  - {role: operator, users: [U0OPERATOR]}
"""
CHANNEL = {"critical": "C0CRIT", "warning": "C0WARN", "info": "C0INFO"}


def wait_until_idle(bot: BotServer, *, busy_below: float = 0.05, timeout: float = 60.0) -> None:
    """Until the bot's process has used under ``busy_below`` of a CPU for a whole second: start-up
    work such as the chart warm-up (matplotlib's import) would otherwise compete with the storm."""
    assert bot.proc is not None
    stat = Path(f"/proc/{bot.proc.pid}/stat")
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    deadline = time.monotonic() + timeout
    before = cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = cpu_seconds()
        if now - before < busy_below:
            return
        before = now
    raise SystemExit(f"the bot stayed busy for {timeout:.0f} s after start-up; not measuring a storm on top of it")


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)


def isolate(bot: BotServer, *others: int) -> str:
    """The bot gets a CPU of its own; Alertmanager, the fake Slack and this script share the rest.

    In production Slack and Alertmanager run elsewhere; here they share two cores with the bot, and
    Alertmanager's own receiver retrying hundreds of 429s would otherwise be measured as bot latency.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not isolated (one CPU)"
    assert bot.proc is not None
    pin(bot.proc.pid, {cpus[-1]})
    for pid in (os.getpid(), *others):
        pin(pid, set(cpus[:-1]))
    return f"bot on CPU {cpus[-1]}, Alertmanager, fake Slack and this script on CPU {','.join(map(str, cpus[:-1]))}"


def severity_for(group: int) -> str:
    # 20 critical, 40 warning, 40 info per 100 groups, spread through the storm.
    slot = group % 5
    return "critical" if slot == 0 else "warning" if slot in (1, 2) else "info"


def build_storm(groups: int, per_group: int) -> list[tuple[int, dict]]:
    """Round-robin over groups so every group grows through the storm, as in a real outage."""
    alerts = {
        g: [
            alert(f"StormGroup{g:03d}", severity=severity_for(g), environment="prod", pod=f"pod-{i}",
                  starts=f"2026-11-25T12:{g % 60:02d}:{i:02d}Z")
            for i in range(per_group)
        ]
        for g in range(groups)
    }
    storm = []
    for size in range(1, per_group + 1):
        for g in range(groups):
            storm.append((g, notification(alerts[g][:size], group_by=("alertname",))))
    return storm


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--alerts-per-group", type=int, default=10)
    parser.add_argument("--senders", type=int, default=8, help="parallel webhook senders")
    parser.add_argument("--redeliver", type=float, default=0.1, help="share of notifications sent twice")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--in-process", action="store_true",
        help="call AlertIntake.handle directly (worker and outbox running, all commands imported as in "
             "serve): the intake's own latency without the HTTP server; then exit",
    )
    parser.add_argument("--versus-alertmanager", action="store_true",
                        help="side by side with Alertmanager's own Slack receiver (see the module doc)")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="with --versus-alertmanager: leave the bot on the CPUs it shares with "
                             "Alertmanager and the fake Slack")
    parser.add_argument("--stages", action="store_true",
                        help="with --versus-alertmanager: per critical group, when it was stored, worked, "
                             "queued and first shown in Slack")
    args = parser.parse_args()
    if args.in_process:
        return in_process(args)
    if args.versus_alertmanager:
        return versus_alertmanager(args)

    import gc

    # The senders live in this process next to FakeSlack: keep our own GC pauses out of the timings.
    gc.freeze()
    storm = build_storm(args.groups, args.alerts_per_group)
    redeliveries = storm[:: max(1, int(1 / args.redeliver))] if args.redeliver else []
    total_alerts = args.groups * args.alerts_per_group
    slack = FakeSlack().start()
    with tempfile.TemporaryDirectory(prefix="alert-storm-") as tmp:
        bot = BotServer(Path(tmp), slack.url, CONFIG, {"MILVUS_CHATOPS_LOG_LEVEL": "WARNING"})
        bot.start(timeout=60)
        latencies: list[float] = []
        answers: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()
        local = threading.local()

        def send(item: tuple[int, dict]) -> None:
            import httpx

            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=bot.url, timeout=30)
            body = json.dumps(item[1]).encode()
            started = time.perf_counter()
            response = client.post(
                "/alertmanager", content=body,
                headers={"Authorization": "Bearer test-webhook-token-0123456789", "Content-Type": "application/json"},
            )
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                answers[f"{response.status_code} {response.json().get('status', response.json().get('error'))}"] += 1

        try:
            # Measure the steady state, not start-up: let the server's background threads (outbox,
            # alert worker, scheduler) settle and its HTTP path warm up before the storm.
            wait_until_idle(bot)
            for _ in range(200):
                bot.http.get("/healthz")
                bot.http.post("/alertmanager", content=b"{}")  # 401: the HTTP path without the store
            storm_started = time.time()
            with ThreadPoolExecutor(args.senders) as pool:
                list(pool.map(send, storm))
                list(pool.map(send, redeliveries))
            storm_seconds = time.time() - storm_started

            def first_post_at(channel: str) -> float | None:
                calls = [c for c in slack.calls("chat.postMessage") if c.ok and c.params.get("channel") == channel]
                return min((c.at for c in calls), default=None)

            expected = {
                f"StormGroup{g:03d}": (CHANNEL[severity_for(g)], f"FIRING ({args.alerts_per_group})")
                for g in range(args.groups)
            }

            def final_state() -> tuple[int, int]:
                shown = set()
                digests = "\n".join(m.all_text() for m in slack.messages() if (m.text or "").startswith("[ALERT STORM"))
                for message in slack.messages():
                    text = message.text or ""
                    name = text.split("] ", 1)[1].split(" ", 1)[0] if "] " in text else ""
                    if name in expected and expected[name][1].replace(" (", ":").rstrip(")") in text:
                        shown.add(name)
                # In a storm most groups are lines of the channel's digest instead of messages.
                for name in expected:
                    if f"*{name}* · prod · {args.alerts_per_group} firing" in digests:
                        shown.add(name)
                return len(shown), len(slack.messages())

            deadline = time.time() + args.timeout
            while time.time() < deadline:
                shown, _ = final_state()
                if shown == args.groups:
                    break
                time.sleep(0.2)
            drained_at = time.time()
            # Let anything still queued (thread notes) go out, then look for duplicates.
            quiet_since = time.time()
            seen = len(slack.calls())
            while time.time() - quiet_since < 3 and time.time() < deadline:
                time.sleep(0.5)
                if len(slack.calls()) != seen:
                    seen, quiet_since = len(slack.calls()), time.time()
            all_done_at = quiet_since
        finally:
            bot.close()
            slack.stop()

    posts = [c for c in slack.calls("chat.postMessage") if c.ok]
    refs = collections.Counter()
    for call in posts:
        metadata = call.params.get("metadata")
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        refs[metadata["event_payload"]["ref"]] += 1
    duplicated = sum(n - 1 for n in refs.values() if n > 1)
    top_level = collections.Counter(
        (m.text or "").split("] ", 1)[1].split(" ", 1)[0] for m in slack.messages()
        if "] " in (m.text or "") and not (m.text or "").startswith("[ALERT STORM")
    )
    duplicated += sum(n - 1 for n in top_level.values() if n > 1)
    shown, _ = final_state()
    lost = args.groups - shown
    per_channel = collections.Counter(c.params.get("channel") for c in posts)
    rate_minimum = max(per_channel.values()) * 1.0 if per_channel else 0.0
    group_minimum = max(collections.Counter(CHANNEL[severity_for(g)] for g in range(args.groups)).values())
    first_critical = first_post_at("C0CRIT")
    updates = len([c for c in slack.calls("chat.update") if c.ok])

    ms = [x * 1000 for x in latencies]
    print(f"alert storm: {total_alerts} alerts in {args.groups} groups, {len(storm)} webhooks "
          f"+ {len(redeliveries)} redeliveries, {args.senders} senders")
    print(f"webhook answers: {dict(answers)}")
    print(f"webhook latency ms: p50 {statistics.median(ms):.1f}  p99 {percentile(ms, 0.99):.1f}  "
          f"max {max(ms):.1f}  (target p99 < 50)")
    print(f"webhooks delivered in {storm_seconds:.2f} s ({len(latencies) / storm_seconds:.0f}/s)")
    if first_critical is not None:
        print(f"first critical group in Slack after {first_critical - storm_started:.2f} s (target < 2)")
    else:
        print("first critical group in Slack: never")
    print(f"drain: every group's final state in Slack after {drained_at - storm_started:.1f} s; "
          f"all traffic done after {all_done_at - storm_started:.1f} s")
    print(f"posts per channel: {dict(per_channel)} (group messages + thread notes); chat.update calls: {updates}")
    print(f"rate-limit minimum for these posts: {rate_minimum:.0f} s (busiest channel at 1/s); "
          f"for one post per group only: {group_minimum} s")
    print(f"lost: {lost}  duplicated: {duplicated}")
    return 0 if lost == 0 and duplicated == 0 else 1


def in_process(args: argparse.Namespace) -> int:
    import gc

    from commands.alerts.worker import AlertWorker
    from tests.commands.alerts.helpers import deliver, make_runtime

    storm = build_storm(args.groups, args.alerts_per_group)
    bodies = [json.dumps(n).encode() for _, n in storm]
    slack = FakeSlack().start()
    with tempfile.TemporaryDirectory(prefix="alert-storm-") as tmp:
        runtime, outbox = make_runtime(Path(tmp), slack.api_url)
        worker = AlertWorker(runtime)
        import gc

        gc.freeze()  # as `serve` does at start-up (bot/server.py), so the in-process figure is comparable
        outbox.start()
        worker.start()
        latencies: list[float] = []

        def send(body: bytes) -> None:
            started = time.perf_counter()
            code, _ = deliver(runtime, body)
            latencies.append(time.perf_counter() - started)
            assert code == 200

        started = time.perf_counter()
        with ThreadPoolExecutor(args.senders) as pool:
            list(pool.map(send, bodies))
        seconds = time.perf_counter() - started
        worker.stop()
        outbox.stop()
    slack.stop()
    ms = [x * 1000 for x in latencies]
    print(f"in-process intake ({len(bodies)} webhooks, {args.senders} senders, worker + outbox running, "
          f"gc frozen: {gc.get_freeze_count() > 0}): p50 {statistics.median(ms):.1f}  "
          f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f} ms; {len(bodies) / seconds:.0f} webhooks/s")
    return 0


# -- side by side with Alertmanager's own Slack receiver ----------------------------------------------

VERSUS_CONFIG = """
environments:
  prod:
    milvus: {uri: "http://127.0.0.1:9"}
channels:
  ops: C0OPS
  alerts: {critical: C0CRIT, warning: C0WARN, default: C0WARN}
access:
  - {role: operator, users: [U0OPERATOR]}
"""
BOT_CHANNELS = ("C0CRIT", "C0WARN")
AM_CHANNELS = ("AMCRIT", "AMWARN")
WEBHOOK_TOKEN = "test-webhook-token-0123456789"


def versus_severity(group: int) -> str:
    return "critical" if group % 5 == 0 else "warning"  # 20 critical, 80 warning per 100 groups


def versus_am_config(webhook_url: str, slack_api_url: str) -> str:
    def slack(channel: str) -> str:
        return f"""
    slack_configs:
      - api_url: {slack_api_url}/chat.postMessage
        channel: "{channel}"
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials: xoxb-test}}"""

    return f"""
global:
  resolve_timeout: 5m
route:
  receiver: bot
  group_by: [alertname, environment]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
  routes:
    - receiver: slack-critical
      matchers: ['severity="critical"']
      continue: true
    - receiver: slack-warning
      matchers: ['severity="warning"']
      continue: true
    - receiver: bot
receivers:
  - name: bot
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials: {WEBHOOK_TOKEN}}}
  - name: slack-critical{slack(AM_CHANNELS[0])}
  - name: slack-warning{slack(AM_CHANNELS[1])}
"""


def _first_arrivals(state_db: Path) -> dict[str, float]:
    """When each group's first webhook reached the bot: its intake's own timestamp, read from the
    bot's state store after the run (a proxy in this process would time its own GIL, not the bot)."""
    import datetime as dt
    import sqlite3

    with sqlite3.connect(state_db) as db:
        rows = db.execute(
            "SELECT json_extract(payload, '$.commonLabels.alertname'), MIN(received_at) "
            "FROM alert_notifications GROUP BY 1"
        ).fetchall()
    return {
        name: dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC).timestamp() for name, at in rows if name and at
    }


def _stages(state_db: Path) -> dict[str, dict[str, float]]:
    """Per group (alert name): when its first notification was stored, when the worker finished it,
    and when its own message's post was queued in the outbox; epoch seconds, from the bot's store."""
    import datetime as dt
    import sqlite3

    def epoch(at: str | None) -> float | None:
        return dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC).timestamp() if at else None

    stages: dict[str, dict[str, float]] = {}
    with sqlite3.connect(state_db) as db:
        for name, gid, received, processed in db.execute(
            "SELECT json_extract(payload, '$.commonLabels.alertname'), group_id, received_at, processed_at "
            "FROM alert_notifications ORDER BY id"
        ):
            if name in stages:
                continue
            stages[name] = {"stored": epoch(received) or 0.0, "worked": epoch(processed) or 0.0}
            queued = db.execute(
                "SELECT MIN(created_at) FROM outbox WHERE op = 'post' AND ref = ?", (f"alert-group:{gid}",)
            ).fetchone()[0]
            if queued:
                stages[name]["queued"] = epoch(queued) or 0.0
    return stages


def _am_push(url: str, alerts: list[dict]) -> None:
    import httpx

    for start in range(0, len(alerts), 100):
        httpx.post(f"{url}/api/v2/alerts", json=alerts[start : start + 100], timeout=10).raise_for_status()


def _storm_alerts(groups: int, per_group: int, *, ended: bool = False) -> list[dict]:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    return [
        {
            "labels": {"alertname": f"StormGroup{g:03d}", "environment": "prod", "severity": versus_severity(g),
                       "pod": f"pod-{i}"},
            "annotations": {"summary": f"StormGroup{g:03d} on pod-{i}"},
            "startsAt": (now - dt.timedelta(seconds=30)).isoformat(),
            "endsAt": (now if ended else now + dt.timedelta(hours=1)).isoformat(),
        }
        for g in range(groups) for i in range(per_group)
    ]


def _visible(slack: FakeSlack, channels: tuple[str, ...], names: list[str], *, resolved: bool = False
             ) -> dict[str, float]:
    """Name -> when a Slack call that Slack accepted first showed the group (as resolved, if asked)."""
    seen: dict[str, float] = {}
    for call in slack.calls():
        if not call.ok or call.method not in ("chat.postMessage", "chat.update"):
            continue
        channel = call.params.get("channel")
        if channel not in channels:
            continue
        text = json.dumps([call.params.get("text"), call.params.get("blocks"), call.params.get("attachments")])
        for name in names:
            if name in seen or name not in text:
                continue
            if resolved:
                shown = f"[RESOLVED] {name}" in text or any(f"~{s}~ *{name}*" in text for s in ("warning", "critical"))
                if not shown:
                    continue
            seen[name] = call.at
    return seen


def versus_alertmanager(args: argparse.Namespace) -> int:
    import gc

    from tests.support.servers import start_alertmanager

    gc.freeze()
    names = [f"StormGroup{g:03d}" for g in range(args.groups)]
    critical = [n for g, n in enumerate(names) if versus_severity(g) == "critical"]
    slack = FakeSlack().start()
    slack.limit_posts(per_second=1)
    with tempfile.TemporaryDirectory(prefix="alert-storm-vs-") as tmp:
        (Path(tmp) / "bot").mkdir()
        bot = BotServer(Path(tmp) / "bot", slack.url, VERSUS_CONFIG, {"MILVUS_CHATOPS_LOG_LEVEL": "WARNING"})
        bot.start(timeout=60)
        am = start_alertmanager(Path(tmp) / "am", versus_am_config(f"{bot.url}/alertmanager", slack.api_url))
        try:
            placement = isolate(bot, am.process.pid) if args.isolate else "not isolated"
            wait_until_idle(bot)  # start-up work (warm-ups) must not be measured as storm latency
            started = time.time()
            _am_push(am.url, _storm_alerts(args.groups, args.alerts_per_group))
            pushed = time.time() - started
            deadline = started + args.timeout
            while time.time() < deadline:
                if len(_visible(slack, BOT_CHANNELS, names)) == len(names) and time.time() - started > 30:
                    break
                time.sleep(0.5)
            # Alertmanager's receiver gets every flush it will ever make within a few group intervals.
            while time.time() < min(deadline, started + 40):
                time.sleep(0.5)
            storm_calls = len(slack.calls())
            resolve_started = time.time()
            _am_push(am.url, _storm_alerts(args.groups, args.alerts_per_group, ended=True))
            while time.time() < resolve_started + 90:
                if len(_visible(slack, BOT_CHANNELS, names, resolved=True)) == len(names) and \
                        "Alert storm over" in json.dumps([c.params for c in slack.calls("chat.update")[-20:]]):
                    break
                time.sleep(0.5)
            time.sleep(8)  # Alertmanager's resolved flushes (group_interval 5 s)
        finally:
            am.stop()
            bot.close()
            slack.stop()
        first_arrival = _first_arrivals(Path(tmp) / "bot" / "state.db")
        stages = _stages(Path(tmp) / "bot" / "state.db")

    def side(channels: tuple[str, ...]) -> dict[str, object]:
        seen = _visible(slack, channels, names)
        calls = [c for c in slack.calls() if c.params.get("channel") in channels]
        storm_only = [c for c in slack.calls()[:storm_calls] if c.params.get("channel") in channels]
        first_critical = min((seen[n] for n in critical if n in seen), default=None)
        return {
            "lost": len(names) - len(seen),
            "all_visible": (max(seen.values()) - started) if len(seen) == len(names) else None,
            "first_critical": (first_critical - started) if first_critical else None,
            "posts": sum(1 for c in storm_only if c.method == "chat.postMessage" and c.ok),
            "updates": sum(1 for c in storm_only if c.method == "chat.update" and c.ok),
            "429s": sum(1 for c in calls if c.http_status == 429),
            "resolved": len(_visible(slack, channels, names, resolved=True)),
            "top_level": len([m for m in slack.messages() if m.channel in channels and not m.thread_ts]),
        }

    bot_side, am_side = side(BOT_CHANNELS), side(AM_CHANNELS)
    bot_seen = _visible(slack, BOT_CHANNELS, names)
    latencies = sorted(
        (bot_seen[n] - first_arrival[n]) * 1000 for n in critical if n in bot_seen and n in first_arrival
    )

    def fmt(value: object, unit: str = "s") -> str:
        return "never" if value is None else f"{value:.2f} {unit}" if isinstance(value, float) else str(value)

    print(f"alert storm side by side: {args.groups * args.alerts_per_group} alerts in {args.groups} groups "
          f"({len(critical)} critical) pushed into one Alertmanager in {pushed:.2f} s; fake Slack at 1 post/s "
          f"per channel with 429 + Retry-After; {placement}")
    print(f"{'':38}{'Alertmanager receiver':>24}{'milvus-chatops':>18}")
    rows = [
        ("groups lost", "lost", ""),
        ("every group visible after", "all_visible", "s"),
        ("first critical group in Slack after", "first_critical", "s"),
        ("messages posted (storm)", "posts", ""),
        ("chat.update calls (storm)", "updates", ""),
        ("429s received", "429s", ""),
        ("groups shown resolved", "resolved", ""),
        ("top-level messages in the channels", "top_level", ""),
    ]
    for label, key, unit in rows:
        print(f"{label:38}{fmt(am_side[key], unit):>24}{fmt(bot_side[key], unit):>18}")
    arrivals = [first_arrival[n] for n in critical if n in first_arrival]
    if arrivals:
        print(f"bot: first critical webhook reached it {min(arrivals) - started:.2f} s after the push began")
    if latencies:
        print(f"bot, critical group's first webhook -> first Slack call showing it: p50 "
              f"{statistics.median(latencies):.1f} ms  p99 {percentile(latencies, 0.99):.1f} ms  "
              f"max {max(latencies):.1f} ms  ({len(latencies)} groups; target p99 < 50 ms)")
    if args.stages:
        # Where the time goes for each critical group: stored -> worker done -> own post queued ->
        # first Slack call showing it (a post of its message, or the digest's post or update).
        first_call = {}
        for call in slack.calls():
            if call.ok and call.params.get("channel") in BOT_CHANNELS:
                text = json.dumps([call.params.get("text"), call.params.get("blocks")])
                for n in critical:
                    if n not in first_call and n in text:
                        first_call[n] = (call.at, call.method, (call.params.get("text") or "")[:24])
        print("critical group stages, ms after its first webhook was stored: worker done / own post queued / "
              "first Slack call (method, message)")
        for n in sorted(critical, key=lambda n: stages.get(n, {}).get("stored", 0)):
            st = stages.get(n)
            if not st:
                continue
            base = st["stored"]

            def ms(at: float | None, base: float = base) -> str:
                return "-" if at is None else f"{(at - base) * 1000:7.0f}"

            call = first_call.get(n)
            print(f"  {n} stored +{(base - started) * 1000:5.0f} ms: {ms(st.get('worked'))} {ms(st.get('queued'))} "
                  f"{ms(call[0] if call else None)} {call[1] if call else ''} {call[2] if call else ''}")
    return 0 if bot_side["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
