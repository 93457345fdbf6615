"""/milvus plan through the real Dispatcher (SQLite store), the CLI, and `serve` with signed Slack requests.

Helm and Kubernetes are FAKES at their boundaries (tests/support/bin/helm, tests/support/fake_kube.py)
for the deploy button; Slack is the FAKE Web API in tests/support/fake_slack.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.access import Identity
from bot.blocks import MAX_BLOCKS, MAX_SECTION_TEXT, MAX_TOTAL_BLOCK_CHARS, fit_blocks
from bot.blocks import escape as bk_escape
from bot.dispatch import Dispatcher, Outcome
from bot.reply import Attachment
from bot.settings import Settings
from bot.state import Store
from commands.approvals.workflow import Approvals
from commands.plan.sizing import parse_plan_input, plan
from commands.plan.values import values_for
from tests.commands.approvals.test_approvals import RecordingMessenger
from tests.support.fake_helm import FakeHelm
from tests.support.fake_kube import FakeKube
from tests.support.runtime import build_test_runtime

OPERATOR, VIEWER, STRANGER, SECOND_APPROVER = "U0OPER", "U0VIEW", "U0STRANGER", "U0APPROVER"
WORKED = "--vectors 100M --dim 768 --index hnsw --m 16"
ROOT = Path(__file__).resolve().parents[3]


def make_config(tmp: Path, kubeconfig: Path | None = None, **extra: Any) -> dict[str, Any]:
    kube = {"kubeconfig": str(kubeconfig), "namespace": "milvus-staging"} if kubeconfig else {}
    helm = {
        "release": "milvus",
        "chart": "milvus/milvus",
        "milvus_version": "2.6.15",
        "timeout": "5m",
        "values": {"cluster": {"enabled": True}},
    }
    config: dict[str, Any] = {
        "environments": {
            "prod": {
                "production": True,
                # production: every change waits for approval, so it needs someone who can give it.
                "approval": {"approvers": [OPERATOR, SECOND_APPROVER]},
                "milvus": {"uri": str(tmp / "prod.db")},
                "helm": helm,
                **({"kubernetes": kube} if kube else {}),
            },
            "staging": {
                "milvus": {"uri": str(tmp / "staging.db")},
                "helm": helm,
                **({"kubernetes": kube} if kube else {}),
                "approval": {"required": True, "approvers": [OPERATOR, SECOND_APPROVER], "approvals_required": 1},
                "channels": {"approvals": "CAPPROVALS"},
                "backup": {
                    "local_dir": str(tmp / "backups"),
                    "schedule": "0 2 * * *",
                    "retention": {"days": 7, "keep_last": 3},
                },
            },
            "lab": {"milvus": {"uri": str(tmp / "lab.db")}},
        },
        "access": [
            {"role": "operator", "users": [OPERATOR]},
            {"role": "viewer", "users": [VIEWER]},
        ],
    }
    config.update(extra)
    return config


class UploadRecordingMessenger(RecordingMessenger):
    def __init__(self) -> None:
        super().__init__()
        self.uploads: list[tuple[str, list[Attachment]]] = []

    def upload(
        self, channel: str, files: list[Attachment], *, thread_ref: str | None = None, comment: str = ""
    ) -> None:
        self.uploads.append((channel, files))


class Bot:
    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        self.messenger = UploadRecordingMessenger()
        store = Store(f"sqlite:///{tmp / 'state.db'}")
        store.migrate()
        self.runtime = build_test_runtime(
            settings=Settings(data_dir=tmp), config=config, store=store, messenger=self.messenger
        )
        self.dispatcher = Dispatcher(self.runtime)

    def run(self, text: str, user: str = VIEWER, trigger_id: str | None = None) -> Outcome:
        return self.dispatcher.run_command(text, Identity(user), channel="COPS", trigger_id=trigger_id)

    def press(self, action_id: str, payload: dict[str, Any], user: str = VIEWER, kind: str = "button") -> Outcome:
        return self.dispatcher.run_action(action_id, payload, Identity(user), channel="COPS", kind=kind)

    def close(self) -> None:
        self.runtime.services.close_all()
        self.runtime.store.engine.dispose()


@pytest.fixture
def make_bot(tmp_path: Path) -> Any:
    bots: list[Bot] = []

    def make(config: dict[str, Any] | None = None) -> Bot:
        bot = Bot(tmp_path, config or make_config(tmp_path))
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.close()


def buttons(outcome: Outcome) -> list[dict[str, Any]]:
    return [e for b in outcome.reply.blocks if b["type"] == "actions" for e in b["elements"]]


def all_text(outcome: Outcome) -> str:
    parts = [outcome.reply.text]
    for block in outcome.reply.blocks:
        parts.append(json.dumps(block, ensure_ascii=False))
    return "\n".join(parts)


# -- the worked case, the values file and the stored plan -----------------------------------------


def test_worked_case_matches_the_tool_and_attaches_values_that_parse(make_bot: Any) -> None:
    bot = make_bot()
    outcome = bot.run(f"/milvus plan {WORKED}")
    assert outcome.exit_code == 0, outcome.reply.text
    data = outcome.reply.data
    assert data["mode"] == "cluster"
    assert round(data["loading_memory_gib"], 1) == 345.0
    assert data["query_nodes"]["count"] == 11
    assert (data["query_nodes"]["cpu"], data["query_nodes"]["memory_gib"]) == (8, 32)
    assert {"raw_data_gib", "index_memory_gib", "local_disk_gib", "components", "dependencies"} <= set(data)
    assert {c["name"] for c in data["components"]} >= {"proxy", "mixCoord", "queryNode", "dataNode"}
    text = all_text(outcome)
    assert "345.0 GiB" in text and "11 x 8c/32G" in text
    assert "Show the math" in text and "(1 + 32/768) x 286.1 GiB = 298.0 GiB" in text

    plan_id = data["plan_id"]
    assert plan_id.startswith("p-") and len(plan_id) == 10
    [attachment] = outcome.reply.files
    assert attachment.filename == f"milvus-values-{plan_id}.yaml"
    values = yaml.safe_load(attachment.content)
    assert values["cluster"]["enabled"] is True
    assert values["queryNode"]["replicas"] == 11
    assert values["queryNode"]["resources"]["limits"] == {"cpu": "8", "memory": "32Gi"}
    assert values["streaming"]["enabled"] is True  # Milvus 2.6, chart 5.0.x

    stored = bot.runtime.store.kv_get("plans", plan_id)
    assert parse_plan_input(stored) == parse_plan_input({"vectors": "100M", "dim": 768, "index": "HNSW", "m": 16})


def test_the_same_input_gets_the_same_plan_id_and_different_input_another(make_bot: Any) -> None:
    bot = make_bot()
    first = bot.run(f"/milvus plan {WORKED}").reply.data["plan_id"]
    again = bot.run("/milvus plan --dim 768 --m 16 --index HNSW --vectors 100000000").reply.data["plan_id"]
    other = bot.run(f"/milvus plan {WORKED} --replicas 2").reply.data["plan_id"]
    assert first == again != other


def test_the_reply_stays_within_slack_limits_for_a_busy_plan(make_bot: Any, tmp_path: Path) -> None:
    prices = {"core_hour": 0.04, "gib_hour": 0.005, "disk_gib_month": 0.08, "object_gib_month": 0.02, "currency": "EUR"}
    bot = make_bot(make_config(tmp_path, prices=prices))
    outcome = bot.run(
        "/milvus plan staging --vectors 300M --dim 1536 --index IVF_PQ --pq-m 96 --nbits 8 --nlist 4096 --replicas 3"
        " --growth 20M/month --months 24 --milvus-version 2.5 --mq pulsar --scalar-bytes 512 --target-qps 2000"
    )
    assert outcome.exit_code == 0, outcome.reply.text
    blocks = outcome.reply.blocks
    # Nothing is cut by the transport: the message was designed to fit.
    assert fit_blocks(blocks) == blocks
    assert len(blocks) <= MAX_BLOCKS
    assert sum(len(json.dumps(b)) for b in blocks) <= MAX_TOTAL_BLOCK_CHARS
    assert all(len(b.get("text", {}).get("text", "")) <= MAX_SECTION_TEXT for b in blocks)
    text = all_text(outcome)
    assert "EUR" in text and "pulsar-bookie" in text and "month" in text
    assert outcome.reply.data["monthly_cost"]["currency"] == "EUR"
    assert outcome.reply.data["milvus_version"] == "2.5"


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("--vectors 1M --dim 40000", "dimension 40,000 is above Milvus' maximum of 32,768"),
        ("--vectors 0 --dim 768", "vectors must be at least 1 (got 0)"),
        ("--vectors 1M --dim 768 --m 1", "HNSW M must be between 2 and 2,048 (got 1)"),
        ("--vectors 1M --dim 768 --m 4096", "HNSW M must be between 2 and 2,048 (got 4,096)"),
        ("--vectors 1M --dim 768 --index nope", "unknown index 'nope'"),
        ("--dim 768", "vectors is required"),
        # A negative number is a number: say what it must be instead.
        ("--vectors -5 --dim 768", "vectors must be at least 1 (got -5)"),
        ("--vectors 1M --dim 768 --growth -5M/month", "growth per month must be between 0"),
    ],
)
def test_bad_input_is_one_short_message_with_exit_code_1(make_bot: Any, args: str, expected: str) -> None:
    outcome = make_bot().run(f"/milvus plan {args}")
    assert outcome.exit_code == 1
    assert outcome.reply.text.startswith("Cannot plan this:")
    assert expected in outcome.reply.text
    assert outcome.reply.files == [] and outcome.reply.data is None


def test_user_text_in_input_errors_stays_inert(make_bot: Any) -> None:
    bot = make_bot()
    typed = bot.run("/milvus plan --vectors '<!channel>' --dim 768 --index '<@U0BOSS>'")
    formed = bot.press("plan_modal", _submission({"vectors": "1M", "dim": "768", "index_params": "<!here>=1"}),
                       kind="modal")
    for outcome, mention in ((typed, "<!channel>"), (typed, "<@U0BOSS>"), (formed, "<!here>")):
        assert outcome.exit_code == 1
        shown = all_text(outcome)
        assert mention not in shown, shown
        assert bk_escape(mention) in shown, "the user still sees what they typed"


def test_help_plan_examples_name_an_environment_that_exists(tmp_path: Path, make_bot: Any) -> None:
    # The embedded default has one environment, `local`: a new user's first `help plan`.
    out = subprocess.run(
        [sys.executable, "-m", "bot", "run", "/milvus help plan", "--json"], capture_output=True, text=True,
        timeout=120, cwd=ROOT, env={**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    text = json.loads(out.stdout)["text"]
    assert "`/milvus plan local --vectors 20M --dim 1536 --index diskann`" in text
    assert "staging" not in text and "{env}" not in text
    # With several, a non-production one: trying an example there is harmless.
    assert "/milvus plan staging --vectors 20M" in make_bot().run("/milvus help plan").reply.text


def test_cli_bad_input_prints_the_problems_and_no_traceback(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "run", "/milvus plan --vectors 0 --dim 40000 --m 1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp_path)},
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stdout + out.stderr
    text = json.loads(out.stdout)["text"]
    for problem in (
        "vectors must be at least 1 (got 0)",
        "dimension 40,000 is above Milvus' maximum of 32,768",
        "HNSW M must be between 2 and 2,048 (got 1)",
    ):
        assert problem in text


def test_cli_worked_case_json_and_no_arguments_hint(tmp_path: Path) -> None:
    env = {**os.environ, "MILVUS_CHATOPS_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "bot", "run", f"/milvus plan {WORKED}", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)["data"]
    assert (round(data["loading_memory_gib"], 1), data["query_nodes"]["count"]) == (345.0, 11)
    # Without --json the console saves attachments to the data dir and names them.
    out = subprocess.run(
        [sys.executable, "-m", "bot", "run", f"/milvus plan {WORKED}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    saved = tmp_path / "files" / f"milvus-values-{data['plan_id']}.yaml"
    assert out.returncode == 0 and f"file: {saved.resolve()}" in out.stdout
    assert yaml.safe_load(saved.read_text())["queryNode"]["replicas"] == 11

    out = subprocess.run(
        [sys.executable, "-m", "bot", "run", "/milvus plan", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "/milvus plan --vectors 100M --dim 768" in json.loads(out.stdout)["text"]


def test_a_plan_beyond_one_cluster_says_so_and_offers_nothing_to_deploy(make_bot: Any) -> None:
    outcome = make_bot().run("/milvus plan staging --vectors 2B --dim 768")
    assert outcome.exit_code == 0
    assert outcome.reply.data["mode"] == "beyond"
    assert "Beyond one cluster" in all_text(outcome)
    assert outcome.reply.files == []
    assert [b["action_id"] for b in buttons(outcome)] == ["plan_prefill"]


# -- environments: version, backups, which env the button offers ---------------------------------


def test_an_environment_sets_version_and_backup_copies(make_bot: Any, tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config["environments"]["staging"]["helm"] = {
        **config["environments"]["staging"]["helm"],
        "milvus_version": "2.5.16",
    }
    bot = make_bot(config)
    outcome = bot.run(f"/milvus plan staging {WORKED}")
    data = outcome.reply.data
    assert data["milvus_version"] == "2.5"
    # Retention keeps a backup while it is among the newest 3 OR younger than 7 days of a daily schedule.
    stored = bot.runtime.store.kv_get("plans", data["plan_id"])
    assert stored["backup_retention_copies"] == 7
    assert round(data["object_storage_gib"], 1) == round(286.1 + 298.0 + 7 * 286.1, 1)
    assert "7 runs of `0 2 * * *` in 7 days" in all_text(outcome)
    # An explicit count wins over the environment's.
    explicit = bot.run(f"/milvus plan staging {WORKED} --backup-retention-copies 2").reply.data
    assert bot.runtime.store.kv_get("plans", explicit["plan_id"])["backup_retention_copies"] == 2


def test_deploy_button_offers_the_named_env_or_the_first_non_production_one(make_bot: Any) -> None:
    bot = make_bot()
    named = buttons(bot.run(f"/milvus plan prod {WORKED}"))
    assert named[0]["action_id"] == "plan_deploy"
    assert named[0]["text"]["text"] == "Deploy this plan to prod"
    default = buttons(bot.run(f"/milvus plan {WORKED}"))[0]
    assert default["text"]["text"] == "Deploy this plan to staging"
    assert "confirm" in default
    # lab has no helm section: no deploy button, and the reply says why.
    lab = bot.run(f"/milvus plan lab {WORKED}")
    assert [b["action_id"] for b in buttons(lab)] == ["plan_prefill"]
    assert "`lab` has no `helm:` section" in all_text(lab)
    # A plan for another Milvus line than the environment runs is not offered to it (deploy would refuse).
    other_line = bot.run(f"/milvus plan {WORKED} --milvus-version 2.5")
    assert [b["action_id"] for b in buttons(other_line)] == ["plan_prefill"]
    assert "`staging` runs Milvus 2.6.15, this plan is for 2.5" in all_text(other_line)
    unknown = bot.run(f"/milvus plan stagin {WORKED}")
    assert unknown.exit_code == 1 and "Did you mean `staging`?" in unknown.reply.text


def test_only_production_environments_get_a_hint_instead_of_a_button(make_bot: Any, tmp_path: Path) -> None:
    config = make_config(tmp_path)
    del config["environments"]["staging"]
    outcome = make_bot(config).run(f"/milvus plan {WORKED}")
    assert [b["action_id"] for b in buttons(outcome)] == ["plan_prefill"]
    assert "Name the environment to deploy to" in all_text(outcome)


# -- the form ---------------------------------------------------------------------------------------


def _submission(values: dict[str, Any], env: str | None = None) -> dict[str, Any]:
    """What bot/slack_app.py hands the dispatcher for a submitted form: metadata plus values."""
    return {"channel": "COPS", **({"env": env} if env else {}), **values}


def test_no_arguments_opens_the_form(make_bot: Any) -> None:
    outcome = make_bot().run("/milvus plan staging", trigger_id="123.456.abc")
    assert outcome.exit_code == 0
    modal = outcome.reply.modal
    assert modal is not None and modal["callback_id"] == "plan_modal"
    assert json.loads(modal["private_metadata"]) == {"env": "staging"}
    fields = {b["block_id"] for b in modal["blocks"]}
    assert fields == {
        "vectors",
        "dim",
        "index",
        "index_params",
        "replicas",
        "growth",
        "months",
        "milvus_version",
        "mq",
        "segment_size_mb",
        "scalar_bytes",
    }
    # In Slack the form is the answer; no message beside it.
    assert outcome.reply.text == ""


def test_the_form_submission_gives_the_same_plan_as_the_command(make_bot: Any) -> None:
    bot = make_bot()
    typed = bot.run(f"/milvus plan staging {WORKED} --growth 5M/month --months 12").reply.data
    submitted = bot.press(
        "plan_modal",
        _submission(
            {
                "vectors": "100M",
                "dim": "768",
                "index": "HNSW",
                "index_params": "m=16",
                "replicas": None,
                "growth": "5M",
                "months": "12",
                "milvus_version": None,
                "mq": None,
                "segment_size_mb": "1024",
                "scalar_bytes": "",
            },
            env="staging",
        ),
        kind="modal",
    )
    assert submitted.exit_code == 0, submitted.reply.text
    assert submitted.reply.data == typed
    # The form's answer carries the values file like the command; the transport uploads it.
    [values_file] = submitted.reply.files
    assert values_file.filename == f"milvus-values-{typed['plan_id']}.yaml"


def test_a_bad_form_submission_is_a_short_message(make_bot: Any) -> None:
    outcome = make_bot().press(
        "plan_modal", _submission({"vectors": "0", "dim": "768", "index_params": "m=1 color=red"}), kind="modal"
    )
    assert outcome.exit_code == 1
    assert "index parameter 'color=red'" in outcome.reply.text


def test_prefill_button_opens_the_form_with_the_values(make_bot: Any) -> None:
    bot = make_bot()
    # The shape bot/reports.py puts in its "Open /milvus plan" button.
    payload = {
        "env": "staging",
        "vectors": 12_000_000,
        "dim": 768,
        "growth_per_month": 300_000,
        "months": 12,
        "_message_ts": "1.2",
    }
    outcome = bot.press("plan_prefill", payload)
    assert outcome.exit_code == 0, outcome.reply.text
    modal = outcome.reply.modal
    assert modal is not None and modal["callback_id"] == "plan_modal"
    initial = {b["block_id"]: b["element"].get("initial_value") for b in modal["blocks"]}
    assert (initial["vectors"], initial["dim"], initial["growth"], initial["months"]) == (
        "12000000",
        "768",
        "300000",
        "12",
    )
    assert json.loads(modal["private_metadata"]) == {"env": "staging"}
    # Without Slack (console) the reply says what to type instead.
    assert "/milvus plan staging --vectors 12000000 --dim 768 --growth 300000 --months 12" in outcome.reply.text
    # The plan's own "Change inputs" button round-trips its index parameters through the form.
    change = next(b for b in buttons(bot.run(f"/milvus plan {WORKED}")) if b["action_id"] == "plan_prefill")
    reopened = bot.press("plan_prefill", json.loads(change["value"])).reply.modal
    assert reopened is not None
    params = next(b for b in reopened["blocks"] if b["block_id"] == "index_params")
    assert params["element"]["initial_value"] == "m=16"


# -- the deploy button ------------------------------------------------------------------------------


@pytest.fixture
def helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHelm:
    fake = FakeHelm(tmp_path / "helm-state")
    fake.set_chart("milvus/milvus", {"4.2.58": "2.5.16", "5.0.19": "2.6.15"})
    for key, value in fake.env_updates().items():
        monkeypatch.setenv(key, value)
    return fake


def test_deploy_button_hands_the_stored_plan_to_deploy(
    make_bot: Any, tmp_path: Path, helm: FakeHelm, fake_kube: FakeKube
) -> None:
    bot = make_bot(make_config(tmp_path, fake_kube.kubeconfig_path()))
    reply = bot.run(f"/milvus plan {WORKED}")
    button = buttons(reply)[0]
    value = json.loads(button["value"])
    assert value == {"env": "staging", "plan": reply.reply.data["plan_id"]}

    denied = bot.press("plan_deploy", value, user=VIEWER)
    assert denied.exit_code == 1 and "operator" in denied.reply.text

    pressed = bot.press("plan_deploy", value, user=OPERATOR)
    assert pressed.exit_code == 0, pressed.reply.text
    # staging needs approval: the deploy feature asked for it, bound to the plan's values.
    assert pressed.reply.text.startswith("Approval requested: Deploy Milvus 2.6.15 to staging")
    request = Approvals(bot.runtime).get(pressed.reply.data["approval"]["id"])
    expected = values_for(
        plan(parse_plan_input({"vectors": "100M", "dim": 768, "index": "HNSW", "m": 16})),
        "v2.6.15",
        {},
        base={"cluster": {"enabled": True}},
    )
    assert request.payload["values"] == json.loads(json.dumps(expected))
    assert request.payload["inputs"]["plan"] == value["plan"]
    assert not helm.calls("upgrade")


def test_deploy_button_for_a_forgotten_plan_says_so(
    make_bot: Any, tmp_path: Path, helm: FakeHelm, fake_kube: FakeKube
) -> None:
    bot = make_bot(make_config(tmp_path, fake_kube.kubeconfig_path()))
    outcome = bot.press("plan_deploy", {"env": "staging", "plan": "p-00000000"}, user=OPERATOR)
    assert outcome.exit_code == 1
    assert "There is no stored plan `p-00000000`" in outcome.reply.text


# -- end to end through serve ---------------------------------------------------------------------


def serve_config(tmp: Path) -> str:
    return yaml.safe_dump(make_config(tmp))


def test_serve_slash_command_replies_and_uploads_the_values_file(
    bot_server: Any, fake_slack: Any, tmp_path: Path
) -> None:
    server = bot_server(serve_config(tmp_path))
    ack = server.slack.slash_command(f"plan {WORKED}", user_id=VIEWER, response_url=fake_slack.response_url("p1"))
    assert ack.status_code == 200
    reply = fake_slack.wait_for_response("p1", timeout=30)
    text = reply.all_text()
    assert "loading memory 345.0 GiB" in text and "11 query node(s) of 8c/32G" in text
    plan_id = text.split("Plan ", 1)[1].split(":", 1)[0]

    upload = fake_slack.wait_for_call("files.completeUploadExternal", timeout=30)
    assert upload.ok
    [uploaded] = [f for f in fake_slack.files() if f.completed]
    assert uploaded.filename == f"milvus-values-{plan_id}.yaml" and uploaded.channel == "C0OPS"
    values = yaml.safe_load(uploaded.content)
    assert values["queryNode"]["replicas"] == 11 and values["cluster"]["enabled"] is True

    # The deploy button's value names a plan that the bot stored, with exactly this input.
    deploy = next(
        e
        for b in reply.body["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "plan_deploy"
    )
    value = json.loads(deploy["value"])
    assert value == {"env": "staging", "plan": plan_id}
    with sqlite3.connect(server.data_dir / "state.db") as db:
        row = db.execute("select value from kv where namespace = 'plans' and key = ?", (plan_id,)).fetchone()
    assert parse_plan_input(json.loads(row[0])) == parse_plan_input(
        {"vectors": 100_000_000, "dim": 768, "index": "HNSW", "m": 16, "backup_retention_copies": 0}
    )


def test_serve_no_arguments_opens_the_form_and_its_submission_plans(
    bot_server: Any, fake_slack: Any, tmp_path: Path
) -> None:
    server = bot_server(serve_config(tmp_path))
    server.slack.slash_command("plan staging", user_id=VIEWER, response_url=fake_slack.response_url("form"))
    opened = fake_slack.wait_for_call("views.open", timeout=30)
    assert opened.ok
    view = fake_slack.views()[0].view
    assert view["callback_id"] == "plan_modal"
    metadata = view["private_metadata"]
    assert json.loads(metadata) == {"env": "staging", "channel": "C0OPS"}

    values = {
        "vectors": {"vectors": "100M"},
        "dim": {"dim": "768"},
        "index": {"index": {"type": "static_select", "selected_option": {"value": "HNSW"}}},
        "index_params": {"index_params": "m=16"},
        "replicas": {"replicas": None},
        "growth": {"growth": None},
        "months": {"months": None},
        "milvus_version": {"milvus_version": {"type": "static_select", "selected_option": None}},
        "mq": {"mq": {"type": "static_select", "selected_option": None}},
        "segment_size_mb": {"segment_size_mb": {"type": "static_select", "selected_option": {"value": "1024"}}},
        "scalar_bytes": {"scalar_bytes": None},
    }
    response = server.slack.view_submission("plan_modal", values, user_id=VIEWER, private_metadata=metadata)
    assert response.status_code == 200
    posted = fake_slack.wait_for_call("chat.postEphemeral", timeout=30)
    assert posted.params["channel"] == "C0OPS" and posted.params["user"] == VIEWER
    assert "loading memory 345.0 GiB" in posted.params["text"]
    assert "11 query node(s) of 8c/32G" in posted.params["text"]
    # No message answered the slash command itself: the form was the answer.
    assert fake_slack.responses("form") == []
    # The values file still reaches the channel the form was opened from.
    fake_slack.wait_for_call("files.completeUploadExternal", timeout=30)
    [uploaded] = [f for f in fake_slack.files() if f.completed]
    assert uploaded.channel == "C0OPS" and uploaded.filename.startswith("milvus-values-p-")
    assert yaml.safe_load(uploaded.content)["queryNode"]["replicas"] == 11
