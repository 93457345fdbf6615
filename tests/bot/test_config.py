from pathlib import Path

import pytest

from bot.config import LOCAL_OPERATOR, Role, load_config
from bot.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_no_file_gives_the_embedded_local_environment_on_milvus_lite(tmp_path):
    config = load_config(None, tmp_path)
    assert list(config.environments) == ["local"]
    local = config.environments["local"]
    assert local.milvus.uri.endswith("milvus.db") and str(tmp_path.resolve()) in local.milvus.uri
    assert local.backup is not None and local.backup.local_dir
    assert config.access[0].users == [LOCAL_OPERATOR] and config.access[0].role is Role.admin


def test_a_misspelled_key_is_named_with_its_path(tmp_path):
    path = write(tmp_path, "environments:\n  prod:\n    milvus: {uri: 'http://m:19530'}\n    promethus_url: x\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, tmp_path)
    assert "environments.prod.promethus_url: unknown key" in err.value.message


def test_a_wrong_type_and_an_unknown_role_say_what_is_expected(tmp_path):
    path = write(
        tmp_path,
        "environments:\n  prod:\n    milvus: {uri: 'http://m:19530'}\n"
        "    approval: {approvals_required: many}\naccess:\n  - role: boss\n    users: [U1]\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, tmp_path)
    text = err.value.message
    assert "environments.prod.approval.approvals_required: Input should be a valid integer" in text
    assert "access.0.role: unknown role 'boss', expected one of viewer, operator, admin" in text


def test_invalid_yaml_gives_the_line(tmp_path):
    path = write(tmp_path, "environments:\n  prod: [\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, tmp_path)
    assert "is not valid YAML at line" in err.value.message


def test_grants_must_name_known_environments(tmp_path):
    path = write(
        tmp_path,
        "environments:\n  prod:\n    milvus: {uri: 'http://m:19530'}\n"
        "access:\n  - {role: admin, users: [U1], environments: [prd]}\n",
    )
    with pytest.raises(ConfigError, match="unknown environment"):
        load_config(path, tmp_path)


def test_environment_channels_fall_back_to_global_ones_key_by_key(tmp_path):
    path = write(
        tmp_path,
        "channels: {ops: C_OPS, alerts: {default: C_ALL, critical: C_CRIT}}\n"
        "environments:\n  prod:\n    milvus: {uri: 'http://m:19530'}\n"
        "    channels: {alerts: {critical: C_PROD_CRIT}}\n",
    )
    config = load_config(path, tmp_path)
    channels = config.channels_for(config.environments["prod"])
    assert channels.ops == "C_OPS"
    assert channels.alerts.critical == "C_PROD_CRIT" and channels.alerts.default == "C_ALL"


def test_the_example_config_shipped_in_the_repo_is_valid(tmp_path):
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    config = load_config(example, tmp_path)
    assert {"dev", "staging", "prod"} <= set(config.environments)


def _approval_config(tmp_path: Path, approval: str, *, production: bool = False, operators: str = "[U1, U2]") -> Path:
    return write(
        tmp_path,
        "environments:\n  prod:\n    milvus: {uri: 'prod.db'}\n"
        f"    production: {str(production).lower()}\n    approval: {approval}\n"
        f"access:\n  - {{role: operator, users: {operators}}}\n",
    )


@pytest.mark.parametrize(
    ("approval", "production", "expected"),
    [
        # production alone asks for approval: someone must be able to give it.
        ("{}", True, "no approvers are set"),
        ("{required: true}", False, "no approvers are set"),
        ("{required: true, approvers: [U1], approvals_required: 2}", False, "only 1 approver(s) are listed"),
        # Both operators approve, and nobody approves their own request: two approvals can never come.
        ("{required: true, approvers: [U1, U2], approvals_required: 2}", False, "cannot approve their own request"),
    ],
)
def test_check_config_refuses_approval_that_nobody_could_give(tmp_path, approval, production, expected):
    from tests.bot.test_cli import cli

    out = cli("check-config", "--config", str(_approval_config(tmp_path, approval, production=production)),
              data_dir=tmp_path)
    assert out.returncode == 1, out.stdout
    assert "environments.prod.approval:" in out.stderr and expected in out.stderr


def test_approval_that_someone_can_give_is_accepted(tmp_path):
    # U3 asks, U1 approves; a user group may hold any number of people.
    for approval, operators in (
        ("{required: true, approvers: [U1], approvals_required: 1}", "[U1, U3]"),
        ("{required: true, approvers: [U1, U2, U3], approvals_required: 2}", "[U1, U2, U3]"),
        ("{approvers: [S0SRE], approvals_required: 3}", "[U1]"),
    ):
        config = load_config(_approval_config(tmp_path, approval, production=True, operators=operators), tmp_path)
        assert config.environments["prod"].needs_approval
