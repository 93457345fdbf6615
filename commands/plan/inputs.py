"""What `/milvus plan` is given: the argument model, the form with the same fields, and how either
becomes a ``PlanInput`` (with defaults taken from the environment: Milvus line, backups kept, prices).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field

from bot.args import positional
from bot.config import Environment
from bot.context import Context
from commands.plan.sizing import IndexType, MessageQueue, PlanInput, PlanInputError, parse_plan_input

MODAL_CALLBACK = "plan_modal"

# Argument name -> PlanInput field, where they differ (``--growth 5M/month``).
_RENAMED = {"growth": "growth_per_month"}


# Fields whose values are passed through as typed by the user; PlanInput reads suffixes itself.
_PLAN_FIELDS = (
    "vectors", "dim", "index", "m", "pq_m", "nbits", "nlist", "refine", "max_degree", "with_raw_data",
    "scalar_bytes", "scalars_mmap", "replicas", "segment_size_mb", "milvus_version", "mq", "growth", "months",
    "target_qps", "backup_retention_copies",
)  # fmt: skip


class PlanArgs(BaseModel):
    # Strings, not ints: PlanInput validates them and says what is wrong in one sentence per field.
    env: str | None = positional(None, description="environment to plan for (prices, backups, deploy button)")
    vectors: str | None = Field(None, description="number of vectors, e.g. 100M")
    dim: str | None = Field(None, description="vector dimension (bits for binary indexes)")
    index: str | None = Field(
        None,
        description="FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, IVF_RABITQ, HNSW, DISKANN, SCANN, BIN_FLAT, BIN_IVF_FLAT"
        " (default HNSW)",
    )
    m: str | None = Field(None, description="HNSW M (default 30)")
    pq_m: str | None = Field(None, description="IVF_PQ m, a divisor of dim (default dim/2)")
    nbits: str | None = Field(None, description="IVF_PQ bits per code (default 8)")
    nlist: str | None = Field(None, description="IVF nlist (default 128)")
    refine: str | None = Field(None, description="IVF_RABITQ refine: none, sq6, sq8, fp16, bf16, sq32")
    max_degree: str | None = Field(None, description="DISKANN max_degree (default 56)")
    with_raw_data: bool | None = Field(None, description="SCANN keeps raw vectors (--no-with-raw-data: not)")
    scalar_bytes: str | None = Field(None, description="average bytes of scalar fields per row")
    scalars_mmap: bool | None = Field(None, description="scalar fields memory-mapped from local disk")
    replicas: str | None = Field(None, description="in-memory replicas (default 1)")
    segment_size_mb: str | None = Field(None, description="segment size: 512, 1024 or 2048 MB (default 1024)")
    milvus_version: str | None = Field(None, description="2.5 or 2.6 (default: the environment's, else 2.6)")
    mq: str | None = Field(None, description="message queue: pulsar, kafka, woodpecker")
    growth: str | None = Field(None, description="new vectors per month, e.g. 5M/month")
    months: str | None = Field(None, description="planning horizon in months (0..120)")
    target_qps: str | None = Field(None, description="target search QPS (recorded, not modelled)")
    backup_retention_copies: str | None = Field(
        None, description="backups kept in object storage (default: from the environment's retention)"
    )


def given_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """Only what the user filled in; blank form fields are not given."""
    return {k: v for k, v in raw.items() if v is not None and not (isinstance(v, str) and not v.strip())}


def plan_id_for(inp: PlanInput) -> str:
    """``p-`` + 8 hex of the canonical input: the same plan twice gets the same id."""
    canonical = json.dumps(inp.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "p-" + hashlib.sha256(canonical.encode()).hexdigest()[:8]


def retention_copies(env: Environment) -> tuple[int, str] | None:
    """How many backups the environment's retention keeps, and how that was worked out.

    The backup capability keeps a backup while it is among the newest ``keep_last`` OR younger than
    ``days``, so the count is the larger of the two; ``days`` turns into a count through the schedule.
    """
    backup = env.backup
    if backup is None:
        return None
    keep_last, days = backup.retention.keep_last, backup.retention.days
    by_days = 0
    why = []
    if days and backup.schedule:
        by_days = _runs_in_days(backup.schedule, days)
        why.append(f"{by_days} runs of `{backup.schedule}` in {days} days")
    elif days:
        why.append(f"{days} days with no schedule, counted as one backup a day")
        by_days = days
    if keep_last:
        why.append(f"keep_last {keep_last}")
    copies = max(keep_last or 0, by_days)
    if not copies:
        return None
    return copies, f"{copies} from the retention of `{env.name}` (" + "; ".join(why) + ")"


def _runs_in_days(cron: str, days: int) -> int:
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(cron, timezone="UTC")
    except ValueError:
        return days
    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # any fixed Monday: counts are the same every week
    end = start + dt.timedelta(days=days)
    count, previous, now = 0, None, start
    while count < 1000:  # PlanInput accepts up to 1,000 backups
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or fire >= end:
            break
        count += 1
        previous, now = fire, fire + dt.timedelta(seconds=1)
    return count


def build_input(ctx: Context, raw: dict[str, Any], env: Environment | None) -> tuple[PlanInput, list[str]]:
    """Turn the user's fields into a ``PlanInput``; also return where defaults came from."""
    given = given_fields(raw)
    fields: dict[str, Any] = {}
    for name in _PLAN_FIELDS:
        if name in given:
            fields[_RENAMED.get(name, name)] = given[name]
    sources: list[str] = []
    if env is not None and "milvus_version" not in fields and env.helm is not None:
        line = ".".join(env.helm.milvus_version.lstrip("vV").split(".")[:2])
        if line in ("2.5", "2.6"):
            fields["milvus_version"] = line
            sources.append(f"Milvus {line} from `{env.name}`'s Helm settings ({env.helm.milvus_version})")
    if env is not None and "backup_retention_copies" not in fields:
        kept = retention_copies(env)
        if kept:
            fields["backup_retention_copies"] = kept[0]
            sources.append(f"backups kept: {kept[1]}")
    if ctx.config.prices is not None:
        fields["prices"] = ctx.config.prices.model_dump()
        sources.append(f"prices from the config ({ctx.config.prices.currency})")
    return parse_plan_input(fields), sources


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": value}


