"""FakeSlack answers slack_sdk the way Slack does where the bot depends on it."""

from __future__ import annotations

import time

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from tests.support.fake_slack import FakeSlack

TOKEN = "xoxb-fake-token"


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake_slack.api_url, timeout=5)


def test_auth_test_identifies_the_bot_and_the_token_is_recorded(client: WebClient, fake_slack: FakeSlack) -> None:
    me = client.auth_test()
    assert (me["user_id"], me["bot_id"], me["team_id"]) == ("U0FAKEBOT", "B0FAKEBOT", "T0FAKE")
    assert fake_slack.calls("auth.test")[0].token == TOKEN


def test_requests_without_a_token_are_refused_like_slack(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=fake_slack.api_url, timeout=5).chat_postMessage(channel="C1", text="x")
    assert err.value.response["error"] == "not_authed"


def test_posts_get_increasing_ts_and_updates_apply_to_the_message(client: WebClient, fake_slack: FakeSlack) -> None:
    first = client.chat_postMessage(
        channel="C1", text="deploying", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "step 1"}}]
    )
    second = client.chat_postMessage(channel="C1", text="other")
    reply = client.chat_postMessage(channel="C1", text="in thread", thread_ts=first["ts"])
    assert float(first["ts"]) < float(second["ts"]) < float(reply["ts"])

    client.chat_update(channel="C1", ts=first["ts"], text="deployed", blocks=[])
    top = fake_slack.messages("C1")
    assert [m.text for m in top] == ["deployed", "other"]
    assert top[0].blocks == [] and len(top[0].updates) == 1
    assert [m.text for m in fake_slack.replies("C1", first["ts"])] == ["in thread"]
    thread = client.conversations_replies(channel="C1", ts=first["ts"])["messages"]
    assert [m["text"] for m in thread] == ["deployed", "in thread"]


def test_update_errors_match_slack(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C1", ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"
    posted = client.chat_postMessage(channel="C1", text="x")
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C1", ts=posted["ts"], text="y" * 4001)
    assert err.value.response["error"] == "msg_too_long"
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="x", blocks=[{"type": "divider"}] * 51)
    assert err.value.response["error"] == "invalid_blocks"


def test_a_429_is_retried_by_slack_sdks_rate_limit_handler(client: WebClient, fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=1)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    started = time.monotonic()
    client.chat_postMessage(channel="C1", text="eventually")
    assert time.monotonic() - started >= 1.0  # it honoured Retry-After
    assert [c.http_status for c in fake_slack.calls("chat.postMessage")] == [429, 200]
    assert [m.text for m in fake_slack.messages("C1")] == ["eventually"]


def test_without_a_retry_handler_the_429_surfaces_with_retry_after(client: WebClient, fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("chat.update", status=429, retry_after=7, times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            client.chat_update(channel="C1", ts="1.1", text="x")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["Retry-After"] == "7"
        assert err.value.response["error"] == "ratelimited"
    with pytest.raises(SlackApiError) as err:  # faults used up: back to normal answers
        client.chat_update(channel="C1", ts="1.1", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_files_upload_v2_goes_through_the_external_upload_flow(client: WebClient, fake_slack: FakeSlack) -> None:
    result = client.files_upload_v2(channel="C1", content="a,b\n1,2\n", filename="report.csv", title="Report")
    assert result["file"]["title"] == "Report"
    [upload] = fake_slack.files()
    assert upload.content == b"a,b\n1,2\n" and upload.channel == "C1" and upload.completed


def test_response_url_posts_are_recorded_and_limited_to_five(fake_slack: FakeSlack) -> None:
    hook = WebhookClient(fake_slack.response_url("cmd1"), timeout=5)
    statuses = [hook.send(text=f"reply {n}", response_type="ephemeral").status_code for n in range(6)]
    assert statuses == [200] * 5 + [404]
    assert fake_slack.wait_for_response("cmd1").text == "reply 0"
    assert fake_slack.responses("cmd1")[1].body["response_type"] == "ephemeral"


def test_views_need_a_fresh_trigger_and_update_by_id(client: WebClient, fake_slack: FakeSlack) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Deploy"}, "blocks": []}
    opened = client.views_open(trigger_id="123.456.abc", view=view)["view"]
    with pytest.raises(SlackApiError) as err:
        client.views_open(trigger_id="123.456.abc", view=view)
    assert err.value.response["error"] == "trigger_exchanged"
    client.views_update(view_id=opened["id"], view={**view, "title": {"type": "plain_text", "text": "Done"}})
    assert fake_slack.views()[0].view["title"]["text"] == "Done"


def test_usergroup_members_are_configurable(client: WebClient, fake_slack: FakeSlack) -> None:
    fake_slack.set_usergroup("S0ADMINS", ["U1", "U2"])
    assert client.usergroups_users_list(usergroup="S0ADMINS")["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as err:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert err.value.response["error"] == "no_such_subteam"


def test_wait_for_call_sees_calls_made_from_other_threads(client: WebClient, fake_slack: FakeSlack) -> None:
    import threading

    threading.Timer(0.1, lambda: client.chat_postEphemeral(channel="C1", user="U1", text="only you")).start()
    call = fake_slack.wait_for_call("chat.postEphemeral", lambda c: c.params["user"] == "U1", timeout=5)
    assert call.params["text"] == "only you"
    assert fake_slack.ephemerals("C1", user="U1")[0].text == "only you"
