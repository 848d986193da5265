"""Slack notifications of rollout events, through an incoming webhook.

Slack's incoming webhooks (https://api.slack.com/messaging/webhooks) take an HTTP POST of
``{"text": "..."}`` as JSON and answer ``ok``. The webhook URL is a secret, so a spec names
only the environment variable that holds it (``rollout.notify.slack.webhookUrlEnv``).

A notification is a courtesy: the commit is the record. A webhook that is missing, slow or
failing is logged (without its URL) and never stops or fails a rollout.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Mapping

import httpx

from generator.rollout.decision import Action

log = logging.getLogger(__name__)

#: The actions worth a message (holds, failed-check counts and no-ops are not).
NOTIFIED = {Action.START, Action.STEP, Action.ROLLBACK, Action.SUCCEED, Action.ABORT, Action.PROMOTE}

_ICONS = {Action.START: ":rocket:", Action.STEP: ":arrow_up:", Action.ROLLBACK: ":rotating_light:",
          Action.SUCCEED: ":white_check_mark:", Action.ABORT: ":rotating_light:",
          Action.PROMOTE: ":white_check_mark:"}


def message(app: str, env: str, action: Action, reason: str) -> str:
    """The Slack text of one rollout event."""
    return f"{_ICONS.get(action, '')} meshgen rollout {app} in {env}: {reason}".strip()


def post(url: str, text: str, *, timeout: float = 5.0) -> bool:
    """POST ``{"text": text}`` to a Slack incoming webhook; True when it answered 2xx.

    ``timeout`` bounds the whole exchange (a webhook that trickles its answer is given up on).
    Never raises: a failure -- an unreachable, slow or refusing webhook, or a URL that is not
    one (a control character in it) -- is logged as a warning without the URL.
    """
    box: dict = {}

    def work() -> None:
        try:
            box["response"] = httpx.post(url, json={"text": text}, timeout=timeout)
        except Exception as e:  # noqa: BLE001 -- handed to the caller's thread as a warning
            box["error"] = e

    worker = threading.Thread(target=work, name="meshgen-slack", daemon=True)
    worker.start()
    worker.join(timeout + 0.05)
    if worker.is_alive() or isinstance(box.get("error"), httpx.TimeoutException):
        log.warning("Slack webhook did not answer within %g s", timeout)
        return False
    if "error" in box:
        log.warning("Slack webhook failed: %s", type(box["error"]).__name__)
        return False
    response = box["response"]
    if not response.is_success:
        log.warning("Slack webhook answered HTTP %d", response.status_code)
        return False
    return True


def notify(webhook_url_env: str | None, app: str, env: str, action: Action, reason: str,
           environ: Mapping[str, str] | None = None) -> bool:
    """Tell Slack about ``action`` if it is one of :data:`NOTIFIED` and a webhook is set.

    Args:
        webhook_url_env: the name of the environment variable with the webhook URL, or None.
        app: the app whose rollout it is.
        env: the environment.
        action: what happened.
        reason: why (the decision's reason).
        environ: where to look the variable up (default: the process environment).

    Returns:
        True when a message was posted and accepted.
    """
    if action not in NOTIFIED or not webhook_url_env:
        return False
    url = (os.environ if environ is None else environ).get(webhook_url_env)
    if not url:
        log.warning("Slack webhook variable %s is not set; no notification for %s in %s", webhook_url_env, app, env)
        return False
    return post(url, message(app, env, action, reason))
