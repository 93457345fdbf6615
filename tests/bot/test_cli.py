"""The console script as operators and scripts use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(
    *args: str, data_dir: Path, stdin: str | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(data_dir), **(env or {})}
    env.pop("MILVUS_CHATOPS_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


def test_help_lists_the_commands_without_loading_heavy_clients(tmp_path):
    out = cli("--help", data_dir=tmp_path)
    assert out.returncode == 0
    for word in ("serve", "console", "run", "check-config", "init", "db"):
        assert word in out.stdout
    # How fast that is, is measured in bench/bench_serve.py; here: the clients stay unimported.
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in traced.stderr.splitlines()}
    assert not imported & {"pymilvus", "boto3", "kubernetes", "matplotlib", "slack_bolt", "sqlalchemy"}


def test_run_json_prints_one_object_and_exit_codes_tell_ok_from_user_error(tmp_path):
    ok = cli("run", "/milvus whoami", "--json", data_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr
    payload = json.loads(ok.stdout)
    assert payload["data"]["roles"] == {"local": "admin"}
    assert payload["response_type"] == "ephemeral" and payload["blocks"]

    typo = cli("run", "/milvus whomai", "--json", data_dir=tmp_path)
    assert typo.returncode == 1
    assert "Did you mean `/milvus whoami`?" in json.loads(typo.stdout)["text"]

    denied = cli("run", "/milvus audit", "--user", "U0NOBODY", data_dir=tmp_path)
    assert denied.returncode == 1
    assert "needs the admin role" in denied.stdout


def test_an_unreachable_milvus_is_exit_2_with_a_reference_and_no_traceback(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "environments:\n  prod:\n    milvus: {uri: 'http://127.0.0.1:9', timeout_s: 2}\n"
        "access:\n  - {role: viewer, users: [U1]}\n"
    )
    out = cli("run", "/milvus status prod", "--config", str(config), "--user", "U1", data_dir=tmp_path)
    assert out.returncode == 2
    assert "Milvus at http://127.0.0.1:9" in out.stdout and "reference" in out.stdout
    assert "Traceback" not in out.stdout


def test_check_config_names_the_bad_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("environments:\n  prod:\n    milvus: {uri: 'http://127.0.0.1:9'}\n    helm: {relase: x}\n")
    out = cli("check-config", "--config", str(config), data_dir=tmp_path)
    assert out.returncode == 1
    assert "environments.prod.helm.relase: unknown key" in out.stderr


def test_check_config_reports_unreachable_integrations(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "environments:\n  prod:\n    milvus: {uri: 'http://127.0.0.1:9'}\n    prometheus_url: http://127.0.0.1:9\n"
    )
    out = cli("check-config", "--config", str(config), data_dir=tmp_path)
    assert out.returncode == 2
    assert "prod: prometheus: FAILED: 127.0.0.1:9 unreachable" in out.stdout


def test_console_renders_blocks_numbers_buttons_and_switches_user(tmp_path):
    script = "/milvus whoami\nas U0SOMEONE\n/milvus whoami\nas ULOCALOPERATOR /milvus help whoami\nexit\n"
    out = cli("console", data_dir=tmp_path, stdin=script)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "local: admin" in text
    assert "Now acting as U0SOMEONE." in text
    assert "local: no access" in text
    assert "Show your roles in each environment" in text  # the help for whoami, as the local operator
