"""A stand-in for an Istio mesh's telemetry, and a real Prometheus scraping it.

Used by the rollout demo (``demo/canary.py``), the rollout tests and ``bench/rollout.py``:
instead of a cluster, :class:`MeshTraffic` keeps Istio-shaped counters for each
(namespace, service, version) whose request rate, 5xx ratio and latency the caller sets
while it runs; :class:`MetricsEndpoint` serves them at ``/metrics`` in Prometheus's text
exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/); and
:class:`LocalPrometheus` runs the real ``prometheus`` binary (Debian's package) on a free
loopback port, scraping that endpoint every second, with its storage in a temporary folder.

The series carry the labels of Istio's standard metrics
(https://istio.io/latest/docs/reference/config/metrics/) that meshgen's queries use:
``reporter="destination"``, ``destination_service_namespace``, ``destination_service_name``,
``destination_version`` and ``response_code``; the duration histogram uses Istio's default
buckets. As in Istio, a ``response_code`` series appears only once a request had that code.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

#: Istio's default buckets of istio_request_duration_milliseconds, in milliseconds.
DURATION_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
                    300000, 600000, 1800000, 3600000)
PROMETHEUS_BINARY = "/usr/bin/prometheus"


def prometheus_binary() -> str | None:
    """The path of the ``prometheus`` binary, or None when it is not installed."""
    return shutil.which("prometheus") or (PROMETHEUS_BINARY if Path(PROMETHEUS_BINARY).exists() else None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class _Series:
    rps: float = 0.0            # requests per second
    error_ratio: float = 0.0    # share of 5xx responses, 0-1
    latency_ms: float = 10.0    # every request's server-side duration
    ok: float = 0.0             # counters, advanced lazily
    errors: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    updated: float = field(default_factory=time.monotonic)
    reporter: str = "destination"  # the proxy that reports the series

    def advance(self, now: float) -> None:
        requests = self.rps * max(0.0, now - self.updated)
        self.updated = now
        if not requests:
            return
        self.ok += requests * (1 - self.error_ratio)
        self.errors += requests * self.error_ratio
        index = next((i for i, le in enumerate(DURATION_BUCKETS) if self.latency_ms <= le), len(DURATION_BUCKETS))
        self.buckets[index] += requests
        self.duration_sum += requests * self.latency_ms


class MeshTraffic:
    """Istio-shaped request counters for each (namespace, service, version), thread-safe."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._lock = threading.Lock()

    def set(self, namespace: str, service: str, version: str, *, rps: float | None = None,
            error_ratio: float | None = None, latency_ms: float | None = None,
            reporter: str = "destination") -> None:
        """Change a version's traffic from now on (requests per second, 5xx ratio 0-1, ms);
        ``reporter``: which proxy reports the series (``destination`` or ``source``)."""
        with self._lock:
            series = self._series.setdefault((namespace, service, version), _Series())
            series.reporter = reporter
            series.advance(time.monotonic())
            if rps is not None:
                series.rps = rps
            if error_ratio is not None:
                series.error_ratio = error_ratio
            if latency_ms is not None:
                series.latency_ms = latency_ms

    def exposition(self) -> bytes:
        """The counters now, in Prometheus's text exposition format."""
        now = time.monotonic()
        lines = ["# TYPE istio_requests_total counter"]
        histogram = ["# TYPE istio_request_duration_milliseconds histogram"]
        with self._lock:
            for (namespace, service, version), series in sorted(self._series.items()):
                series.advance(now)
                base = (f'reporter="{series.reporter}",'
                        f'destination_service_namespace="{namespace}",'
                        f'destination_service_name="{service}",destination_version="{version}"')
                if series.ok:
                    lines.append(f'istio_requests_total{{{base},response_code="200"}} {series.ok:.3f}')
                if series.errors:
                    lines.append(f'istio_requests_total{{{base},response_code="503"}} {series.errors:.3f}')
                total = 0.0
                for le, count in zip([*map(str, DURATION_BUCKETS), "+Inf"], series.buckets):
                    total += count
                    histogram.append(f'istio_request_duration_milliseconds_bucket{{{base},le="{le}"}} {total:.3f}')
                histogram.append(f"istio_request_duration_milliseconds_sum{{{base}}} {series.duration_sum:.3f}")
                histogram.append(f"istio_request_duration_milliseconds_count{{{base}}} {total:.3f}")
        return ("\n".join(lines + histogram) + "\n").encode()


