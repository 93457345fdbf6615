"""/milvus backup ... and /milvus restore through the real Dispatcher, with milvus-lite and moto S3.

What a user sees: replies, exit codes, the contract's structured data, approvals for production.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot.access import Identity
from bot.dispatch import Dispatcher, Outcome
from commands.approvals.workflow import Approvals
from tests.commands.backup.helpers import (
    BUCKET,
    all_rows,
    assert_same_rows,
    aws_env,  # noqa: F401  (fixture)
    create_rich_collection,
    make_runtime,
    s3_backup,
)

pytestmark = pytest.mark.usefixtures("aws_env")
OPERATOR, APPROVER, VIEWER = "UOPER", "UAPPROVER", "UVIEWER"
CONTRACT_KEYS = {"id", "environment", "engine", "state", "collections", "rows", "bytes", "created_at"}


@pytest.fixture
def setup(tmp_path: Path, milvus_lite_uri: str, moto_s3: Any) -> Any:
    moto_s3.client().create_bucket(Bucket=BUCKET)
    config = {
        "environments": {
            "staging": {"milvus": {"uri": milvus_lite_uri, "timeout_s": 60},
                        "backup": s3_backup(moto_s3.url, prefix="staging")},
            "prod": {"production": True, "milvus": {"uri": milvus_lite_uri, "timeout_s": 60},
                     "backup": s3_backup(moto_s3.url, prefix="prod"),
                     "approval": {"required": True, "approvers": [APPROVER]},
                     "channels": {"approvals": "C-APPROVALS", "ops": "C-OPS"}},
        },
        "access": [
            {"role": "operator", "users": [OPERATOR, APPROVER]},
            {"role": "viewer", "users": [VIEWER]},
        ],
    }
    runtime, messenger = make_runtime(tmp_path, config)
    dispatcher = Dispatcher(runtime)
    client = runtime.services.milvus_client(runtime.config.environments["staging"])
    return runtime, messenger, dispatcher, client


def run(dispatcher: Dispatcher, text: str, user: str = OPERATOR) -> Outcome:
    return dispatcher.run_command(text, Identity(user), channel="C-TEST")


def test_create_list_show_verify_delete(setup: Any) -> None:
    _, _, dispatcher, client = setup
    create_rich_collection(client, "docs", rows=300)
    create_rich_collection(client, "other", rows=20, dim=4)

    created = run(dispatcher, "/milvus backup create staging docs")
    assert created.exit_code == 0, created.reply.text
    data = created.reply.data
    assert set(data) == CONTRACT_KEYS
    assert (data["environment"], data["engine"], data["state"], data["collections"], data["rows"]) == (
        "staging", "logical", "complete", ["docs"], 300)
    assert created.reply.text.startswith(f"Backup {data['id']} of staging is complete: 1 collection(s), 300 rows")

    listed = run(dispatcher, "/milvus backup list staging", user=VIEWER)
    assert listed.exit_code == 0 and [b["id"] for b in listed.reply.data] == [data["id"]]
    assert all(set(b) == CONTRACT_KEYS for b in listed.reply.data)

    shown = run(dispatcher, f"/milvus backup show {data['id']}", user=VIEWER)
    assert shown.exit_code == 0
    assert shown.reply.data["collections_detail"][0]["rows"] == 300

    verified = run(dispatcher, f"/milvus backup verify {data['id']}", user=VIEWER)
    assert verified.exit_code == 0 and verified.reply.data["ok"] is True
    assert "is intact" in verified.reply.text

    denied = run(dispatcher, "/milvus backup create staging", user=VIEWER)
    assert denied.exit_code == 1 and "needs the operator role in `staging`" in denied.reply.text

    deleted = run(dispatcher, f"/milvus backup delete {data['id']}")
    assert deleted.exit_code == 0 and deleted.reply.data["state"] == "deleted"
    assert run(dispatcher, "/milvus backup list staging").reply.data == []
    missing = run(dispatcher, f"/milvus backup show {data['id']}")
    assert missing.exit_code == 1 and "There is no backup" in missing.reply.text


def test_verify_names_a_corrupted_object(setup: Any, moto_s3: Any) -> None:
    _, _, dispatcher, client = setup
    create_rich_collection(client, "docs", rows=100)
    backup_id = run(dispatcher, "/milvus backup create staging").reply.data["id"]
    s3 = moto_s3.client()
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="staging/")["Contents"]
               if o["Key"].endswith(".parquet"))
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"garbage")

    verified = run(dispatcher, f"/milvus backup verify {backup_id}")
    assert verified.exit_code == 1
    assert "is damaged" in verified.reply.text and key.split(f"{backup_id}/")[1] in verified.reply.text
    restored = run(dispatcher, f"/milvus restore {backup_id} --to staging --suffix _r")
    assert restored.exit_code == 1 and "Nothing was restored" in restored.reply.text
    assert sorted(client.list_collections()) == ["docs"]


def test_restore_refuses_existing_then_restores_with_suffix(setup: Any) -> None:
    _, _, dispatcher, client = setup
    create_rich_collection(client, "docs", rows=200)
    before = all_rows(client, "docs")
    backup_id = run(dispatcher, "/milvus backup create staging").reply.data["id"]

    refused = run(dispatcher, f"/milvus restore {backup_id} --to staging")
    assert refused.exit_code == 1
    assert "`docs` already exists in `staging`; nothing was restored." in refused.reply.text
    assert "--drop-existing" in refused.reply.text

    restored = run(dispatcher, f"/milvus restore {backup_id} --to staging --collections docs --suffix _restored")
    assert restored.exit_code == 0, restored.reply.text
    assert restored.reply.data["collections"][0]["target"] == "docs_restored"
    assert "row counts match the manifest" in restored.reply.text
    assert_same_rows(before, all_rows(client, "docs_restored"))

    unknown = run(dispatcher, f"/milvus restore {backup_id} --to staging --collections nope --suffix _x")
    assert unknown.exit_code == 1 and "has no collection `nope`" in unknown.reply.text


def test_restore_into_production_waits_for_approval(setup: Any) -> None:
    runtime, messenger, dispatcher, client = setup
    create_rich_collection(client, "docs", rows=150)
    before = all_rows(client, "docs")
    backup_id = run(dispatcher, "/milvus backup create staging").reply.data["id"]

    asked = run(dispatcher, f"/milvus restore {backup_id} --to prod --suffix _prod")
    assert asked.exit_code == 0, asked.reply.text
    request = asked.reply.data["approval"]
    assert request["state"] == "pending" and request["kind"] == "restore"
    assert "Nothing has been restored yet" in asked.reply.text
    assert "docs_prod" not in client.list_collections()
    assert any(p["channel"] == "C-APPROVALS" for p in messenger.posts)

    own = run(dispatcher, f"/milvus approve {request['id']}")
    assert own.exit_code == 1 and "cannot approve it" in own.reply.text

    approved = run(dispatcher, f"/milvus approve {request['id']}", user=APPROVER)
    assert approved.exit_code == 0, approved.reply.text
    assert Approvals.wait(request["id"], timeout=120)
    done = Approvals(runtime).get(request["id"])
    assert done.state == "done", done.result
    assert done.result and done.result.startswith(f"Restored backup {backup_id} into prod")
    assert_same_rows(before, all_rows(client, "docs_prod"))


def test_deleting_a_production_backup_needs_approval(setup: Any) -> None:
    _, _, dispatcher, client = setup
    create_rich_collection(client, "docs", rows=50)
    backup_id = run(dispatcher, "/milvus backup create prod").reply.data["id"]

    asked = run(dispatcher, f"/milvus backup delete {backup_id}")
    assert asked.exit_code == 0 and asked.reply.data["approval"]["kind"] == "backup_delete"
    assert [b["id"] for b in run(dispatcher, "/milvus backup list prod").reply.data] == [backup_id]

    run(dispatcher, f"/milvus approve {asked.reply.data['approval']['id']}", user=APPROVER)
    assert Approvals.wait(asked.reply.data["approval"]["id"], timeout=60)
    assert run(dispatcher, "/milvus backup list prod").reply.data == []


@pytest.fixture
def shared_dir(tmp_path: Path, milvus_lite_uri: str) -> Any:
    """Two environments whose backups share one local directory, and a user with a role in `dev` only."""
    shared = str(tmp_path / "backups")
    config = {
        "environments": {
            "dev": {"milvus": {"uri": milvus_lite_uri, "timeout_s": 60}, "backup": {"local_dir": shared}},
            "prod": {"milvus": {"uri": milvus_lite_uri, "timeout_s": 60}, "backup": {"local_dir": shared}},
        },
        "access": [
            {"role": "admin", "users": [APPROVER]},
            {"role": "operator", "users": [OPERATOR], "environments": ["dev"]},
        ],
    }
    runtime, _ = make_runtime(tmp_path, config)
    return Dispatcher(runtime), runtime.services.milvus_client(runtime.config.environments["dev"])


def test_a_backup_id_cannot_reach_into_another_environment(shared_dir: Any) -> None:
    dispatcher, client = shared_dir
    create_rich_collection(client, "docs", rows=50)
    prod_id = run(dispatcher, "/milvus backup create prod", user=APPROVER).reply.data["id"]

    for text in (f"/milvus backup verify ../prod/{prod_id} --env dev",
                 f"/milvus backup show ../prod/{prod_id} --env dev",
                 f"/milvus backup delete ../prod/{prod_id} --env dev",
                 f"/milvus restore ../prod/{prod_id} --to dev --suffix _stolen"):
        refused = run(dispatcher, text)
        assert refused.exit_code == 1, (text, refused.reply.text)
        assert f"`../prod/{prod_id}` is not a backup id" in refused.reply.text
        assert "prod-20260101-020000-ab12" in refused.reply.text  # what an id looks like

    # A well-formed id of prod, aimed at dev, is refused too: ids are confined to their environment.
    aimed = run(dispatcher, f"/milvus backup verify {prod_id} --env dev")
    assert aimed.exit_code == 1 and "is not a backup of `dev` (its id names `prod`)" in aimed.reply.text
    # And without --env the id names prod, where this user has no role.
    denied = run(dispatcher, f"/milvus backup verify {prod_id}")
    assert denied.exit_code == 1 and "`prod`" in denied.reply.text and "intact" not in denied.reply.text
    assert "docs_stolen" not in client.list_collections()


def test_user_text_in_backup_replies_is_escaped(setup: Any) -> None:
    _, _, dispatcher, _ = setup
    for text in ("/milvus backup verify <!channel> --env staging", "/milvus backup show <!channel> --env staging",
                 "/milvus restore <!channel> --to staging"):
        reply = run(dispatcher, text).reply
        shown = reply.text + json.dumps(reply.blocks)
        assert "<!channel>" not in shown, shown
        assert "&lt;!channel&gt;" in shown


def test_a_tiny_backup_reports_a_real_duration_and_speed(setup: Any) -> None:
    _, _, dispatcher, client = setup
    create_rich_collection(client, "docs", rows=40, dim=4)
    created = run(dispatcher, "/milvus backup create staging docs")
    assert created.exit_code == 0, created.reply.text
    assert " in 0 s" not in created.reply.text and "0.0 MB/s" not in json.dumps(created.reply.blocks)
    assert re.search(r"KiB in \d+\.\d s\.$", created.reply.text), created.reply.text
    speed = next(f["text"] for b in created.reply.blocks for f in b.get("fields", []) if "*Speed*" in f["text"])
    assert re.fullmatch(r"\*Speed\*\n[\d,.]+ (B|KiB|MiB)/s", speed), speed
