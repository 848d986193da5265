"""The Prometheus provider: the HTTP API of a real Prometheus, retries, auth, errors."""

from __future__ import annotations

import logging
import math

import pytest

from demo.fakemesh import free_port
from generator.bot.prometheus import MultipleValuesReturned, NoValuesFound, Prometheus
from generator.errors import PrometheusError

pytestmark = pytest.mark.prometheus


def test_vector_and_scalar(prometheus):
    with Prometheus(prometheus.url) as client:
        assert client.query_value("vector(2)") == 2.0
        assert client.query("scalar(vector(3))")[0].value == 3.0
        assert client.is_online()
        samples = client.query('label_replace(vector(1), "a", "x", "", "")')
        assert samples[0].labels == {"a": "x"}
        assert client.queries == 4


def test_nan_and_infinities_are_kept_as_floats(prometheus):
    with Prometheus(prometheus.url) as client:
        assert math.isnan(client.query("vector(0) / 0")[0].value)
        assert client.query("vector(1) / 0")[0].value == math.inf
        assert client.query("vector(-1) / 0")[0].value == -math.inf


def test_sentinels_like_flagger(prometheus):
    with Prometheus(prometheus.url) as client:
        with pytest.raises(NoValuesFound):
            client.query_value('up{job="no-such-job"}')
        with pytest.raises(NoValuesFound):
            client.query_value("vector(0) / 0")
        with pytest.raises(MultipleValuesReturned):
            client.query_value('vector(1) or label_replace(vector(2), "a", "b", "", "")')


def test_bad_promql_is_a_permanent_error(prometheus):
    with Prometheus(prometheus.url) as client:
        with pytest.raises(PrometheusError) as info:
            client.query("sum(")
    assert info.value.temporary is False
    assert "bad_data" in str(info.value) and info.value.exit_code == 3


def test_unreachable_prometheus_is_retried_then_wrapped():
    client = Prometheus(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01, timeout=1)
    with pytest.raises(PrometheusError) as info:
        client.query("vector(1)")
    assert client.queries == 3
    assert isinstance(info.value.__cause__, Exception) and "ConnectError" in str(info.value)


def test_busy_prometheus_is_retried(recorder):
    server = recorder(answers=[503, 503], body=b'{"status":"success","data":{"resultType":"vector","result":[]}}')
    client = Prometheus(server.url, retries=2, backoff=0.01)
    assert client.query("up") == []
    assert len(server.requests) == 3


def test_retries_are_bounded(recorder):
    server = recorder(answers=[503] * 10)
    client = Prometheus(server.url, retries=1, backoff=0.01)
    with pytest.raises(PrometheusError, match="HTTP 503"):
        client.query("up")
    assert len(server.requests) == 2


def test_bearer_token_from_the_environment_is_sent_and_never_logged(recorder, caplog):
    server = recorder(answers=[503], body=b'{"status":"success","data":{"resultType":"vector","result":[]}}')
    client = Prometheus.from_environment(server.url, {"MESHGEN_PROMETHEUS_TOKEN": "s3cret-token"}, backoff=0.01)
    with caplog.at_level(logging.DEBUG):
        client.query("up")
    assert server.requests[-1]["headers"]["Authorization"] == "Bearer s3cret-token"
    assert "s3cret-token" not in caplog.text and "s3cret-token" not in repr(client)


def test_basic_auth_from_the_environment(recorder):
    server = recorder(body=b'{"status":"success","data":{"resultType":"vector","result":[]}}')
    env = {"MESHGEN_PROMETHEUS_USERNAME": "bot", "MESHGEN_PROMETHEUS_PASSWORD": "pw"}
    Prometheus.from_environment(server.url, env).query("up")
    assert server.requests[0]["headers"]["Authorization"] == "Basic Ym90OnB3"  # base64 of bot:pw


def test_query_time_is_sent(recorder):
    from datetime import datetime, timezone

    server = recorder(body=b'{"status":"success","data":{"resultType":"vector","result":[]}}')
    Prometheus(server.url).query("up", datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc))
    assert "time=1795255200.000" in server.requests[0]["path"]
