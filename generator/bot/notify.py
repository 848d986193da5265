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

    Never raises: a failure is logged as a warning without the URL.
    """
    try:
        response = httpx.post(url, json={"text": text}, timeout=timeout)
    except httpx.HTTPError as e:
        log.warning("Slack webhook failed: %s", type(e).__name__)
        return False
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