class FakeMesh:
    """The fake mesh's control plane: it applies the canary weight that the remote's branch
    commits, ``delay`` seconds after it first sees the commit, like Argo CD or Flux syncing a
    cluster, by splitting each followed app's request rate in :class:`MeshTraffic` by it.

    A background thread reads ``status/<env>/<app>.yaml`` on ``branch`` of the bare ``remote``
    (``git show``) every ``poll`` seconds; :meth:`freeze` stops applying an app's new weights
    (a sync that never happens) until :meth:`thaw`.
    """

    def __init__(self, traffic: MeshTraffic, remote: Path, *, delay: float = 0.0, poll: float = 0.2,
                 branch: str = "main") -> None:
        self.traffic = traffic
        self.remote = Path(remote)
        self.delay = delay
        self.branch = branch
        self.applied: dict[tuple[str, str], int] = {}
        self._apps: dict[tuple[str, str], tuple[str, str, str, str, float]] = {}
        self._seen: dict[tuple[str, str], tuple[int, float]] = {}
        self._frozen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(poll,), name="fake-mesh", daemon=True)
        self._thread.start()

    def follow(self, env: str, app: str, namespace: str, service: str, stable: str, canary: str,
               rps: float) -> None:
        """Split ``rps`` requests per second of ``service`` between ``stable`` and ``canary`` by the
        weight applied for ``app`` in ``env`` (0 % until a commit says otherwise)."""
        with self._lock:
            self._apps[(env, app)] = (namespace, service, stable, canary, rps)
        self._apply((env, app), self._weight(env, app) if self.delay == 0 else 0)

    def unfollow(self, env: str, app: str) -> None:
        """Stop setting the request rates of ``app`` in ``env`` (they stay as last applied)."""
        with self._lock:
            self._apps.pop((env, app), None)

    def freeze(self, env: str, app: str) -> None:
        """Apply no new weight of ``app`` in ``env`` (a stuck sync)."""
        self._frozen.add((env, app))

    def thaw(self, env: str, app: str) -> None:
        self._frozen.discard((env, app))

    def _weight(self, env: str, app: str) -> int:
        proc = subprocess.run(["git", f"--git-dir={self.remote}", "show", f"{self.branch}:status/{env}/{app}.yaml"],
                              capture_output=True, text=True)
        weight, canary_of_status = 0, None
        for line in proc.stdout.splitlines() if proc.returncode == 0 else ():
            key, _, value = line.strip().partition(":")
            if key == "canaryWeight":
                weight = int(value)
            elif key == "canary" and line.startswith("  canary:"):
                canary_of_status = value.strip()
            elif key == "phase" and value.strip() == "Waiting":
                return 0
        with self._lock:
            followed = self._apps.get((env, app))
        if followed and canary_of_status not in (None, followed[3]):
            return 0
        return weight

    def _apply(self, key: tuple[str, str], weight: int) -> None:
        with self._lock:
            namespace, service, stable, canary, rps = self._apps[key]
            self.applied[key] = weight
        self.traffic.set(namespace, service, stable, rps=rps * (100 - weight) / 100)
        self.traffic.set(namespace, service, canary, rps=rps * weight / 100)

    def _run(self, poll: float) -> None:
        while not self._stop.wait(poll):
            with self._lock:
                keys = list(self._apps)
            for key in keys:
                if key in self._frozen:
                    continue
                weight = self._weight(*key)
                now = time.monotonic()
                if key not in self._apps:
                    continue
                if weight == self.applied.get(key):
                    self._seen.pop(key, None)
                    continue
                seen = self._seen.get(key)
                if seen is None or seen[0] != weight:
                    self._seen[key] = (weight, now)
                    seen = self._seen[key]
                if now - seen[1] >= self.delay:
                    self._apply(key, weight)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class MetricsEndpoint:
    """A threaded HTTP server on 127.0.0.1 serving ``traffic`` at ``/metrics``."""

    def __init__(self, traffic: MeshTraffic, port: int = 0) -> None:
        self.traffic = traffic

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = traffic.exposition() if self.path.startswith("/metrics") else b"not found\n"
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a scrape that timed out hangs up mid-answer: nothing to print

        self._server = Server(("127.0.0.1", port), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="metrics-endpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class LocalPrometheus:
    """The real Prometheus on a free 127.0.0.1 port, scraping ``targets`` every second.

    Args:
        targets: ``host:port`` of metrics endpoints.
        binary: the prometheus executable (default: :func:`prometheus_binary`).
        workdir: where its config and storage go (default: a new temporary folder, removed
            by :meth:`stop`); storage already in ``workdir/data`` (:func:`write_history`) is
            served as it is.
        retention: ``--storage.tsdb.retention.time``; long for a filled history, whose
            blocks would otherwise be deleted as too old.

    Raises:
        RuntimeError: the binary is missing or Prometheus did not become ready in 30 s.
    """

    def __init__(self, targets: list[str], binary: str | None = None, workdir: Path | None = None,
                 retention: str = "1h") -> None:
        binary = binary or prometheus_binary()
        if not binary:
            raise RuntimeError("the prometheus binary is not installed (Debian package 'prometheus')")
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="meshgen-prometheus-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        quoted = ", ".join(f'"{t}"' for t in targets)
        config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}\n"
                          "scrape_configs:\n"
                          "  - job_name: istio-mesh\n"
                          f"    static_configs: [{{targets: [{quoted}]}}]\n")
        # The free port is chosen before Prometheus binds it, so another process (a parallel
        # test worker) may take it in between: then Prometheus exits at once, and a new port
        # is tried.
        for attempt in range(5):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self._log = open(self.workdir / "prometheus.log", "wb")
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
                 f"--storage.tsdb.retention.time={retention}"],
                stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                self._wait_ready(30.0)
                return
            except BaseException as e:
                retry = attempt < 4 and "address already in use" in str(e)
                self.stop(remove=not retry)
                if not retry:
                    raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}: "
                                   f"{(self.workdir / 'prometheus.log').read_text(errors='replace')[-2000:]}")
            try:
                # ready, and this process's: the storage path tells it from another Prometheus
                # that took the port first
                flags = httpx.get(f"{self.url}/api/v1/status/flags", timeout=1.0)
                if (flags.status_code == 200 and httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
                        and flags.json()["data"]["storage.tsdb.path"] == str(self.workdir / "data")):
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus at {self.url} was not ready after {timeout:.0f} s")

    def wait_for_scrape(self, timeout: float = 15.0) -> None:
        """Block until every target has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"{self.url}/api/v1/query", params={"query": "min(up)"}, timeout=2.0).json()
                result = answer["data"]["result"]
                if result and float(result[0]["value"][1]) == 1.0:
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus at {self.url} scraped nothing in {timeout:.0f} s")

    def stop(self, remove: bool = True) -> None:
        """Stop Prometheus and remove its temporary folder (unless ``remove`` is false)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        if self._own_dir and remove:
            shutil.rmtree(self.workdir, ignore_errors=True)