def _text_input(
    name: str, label: str, hint: str, initial: Any = None, *, optional: bool = True, placeholder: str = ""
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": name}
    if initial not in (None, ""):
        element["initial_value"] = str(initial)
    if placeholder:
        element["placeholder"] = {"type": "plain_text", "text": placeholder}
    return {
        "type": "input",
        "block_id": name,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "hint": {"type": "plain_text", "text": hint},
        "element": element,
    }


def _select(name: str, label: str, options: list[tuple[str, str]], initial: str | None) -> dict[str, Any]:
    opts = [_option(text, value) for text, value in options]
    element: dict[str, Any] = {"type": "static_select", "action_id": name, "options": opts}
    chosen = next((o for o in opts if o["value"] == initial), None)
    if chosen:
        element["initial_option"] = chosen
    return {
        "type": "input",
        "block_id": name,
        "optional": True,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }


def plan_modal(prefill: dict[str, Any], env: str | None = None) -> dict[str, Any]:
    """The form behind ``/milvus plan``; ``prefill`` holds PlanInput field names and values."""
    v = {k: val for k, val in prefill.items() if val is not None}
    index_params = " ".join(
        f"{k}={str(v[k]).lower() if isinstance(v[k], bool) else v[k]}"
        for k in ("m", "pq_m", "nbits", "nlist", "refine", "max_degree", "with_raw_data")
        if k in v
    )
    growth = v.get("growth_per_month", v.get("growth"))
    blocks = [
        _text_input(
            "vectors",
            "Vectors",
            "How many vectors today, e.g. 100M or 1.5B.",
            v.get("vectors"),
            optional=False,
            placeholder="100M",
        ),
        _text_input(
            "dim", "Dimension", "2..32768; bits for binary indexes.", v.get("dim"), optional=False, placeholder="768"
        ),
        _select("index", "Index type", [(i.value, i.value) for i in IndexType], str(v.get("index") or "HNSW")),
        _text_input(
            "index_params",
            "Index parameters",
            "e.g. m=16 (HNSW), nlist=1024, pq_m=96 nbits=8 (IVF_PQ), refine=sq8 (IVF_RABITQ),"
            " max_degree=56 (DISKANN), with_raw_data=false (SCANN).",
            index_params,
            placeholder="m=16",
        ),
        _text_input("replicas", "Replicas", "In-memory replicas (replica_number).", v.get("replicas"), placeholder="1"),
        _text_input("growth", "Growth per month", "New vectors per month, e.g. 5M.", growth, placeholder="0"),
        _text_input("months", "Horizon (months)", "0..120", v.get("months"), placeholder="12"),
        _select("milvus_version", "Milvus version", [("2.6", "2.6"), ("2.5", "2.5")], v.get("milvus_version")),
        _select("mq", "Message queue", [(m.value, m.value) for m in MessageQueue], v.get("mq")),
        _select(
            "segment_size_mb",
            "Segment size",
            [("512 MB", "512"), ("1024 MB", "1024"), ("2048 MB", "2048")],
            str(v.get("segment_size_mb") or "1024"),
        ),
        _text_input(
            "scalar_bytes",
            "Scalar bytes per row",
            "Average bytes of the scalar fields of one row.",
            v.get("scalar_bytes"),
            placeholder="0",
        ),
    ]
    metadata = {"env": env} if env else {}
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "title": {"type": "plain_text", "text": "Milvus capacity plan"},
        "submit": {"type": "plain_text", "text": "Plan"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(metadata),
        "blocks": blocks,
    }


_INDEX_PARAMS = {"m", "pq_m", "nbits", "nlist", "refine", "max_degree", "with_raw_data"}


def _index_params(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in text.replace(",", " ").split():
        key, eq, value = item.partition("=")
        key = key.strip().lower().replace("-", "_")
        if not eq or key not in _INDEX_PARAMS:
            raise PlanInputError(
                [f"index parameter '{item}' is not one of {', '.join(sorted(_INDEX_PARAMS))} as key=value"]
            )
        out[key] = value.strip().lower() not in ("false", "0", "no") if key == "with_raw_data" else value.strip()
    return out


def modal_fields(payload: dict[str, Any]) -> dict[str, Any]:
    raw = {k: payload.get(k) for k in ("vectors", "dim", "index", "replicas", "growth", "months", "milvus_version",
                                        "mq", "segment_size_mb", "scalar_bytes")}  # fmt: skip
    params = payload.get("index_params")
    if isinstance(params, str) and params.strip():
        raw.update(_index_params(params))
    env = payload.get("env")
    raw["env"] = env if isinstance(env, str) and env else None
    return raw


def command_for(fields: dict[str, Any], env: str | None = None) -> str:
    """The ``/milvus plan`` text for PlanInput fields, for places where no form can open."""
    names = {v: k for k, v in _RENAMED.items()}
    parts = ["/milvus plan"] + ([env] if env else [])
    for key, value in fields.items():
        option = "--" + names.get(key, key).replace("_", "-")
        if key not in _PLAN_FIELDS and key not in names:
            continue
        if value is True:
            parts.append(option)
        elif value is False:
            parts.append("--no-" + option[2:])
        else:
            parts.append(f"{option} {value}")
    return " ".join(parts)
