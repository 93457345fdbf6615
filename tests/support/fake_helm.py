"""FakeHelm: set up, seed and inspect the FAKE ``helm`` executable in tests/support/bin.

The executable is a stand-in (no helm can be installed here); the bot runs it
as a subprocess exactly as it would run Helm, so tests see the real argv and
values files it produced.  This class only manages its state directory.

    helm = FakeHelm(tmp_path / "helm")
    env = helm.env()                      # PATH with the fake first, FAKE_HELM_STATE, ...
    subprocess.run(["helm", "upgrade", "--install", ...], env=env)
    assert helm.calls("upgrade")[0].values == {...}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BIN_DIR = Path(__file__).resolve().parent / "bin"
HELM_BINARY = BIN_DIR / "helm"


@dataclass(frozen=True)
class HelmCall:
    """One run of the fake helm."""

    argv: list[str]  # argv[0] is "helm"
    values_files: list[dict[str, str | None]]  # {"path", "content"} copied when helm ran
    env: dict[str, str]  # HELM_* and KUBECONFIG as helm saw them
    cwd: str
    time: float
    exit_code: int | None  # None while still running (or killed)
    stdout: str | None
    stderr: str | None

    @property
    def command(self) -> str:
        args = self.positional
        return args[0] if args else ""

    @property
    def positional(self) -> list[str]:
        """Arguments that are not flags or flag values (best effort, for assertions)."""
        out: list[str] = []
        skip = False
        takes_value = {
            "-n", "--namespace", "--version", "-f", "--values", "--set", "--set-string", "--set-json",
            "--timeout", "-o", "--output", "--revision", "--kube-context", "--kubeconfig", "--filter",
            "--description", "--max", "--repo", "--username", "--password",
        }  # fmt: skip
        for arg in self.argv[1:]:
            if skip:
                skip = False
                continue
            if arg.startswith("-"):
                skip = arg in takes_value
                continue
            out.append(arg)
        return out

    def flag(self, *names: str) -> str | None:
        """Value of the last occurrence of a flag given as ``--x v`` or ``--x=v``."""
        found = None
        for i, arg in enumerate(self.argv):
            for name in names:
                if arg == name and i + 1 < len(self.argv):
                    found = self.argv[i + 1]
                elif arg.startswith(name + "="):
                    found = arg.split("=", 1)[1]
        return found

    def has_flag(self, name: str) -> bool:
        return any(a == name or a.startswith(name + "=") for a in self.argv)

    @property
    def values(self) -> dict[str, Any]:
        """The ``-f`` files merged in order, as helm would see them."""
        merged: dict[str, Any] = {}
        for item in self.values_files:
            data = yaml.safe_load(item["content"] or "") or {}
            merged = _deep_merge(merged, data)
        return merged


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class FakeHelm:
    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)

        # A one-line launcher running the fake with this interpreter: it has
        # PyYAML (the system python3 may not), and skipping `env python3`
        # (a pyenv shim on some machines) saves ~0.3 s per helm run.
        self.bin_dir = self.state_dir / "bin"
        self.bin_dir.mkdir(exist_ok=True)
        self.binary = self.bin_dir / "helm"
        self.binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HELM_BINARY}" "$@"\n')
        self.binary.chmod(0o755)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment in which ``helm`` is the fake, for ``subprocess`` or ``monkeypatch``."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["FAKE_HELM_STATE"] = str(self.state_dir)
        # For anyone running tests/support/bin/helm itself: it re-executes with this interpreter.
        env["FAKE_HELM_PYTHON"] = sys.executable
        return env

    def env_updates(self) -> dict[str, str]:
        full = self.env()
        return {k: full[k] for k in ("PATH", "FAKE_HELM_STATE", "FAKE_HELM_PYTHON")}

    def reset(self) -> None:
        """Forget calls, releases, faults and charts (the launcher stays)."""
        for name in ("calls.jsonl", "results.jsonl", "releases.json", "fail_next.json", "charts.json"):
            (self.state_dir / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ calls
    def calls(self, command: str | None = None) -> list[HelmCall]:
        results: dict[str, dict[str, Any]] = {}
        for line in _read_lines(self.state_dir / "results.jsonl"):
            results[line["id"]] = line
        out = []
        for line in _read_lines(self.state_dir / "calls.jsonl"):
            result = results.get(line["id"], {})
            call = HelmCall(
                argv=line["argv"],
                values_files=line["values_files"],
                env=line["env"],
                cwd=line["cwd"],
                time=line["time"],
                exit_code=result.get("exit_code"),
                stdout=result.get("stdout"),
                stderr=result.get("stderr"),
            )
            if command is None or call.command == command:
                out.append(call)
        return out

    def argvs(self) -> list[list[str]]:
        return [c.argv for c in self.calls()]

    # ------------------------------------------------------------------ state
    def releases(self) -> dict[str, Any]:
        """``{"namespace/name": {"name", "namespace", "revisions": [...]}}``."""
        path = self.state_dir / "releases.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def release(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return self.releases().get(f"{namespace}/{name}")

    def seed_release(
        self,
        name: str,
        namespace: str = "default",
        *,
        chart: str = "milvus",
        version: str = "4.2.8",
        app_version: str = "2.4.5",
        values: dict[str, Any] | None = None,
        revisions: int = 1,
        status: str = "deployed",
    ) -> None:
        """Put an existing release in place, as if installed ``revisions`` times before the test."""
        releases = self.releases()
        meta = {"name": chart.split("/")[-1], "version": version, "appVersion": app_version, "apiVersion": "v2"}
        now = dt.datetime.now(dt.UTC)
        revs = []
        for n in range(1, revisions + 1):
            revs.append(
                {
                    "revision": n,
                    "updated": (now - dt.timedelta(minutes=revisions - n + 1)).isoformat(),
                    "status": status if n == revisions else "superseded",
                    "description": "Install complete" if n == 1 else "Upgrade complete",
                    "chart_meta": meta,
                    "values": values or {},
                }
            )
        releases[f"{namespace}/{name}"] = {"name": name, "namespace": namespace, "revisions": revs}
        _write_json(self.state_dir / "releases.json", releases)

    def set_chart(self, chart: str, versions: dict[str, str], latest: str | None = None) -> None:
        """Chart version -> app version, so installs report the right APP VERSION."""
        path = self.state_dir / "charts.json"
        charts = json.loads(path.read_text()) if path.exists() else {}
        charts[chart] = {"versions": versions, "latest": latest or max(versions, key=_version_key)}
        _write_json(path, charts)

    def fail_next(
        self,
        command: str,
        *,
        exit_code: int = 1,
        stderr: str | None = None,
        hang_seconds: float = 0,
        times: int = 1,
        stage: str = "deploy",
    ) -> None:
        """Make the next ``times`` runs of ``command`` (``upgrade``, ``rollback``, ``status``... or ``*``) fail.

        ``stage="deploy"``: a failed revision is recorded (and ``--atomic`` rolls back or
        uninstalls, as Helm does); ``stage="render"``: fails before touching the release.
        ``hang_seconds``: the fake sleeps that long first (for the caller's timeout).
        """
        path = self.state_dir / "fail_next.json"
        faults = json.loads(path.read_text()) if path.exists() else []
        faults.append(
            {
                "command": command,
                "exit_code": exit_code,
                "stderr": stderr,
                "hang_seconds": hang_seconds,
                "times": times,
                "stage": stage,
            }
        )
        _write_json(path, faults)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)
