"""Gates over HTTP: POST each due gate's JSON payload, through httpx; 2xx passes.

The pure side (:mod:`generator.rollout.gates`) says which gates a tick asks and what their
answers do. Here a gate's URL gets its ``${NAME}`` references from the process environment
-- the only way a URL may carry a secret -- and is never printed or logged: messages name the
gate. Every failure (an unset variable, a refused connection, a timeout, a non-2xx answer,
an answer longer than :data:`MAX_ANSWER_BYTES`) becomes a
:class:`~generator.rollout.gates.GateResult` that did not pass.

A gate's ``timeout`` bounds its whole request, from connecting to the last byte of the answer
(httpx's timeout bounds each read only, so a server that trickles its answer would never be
cut off); the rollout tick's :class:`~generator.bot.deadline.Deadline` bounds it too. When
the deadline, not the gate's own timeout, cuts a request short, the tick stops there with
:class:`~generator.errors.DeadlineExceeded` (exit 3), before anything is committed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import httpx

from generator.rollout.gates import VARIABLE, Gate, GateResult

if TYPE_CHECKING:
    from generator.bot.deadline import Deadline

log = logging.getLogger(__name__)

#: Largest answer read from a gate (bytes). Only its status decides; a longer answer is
#: refused (the gate does not pass) without being read to the end or held in memory.
MAX_ANSWER_BYTES = 1 << 20


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
         client: httpx.Client | None = None, deadline: "Deadline | None" = None) -> GateResult:
    """POST ``body`` as JSON to ``gate``'s URL and wait at most ``gate.timeout`` seconds for
    the whole exchange (connecting, sending, and the answer to its last byte), and never
    past ``deadline``.

    Returns:
        The :class:`GateResult`: passed when the answer is 2xx (redirects are not followed)
        and at most :data:`MAX_ANSWER_BYTES` long.

    Raises:
        DeadlineExceeded: the tick's ``deadline`` passed before or during the request (exit 3).
    """
    try:
        url = expand(gate.url, os.environ if environ is None else environ)
    except _Unset as e:
        return _failed(gate, f"variable {e.name} is not set")
    budget, by_deadline = gate.timeout, False
    if deadline is not None:
        left = deadline.remaining()
        if left <= 0:
            raise deadline.exceeded(f"before asking gate {gate.name} ({gate.kind})")
        if left < budget:
            budget, by_deadline = left, True
    try:
        if client is None:
            with httpx.Client(follow_redirects=False) as own:
                status = _exchange(own, url, dict(body), budget)
        else:
            status = _exchange(client, url, dict(body), budget)
    except (_Late, httpx.TimeoutException):
        if by_deadline and deadline is not None:
            raise deadline.exceeded(f"while asking gate {gate.name} ({gate.kind}), which had not "
                                    f"answered in full") from None
        return _failed(gate, f"timed out after {gate.timeout_text}")
    except _TooLong:
        return _failed(gate, f"answered more than {MAX_ANSWER_BYTES // (1 << 20)} MiB (not read; a gate's "
                             f"status decides, its answer must be short)")
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as e:
        return _failed(gate, f"could not be reached ({type(e).__name__})")
    result = GateResult(gate, 200 <= status < 300, f"HTTP {status}")
    log.info("gate %s (%s): HTTP %d", gate.name, gate.kind, status)
    return result


class _Late(Exception):
    """The exchange did not finish within its budget."""


class _TooLong(Exception):
    """The answer is longer than :data:`MAX_ANSWER_BYTES`."""


def _exchange(client: httpx.Client, url: str, body: dict[str, Any], budget: float) -> int:
    """One POST, its whole answer read within ``budget`` seconds; the answer's status code.

    The request runs in a helper thread that this one waits for at most ``budget`` (name
    resolution and a server that never answers included); the helper stops reading once the
    budget is spent or the answer passes :data:`MAX_ANSWER_BYTES` (a ``Content-Length`` above
    it is refused before any of the body is read).

    Raises:
        _Late, _TooLong, httpx.HTTPError: as said.
    """
    box: dict[str, Any] = {}
    end = time.monotonic() + budget

    def work() -> None:
        try:
            with client.stream("POST", url, json=body, timeout=httpx.Timeout(budget)) as response:
                length = response.headers.get("content-length", "")
                if length.strip().isdigit() and int(length) > MAX_ANSWER_BYTES:
                    raise _TooLong()
                size = 0
                for chunk in response.iter_raw():  # raw: a compressed answer is never expanded
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise _TooLong()
                    if time.monotonic() > end:
                        raise _Late()
                box["status"] = response.status_code
        except BaseException as e:  # handed to the waiting thread
            box["error"] = e

    worker = threading.Thread(target=work, name="meshgen-gate", daemon=True)
    worker.start()
    worker.join(budget + 0.05)
    if worker.is_alive():
        raise _Late()
    if "error" in box:
        raise box["error"]
    return int(box["status"])


def call_all(gates: Sequence[Gate], body_of: Callable[[Gate], Mapping[str, Any]], *,
             environ: Mapping[str, str] | None = None, deadline: "Deadline | None" = None) -> list[GateResult]:
    """:func:`call` each gate in order, with one HTTP client (each gate's own timeout, all
    within ``deadline``).

    Raises:
        DeadlineExceeded: as :func:`call`.
    """
    if not gates:
        return []
    with httpx.Client(follow_redirects=False) as client:
        return [call(g, body_of(g), environ=environ, client=client, deadline=deadline) for g in gates]


def _failed(gate: Gate, detail: str) -> GateResult:
    log.warning("gate %s (%s) did not pass: %s", gate.name, gate.kind, detail)
    return GateResult(gate, False, detail)
