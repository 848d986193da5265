"""The Prometheus provider: instant queries over the HTTP API, the one place meshgen talks to it.

Prometheus's HTTP API (https://prometheus.io/docs/prometheus/latest/querying/api/):
``GET /api/v1/query?query=<PromQL>&time=<unix seconds>`` answers
``{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {...},
"value": [<time>, "<value>"]}]}}``; ``GET /api/v1/query_range?query=&start=&end=&step=``
answers a ``matrix`` whose series carry ``"values": [[<time>, "<value>"], ...]``; or ``"status": "error"`` with ``errorType`` and ``error``
(HTTP 400 for a bad query, 422 for one that cannot be executed, 503 when the query timed out
or was aborted). Sample values are strings because they may be ``NaN``, ``+Inf`` or ``-Inf``.

Like Flagger's Prometheus provider, a single-value query distinguishes *no values* and
*several values* (:class:`NoValuesFound`, :class:`MultipleValuesReturned`) from a failure of
Prometheus itself (:class:`~generator.errors.PrometheusError`, exit 3): the first two make a
check inconclusive, the last stops the tick before anything is written.

Credentials come from the environment and are never logged or put in an error message:
``MESHGEN_PROMETHEUS_TOKEN`` (a bearer token), or ``MESHGEN_PROMETHEUS_USERNAME`` and
``MESHGEN_PROMETHEUS_PASSWORD`` (basic auth).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

import httpx

from generator.errors import DeadlineExceeded, MeshgenError, PrometheusError, redact
from generator.rollout.backtest import Series
from generator.rollout.metrics import Sample

if TYPE_CHECKING:
    from generator.bot.deadline import Deadline

log = logging.getLogger(__name__)

TOKEN_ENV = "MESHGEN_PROMETHEUS_TOKEN"
USERNAME_ENV = "MESHGEN_PROMETHEUS_USERNAME"
PASSWORD_ENV = "MESHGEN_PROMETHEUS_PASSWORD"

#: HTTP statuses worth another try: Prometheus busy or a proxy in front of it failing.
_RETRY_STATUSES = {429, 502, 503, 504}


class NoValuesFound(MeshgenError):
    """A single-value query returned no series (or NaN): no data, not a failure of Prometheus."""


class MultipleValuesReturned(MeshgenError):
    """A single-value query returned several series where one was expected."""


class Prometheus:
    """A client of one Prometheus server.

    Args:
        url: the server's base URL (``http://prometheus.istio-system:9090``), no trailing path.
            A user name and password in it (``http://user:pass@host``) are sent as basic auth
            and never shown: messages name the URL with ``***`` in their place.
        token: bearer token, or ``None``.
        username: basic-auth user name (with ``password``), or ``None``.
        password: basic-auth password.
        timeout: seconds one request may take in total, from connecting to the last byte of
            the answer (a server that trickles its answer is cut off, not waited for).
        retries: further tries after a transport error or a 429/502/503/504 answer.
        backoff: seconds before the first retry, doubled for each further one.
        deadline: the rollout tick's :class:`~generator.bot.deadline.Deadline`; no request
            (retries and pauses included) runs past it.
        clock: the caller's time source (UTC), compared with the server's ``Date`` header to
            find a skewed clock (see :attr:`skew`).

    One client may send queries from several threads at once (httpx's ``Client`` is
    thread-safe; the rollout tick asks an environment's queries side by side).

    Attributes:
        queries: how many queries this client has sent (each retry counts once more).
        skew: seconds the caller's clock is ahead of the server's (negative: behind), from
            the last answer's ``Date`` header (1 s resolution); ``None`` before an answer.
    """

    def __init__(self, url: str, *, token: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0, retries: int = 2,
                 backoff: float = 0.2, deadline: "Deadline | None" = None,
                 clock: "Callable[[], datetime] | None" = None) -> None:
        self.url = url.rstrip("/")
        self.shown = redact(self.url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.deadline = deadline
        self.clock = clock
        self.queries = 0
        self._counting = threading.Lock()  # queries may be sent from several threads at once
        self.skew: float | None = None
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif username is not None:
            auth = httpx.BasicAuth(username, password or "")
        try:
            self._client = httpx.Client(base_url=self.url, headers=headers, auth=auth,
                                        timeout=httpx.Timeout(timeout))
        except (httpx.InvalidURL, ValueError, TypeError) as e:
            raise PrometheusError(f"Prometheus URL {self.shown!r} is not a valid URL: {redact(str(e))}") from e

    @classmethod
    def from_environment(cls, url: str, environ: Mapping[str, str] | None = None, **kwargs: Any) -> "Prometheus":
        """A client whose credentials come from :data:`TOKEN_ENV`, :data:`USERNAME_ENV` and
        :data:`PASSWORD_ENV` in ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        return cls(url, token=env.get(TOKEN_ENV) or None, username=env.get(USERNAME_ENV) or None,
                   password=env.get(PASSWORD_ENV), **kwargs)

    def __repr__(self) -> str:
        return f"Prometheus({self.shown!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> "Prometheus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, promql: str, at: datetime | None = None) -> list[Sample]:
        """Run an instant query; a scalar result comes back as one sample without labels.

        Args:
            promql: the expression.
            at: the evaluation time (default: the server's now).

        Raises:
            PrometheusError: Prometheus unreachable, timing out or answering with an error
                (after the bounded retries for temporary failures); ``temporary`` is False
                for a query Prometheus refuses (bad PromQL).
        """
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at.timestamp():.3f}"
        body = self._get("/api/v1/query", params, promql)
        return _samples(body, f"Prometheus at {self.shown}", promql)

    def query_range(self, promql: str, start: datetime, end: datetime, step: float) -> list[Series]:
        """Run a range query (``/api/v1/query_range``): the expression evaluated at ``start``,
        ``start + step``, ... up to ``end``, as Prometheus would at each of those instants.

        Args:
            promql: the expression.
            start, end: the span, timezone-aware.
            step: seconds between evaluations (Prometheus refuses more than 11,000 per series).

        Returns:
            One :class:`~generator.rollout.backtest.Series` per series of the matrix; a
            scalar comes back as one series without labels.

        Raises:
            PrometheusError: as :meth:`query`.
        """
        params = {"query": promql, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}",
                  "step": f"{step:g}"}
        body = self._get("/api/v1/query_range", params, promql)
        data = body.get("data")
        if not isinstance(data, dict):
            raise PrometheusError(f"Prometheus at {self.shown} answered {promql!r} with data of type "
                                  f"{_json_kind(data)}; expected an object with resultType and result")
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "matrix":
                return [Series(dict(item.get("metric") or {}), [(float(t), float(v)) for t, v in item["values"]])
                        for item in result]
            if kind == "scalar":
                return [Series({}, [(float(result[0]), float(result[1]))])]
        except (TypeError, KeyError, IndexError, ValueError, AttributeError) as e:
            raise PrometheusError(f"Prometheus at {self.shown} answered a malformed {_text(kind)} for {promql!r}") from e
        raise PrometheusError(f"Prometheus at {self.shown} answered a {_text(kind)} for {promql!r}; "
                              f"expected a range vector")

    def query_value(self, promql: str, at: datetime | None = None) -> float:
        """Run an instant query that must give exactly one finite-or-infinite number.

        Raises:
            NoValuesFound: no series, or NaN.
            MultipleValuesReturned: more than one series.
            PrometheusError: as :meth:`query`.
        """
        samples = self.query(promql, at)
        if not samples:
            raise NoValuesFound(f"no values found for {promql!r}")
        if len(samples) > 1:
            raise MultipleValuesReturned(f"{len(samples)} values returned for {promql!r}, expected one")
        if math.isnan(samples[0].value):
            raise NoValuesFound(f"NaN for {promql!r}")
        return samples[0].value

    def is_online(self) -> bool:
        """Whether Prometheus answers ``vector(1)`` with 1 (Flagger's ``IsOnline``)."""
        try:
            return self.query_value("vector(1)") == 1.0
        except MeshgenError:
            return False

    def _get(self, path: str, params: dict[str, str], promql: str) -> dict[str, Any]:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            budget = self._budget(promql)
            with self._counting:
                self.queries += 1
            try:
                response = self._exchange(path, params, budget)
            except httpx.HTTPError as e:
                if last:
                    raise PrometheusError(f"Prometheus at {self.shown} failed: {type(e).__name__}: "
                                          f"{redact(str(e))}") from e
                log.warning("Prometheus at %s failed (%s), retrying in %.1fs", self.shown, type(e).__name__, delay)
            else:
                if response.status_code in _RETRY_STATUSES and not last:
                    log.warning("Prometheus at %s answered HTTP %d, retrying in %.1fs",
                                self.shown, response.status_code, delay)
                else:
                    return self._body(response, promql)
            if self.deadline is not None and self.deadline.remaining() <= delay:
                raise self.deadline.exceeded(f"before retrying Prometheus at {self.shown}")
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _budget(self, promql: str) -> float:
        """Seconds the next request may take: the timeout, or less if the tick's deadline is nearer."""
        if self.deadline is None:
            return self.timeout
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise self.deadline.exceeded(f"before asking Prometheus at {self.shown} for {promql!r}")
        return min(self.timeout, remaining)

    def _exchange(self, path: str, params: dict[str, str], budget: float) -> "_Answer":
        """One GET, its whole answer read within ``budget`` seconds (connect to last byte).

        The request runs in a helper thread that this one waits for at most ``budget``; the
        helper itself stops reading once the budget is spent, so a server that trickles bytes
        or never answers costs ``budget`` seconds, not ``budget`` per byte.
        """
        box: dict[str, Any] = {}
        end = time.monotonic() + budget

        def work() -> None:
            try:
                box["answer"] = self._read(path, params, budget, end)
            except BaseException as e:  # handed to the waiting thread
                box["error"] = e

        worker = threading.Thread(target=work, name="meshgen-prometheus", daemon=True)
        worker.start()
        worker.join(budget + 0.05)
        if worker.is_alive():
            raise PrometheusTimeout(f"Prometheus at {self.shown} did not answer within {budget:.1f} s")
        if "error" in box:
            raise box["error"]
        return box["answer"]

    def _read(self, path: str, params: dict[str, str], budget: float, end: float) -> "_Answer":
        with self._client.stream("GET", path, params=params, timeout=httpx.Timeout(budget)) as response:
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise PrometheusError(f"Prometheus at {self.shown} answered more than "
                                          f"{MAX_ANSWER_BYTES // (1 << 20)} MiB for one query")
                chunks.append(chunk)
                if time.monotonic() > end:
                    raise PrometheusTimeout(f"Prometheus at {self.shown} did not finish its answer "
                                            f"within {budget:.1f} s")
            self._note_date(response.headers.get("date"))
            return _Answer(response.status_code, b"".join(chunks))

    def _note_date(self, header: str | None) -> None:
        if not header or self.clock is None:
            return
        try:
            server = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return
        if server.tzinfo is None:
            server = server.replace(tzinfo=timezone.utc)
        self.skew = (self.clock() - server).total_seconds()

    def _body(self, response: "_Answer", promql: str) -> dict[str, Any]:
        try:
            body = json.loads(response.content)
        except RecursionError as e:
            raise PrometheusError(f"Prometheus at {self.shown} answered HTTP {response.status_code} "
                                  f"with JSON nested too deeply to read") from e
        except (ValueError, UnicodeDecodeError) as e:
            raise PrometheusError(f"Prometheus at {self.shown} answered HTTP {response.status_code} "
                                  f"that is not JSON") from e
        if not isinstance(body, dict):
            raise PrometheusError(f"Prometheus at {self.shown} answered HTTP {response.status_code} with a JSON "
                                  f"{_json_kind(body)}, not the API's object "
                                  f"{{\"status\": ..., \"data\": ...}}")
        if response.status_code == 200 and body.get("status") == "success":
            return body
        error = PrometheusError(f"Prometheus at {self.shown} refused {promql!r}: HTTP {response.status_code} "
                                f"{_text(body.get('errorType'))}: {_text(body.get('error'))}".rstrip(": "))
        if response.status_code in (400, 422):
            error.temporary = False
        raise error


