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

import logging
import math
import os
import time
from datetime import datetime
from typing import Any, Mapping

import httpx

from generator.errors import MeshgenError, PrometheusError
from generator.rollout.backtest import Series
from generator.rollout.metrics import Sample

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
        token: bearer token, or ``None``.
        username: basic-auth user name (with ``password``), or ``None``.
        password: basic-auth password.
        timeout: seconds for connecting and for reading each answer.
        retries: further tries after a transport error or a 429/502/503/504 answer.
        backoff: seconds before the first retry, doubled for each further one.

    Attributes:
        queries: how many queries this client has sent (each retry counts once more).
    """

    def __init__(self, url: str, *, token: str | None = None, username: str | None = None,
                 password: str | None = None, timeout: float = 10.0, retries: int = 2,
                 backoff: float = 0.2) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.queries = 0
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif username is not None:
            auth = httpx.BasicAuth(username, password or "")
        self._client = httpx.Client(base_url=self.url, headers=headers, auth=auth,
                                    timeout=httpx.Timeout(timeout))

    @classmethod
    def from_environment(cls, url: str, environ: Mapping[str, str] | None = None, **kwargs: Any) -> "Prometheus":
        """A client whose credentials come from :data:`TOKEN_ENV`, :data:`USERNAME_ENV` and
        :data:`PASSWORD_ENV` in ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        return cls(url, token=env.get(TOKEN_ENV) or None, username=env.get(USERNAME_ENV) or None,
                   password=env.get(PASSWORD_ENV), **kwargs)

    def __repr__(self) -> str:
        return f"Prometheus({self.url!r})"

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
        data = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "vector":
                return [Sample(dict(item.get("metric") or {}), float(item["value"][1])) for item in result]
            if kind == "scalar":
                return [Sample({}, float(result[1]))]
        except (TypeError, KeyError, IndexError, ValueError) as e:
            raise PrometheusError(f"Prometheus at {self.url} answered a malformed {kind} for {promql!r}") from e
        raise PrometheusError(f"Prometheus at {self.url} answered a {kind} for {promql!r}; expected an instant vector")

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
        data = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        try:
            if kind == "matrix":
                return [Series(dict(item.get("metric") or {}), [(float(t), float(v)) for t, v in item["values"]])
                        for item in result]
            if kind == "scalar":
                return [Series({}, [(float(result[0]), float(result[1]))])]
        except (TypeError, KeyError, IndexError, ValueError) as e:
            raise PrometheusError(f"Prometheus at {self.url} answered a malformed {kind} for {promql!r}") from e
        raise PrometheusError(f"Prometheus at {self.url} answered a {kind} for {promql!r}; expected a range vector")

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
            self.queries += 1
            try:
                response = self._client.get(path, params=params)
            except httpx.HTTPError as e:
                if last:
                    raise PrometheusError(f"Prometheus at {self.url} failed: {type(e).__name__}: {e}") from e
                log.warning("Prometheus at %s failed (%s), retrying in %.1fs", self.url, type(e).__name__, delay)
            else:
                if response.status_code in _RETRY_STATUSES and not last:
                    log.warning("Prometheus at %s answered HTTP %d, retrying in %.1fs",
                                self.url, response.status_code, delay)
                else:
                    return self._body(response, promql)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _body(self, response: httpx.Response, promql: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as e:
            raise PrometheusError(f"Prometheus at {self.url} answered HTTP {response.status_code} "
                                  f"that is not JSON") from e
        if response.status_code == 200 and body.get("status") == "success":
            return body
        error = PrometheusError(f"Prometheus at {self.url} refused {promql!r}: HTTP {response.status_code} "
                                f"{body.get('errorType', '')}: {body.get('error', '')}".rstrip(": "))
        if response.status_code in (400, 422):
            error.temporary = False
        raise error
