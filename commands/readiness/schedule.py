"""Load tests and drills on a schedule (``environments.<env>.schedules``), like backups.

A scheduled run was approved when the schedule was written into the reviewed config, so it does not
ask for approval again; production caps on load tests still apply. Results go to the ops channel and
into the same records the checklist reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from bot import blocks as bk
from bot.reply import Message
from bot.scheduler import JobSpec

if TYPE_CHECKING:
    from bot.config import Config, Environment
    from bot.context import Runtime


def readiness_jobs(config: Config) -> Iterable[JobSpec]:
    for name, env in config.environments.items():
        s = env.schedules
        for task, cron in (("loadtest", s.loadtest), ("drill_restore", s.drill_restore), ("drill_pod", s.drill_pod)):
            if cron:
                yield JobSpec(job_id=f"{task}:{name}", task=task, cron=cron, timezone=config.reports.timezone,
                              kwargs={"env": name})


def _announce(runtime: Runtime, env: Environment, text: str) -> None:
    channel = runtime.config.channels_for(env).ops
    if channel:
        runtime.messenger.post(channel, Message(text, [bk.section(bk.escape(text))]))


def _run(runtime: Runtime, env_name: str, what: str, fn: Callable[[Environment], str]) -> str:
    env = runtime.environment(env_name)
    try:
        summary = fn(env)
    except Exception as exc:
        reason = getattr(exc, "message", None) or "unexpected error; see the bot's log"
        _announce(runtime, env, f"Scheduled {what} of {env_name} failed: {reason}")
        raise
    _announce(runtime, env, summary)
    return summary


def scheduled_loadtest(runtime: Runtime, *, env: str, **_: Any) -> str:
    from commands.readiness.loadtest import LoadtestArgs, make_plan, run_loadtest

    def go(environment: Environment) -> str:
        args = LoadtestArgs.model_validate({"collection": environment.schedules.loadtest_collection,
                                            "duration": environment.schedules.loadtest_duration})
        return run_loadtest(runtime, environment, make_plan(environment, args), user="scheduler",
                            trigger="schedule").text

    return _run(runtime, env, "load test", go)


def scheduled_restore_drill(runtime: Runtime, *, env: str, **_: Any) -> str:
    from commands.readiness.drills import restore_reply, run_restore_drill

    def go(environment: Environment) -> str:
        return restore_reply(run_restore_drill(runtime, environment, None, user="scheduler",
                                                trigger="schedule")).text

    return _run(runtime, env, "restore drill", go)


def scheduled_pod_drill(runtime: Runtime, *, env: str, **_: Any) -> str:
    from commands.readiness.drills import pod_reply, run_pod_drill

    def go(environment: Environment) -> str:
        data = run_pod_drill(runtime, environment, environment.schedules.drill_pod_component, None, 600.0,
                             user="scheduler", trigger="schedule")
        return pod_reply(data).text

    return _run(runtime, env, "pod drill", go)