class PrometheusTimeout(DeadlineExceeded, PrometheusError):
    """A request to Prometheus did not complete within its total timeout (exit 3)."""


#: Largest answer read for one query; a larger one is refused, not buffered.
MAX_ANSWER_BYTES = 16 << 20


class _Answer(NamedTuple):
    status_code: int
    content: bytes


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def _text(value: Any) -> str:
    """A short, printable rendering of a field the server sent (which may be of any type)."""
    text = value if isinstance(value, str) else "" if value is None else json.dumps(value)[:200]
    return redact(" ".join(text.split())[:500])


def _samples(body: dict[str, Any], who: str, promql: str) -> list[Sample]:
    """The samples of a successful ``/api/v1/query`` answer, its shape checked throughout.

    Raises:
        PrometheusError: anything but a vector of ``{"metric": {...}, "value": [t, "v"]}`` or
            a scalar ``[t, "v"]`` (exit 3: the server is not speaking Prometheus's API).
    """
    data = body.get("data")
    if not isinstance(data, dict):
        raise PrometheusError(f"{who} answered {promql!r} with data of type {_json_kind(data)}; "
                              f"expected an object with resultType and result")
    kind, result = data.get("resultType"), data.get("result")

    def value_of(pair: Any) -> float:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
            raise ValueError(f"a value that is not [time, \"number\"]: {_text(pair)[:80]}")
        return float(pair[1])

    try:
        if kind == "vector":
            if not isinstance(result, list):
                raise ValueError(f"result of type {_json_kind(result)}, not an array")
            samples = []
            for item in result:
                if not isinstance(item, dict) or not isinstance(item.get("metric", {}), dict):
                    raise ValueError(f"a series that is a {_json_kind(item)}, not an object with metric and value")
                labels = item.get("metric") or {}
                if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                    raise ValueError("labels that are not strings")
                samples.append(Sample(dict(labels), value_of(item.get("value"))))
            return samples
        if kind == "scalar":
            return [Sample({}, value_of(result))]
    except ValueError as e:
        raise PrometheusError(f"{who} answered a malformed {kind} for {promql!r}: {e}") from e
    raise PrometheusError(f"{who} answered a {_text(kind) or 'result without resultType'} for {promql!r}; "
                          f"expected an instant vector")
