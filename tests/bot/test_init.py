"""`milvus-chatops init` as a new user runs it: flags, answers typed in, an existing file."""

from __future__ import annotations

import json

from bot.config import load_config
from tests.bot.test_cli import ROOT, cli

FLAGS = ("--ops-channel", "C0OPS0001", "--admin", "U0FIRST01")


def test_flags_write_a_valid_config_that_the_bot_runs_on(tmp_path):
    milvus_db = tmp_path / "milvus.db"
    path = tmp_path / "etc" / "chatops.yaml"
    out = cli("init", "--config", str(path), "--no-input", "--env", "search", "--milvus-uri", str(milvus_db),
              "--milvus-token-env", "-", "--release", "-", *FLAGS, data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"config: {path}: valid (1 environment(s))" in out.stdout
    assert f"milvus-chatops console --config {path} --user U0FIRST01" in out.stdout
    config = load_config(path, tmp_path)
    env = config.environments["search"]
    assert env.milvus.uri == str(milvus_db) and env.milvus.token_env is None
    assert env.helm is None and env.prometheus_url is None  # asked for none: not pretended
    assert config.channels.ops == "C0OPS0001" and config.access[0].users == ["U0FIRST01"]
    assert config.reports.health is None  # no Prometheus: no daily report that could only fail

    # The first admin can use it at once.
    status = cli("run", "/milvus status", "--config", str(path), "--user", "U0FIRST01", "--json", data_dir=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["data"]["environment"] == "search"


def test_every_integration_given_by_flag_lands_under_its_key(tmp_path):
    path = tmp_path / "c.yaml"
    out = cli("init", "--config", str(path), "--no-input", "--milvus-uri", "http://127.0.0.1:9",
              "--namespace", "vectors", "--release", "vdb", "--prometheus-url", "http://127.0.0.1:9",
              "--alertmanager-url", "http://127.0.0.1:9", "--alerts-channel", "C0ALERTS1", *FLAGS,
              data_dir=tmp_path)
    # Written and valid; what it names is unreachable from here, and the output says which.
    assert out.returncode == 0, out.stderr
    assert "prod: prometheus: FAILED: 127.0.0.1:9 unreachable" in out.stdout
    assert "export MILVUS_TOKEN=" in out.stdout
    env = load_config(path, tmp_path).environments["prod"]
    assert env.milvus.token_env == "MILVUS_TOKEN"
    assert env.kubernetes is not None and env.kubernetes.namespace == "vectors"
    assert env.helm is not None and env.helm.release == "vdb"
    assert (env.prometheus_url, env.prometheus_namespace, env.prometheus_instance) == (
        "http://127.0.0.1:9", "vectors", "vdb")
    assert env.alertmanager_url == "http://127.0.0.1:9"
    assert load_config(path, tmp_path).channels.alerts.default == "C0ALERTS1"


def test_answers_typed_in_are_checked_and_asked_again(tmp_path):
    path = tmp_path / "c.yaml"
    answers = "\n".join([
        "staging",                # environment
        "milvus.internal",        # not a URI: asked again
        "http://127.0.0.1:9",
        "", "", "", "", "",       # token variable, namespace, release, Prometheus, Alertmanager: defaults
        "#ops",                   # a channel name, not an id: asked again
        "C0OPS0001",
        "",                       # alerts channel: the same
        "U0FIRST01",
    ]) + "\n"
    out = cli("init", "--config", str(path), data_dir=tmp_path, stdin=answers)
    assert out.returncode == 0, out.stderr
    assert "'milvus.internal': expected http(s)://host:19530" in out.stderr
    assert "'#ops': a channel id such as C0123ABCD, not its name" in out.stderr
    config = load_config(path, tmp_path)
    assert list(config.environments) == ["staging"]
    assert config.channels.alerts.default == "C0OPS0001"


def test_an_existing_file_is_kept_unless_forced_and_nothing_is_written_on_bad_input(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# mine\n")
    kept = cli("init", "--config", str(path), "--no-input", "--milvus-uri", "http://127.0.0.1:9", *FLAGS,
               data_dir=tmp_path)
    assert kept.returncode == 1 and "--force" in kept.stderr
    assert path.read_text() == "# mine\n"

    missing = cli("init", "--config", str(tmp_path / "new.yaml"), "--no-input", *FLAGS, data_dir=tmp_path)
    assert missing.returncode == 1 and "--milvus-uri is required" in missing.stderr
    bad = cli("init", "--config", str(path), "--force", "--no-input", "--milvus-uri", "http://127.0.0.1:9",
              "--ops-channel", "C0OPS0001", "--admin", "alice", data_dir=tmp_path)
    assert bad.returncode == 1 and "'alice': a user id such as U0123ABCD" in bad.stderr
    assert not (tmp_path / "new.yaml").exists() and path.read_text() == "# mine\n"

    forced = cli("init", "--config", str(path), "--force", "--no-input", "--milvus-uri", "http://127.0.0.1:9",
                 *FLAGS, data_dir=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "U0FIRST01" in path.read_text()
    assert list(tmp_path.glob("*.yaml")) == [path]  # no draft left behind


def test_the_minimal_example_is_valid(tmp_path):
    out = cli("check-config", "--config", str(ROOT / "config.minimal.yaml"), data_dir=tmp_path)
    assert "config.minimal.yaml: valid (1 environment(s))" in out.stdout, out.stderr
