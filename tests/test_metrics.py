"""Canary analysis: policies, verdicts, the PromQL over Istio's standard metrics.

The pure verdicts are checked from hand-made samples; the built-in PromQL is checked against
a real Prometheus scraping Istio-shaped counters whose rates the test sets.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from generator.bot.prometheus import Prometheus, Sample
from generator.rollout import metrics
from generator.rollout.decision import Rollout, Verdict
from generator.rollout.metrics import Target
from tests.promfixtures import wait_until

TARGET = Target("ratings", "prod", "mesh", "ratings", "v1", "v2")
W = "60s"


def rollout(**block):
    return Rollout.from_spec({"stable": "v1", "canary": "v2", "route": "default", **block})


def series(version, value, service="ratings", namespace="mesh"):
    return Sample({"destination_service_namespace": namespace, "destination_service_name": service,
                   "destination_version": version}, value)


def results(requests=500.0, success=(1.0, 1.0), p99=(20.0, 20.0), extra=None):
    out = {metrics.builtin_query("requests", W): [series("v2", requests), series("v1", 1000.0),
                                                   series("v2", 7.0, service="other")],
           metrics.builtin_query("request-success-rate", W): [series("v1", success[0]), series("v2", success[1])],
           metrics.builtin_query("request-duration-p99", W): [series("v1", p99[0]), series("v2", p99[1])]}
    out.update(extra or {})
    return out


def check(spec, res):
    plan = metrics.plan(spec, TARGET)
    return metrics.evaluate(spec, TARGET, plan, res)


def test_target_uses_the_version_label_and_the_service_host():
    app = {"metadata": {"name": "ratings", "namespace": "mesh"},
           "spec": {"service": {"host": "ratings-svc.shop.svc.cluster.local"},
                    "versions": {"v1": {"labels": {"version": "1.0"}}, "v2": {"labels": {"track": "canary"}}}}}
    target = metrics.target_of("ratings", "prod", app, rollout())
    assert target == Target("ratings", "prod", "shop", "ratings-svc", "1.0", "v2")


def test_time_policy_needs_no_query_and_passes():
    spec = rollout(policy="time")
    assert metrics.plan(spec, TARGET).queries == ()
    assert check(spec, {}).verdict is Verdict.PASS


def test_health_has_a_default_success_rate_and_one_query_per_metric():
    plan = metrics.plan(rollout(interval="1m"), TARGET)
    assert plan.queries == (metrics.builtin_query("requests", W), metrics.builtin_query("request-success-rate", W))
    assert [m.name for m in plan.metrics] == ["request-success-rate"]
    assert plan.metrics[0].min == 0.99


@pytest.mark.parametrize("block,res,verdict,words", [
    ({}, results(), Verdict.PASS, "within bounds"),
    ({}, results(success=(1.0, 0.95)), Verdict.FAIL, "request-success-rate 0.95 < min 0.99"),
    ({"analysis": {"metrics": [{"name": "request-duration-p99", "max": 100}]}}, results(p99=(20, 250)),
     Verdict.FAIL, "request-duration-p99 250 > max 100"),
    ({"analysis": {"minRequests": 1000}}, results(requests=500), Verdict.INCONCLUSIVE,
     "500 requests to v2 in the last 60s, fewer than minRequests 1000"),
    ({}, {**results(), metrics.builtin_query("requests", W): []}, Verdict.INCONCLUSIVE, "no requests to v2"),
    ({}, results(success=(1.0, math.nan)), Verdict.INCONCLUSIVE, "NaN for ratings.mesh v2"),
    ({}, results(success=(1.0, math.inf)), Verdict.INCONCLUSIVE, "+Inf for ratings.mesh v2"),
    ({}, {**results(), metrics.builtin_query("request-success-rate", W): [series("v2", 1.0), series("v2", 0.5)]},
     Verdict.INCONCLUSIVE, "2 series for ratings.mesh v2, expected one"),
    # a definite failure is not hidden by another metric's missing data
    ({"analysis": {"metrics": [{"name": "request-duration-p99", "max": 100}]}},
     results(success=(1.0, 0.5), p99=(20, math.nan)), Verdict.FAIL, "request-success-rate 0.5 < min 0.99"),
    # compare: canary no worse than stable, by a relative tolerance
    ({"policy": "compare"}, results(success=(0.90, 0.90)), Verdict.PASS, "within bounds"),
    ({"policy": "compare"}, results(success=(0.99, 0.95)), Verdict.FAIL, "worse than v1's 0.99"),
    ({"policy": "compare", "analysis": {"tolerance": 0.1, "metrics": [{"name": "request-duration-p99"}]}},
     results(p99=(100, 109)), Verdict.PASS, "within bounds"),
    ({"policy": "compare", "analysis": {"tolerance": 0.1, "metrics": [{"name": "request-duration-p99"}]}},
     results(p99=(100, 111)), Verdict.FAIL, "request-duration-p99 111 worse than v1's 100 (tolerance 0.1)"),
    ({"policy": "compare"}, {**results(), metrics.builtin_query("request-success-rate", W): [series("v2", 1.0)]},
     Verdict.INCONCLUSIVE, "request-success-rate of v1: no data"),
])
def test_verdicts(block, res, verdict, words):
    result = check(rollout(interval="1m", **block), res)
    assert result.verdict is verdict
    assert words in result.reason


def test_values_are_recorded_with_the_stable_ones_under_compare():
    result = check(rollout(interval="1m", policy="compare"), results(success=(0.99, 0.98)))
    assert result.metrics == {"requests": 500.0, "request-success-rate": 0.98, "request-success-rate@v1": 0.99}


def test_custom_metric_is_a_sandboxed_template_with_the_documented_variables():
    query = ('sum(rate(istio_requests_total{destination_service_namespace="{{ namespace }}",'
             'destination_service_name="{{ service }}",destination_version="{{ version }}",'
             'response_code=~"5.."}[{{ interval }}])) # {{ app }} {{ env }}')
    spec = rollout(interval="30s", policy="metric", analysis={"metrics": [{"name": "errors", "query": query, "max": 1}]})
    plan = metrics.plan(spec, TARGET)
    rendered = ('sum(rate(istio_requests_total{destination_service_namespace="mesh",destination_service_name="ratings",'
                'destination_version="v2",response_code=~"5.."}[30s])) # ratings prod')
    assert plan.queries == (metrics.builtin_query("requests", "30s"), rendered)
    ok = {plan.queries[0]: [series("v2", 500)], rendered: [Sample({}, 0.5)]}
    assert metrics.evaluate(spec, TARGET, plan, ok).verdict is Verdict.PASS
    several = {plan.queries[0]: [series("v2", 500)], rendered: [Sample({"a": "1"}, 0.5), Sample({"a": "2"}, 0.5)]}
    result = metrics.evaluate(spec, TARGET, plan, several)
    assert result.verdict is Verdict.INCONCLUSIVE and "2 series for errors" in result.reason
    empty = {plan.queries[0]: [series("v2", 500)], rendered: []}
    assert metrics.evaluate(spec, TARGET, plan, empty).verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize("query,words", [("{{ nope }}", "'nope' is undefined"), ("{{ app.__class__ }}", "unsafe"),
                                         ("{% if %}", "Expected an expression")])
def test_custom_metric_template_errors(query, words):
    spec = rollout(policy="metric", analysis={"metrics": [{"name": "errors", "query": query, "max": 1}]})
    with pytest.raises(metrics.MetricQueryError) as info:
        metrics.plan(spec, TARGET)
    assert info.value.index == 0 and info.value.metric == "errors"
    assert str(info.value).startswith("query of metric 'errors': ") and words in str(info.value)


def test_a_builtin_query_is_kept_to_the_namespaces_and_versions_asked_about():
    """A Scope keeps every built-in query to its namespaces and versions (one anchored RE2
    alternation per label, escaped for PromQL's string); an empty or too long one leaves its
    label unscoped."""
    scope = metrics.Scope.of(["shop", "books.v2", "shop"], ["v2"])
    query = metrics.builtin_query("request-duration-p99", W, scope=scope)
    assert ('istio_request_duration_milliseconds_bucket{reporter="destination",'
            'destination_service_namespace=~"books\\\\.v2|shop",destination_version=~"v2"}') in query
    assert metrics.builtin_query("requests", W, scope=metrics.Scope.of()) == metrics.builtin_query("requests", W)
    many = metrics.Scope.of([f"team-{i:04d}" for i in range(metrics.MAX_SCOPE // 8)], ["v2"])
    assert "destination_service_namespace=~" not in metrics.builtin_query("requests", W, scope=many)
    assert 'destination_version=~"v2"' in metrics.builtin_query("requests", W, scope=many)
    success = metrics.builtin_query("request-success-rate", W, scope=metrics.Scope.of(["shop"]))
    assert success.count('destination_service_namespace=~"shop"') == 3  # good, total and the all-failed total
    target = Target("shop", "dev", "shop", "shop", "v1", "v2")
    assert metrics.versions_read(rollout(), target) == ("v2",)
    assert metrics.versions_read(rollout(policy="compare"), target) == ("v2", "v1")


def test_promql_duration():
    assert [metrics.promql_duration(s) for s in (2, 90, 0.5)] == ["2s", "90s", "500ms"]


# --- the built-in PromQL against a real Prometheus ----------------------------------------


@pytest.mark.prometheus
def test_builtin_queries_on_real_prometheus(prometheus, mesh_traffic):
    mesh_traffic.set("m-metrics", "shop", "v1", rps=40, error_ratio=0.0, latency_ms=20)
    mesh_traffic.set("m-metrics", "shop", "v2", rps=40, error_ratio=0.25, latency_ms=300)
    mesh_traffic.set("m-metrics", "shop", "v3", rps=40, error_ratio=1.0, latency_ms=20)
    target = Target("shop", "dev", "m-metrics", "shop", "v1", "v2")
    spec = rollout(interval="3s", policy="compare", analysis={
        "minRequests": 10, "metrics": [{"name": "request-success-rate"}, {"name": "request-duration-p99"}]})
    plan = metrics.plan(spec, target)
    mesh_traffic.set("m-metrics-other", "shop", "v2", rps=40, error_ratio=0.0, latency_ms=20)
    scoped = metrics.plan(spec, target, metrics.Scope.of(["m-metrics", "m-metrics-none"],  # the due apps'
                                                         metrics.versions_read(spec, target)))
    with Prometheus(prometheus.url) as client:
        def measured():
            now = datetime.now(timezone.utc)
            res = {q: client.query(q, now) for q in plan.queries}
            result = metrics.evaluate(spec, target, plan, res)
            if result.verdict is Verdict.INCONCLUSIVE:
                return None
            # kept to the named namespaces, the same question has the same answer, and no other series
            kept = {q: client.query(q, now) for q in scoped.queries}
            assert {(s.labels["destination_service_namespace"], s.labels["destination_version"])
                    for r in kept.values() for s in r} == {("m-metrics", "v1"), ("m-metrics", "v2")}  # not v3
            assert metrics.evaluate(spec, target, scoped, kept) == result
            return result

        result = wait_until(measured, 20, what="three seconds of scraped traffic")
        assert result.verdict is Verdict.FAIL
        assert result.metrics["request-success-rate"] == pytest.approx(0.75, abs=0.02)
        assert result.metrics["request-success-rate@v1"] == 1.0
        # all requests sit in Istio's (250, 500] bucket; histogram_quantile interpolates in it
        assert 250 < result.metrics["request-duration-p99"] <= 500
        assert 10 < result.metrics["request-duration-p99@v1"] <= 25
        # 40 requests/s over 3 s; fewer when the series began inside the window
        assert 40 <= result.metrics["requests"] <= 150
        # a version whose every response is a 5xx has a success rate of 0, not "no data"
        all_failed = client.query(metrics.builtin_query("request-success-rate", "3s"))
        v3 = metrics.pick_series(all_failed, target, "v3")
        assert v3.value == 0.0
        # one query answers for every service: the grouped result carries them all
        assert {s.labels["destination_version"] for s in all_failed
                if s.labels["destination_service_namespace"] == "m-metrics"} == {"v1", "v2", "v3"}


def test_a_dry_run_metric_is_recorded_but_never_decides():
    spec = rollout(interval="1m", analysis={"metrics": [{"name": "request-duration-p99", "max": 100, "dryRun": True}]})
    result = check(spec, results(p99=(20.0, 300.0)))
    assert result.verdict is Verdict.PASS
    assert result.metrics["request-duration-p99"] == 300.0
    assert result.dry_run == {"request-duration-p99": (Verdict.FAIL, "request-duration-p99 300 > max 100")}
    missing = check(spec, {k: v for k, v in results().items() if "duration" not in k}
                    | {metrics.builtin_query("request-duration-p99", W): []})
    assert missing.verdict is Verdict.PASS
    assert missing.dry_run["request-duration-p99"][0] is Verdict.INCONCLUSIVE


def test_a_dry_run_success_rate_leaves_the_health_default_in_force():
    spec = rollout(interval="1m", analysis={"metrics": [{"name": "request-success-rate", "min": 0.5, "dryRun": True}]})
    names = [(m.name, m.dry_run) for m in metrics.policy_metrics(spec)]
    assert names == [("request-success-rate", False), ("request-success-rate", True)]
    with pytest.raises(ValueError, match="not all dryRun"):
        metrics.policy_metrics(rollout(policy="metric", analysis={"metrics": [
            {"name": "request-success-rate", "min": 0.5, "dryRun": True}]}))
