"""Gates over HTTP: POST each due gate's JSON payload, through httpx; 2xx passes.

The pure side (:mod:`generator.rollout.gates`) says which gates a tick asks and what their
answers do. Here a gate's URL gets its ``${NAME}`` references from the process environment
-- the only way a URL may carry a secret -- and is never printed or logged: messages name the
gate. Every failure (an unset variable, a refused connection, a timeout, a non-2xx answer)
becomes a :class:`~generator.rollout.gates.GateResult` that did not pass; nothing raises.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping, Sequence

import httpx

from generator.rollout.gates import VARIABLE, Gate, GateResult

log = logging.getLogger(__name__)


class _Unset(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def expand(url: str, environ: Mapping[str, str]) -> str:
    """``url`` with each ``${NAME}`` replaced by the variable's value.

    Raises:
        _Unset: a referenced variable is not set (or empty).
    """
    def value(match: Any) -> str:
        found = environ.get(match.group(1))
        if not found:
            raise _Unset(match.group(1))
        return found

    return VARIABLE.sub(value, url)


def call(gate: Gate, body: Mapping[str, Any], *, environ: Mapping[str, str] | None = None,
         client: httpx.Client | None = None) -> GateResult:
    """POST ``body`` as JSON to ``gate``'s URL and wait at most ``gate.timeout`` seconds for
    each of connecting, sending and reading the answer.

    Returns:
        The :class:`GateResult`: passed when the answer is 2xx (redirects are not followed).
    """
    try:
        url = expand(gate.url, os.environ if environ is None else environ)
    except _Unset as e:
        return _failed(gate, f"variable {e.name} is not set")
    try:
        if client is None:
            response = httpx.post(url, json=dict(body), timeout=gate.timeout)
        else:
            response = client.post(url, json=dict(body), timeout=gate.timeout)
    except httpx.TimeoutException:
        return _failed(gate, f"timed out after {gate.timeout_text}")
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as e:
        return _failed(gate, f"could not be reached ({type(e).__name__})")
    result = GateResult(gate, response.is_success, f"HTTP {response.status_code}")
    log.info("gate %s (%s): HTTP %d", gate.name, gate.kind, response.status_code)
    return result


def call_all(gates: Sequence[Gate], body_of: Callable[[Gate], Mapping[str, Any]], *,
             environ: Mapping[str, str] | None = None) -> list[GateResult]:
    """:func:`call` each gate in order, with one HTTP client (each gate's own timeout)."""
    if not gates:
        return []
    with httpx.Client(follow_redirects=False) as client:
        return [call(g, body_of(g), environ=environ, client=client) for g in gates]


def _failed(gate: Gate, detail: str) -> GateResult:
    log.warning("gate %s (%s) did not pass: %s", gate.name, gate.kind, detail)
    return GateResult(gate, False, detail)
