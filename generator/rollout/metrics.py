"""Canary analysis: which PromQL a rollout needs, and the verdict its results give. Pure.

The bot asks Prometheus once per distinct query per environment per tick, however many apps
roll out: the built-in metrics are written over Istio's standard metrics and grouped
``sum by (destination_service_namespace, destination_service_name, destination_version)``,
so one instant vector answers for every app and version, and :func:`evaluate` picks each
app's series out of it. Custom metrics are Jinja2 templates rendered per app and version;
identical renderings are asked once.

Istio's standard metrics (https://istio.io/latest/docs/reference/config/metrics/):
``istio_requests_total`` (COUNTER, labels ``reporter``, ``destination_service_namespace``,
``destination_service_name``, ``destination_version``, ``response_code``, ...) and
``istio_request_duration_milliseconds`` (DISTRIBUTION, exported as the Prometheus histogram
``istio_request_duration_milliseconds_bucket`` with ``le``). Only ``reporter="destination"``
is counted, so a request is seen once, by the server-side proxy of the version that served it.
``destination_version`` is the pod's ``version`` label, so a version's label value is taken
from ``spec.versions.<name>.labels.version`` when it is set.

PromQL (https://prometheus.io/docs/prometheus/latest/querying/basics/ and
https://prometheus.io/docs/prometheus/latest/querying/functions/): ``rate`` and ``increase``
over a range of the rollout's ``interval``; ``histogram_quantile(0.99, ...)`` for p99, which
is NaN when the window has no observations. An instant query evaluated at the tick's time
looks at the window ``(now - interval, now]``.

A metric with ``dryRun: true`` is evaluated like any other, and its own verdict and reason
are recorded (:attr:`~generator.rollout.decision.Check.dry_run`), but it never changes the
check's verdict: a way to try a new metric or threshold on real traffic before trusting it.

Verdicts: a check is inconclusive -- never a pass -- when the canary had fewer than
``minRequests`` requests in the window, or a metric has no series, several series where one
was expected, NaN or an infinity. It fails when any metric with a value is out of bounds
(a definite failure is not hidden by another metric's missing data), and passes otherwise.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import jinja2

from generator.rollout.decision import Check, Rollout, Verdict
from generator.spec import templating


class Sample(NamedTuple):
    """One series of a Prometheus instant vector (``/api/v1/query``): labels and value.

    The value is a float; NaN and infinities are kept as Prometheus sent them.
    """

    labels: dict[str, str]
    value: float


SERIES_LABELS = ("destination_service_namespace", "destination_service_name", "destination_version")
_BY = ", ".join(SERIES_LABELS)

SUCCESS_RATE = "request-success-rate"
DURATION_P99 = "request-duration-p99"
REQUESTS = "requests"
BUILTIN = (SUCCESS_RATE, DURATION_P99)
DEFAULT_MIN_SUCCESS_RATE = 0.99

_TOTAL = 'istio_requests_total{{reporter="{reporter}"{scope}}}'
_GOOD = 'istio_requests_total{{reporter="{reporter}"{scope},response_code!~"5.."}}'
_BUCKETS = 'istio_request_duration_milliseconds_bucket{{reporter="{reporter}"{scope}}}'
#: Longest alternation a built-in query is scoped with, per label; an environment whose due
#: apps span more namespaces (or versions) asks about every one (its queries stay short enough
#: for a URL).
MAX_SCOPE = 2048

_JINJA = templating.BoundedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                       keep_trailing_newline=False)
#: Longest PromQL a custom query template may render to (characters).
MAX_QUERY = 64 * 1024


class MetricQueryError(ValueError):
    """A custom metric's query template does not render (syntax error, unknown variable).

    Attributes:
        metric: the metric's name; ``index`` its position in ``analysis.metrics``.
    """

    def __init__(self, message: str, *, metric: str, index: int) -> None:
        super().__init__(message)
        self.metric = metric
        self.index = index


class Target(NamedTuple):
    """One app in one environment as Istio's telemetry labels it.

    Attributes:
        app: the App's ``metadata.name``.
        env: the environment's name.
        namespace: ``destination_service_namespace``.
        service: ``destination_service_name`` (the Service host's first DNS label).
        stable: ``destination_version`` of the stable version.
        canary: ``destination_version`` of the canary version.
        services: ``((destination_version, destination_service_name), ...)`` where a version's
            traffic is labelled with another Service than ``service`` (the Gateway API target's
            per-version Services, :meth:`generator.targets.gatewayapi.GatewayApiTarget.series_service`).
        reporter: whose series the built-in metrics read: ``destination`` (the server's
            sidecar) or ``source`` (the client's proxy or gateway), as the environment's output
            target says (``series_reporter`` of :mod:`generator.targets`).
    """

    app: str
    env: str
    namespace: str
    service: str
    stable: str
    canary: str
    services: tuple[tuple[str, str], ...] = ()
    reporter: str = "destination"

    def service_of(self, version: str) -> str:
        """``destination_service_name`` of ``version``'s series."""
        return dict(self.services).get(version, self.service)


def target_of(app: str, env: str, spec: Mapping[str, Any], rollout: Rollout,
              series_service: Callable[[str, str, str], str] | None = None,
              reporter: str = "destination") -> Target:
    """The :class:`Target` of an effective App document (``metadata`` and ``spec``).

    The service is the app's own, or, when the rollout's route sends to subsets of another host
    (the destination-list form of ``to``), that host: its ``destination_service_name`` is what
    Istio's telemetry labels the canary's requests with. ``series_service(service, app,
    version)``: the ``destination_service_name`` the environment's output target gives a
    version's traffic (``Target.series_service`` of :mod:`generator.targets`); ``None``: the
    Service for every version.
    """
    metadata = spec.get("metadata") or {}
    body = spec.get("spec") or {}
    host = str((body.get("service") or {}).get("host") or app)
    # a route to the subsets of another host (a list of destinations): that host's telemetry
    route = next((r for key in ("routes", "tcp", "tls") for r in body.get(key) or []
                  if isinstance(r, dict) and r.get("name") == rollout.route), None) or {}
    if isinstance(route.get("to"), list):
        host = next((str(d["host"]) for d in route["to"] if isinstance(d, dict) and d.get("host")
                     and d.get("subset") in (rollout.stable, rollout.canary)), host)
    labels = host.split(".")
    namespace = labels[1] if len(labels) > 1 and labels[1] != "svc" else str(metadata.get("namespace") or "default")
    versions = body.get("versions") or {}

    def label(version: str) -> str:
        value = ((versions.get(version) or {}).get("labels") or {}).get("version")
        return str(value) if value is not None else version

    services: tuple[tuple[str, str], ...] = ()
    if series_service is not None:
        services = tuple((label(v), series_service(labels[0], app, v)) for v in (rollout.stable, rollout.canary)
                         if series_service(labels[0], app, v) != labels[0])
    return Target(app, env, namespace, labels[0], label(rollout.stable), label(rollout.canary), services, reporter)


@dataclass(frozen=True)
class Metric:
    """One metric a policy looks at.

    Attributes:
        name: a built-in name or the custom metric's name.
        query: the PromQL Jinja2 template of a custom metric; ``None`` for a built-in.
        min: the least acceptable value, if any.
        max: the greatest acceptable value, if any.
        higher_is_better: which way is worse, for ``compare`` (built-ins: the success rate is
            better high, latency low; a custom metric is better high when it has only ``min``).
        index: its position in ``analysis.metrics`` (-1 for an implied built-in).
        dry_run: ``dryRun: true``: evaluated and recorded, never part of the verdict.
    """

    name: str
    query: str | None
    min: float | None
    max: float | None
    higher_is_better: bool
    index: int = -1
    dry_run: bool = False


def policy_metrics(rollout: Rollout) -> list[Metric]:
    """The metrics a rollout's policy checks.

    ``time``: none. ``health``: ``request-success-rate`` (min 0.99 unless listed with another
    bound) plus every listed metric, ``request-duration-p99`` among them when given.
    ``metric``: the listed metrics. ``compare``: the listed metrics, or the success rate when
    none is listed (``dryRun`` metrics do not count as listed for these defaults).

    Raises:
        ValueError: policy ``metric`` without metrics (or with only dryRun ones), or a listed metric that is neither
            built-in nor has a ``query``.
    """
    listed = []
    for index, item in enumerate(rollout.metrics):
        name = str(item["name"])
        query = item.get("query")
        if query is None and name not in BUILTIN:
            raise ValueError(f"metric {name!r} is not built-in ({', '.join(BUILTIN)}) and has no query")
        low, high = item.get("min"), item.get("max")
        if name == SUCCESS_RATE and query is None:
            better_high = True
        elif name == DURATION_P99 and query is None:
            better_high = False
        else:
            better_high = low is not None and high is None
        listed.append(Metric(name, query, _num(low), _num(high), better_high, index, bool(item.get("dryRun", False))))
    if rollout.policy == "time":
        return []
    decisive = [m for m in listed if not m.dry_run]
    if rollout.policy == "metric":
        if not decisive:
            raise ValueError("policy 'metric' needs analysis.metrics that are not all dryRun")
        return listed
    if rollout.policy == "compare":
        return listed if decisive else [Metric(SUCCESS_RATE, None, None, None, True)] + listed
    # health
    if not any(m.name == SUCCESS_RATE and m.query is None and not m.dry_run for m in listed):
        listed.insert(0, Metric(SUCCESS_RATE, None, DEFAULT_MIN_SUCCESS_RATE, None, True))
    return listed


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def promql_duration(seconds: float) -> str:
    """A PromQL range duration for ``seconds`` (``90`` -> ``90s``, ``0.5`` -> ``500ms``)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


class Scope(NamedTuple):
    """The series an environment's built-in queries are kept to: those of ``namespaces``
    (``destination_service_namespace``) and ``versions`` (``destination_version``), each
    sorted, once; empty: any. A tick asks about its due apps' namespaces and the versions it
    reads (the canary's; the stable's too under ``compare`` or while a weight waits to be seen
    applied), so Prometheus reads no other environment's series and no version it does not
    need; the answer for those it needs is the same.
    """

    namespaces: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()

    @classmethod
    def of(cls, namespaces: Iterable[str] = (), versions: Iterable[str] = ()) -> "Scope":
        return cls(tuple(sorted(set(namespaces))), tuple(sorted(set(versions))))

    def matchers(self) -> str:
        """The label matchers (``,label=~"a|b"`` each: an RE2 alternation, fully anchored as
        PromQL anchors every regex matcher), without a label whose alternation is empty or would
        pass :data:`MAX_SCOPE` characters."""
        out = ""
        for label, values in (("destination_service_namespace", self.namespaces),
                              ("destination_version", self.versions)):
            alternation = "|".join(re.escape(v) for v in values)
            if alternation and len(alternation) <= MAX_SCOPE:
                out += f',{label}=~"{alternation.replace(chr(92), chr(92) * 2)}"'
        return out


@functools.lru_cache(maxsize=512)  # a tick asks for the same few, once or more per app
def builtin_query(name: str, window: str, reporter: str = "destination", scope: Scope = Scope()) -> str:
    """The PromQL of a built-in metric over ``window``, grouped by :data:`SERIES_LABELS`,
    of the series the proxies on ``reporter``'s side report (``destination``: the server's
    sidecar; ``source``: the client's proxy or the gateway, see :attr:`Target.reporter`),
    kept to ``scope`` (:class:`Scope`).

    ``requests``: requests served in the window (``increase``). ``request-success-rate``:
    the ratio 0-1 of responses that are not 5xx; the ``or ... * 0`` keeps a version whose
    every response failed at 0 rather than absent. ``request-duration-p99``: the 99th
    percentile of the server-side duration in milliseconds (NaN without requests).
    """
    scoped = scope.matchers()
    total_s, good_s, buckets_s = (t.format(reporter=reporter, scope=scoped) for t in (_TOTAL, _GOOD, _BUCKETS))
    if name == REQUESTS:
        return f"sum by ({_BY}) (increase({total_s}[{window}]))"
    if name == SUCCESS_RATE:
        total = f"sum by ({_BY}) (rate({total_s}[{window}]))"
        good = f"sum by ({_BY}) (rate({good_s}[{window}]))"
        return f"({good} or ({total} * 0)) / {total}"
    if name == DURATION_P99:
        return f"histogram_quantile(0.99, sum by ({_BY}, le) (rate({buckets_s}[{window}])))"
    raise KeyError(name)


def render_query(metric: Metric, target: Target, version: str, window: str) -> str:
    """Render a custom metric's template for one version.

    Variables: ``app``, ``namespace``, ``service``, ``version`` (the ``destination_version``
    label value), ``interval`` (a PromQL duration) and ``env``.

    Raises:
        MetricQueryError: the template has a syntax error, uses an unknown variable, fails
            while rendering (``1/0``) or exceeds the bounds of
            :mod:`generator.spec.templating` (its output: :data:`MAX_QUERY` characters).
    """
    assert metric.query is not None
    try:
        template = _JINJA.from_string(metric.query)
        return templating.render(template, {
            "app": target.app, "namespace": target.namespace, "service": target.service, "version": version,
            "interval": window, "env": target.env}, max_output=MAX_QUERY).strip()
    except jinja2.TemplateError as e:
        raise MetricQueryError(f"query of metric {metric.name!r}: {e}", metric=metric.name, index=metric.index) from e
    except templating.TemplateFailure as e:
        line = f" (line {e.lineno} of the template)" if e.lineno > 1 else ""
        raise MetricQueryError(f"query of metric {metric.name!r}: {e.message}{line}",
                               metric=metric.name, index=metric.index) from e


class Plan(NamedTuple):
    """The queries one app's check needs.

    Attributes:
        queries: every PromQL string, each once.
        metrics: the checked metrics.
        window: the PromQL duration of the window.
        scope: the series the built-in queries are kept to (:class:`Scope`).
    """

    queries: tuple[str, ...]
    metrics: tuple[Metric, ...]
    window: str
    scope: Scope = Scope()


def plan(rollout: Rollout, target: Target, scope: Scope = Scope()) -> Plan:
    """What to ask Prometheus for one app's check (nothing for policy ``time``); the built-in
    queries are kept to ``scope``, which must hold the target's namespace and the versions the
    check reads (:func:`versions_read`).

    Raises:
        ValueError, MetricQueryError: see :func:`policy_metrics` and :func:`render_query`.
    """
    window = promql_duration(rollout.interval)
    metrics = policy_metrics(rollout)
    if not metrics:
        return Plan((), (), window, scope)
    queries = [builtin_query(REQUESTS, window, target.reporter, scope)]
    for metric in metrics:
        for version in versions_read(rollout, target):
            queries.append(builtin_query(metric.name, window, target.reporter, scope) if metric.query is None
                           else render_query(metric, target, version, window))
    return Plan(tuple(dict.fromkeys(queries)), tuple(metrics), window, scope)


def versions_read(rollout: Rollout, target: Target) -> tuple[str, ...]:
    """The ``destination_version`` values whose series :func:`evaluate` reads for one app:
    the canary's, and the stable's under policy ``compare``."""
    return (target.canary, target.stable) if rollout.policy == "compare" else (target.canary,)


class _Value(NamedTuple):
    value: float | None
    problem: str | None  # why there is no usable value


class Vector:
    """An instant vector whose series are looked up by their Istio labels in constant time.

    One grouped query answers for every app; indexing its series once, rather than scanning
    them for each app, keeps a tick linear in the number of apps.
    """

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = list(samples)
        self._index: dict[tuple[str | None, ...], list[Sample]] | None = None

    def series(self, namespace: str, service: str, version: str) -> list[Sample]:
        """The samples whose :data:`SERIES_LABELS` are these values."""
        if self._index is None:
            self._index = {}
            for sample in self.samples:
                key = tuple(sample.labels.get(label) for label in SERIES_LABELS)
                self._index.setdefault(key, []).append(sample)
        return self._index.get((namespace, service, version), [])

    def __len__(self) -> int:
        return len(self.samples)


def _as_vector(result: "Sequence[Sample] | Vector") -> Vector:
    return result if isinstance(result, Vector) else Vector(result)


def pick_series(samples: "Sequence[Sample] | Vector", target: Target, version: str) -> _Value:
    """The value of the series of ``target``'s ``version`` in a grouped result."""
    service = target.service_of(version)
    found = _as_vector(samples).series(target.namespace, service, version)
    return _single(found, f"{service}.{target.namespace} {version}")


def single_value(samples: "Sequence[Sample] | Vector", what: str) -> _Value:
    """The value of a result that must hold exactly one series."""
    return _single(list(samples.samples if isinstance(samples, Vector) else samples), what)


def _single(found: list[Sample], what: str) -> _Value:
    if not found:
        return _Value(None, f"no data for {what}")
    if len(found) > 1:
        return _Value(None, f"{len(found)} series for {what}, expected one")
    value = found[0].value
    if math.isnan(value):
        return _Value(None, f"NaN for {what}")
    if math.isinf(value):
        return _Value(None, f"{'+' if value > 0 else '-'}Inf for {what}")
    return _Value(value, None)


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def evaluate(rollout: Rollout, target: Target, plan_: Plan,
             results: Mapping[str, "Sequence[Sample] | Vector"]) -> Check:
    """The verdict of one app's check from the results of its :func:`plan`'s queries.

    Args:
        rollout: the app's rollout block.
        target: the app's Istio labels.
        plan_: what :func:`plan` returned for them.
        results: the samples of each query in ``plan_.queries`` (more are ignored); pass
            :class:`Vector` objects to share one index among many apps.

    Returns:
        A :class:`~generator.rollout.decision.Check`; its metrics hold ``requests`` (canary requests
        in the window) and each metric's canary value, plus ``NAME@VERSION`` for the stable
        version's values under ``compare``.
    """
    if rollout.policy == "time" or not plan_.metrics:
        return Check(Verdict.PASS, {}, f"policy time: {rollout.interval_text} passed")
    window = plan_.window
    values: dict[str, float | None] = {}
    requests = pick_series(results[builtin_query(REQUESTS, window, target.reporter, plan_.scope)], target,
                           target.canary)
    values[REQUESTS] = None if requests.value is None else float(round(requests.value))
    if requests.value is None:
        return Check(Verdict.INCONCLUSIVE, values, f"no requests to {target.canary} in the last {window} ({requests.problem})")
    if requests.value < rollout.min_requests:
        return Check(Verdict.INCONCLUSIVE, values,
                     f"{requests.value:.0f} requests to {target.canary} in the last {window}, "
                     f"fewer than minRequests {rollout.min_requests}")
    failures: list[str] = []
    unknown: list[str] = []
    dry_run: dict[str, tuple[Verdict, str]] = {}
    for metric in plan_.metrics:
        failed, missing = _judge(rollout, target, metric, plan_, results, values)
        if metric.dry_run:
            if failed:
                dry_run[metric.name] = (Verdict.FAIL, "; ".join(failed))
            elif missing:
                dry_run[metric.name] = (Verdict.INCONCLUSIVE, "; ".join(missing))
            else:
                dry_run[metric.name] = (Verdict.PASS, "within bounds")
            continue
        failures += failed
        unknown += missing
    if failures:
        return Check(Verdict.FAIL, values, "; ".join(failures), dry_run)
    if unknown:
        return Check(Verdict.INCONCLUSIVE, values, "; ".join(unknown), dry_run)
    return Check(Verdict.PASS, values, "all metrics within bounds", dry_run)


def _judge(rollout: Rollout, target: Target, metric: Metric, plan_: Plan,
           results: Mapping[str, "Sequence[Sample] | Vector"], values: dict[str, float | None]
           ) -> tuple[list[str], list[str]]:
    """One metric's failures and missing values, in words; its values go into ``values``."""
    failures: list[str] = []
    unknown: list[str] = []
    canary = _metric_value(metric, target, target.canary, plan_, results)
    values[metric.name] = None if canary.value is None else _round(canary.value)
    if canary.value is None:
        unknown.append(f"{metric.name}: {canary.problem}")
        return failures, unknown
    if metric.min is not None and canary.value < metric.min:
        failures.append(f"{metric.name} {_fmt(canary.value)} < min {_fmt(metric.min)}")
    if metric.max is not None and canary.value > metric.max:
        failures.append(f"{metric.name} {_fmt(canary.value)} > max {_fmt(metric.max)}")
    if rollout.policy != "compare":
        return failures, unknown
    stable = _metric_value(metric, target, target.stable, plan_, results)
    values[f"{metric.name}@{target.stable}"] = None if stable.value is None else _round(stable.value)
    if stable.value is None:
        unknown.append(f"{metric.name} of {target.stable}: {stable.problem}")
        return failures, unknown
    if metric.higher_is_better:
        worse = canary.value < stable.value - abs(stable.value) * rollout.tolerance
    else:
        worse = canary.value > stable.value + abs(stable.value) * rollout.tolerance
    if worse:
        failures.append(f"{metric.name} {_fmt(canary.value)} worse than {target.stable}'s "
                        f"{_fmt(stable.value)} (tolerance {rollout.tolerance:g})")
    return failures, unknown


def _metric_value(metric: Metric, target: Target, version: str, plan_: Plan,
                  results: Mapping[str, "Sequence[Sample] | Vector"]) -> _Value:
    if metric.query is None:
        return pick_series(results[builtin_query(metric.name, plan_.window, target.reporter, plan_.scope)],
                           target, version)
    promql = render_query(metric, target, version, plan_.window)
    return single_value(results[promql], f"{metric.name} of {target.service}.{target.namespace} {version}")
