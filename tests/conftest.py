"""Shared test helpers: input trees from dedented strings, the CLI as a subprocess, git identity.

Fixtures that need outside programs (Prometheus, git remotes) live beside the tests that use
them or in this file; none of them mock what can run here.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import settings

from tests import forkserver

ROOT = Path(__file__).resolve().parent.parent


def build_file_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: dedented text}`` under ``root`` and return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def _cli_env() -> dict[str, str]:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.setdefault("NO_COLOR", "1")
    full_env["COLUMNS"] = "200"
    return full_env


_fork_server: list[forkserver.ForkServer | None] = []


def _server() -> forkserver.ForkServer | None:
    """This worker's :class:`tests.forkserver.ForkServer`, started on first use (stopped at
    exit), or ``None`` where it cannot run or ``MESHGEN_TESTS_FORKSERVER=0`` turns it off."""
    if not _fork_server:
        server = None
        if os.environ.get("MESHGEN_TESTS_FORKSERVER", "1") != "0" and hasattr(os, "pidfd_open") \
                and hasattr(socket, "send_fds"):
            folder = Path(tempfile.mkdtemp(prefix="forkserver-"))
            server = forkserver.ForkServer(folder, _cli_env())

            def stop() -> None:
                server.close()
                shutil.rmtree(folder, ignore_errors=True)

            atexit.register(stop)
        _fork_server.append(server)
    server = _fork_server[0]
    return server if server is not None and server.alive() else None


def run_meshgen(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = False,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m generator ARGS`` in ``cwd`` with this checkout on PYTHONPATH: a process
    of its own, forked from this worker's fork server (:mod:`tests.forkserver`) unless the
    environment changes what a new interpreter would read at start-up."""
    full_env = _cli_env()
    if env:
        full_env.update(env)
    server = _server()
    if server is not None and forkserver.usable(full_env, server.env):
        proc = server.run(list(args), cwd, full_env, timeout)
    else:
        proc = subprocess.run([sys.executable, "-m", "generator", *args], cwd=cwd, env=full_env,
                              capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"meshgen {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(autouse=True)
def _isolated_git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test gets its own git identity and no global/system git config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Author")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "author@example.com")


@functools.lru_cache(maxsize=1)
def loopback_problem() -> str | None:
    """Why nothing can listen on 127.0.0.1 here (a network namespace whose ``lo`` is down, as
    under ``unshare -n``), or ``None`` when a listener there can be bound and connected to."""
    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname(), timeout=2):
                pass
    except OSError as e:
        return f"no loopback network here: cannot connect to a listener on 127.0.0.1 ({e.strerror or e})"
    return None


def require_loopback() -> None:
    """Skip the calling test or fixture, with the reason, when :func:`loopback_problem` finds one."""
    problem = loopback_problem()
    if problem:
        pytest.skip(problem)


