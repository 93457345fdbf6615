"""Regenerate the "where does X live" tables in docs/architecture.md from the real registry.

    .venv/bin/python scripts/docs_where.py          # rewrite the tables in place
    .venv/bin/python scripts/docs_where.py --check  # exit 1 when they are out of date (tests run this)
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
START, END = "<!-- where-tables:start -->", "<!-- where-tables:end -->"


def _where(fn: Any) -> str:
    fn = getattr(fn, "handler", fn)
    if getattr(fn, "__name__", "") == "<lambda>":
        # `lambda runtime: intake.AlertIntake(runtime).handle`: name what the lambda builds.
        obj: Any = None
        for name in fn.__code__.co_names:
            obj = fn.__globals__.get(name) if obj is None else getattr(obj, name, None)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                fn = obj
                break
    bound_to = getattr(fn, "__self__", None)
    if bound_to is not None and not inspect.isclass(bound_to):
        fn = type(bound_to)
    return f"`{fn.__module__}` (`{fn.__qualname__}`)"


def _first_sentence(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.strip().split("\n\n")[0].split())
    cut = first.find(". ")
    return (first[: cut + 1] if cut != -1 else first).replace("|", "\\|")


def tables() -> str:
    sys.path.insert(0, str(ROOT))
    from commands import build_registry

    registry = build_registry()
    out = ["### Commands", "", "| command | role | module (handler) |", "| --- | --- | --- |"]
    for name, spec in sorted(registry.commands.items()):
        out.append(f"| `/milvus {name}` | {spec.role.name if spec.role else 'anyone'} | {_where(spec.handler)} |")
    out += ["", "### Buttons and forms", "", "| action / callback id | kind | role | module (handler) |",
            "| --- | --- | --- | --- |"]
    for name, action in sorted(registry.actions.items()):
        out.append(f"| `{name}` | {action.kind} | {action.role.name} | {_where(action.handler)} |")
    out += ["", "### Schedules, sweeps, approval executors, routes, workers", "",
            "| what | name | module (function) |", "| --- | --- | --- |"]
    out += [f"| scheduled task | `{name}` | {_where(fn)} |" for name, fn in sorted(registry.tasks.items())]
    out += [f"| job source (jobs from the config) | | {_where(fn)} |" for fn in registry.job_sources]
    for sweep in registry.sweeps:
        at_start = " and at start" if getattr(sweep, "at_start", False) else ""
        out.append(f"| sweep, every {sweep.seconds:g} s{at_start} | `{sweep.name}` | {_where(sweep.fn)} |")
    out += [f"| approval executor | `{kind}` | {_where(fn)} |" for kind, fn in sorted(registry.executors.items())]
    out += [f"| HTTP route | `POST {route.path}` | {_where(route.factory)} |" for route in registry.routes]
    out += [f"| background worker | | {_where(make)} |" for make in registry.workers]
    out += [f"| warm-up at `serve` start | | {_where(fn)} |" for fn in registry.warm_ups]
    out += ["", "### Every module of the capabilities", "", "| module | what it holds |", "| --- | --- |"]
    for path in sorted((ROOT / "commands").rglob("*.py")):
        out.append(f"| `{path.relative_to(ROOT)}` | {_first_sentence(path)} |")
    return "\n".join(out) + "\n"


def spliced(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{tables()}{END}{tail}"


def main(argv: list[str]) -> int:
    current = ARCHITECTURE.read_text()
    wanted = spliced(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{ARCHITECTURE.relative_to(ROOT)} is out of date: run .venv/bin/python scripts/docs_where.py")
            return 1
        return 0
    ARCHITECTURE.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
