"""Shared test helpers: input trees from dedented strings, the CLI as a subprocess, git identity.

Fixtures that need outside programs (Prometheus, git remotes) live beside the tests that use
them or in this file; none of them mock what can run here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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