#: Fixtures that listen on 127.0.0.1; a test using one is skipped, before any of them starts,
#: when there is no loopback network.
LOOPBACK_FIXTURES = {"mesh_traffic", "prometheus", "history_prometheus", "recorder"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    if LOOPBACK_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("prometheus"):
        require_loopback()


@pytest.fixture(scope="session", autouse=True)
def _system_temp_left_clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The suite's own system temporary directory (``$TMPDIR`` of the tests and of every
    process they start); after the session it must hold no ``meshgen-*`` entry: what meshgen
    or a test creates there, it removes."""
    system_tmp = tmp_path_factory.mktemp("system-tmp", numbered=False)
    before = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = str(system_tmp)
    try:
        yield system_tmp
    finally:
        if before[0] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before[0]
        tempfile.tempdir = before[1]
    left = sorted(p.name for p in system_tmp.iterdir() if p.name.startswith("meshgen-"))
    if left:
        pytest.fail(f"the tests left {', '.join(left)} in the system temporary directory ({system_tmp})",
                    pytrace=False)


pytest_plugins = ("tests.promfixtures",)

# No example database: ``make test`` runs in several worker processes at once, and a shared
# ``.hypothesis/`` folder would let one worker's failures steer another's examples (the
# property tests are derandomized, the fuzz suite seeded, so a failure reproduces without
# it). No deadline either: on a busy machine an example's duration says nothing about meshgen.
settings.register_profile("meshgen", database=None, deadline=None)
settings.load_profile("meshgen")

#: ``make test-fast`` caps every property test at this many examples (unset: as each test says).
FAST_EXAMPLES = int(os.environ.get("MESHGEN_FAST_EXAMPLES") or 0)


#: The longest tests (``pytest -n 4 --durations=40``: each 20 s to over a minute on a 2-core
#: machine, most of it CPU), first file then test name. They are run first, so each worker
#: starts on one of them and none begins near the end to keep one worker busy while the
#: others have nothing left: pytest-xdist's ``load`` scheduling hands the tests out in
#: collection order, the first ones round-robin. (A test whose time is a module-scoped
#: fixture's, as the report's Chromium, stays with its module: moved, it would start it twice.)
LONGEST = (
    ("test_bot_faults.py", "test_kill_9_of_the_tick_at_random_moments_then_one_tick_recovers"),
    ("test_routing_properties.py", "test_route_lists_compile_exactly"),
    ("test_interrupted_render.py", "test_a_render_signalled_while_writing_leaves_no_temporary"),
    ("test_cel.py", "test_every_rule_of_the_conformance_and_rendered_objects_is_evaluated_and_holds"),
    ("test_rollout.py", "test_steering_by_hand_and_the_status_table"),
    ("test_ci.py", "test_hook_passes_when_fresh_and_fails_when_stale"),
    ("test_routing_properties.py", "test_scoped_route_lists_compile_exactly"),
    ("test_routing_properties.py", "test_guard_heavy_route_lists_compile_exactly"),
    ("test_render.py", "test_init_scaffolds_a_repository_that_renders_and_checks"),
    ("test_yamlq.py", "test_any_value_round_trips_through_yaml"),
    ("test_fuzz.py", "test_structural_mutants_exit_0_or_a_placed_error"),
    ("test_edges.py", "test_two_ticks_at_once_in_one_checkout_push_only_consistent_commits"),
    ("test_rollout.py", "test_two_bots_ticking_at_the_same_moment_never_double_step"),
    ("test_rollout.py", "test_healthy_canary_goes_through_every_step_to_success"),
    ("test_rollout.py", "test_a_push_rejected_mid_tick_is_decided_again"),
    ("test_conditions.py", "test_printed_conditions_parse_back_to_the_same_tree"),
    ("test_gatewayapi_target.py", "test_the_bot_steps_backend_ref_weights_and_promotes"),
    ("test_gatewayapi_routing.py", "test_precedence_ordered_rules_mean_the_spec_first_match"),
    ("test_waves.py", "test_a_group_steps_together_in_one_commit_per_tick"),
)


def _longest_first(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: those of :data:`LONGEST` first, in its order (parameters
    together), then every other test in collection order. Every test still runs once."""
    rank = {key: i for i, key in enumerate(LONGEST)}

    def key(item: pytest.Item) -> int:
        name = getattr(item, "originalname", None) or item.name.split("[")[0]
        return rank.get((Path(str(item.fspath)).name, name), len(LONGEST))

    items.sort(key=key)  # stable: the rest keep their order


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tests first (:func:`_longest_first`); under ``MESHGEN_FAST_EXAMPLES``, each
    Hypothesis test's ``max_examples`` lowered to it."""
    _longest_first(items)
    if not FAST_EXAMPLES:
        return
    for item in items:
        test = getattr(item, "obj", None)
        current = getattr(test, "_hypothesis_internal_use_settings", None)  # what @settings gave
        if current is not None and current.max_examples > FAST_EXAMPLES:
            test._hypothesis_internal_use_settings = settings(current, max_examples=FAST_EXAMPLES)
