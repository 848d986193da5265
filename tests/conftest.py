"""Shared test helpers: input trees from dedented strings, the CLI as a subprocess, git identity.

Fixtures that need outside programs (Prometheus, git remotes) live beside the tests that use
them or in this file; none of them mock what can run here.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent


def build_file_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: dedented text}`` under ``root`` and return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def run_meshgen(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = False,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m generator ARGS`` in ``cwd`` with this checkout on PYTHONPATH."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.setdefault("NO_COLOR", "1")
    full_env["COLUMNS"] = "200"
    if env:
        full_env.update(env)
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``MESHGEN_FAST_EXAMPLES``, lower each Hypothesis test's ``max_examples`` to it."""
    if not FAST_EXAMPLES:
        return
    for item in items:
        test = getattr(item, "obj", None)
        current = getattr(test, "_hypothesis_internal_use_settings", None)  # what @settings gave
        if current is not None and current.max_examples > FAST_EXAMPLES:
            test._hypothesis_internal_use_settings = settings(current, max_examples=FAST_EXAMPLES)
