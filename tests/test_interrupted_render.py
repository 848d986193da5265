"""A render stopped by SIGTERM or SIGINT leaves no temporary behind: real ``meshgen render``
processes of many apps, signalled at several points of their writing; a temporary that a
killed process left anyway (``kill -9``) is removed by the next render and reported by
``meshgen check``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from generator.render import output
from tests.conftest import ROOT, build_file_tree, run_meshgen
from tests.promfixtures import wait_until

APPS = 300

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: app-{i}, namespace: team-{team}}}
spec:
  service: {{host: app-{i}, port: 8080}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  routes:
    - name: canary
      when: header "x-canary" exact "1"
      to: v2
    - name: default
      to: {{v1: 90, v2: 10}}
      retries: {{attempts: 3, perTryTimeout: 2s}}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  cluster: {name: dev, server: https://dev.example.com}
"""


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    files = {f"apps/app-{i}.yaml": APP.format(i=i, team=i % 10) for i in range(APPS)}
    files["environments/dev.yaml"] = ENV
    return build_file_tree(tmp_path_factory.mktemp("many") / "repo", files)


def leftovers(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.tmp"))


def written(rendered: Path) -> int:
    return sum(1 for _ in rendered.rglob("*.yaml")) if rendered.is_dir() else 0


def start_render(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "generator", "render"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_render_signalled_while_writing_leaves_no_temporary(many, signum):
    rendered = many / "rendered"
    for point in (1, APPS // 2, APPS, APPS * 3 // 2):  # of the 600 files written
        for path in sorted(rendered.rglob("*"), reverse=True) if rendered.exists() else []:
            path.unlink() if path.is_file() else path.rmdir()
        proc = start_render(many)
        try:
            wait_until(lambda: written(rendered) >= point or proc.poll() is not None, 120, interval=0.001,
                       what=f"{point} files written")
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert leftovers(many) == [], f"signalled after {point} files: {err}"
        if proc.returncode != 0:  # the signal came before the end (1: Ctrl-C after the last write)
            assert proc.returncode in (128 + signum, -signum, 1), err
            assert "Traceback" not in err, err
    proc = run_meshgen("render", cwd=many, check=True)
    assert run_meshgen("check", cwd=many).returncode == 0


def test_a_signal_while_a_temporary_exists_removes_it(tmp_path):
    """Deterministic: the process signals itself just before its first rename."""
    root = build_file_tree(tmp_path / "repo", {"apps/app-1.yaml": APP.format(i=1, team=1),
                                               "environments/dev.yaml": ENV})
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from generator.render import output, render\n"
        "root = Path(sys.argv[1])\n"
        "rendering = render.render_repo(root)\n"
        "real = os.replace\n"
        "def replace(a, b):\n"
        "    os.kill(os.getpid(), int(sys.argv[2]))\n"
        "    real(a, b)\n"
        "os.replace = replace\n"
        "output.write_rendering(root, rendering)\n")
    for signum in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.run([sys.executable, "-c", script, str(root), str(int(signum))], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        assert proc.returncode == 128 + signum, proc.stderr
        assert leftovers(root) == []
        assert f"interrupted by {signum.name} while writing rendered/" in proc.stderr


def test_a_stale_temporary_is_reported_by_check_and_removed_by_render(tmp_path):
    root = build_file_tree(tmp_path / "repo", {"apps/app-1.yaml": APP.format(i=1, team=1),
                                               "environments/dev.yaml": ENV})
    run_meshgen("render", cwd=root, check=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer runs
    folder = next((root / "rendered" / "dev").rglob("virtualservice.yaml")).parent
    stale = folder / f".virtualservice.yaml.{dead.pid}.tmp"
    stale.write_bytes(b"")  # killed between creating it and writing to it
    rel = stale.relative_to(root).as_posix()
    proc = run_meshgen("check", cwd=root)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"{rel}: error: a temporary file left by an interrupted write (hint: `meshgen render` removes it, or "
        f"delete it; never commit it)",
        "1 temporary file under rendered/: run `meshgen render`"]
    proc = run_meshgen("render", cwd=root, check=True)
    assert f"warning: removed {rel}, left by an interrupted write" in proc.stderr
    assert not stale.exists()
    assert run_meshgen("check", cwd=root).returncode == 0


def test_a_temporary_of_a_live_process_is_left_alone(tmp_path):
    root = tmp_path
    folder = root / "rendered" / "dev"
    folder.mkdir(parents=True)
    live = folder / f".a.yaml.{os.getppid()}.tmp"
    live.write_bytes(b"")
    assert output.remove_stale_temporaries(root, "rendered") == []
    assert output.temporaries(root, "rendered") == [f"rendered/dev/{live.name}"]
