"""A ``Plan`` as Helm values for the real milvus-helm chart, plus Helm-style ``--set`` overrides.

Milvus 2.5 deploys with chart 4.2.x (index nodes, no streaming node), 2.6 with chart 5.0.x (streaming
nodes, index build inside data nodes). Keys come from the chart's top-level values.yaml outline
and, for the Pulsar sub-chart's sizes (``volumes.journal/ledgers/data.size``), from the chart's own
values.yaml. Templates live in ``templates/helm/``.

Precedence, lowest first: ``base`` (an environment's profile) < the plan < ``overrides`` (the user's
``--set``). ``parse_set`` and ``deep_merge`` are what the deploy feature reuses.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from bot.errors import UsageError
from commands.plan.sizing import IndexType, Plan, Resource

__all__ = [
    "CHART_VERSIONS",
    "DEFAULT_IMAGE_TAGS",
    "chart_version_for",
    "deep_merge",
    "parse_set",
    "render_values",
    "values_for",
]

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "helm"
# Newest chart of each line (outline's Chart.yaml map: 2.5.x -> 4.2.26..4.2.58, 2.6.x -> 5.0.0..5.0.19).
CHART_VERSIONS = {"2.5": "4.2.58", "2.6": "5.0.19"}
TEMPLATES = {"2.5": "values-4.2.yaml.j2", "2.6": "values-5.0.yaml.j2"}
DEFAULT_IMAGE_TAGS = {"2.5": "v2.5.16", "2.6": "v2.6.15"}
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$")


def _major_minor(version: str) -> str | None:
    match = _VERSION.match(version.strip())
    return f"{match.group(1)}.{match.group(2)}" if match else None


def chart_version_for(milvus_version: str) -> str:
    """``2.5`` / ``2.5.16`` / ``v2.5.16`` -> ``4.2.58``; ``2.6.x`` -> ``5.0.19``."""
    line = _major_minor(milvus_version)
    if line not in CHART_VERSIONS:
        raise UsageError(
            f"No milvus-helm chart for Milvus '{milvus_version}' here: plans cover 2.5 (chart 4.2.x)"
            " and 2.6 (chart 5.0.x)."
        )
    return CHART_VERSIONS[line]


# --------------------------------------------------------------------------------------------------
# Overrides


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base`` the way Helm merges values files.

    Maps merge key by key; lists and scalars replace; ``None`` deletes the key (Helm's ``key=null``).
    """
    merged: dict[str, Any] = {k: _copy(v) for k, v in base.items()}
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _copy(value)
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` except where escaped with a backslash or inside ``{...}``; unescape ``\\sep``."""
    parts, current, depth, i = [], [], 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            current.append(nxt if nxt == sep else ch + nxt)
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _typed(text: str) -> Any:
    """Helm's ``--set`` typing: true/false/null, integers without a leading zero; all else a string."""
    if text.lower() == "true":
        return True
    if text.lower() == "false":
        return False
    if text.lower() == "null":
        return None
    if text == "0":
        return 0
    if re.fullmatch(r"-?[1-9][0-9]*", text) and abs(int(text)) < 2**63:
        return int(text)
    return text.replace("\\,", ",")


def parse_set(assignments: Iterable[str]) -> dict[str, Any]:
    """``["queryNode.replicas=3", "etcd.persistence.size=50Gi"]`` -> nested dict, typed like Helm.

    Supports several ``a=1,b=2`` pairs per item, ``\\.`` and ``\\,`` escapes and ``{x,y}`` lists.
    Raises ``UsageError`` naming the bad item.
    """
    result: dict[str, Any] = {}
    for item in assignments:
        for pair in _split(item, ","):
            if not pair.strip():
                continue
            path, eq, raw = pair.partition("=")
            keys = [k for k in _split(path.strip(), ".")]
            if not eq or not all(k.strip() for k in keys):
                raise UsageError(
                    f"Cannot read `--set {pair}`: write key.path=value (e.g. queryNode.replicas=3).",
                )
            if any("[" in k for k in keys):
                raise UsageError(f"`--set {pair}`: list indexes are not supported; set the whole list with {{a,b}}.")
            value: Any
            if raw.startswith("{") and raw.endswith("}"):
                value = [_typed(v) for v in _split(raw[1:-1], ",") if v != ""]
            else:
                value = _typed(raw)
            node = result
            for key in keys[:-1]:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
            node[keys[-1]] = value
    return result


# --------------------------------------------------------------------------------------------------
# Rendering


def _q(value: Any) -> str:
    """A scalar as YAML: JSON strings are valid YAML double-quoted strings."""
    return json.dumps(value)


def _gi(gib: float) -> str:
    return f"{max(1, math.ceil(gib))}Gi"


def _block(value: Mapping[str, Any], indent: int) -> str:
    """A nested mapping of scalars as a YAML block indented under the template's key.

    Hand-written because yaml.safe_dump per resource was most of the render time; scalars go
    through ``_q`` (JSON), which is valid YAML.
    """
    pad = " " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, Mapping):
            lines.append(f"{pad}{key}:")
            lines.append(_block(item, indent + 2))
        else:
            lines.append(f"{pad}{key}: {_q(item)}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Output is YAML, not HTML: every interpolated string goes through the |q filter instead.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701
    )
    env.filters["q"] = _q
    env.filters["gi"] = _gi
    env.filters["block"] = _block
    return env


def _resources(resource: Resource, ephemeral_gib: float = 0) -> dict[str, Any]:
    requests: dict[str, str] = dict(resource.requests)
    limits: dict[str, str] = dict(resource.limits)
    if ephemeral_gib:
        requests["ephemeral-storage"] = _gi(ephemeral_gib)
        limits["ephemeral-storage"] = _gi(ephemeral_gib)
    return {"requests": requests, "limits": limits} if limits else {"requests": requests}


def _context(plan: Plan, image_tag: str, service_monitor: bool) -> dict[str, Any]:
    inp = plan.input
    by_name = {r.name: r for r in (*plan.components, *plan.dependencies)}
    diskann = inp.index is IndexType.DISKANN
    resources = {name: _resources(r) for name, r in by_name.items()}
    if diskann and "queryNode" in by_name:
        resources["queryNode"] = _resources(by_name["queryNode"], plan.query_nodes.local_disk_gib)
    g = plan.loading_memory_gib
    summary = (
        f"{inp.vectors:,} x {inp.dim}d {inp.index.value}, {inp.replicas} replica(s):"
        f" loading memory {g:,.1f} GiB, {plan.mode}, {plan.scale}, message queue {plan.message_queue}"
    )
    return {
        "plan": plan,
        "summary": summary,
        "chart_version": chart_version_for(inp.milvus_version),
        "milvus_version": inp.milvus_version,
        "image_tag": image_tag,
        "service_monitor": service_monitor,
        "cluster": plan.mode != "standalone",
        "diskann": diskann,
        "mq": plan.message_queue,
        "r": by_name,
        "res": resources,
    }


def _check_tag(plan: Plan, tag: str) -> None:
    line = _major_minor(tag)
    if line is not None and line != plan.input.milvus_version:
        raise UsageError(
            f"Image tag {tag} is Milvus {line}, but the plan is for Milvus {plan.input.milvus_version}.",
            hint=f"Plan again with --milvus-version {line}, or use a {plan.input.milvus_version}.x tag.",
        )


def render_values(
    plan: Plan,
    milvus_image_tag: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    service_monitor: bool = False,
) -> str:
    """The values file for ``helm upgrade --install`` of this plan, as YAML text.

    Without ``base``/``overrides`` the template's text is returned as is (with its comments);
    otherwise the merged values are dumped under the same header comments.
    Raises ``UsageError`` for a plan beyond one cluster or an image tag of the other Milvus line.
    """
    if plan.mode == "beyond":
        raise UsageError(
            "This plan is beyond one Milvus cluster, so there are no values to deploy.",
            hint="Split the data (fewer vectors per cluster) and plan each part.",
        )
    tag = milvus_image_tag or DEFAULT_IMAGE_TAGS[plan.input.milvus_version]
    _check_tag(plan, tag)
    template = _environment().get_template(TEMPLATES[plan.input.milvus_version])
    text = template.render(**_context(plan, tag, service_monitor))
    if not base and not overrides:
        return text
    values = _merge_layers(yaml.safe_load(text), base, overrides)
    header_lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header_lines.append(line + "\n")
    header = "".join(header_lines)
    merged = yaml.safe_dump(values, sort_keys=False, default_flow_style=False, width=120)
    return header + "# base profile and --set overrides applied\n" + merged


def _merge_layers(
    planned: dict[str, Any], base: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    values = deep_merge(base or {}, planned)
    return deep_merge(values, overrides or {})


def values_for(
    plan: Plan,
    milvus_image_tag: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    service_monitor: bool = False,
) -> dict[str, Any]:
    """``render_values`` parsed back into a dict (what helm will see)."""
    loaded = yaml.safe_load(
        render_values(plan, milvus_image_tag, overrides, base=base, service_monitor=service_monitor)
    )
    return dict(loaded)
