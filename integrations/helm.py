"""The helm binary, run as a subprocess with an argv list (never a shell).

Every name and version that reaches argv is validated first against what Kubernetes and Helm accept,
and nothing may start with ``-``: a value such as ``--post-renderer=/tmp/x`` or ``x; rm -rf /`` is
refused before helm runs, not quoted and hoped about. Values go to helm in a private temporary file
(``-f``), never as ``--set``, so a user's override cannot add flags either. Each call has a timeout;
failures become ``IntegrationError`` with helm's own last error line (helm prints no secrets there).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

import yaml

from bot.errors import IntegrationError, NotFound, UsageError

log = logging.getLogger("milvus_chatops.helm")

# Helm release names: DNS-1123 label, at most 53 characters (helm's own limit).
RELEASE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")
# Kubernetes namespaces: DNS-1123 label, at most 63 characters.
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# "repo/chart", a local chart directory name, or an OCI reference.
CHART = re.compile(r"^(oci://[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+|[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?)$")
# Semantic versions as charts use them: 4.2.58, 5.0.0-rc.1 (no ranges: we pin exact versions).
VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
# Go durations as helm's --timeout takes them: 15m, 1h30m, 900s.
DURATION = re.compile(r"^([0-9]+(h|m|s))+$")
KUBE_CONTEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,252}$")

DEFAULT_CALL_TIMEOUT_S = 60.0


def _check(kind: str, value: str, pattern: re.Pattern[str], example: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise UsageError(f"`{str(value)[:80]}` is not a valid {kind}.", hint=f"Expected something like `{example}`.")
    return value


def valid_release(name: str) -> str:
    return _check("Helm release name", name, RELEASE, "milvus")


def valid_namespace(name: str) -> str:
    return _check("Kubernetes namespace", name, NAMESPACE, "milvus-prod")


def valid_chart(name: str) -> str:
    return _check("Helm chart", name, CHART, "milvus/milvus")


def valid_version(version: str) -> str:
    return _check("version", version, VERSION, "4.2.58")


def valid_duration(value: str) -> str:
    return _check("timeout", value, DURATION, "15m")


def duration_seconds(value: str) -> float:
    valid_duration(value)
    units = {"h": 3600, "m": 60, "s": 1}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(h|m|s)", value)))


@dataclass(frozen=True)
class ReleaseStatus:
    name: str
    namespace: str
    revision: int
    status: str  # deployed | failed | pending-upgrade | superseded ...
    chart: str
    chart_version: str
    app_version: str
    description: str
    last_deployed: str

    def to_data(self) -> dict[str, Any]:
        return {
            "release": self.name,
            "namespace": self.namespace,
            "revision": self.revision,
            "status": self.status,
            "chart": self.chart,
            "chart_version": self.chart_version,
            "app_version": self.app_version,
            "description": self.description,
            "last_deployed": self.last_deployed,
        }


@dataclass(frozen=True)
class Revision:
    revision: int
    updated: str
    status: str
    chart: str  # "milvus-4.2.58"
    app_version: str
    description: str

    def to_data(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "updated": self.updated,
            "status": self.status,
            "chart": self.chart,
            "app_version": self.app_version,
            "description": self.description,
        }


class HelmFailed(IntegrationError):
    """helm ran and said no; ``detail`` is its last error line."""

    def __init__(self, message: str, *, detail: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint, system="helm")
        self.detail = detail


class Helm:
    """One cluster's helm: ``kube_context`` / ``kubeconfig`` pick it; ``binary`` is found on PATH."""

    def __init__(
        self,
        *,
        binary: str = "helm",
        kube_context: str | None = None,
        kubeconfig: str | None = None,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
        env: dict[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.kube_context = _check("kube context", kube_context, KUBE_CONTEXT, "prod-cluster") if kube_context else None
        if kubeconfig is not None and (kubeconfig.startswith("-") or "\x00" in kubeconfig):
            raise UsageError(f"`{kubeconfig[:80]}` is not a valid kubeconfig path.")
        self.kubeconfig = kubeconfig
        self.call_timeout_s = call_timeout_s
        self.env = env

    # -- running ---------------------------------------------------------------------------------

    def _global_flags(self) -> list[str]:
        flags = []
        if self.kube_context:
            flags.append(f"--kube-context={self.kube_context}")
        if self.kubeconfig:
            flags.append(f"--kubeconfig={self.kubeconfig}")
        return flags

    def _resolve_binary(self) -> str:
        path = shutil.which(self.binary, path=(self.env or os.environ).get("PATH"))
        if path is None:
            raise IntegrationError(
                f"The `{self.binary}` binary was not found on PATH.",
                hint="Install Helm 3.14 or newer where the bot runs.",
                system="helm",
            )
        return path

    def run(self, args: list[str], *, timeout_s: float | None = None, what: str = "") -> str:
        """Run ``helm <args>``; returns stdout. ``args`` must already be validated."""
        argv = [self._resolve_binary(), *args, *self._global_flags()]
        what = what or f"helm {args[0]}"
        limit = timeout_s or self.call_timeout_s
        log.info("running %s", " ".join(argv[1:]))
        try:
            proc = subprocess.run(  # argv list, validated above, no shell
                argv, capture_output=True, text=True, timeout=limit, env=self.env, check=False, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as exc:
            raise HelmFailed(f"{what} did not finish within {limit:.0f} s and was stopped.") from exc
        except OSError as exc:
            raise HelmFailed(f"{what} could not be started: {exc.strerror}") from exc
        if proc.returncode != 0:
            detail = _last_error(proc.stderr) or f"exit code {proc.returncode}"
            if "not found" in detail and args[0] in ("status", "history", "get"):
                raise NotFound(f"{what}: {detail}")
            raise HelmFailed(f"{what} failed: {detail}", detail=detail)
        return proc.stdout

    def _json(self, args: list[str], what: str) -> Any:
        out = self.run([*args, "--output", "json"], what=what)
        try:
            return json.loads(out) if out.strip() else None
        except json.JSONDecodeError as exc:
            raise HelmFailed(f"{what} printed something that is not JSON.") from exc

    # -- reading ---------------------------------------------------------------------------------

    def status(self, release: str, namespace: str) -> ReleaseStatus | None:
        """The release as deployed now, or None when it does not exist yet."""
        valid_release(release)
        valid_namespace(namespace)
        try:
            data = self._json(["status", release, "--namespace", namespace], f"helm status {release}")
        except NotFound:
            return None
        return _status_from(data, release, namespace)

    def history(self, release: str, namespace: str, *, limit: int = 20) -> list[Revision]:
        valid_release(release)
        valid_namespace(namespace)
        try:
            rows = self._json(
                ["history", release, "--namespace", namespace, "--max", str(int(limit))], f"helm history {release}"
            )
        except NotFound:
            return []
        return [
            Revision(
                revision=int(r.get("revision", 0)),
                updated=str(r.get("updated", "")),
                status=str(r.get("status", "")),
                chart=str(r.get("chart", "")),
                app_version=str(r.get("app_version", "")),
                description=str(r.get("description", "")),
            )
            for r in rows or []
        ]

    def get_values(self, release: str, namespace: str, *, revision: int | None = None) -> dict[str, Any]:
        """User-supplied values of the release (``helm get values -o json``); {} when none."""
        valid_release(release)
        valid_namespace(namespace)
        args = ["get", "values", release, "--namespace", namespace]
        if revision is not None:
            args += ["--revision", str(int(revision))]
        try:
            data = self._json(args, f"helm get values {release}")
        except NotFound:
            return {}
        return data if isinstance(data, dict) else {}

    # -- changing --------------------------------------------------------------------------------

    def upgrade_install(
        self,
        release: str,
        chart: str,
        *,
        namespace: str,
        chart_version: str,
        values: dict[str, Any],
        timeout: str,
        atomic: bool = True,
        wait: bool = True,
        dry_run: bool = False,
    ) -> ReleaseStatus:
        """``helm upgrade --install`` with the values in a private file; returns the new release."""
        valid_release(release)
        valid_chart(chart)
        valid_namespace(namespace)
        valid_version(chart_version)
        valid_duration(timeout)
        with tempfile.TemporaryDirectory(prefix="milvus-chatops-helm-") as tmp:
            values_path = os.path.join(tmp, "values.yaml")
            # 0600: values may carry credentials (externalS3.secretKey) on shared hosts.
            fd = os.open(values_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                yaml.safe_dump(values, fh, sort_keys=True)
            args = [
                "upgrade", "--install", release, chart,
                "--namespace", namespace,
                "--version", chart_version,
                "--values", values_path,
                "--timeout", timeout,
                "--output", "json",
            ]  # fmt: skip
            if atomic:
                args.append("--atomic")
            if wait:
                args.append("--wait")
            if dry_run:
                args.append("--dry-run")
            # helm enforces --timeout itself; ours is a backstop for a helm that hangs past it.
            out = self.run(args, timeout_s=duration_seconds(timeout) + 60, what=f"helm upgrade {release}")
        try:
            data = json.loads(out)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            return _status_from(data, release, namespace)
        status = self.status(release, namespace)
        if status is None:
            raise HelmFailed(f"helm upgrade {release} reported success but the release does not exist.")
        return status

    def rollback(self, release: str, namespace: str, *, revision: int | None, timeout: str) -> None:
        """Roll back to ``revision`` (the previous one when None) and wait for it."""
        valid_release(release)
        valid_namespace(namespace)
        valid_duration(timeout)
        args = ["rollback", release]
        if revision is not None:
            if int(revision) < 1:
                raise UsageError("Revisions start at 1.")
            args.append(str(int(revision)))
        args += ["--namespace", namespace, "--wait", "--timeout", timeout]
        self.run(args, timeout_s=duration_seconds(timeout) + 60, what=f"helm rollback {release}")


def _status_from(data: Any, release: str, namespace: str) -> ReleaseStatus:
    if not isinstance(data, dict):
        raise HelmFailed(f"helm said nothing usable about release {release}.")
    info = data.get("info") or {}
    meta = (data.get("chart") or {}).get("metadata") or {}
    return ReleaseStatus(
        name=str(data.get("name", release)),
        namespace=str(data.get("namespace", namespace)),
        revision=int(data.get("version", 0)),
        status=str(info.get("status", "unknown")),
        chart=str(meta.get("name", "")),
        chart_version=str(meta.get("version", "")),
        app_version=str(meta.get("appVersion", "")),
        description=str(info.get("description", "")),
        last_deployed=str(info.get("last_deployed", "")),
    )


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    line = (errors or lines or [""])[-1]
    return line[:500]
