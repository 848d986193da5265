"""Slack notifications: posted to a local server that records them; failures never raise."""

from __future__ import annotations

import json
import logging

from demo.fakemesh import free_port
from generator.bot import notify
from generator.rollout.decision import Action


def test_notified_actions_are_posted_as_slack_text(recorder):
    server = recorder()
    env = {"SLACK_WEBHOOK_URL": server.url + "/hook"}
    for action in (Action.START, Action.STEP, Action.ROLLBACK, Action.SUCCEED):
        assert notify.notify("SLACK_WEBHOOK_URL", "ratings", "prod", action, f"{action.value} reason", env)
    texts = [json.loads(r["body"])["text"] for r in server.requests]
    assert [r["method"] for r in server.requests] == ["POST"] * 4
    assert texts[0] == ":rocket: meshgen rollout ratings in prod: start reason"
    assert texts[2].startswith(":rotating_light:") and "rollback reason" in texts[2]


def test_holds_and_counts_are_not_posted(recorder):
    server = recorder()
    env = {"SLACK_WEBHOOK_URL": server.url}
    for action in (Action.HOLD, Action.FAIL_COUNT, Action.NOTHING):
        assert not notify.notify("SLACK_WEBHOOK_URL", "ratings", "prod", action, "x", env)
    assert server.requests == []


def test_a_failing_webhook_is_logged_without_its_url(recorder, caplog):
    server = recorder(answers=[500])
    with caplog.at_level(logging.WARNING):
        assert not notify.notify("HOOK", "ratings", "prod", Action.STEP, "x", {"HOOK": server.url + "/secret-path"})
        assert not notify.notify("HOOK", "ratings", "prod", Action.STEP, "x", {"HOOK": f"http://127.0.0.1:{free_port()}/s"})
        assert not notify.notify("HOOK", "ratings", "prod", Action.STEP, "x", {})
    assert "HTTP 500" in caplog.text and "ConnectError" in caplog.text and "HOOK is not set" in caplog.text
    assert "secret-path" not in caplog.text


def test_no_webhook_configured_posts_nothing():
    assert not notify.notify(None, "ratings", "prod", Action.STEP, "x", {})