# --- past traffic, for backtests ------------------------------------------------------------



def openmetrics_history(phases: list, start: float, end: float, scrape: float = 15.0) -> str:
    """The Istio-shaped counters of :class:`MeshTraffic` as Prometheus would have scraped them
    every ``scrape`` seconds from ``start`` to ``end`` (unix seconds), in the OpenMetrics text
    format that ``promtool tsdb create-blocks-from openmetrics`` imports
    (https://prometheus.io/docs/prometheus/latest/storage/#backfilling-from-openmetrics-format).

    Args:
        phases: ``[(seconds after start, {(namespace, service, version): (rps, error_ratio,
            latency_ms)}), ...]`` in order; each phase holds until the next; a version absent
            from a phase serves nothing during it.
    """
    keys = sorted({key for _, traffic in phases for key in traffic})
    rows: dict[tuple[str, str, str], list[tuple[float, _Series]]] = {key: [] for key in keys}
    state = {key: _Series(updated=start) for key in keys}
    moment = start
    while moment <= end + 1e-9:
        traffic: dict = {}
        for begin, values in phases:
            if moment - start >= begin:
                traffic = values
        for key in keys:
            series = state[key]
            series.advance(moment)  # at the rates in force until now
            series.rps, series.error_ratio, series.latency_ms = traffic.get(key, (0.0, 0.0, series.latency_ms))
            rows[key].append((moment, _Series(ok=series.ok, errors=series.errors, buckets=list(series.buckets),
                                              duration_sum=series.duration_sum)))
        moment += scrape
    lines = ["# TYPE istio_requests counter"]
    histogram = ["# TYPE istio_request_duration_milliseconds histogram"]
    for (namespace, service, version) in keys:
        base = (f'reporter="destination",destination_service_namespace="{namespace}",'
                f'destination_service_name="{service}",destination_version="{version}"')
        for code, attr in (("200", "ok"), ("503", "errors")):
            lines.extend(f'istio_requests_total{{{base},response_code="{code}"}} {getattr(row, attr):.3f} {t:.3f}'
                         for t, row in rows[(namespace, service, version)])
        for t, row in rows[(namespace, service, version)]:
            total = 0.0
            for le, count in zip([*map(str, DURATION_BUCKETS), "+Inf"], row.buckets):
                total += count
                histogram.append(f'istio_request_duration_milliseconds_bucket{{{base},le="{le}"}} {total:.3f} {t:.3f}')
            histogram.append(f"istio_request_duration_milliseconds_sum{{{base}}} {row.duration_sum:.3f} {t:.3f}")
            histogram.append(f"istio_request_duration_milliseconds_count{{{base}}} {total:.3f} {t:.3f}")
    return "\n".join(lines + histogram + ["# EOF"]) + "\n"


def promtool_binary() -> str | None:
    """The path of ``promtool`` (Debian's ``prometheus`` package ships it), or None."""
    return shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)


def write_history(workdir: Path, text: str) -> Path:
    """Import OpenMetrics ``text`` into Prometheus storage at ``workdir/data`` with
    ``promtool tsdb create-blocks-from openmetrics``; a :class:`LocalPrometheus` with that
    ``workdir`` then serves it.

    Raises:
        RuntimeError: promtool is missing or refused the text.
    """
    binary = promtool_binary()
    if not binary:
        raise RuntimeError("promtool is not installed (Debian package 'prometheus')")
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "history.om"
    source.write_text(text)
    proc = subprocess.run([binary, "tsdb", "create-blocks-from", "openmetrics", str(source), str(workdir / "data")],
                          capture_output=True, text=True)
    source.unlink()
    if proc.returncode:
        raise RuntimeError(f"promtool refused the history: {proc.stderr[-2000:]}")
    return workdir / "data"
