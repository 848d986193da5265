"""The tick lock on real clones: a live tick is waited for (bounded, exit 3), a killed one
leaves git lock files that the next tick removes, and a person's git lock is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from generator.bot import bot, lock
from tests.conftest import ROOT, build_file_tree, run_meshgen
from tests.promfixtures import git

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {name: ratings, namespace: lock}
spec:
  service: {host: ratings, port: 80}
  versions:
    v1: {labels: {version: v1}}
    v2: {labels: {version: v2}}
  routes:
    - {name: default, to: v1}
  rollout: {stable: v1, canary: v2, route: default, steps: [50, 100], interval: 1h, policy: time}
"""
ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  cluster: {name: dev, server: https://dev.example.com}
  prometheus: {url: "http://127.0.0.1:9"}
"""

#: A tick of its own in another process: takes the lock, leaves git lock files if asked, says
#: "held" and waits (to be killed, or released by closing its stdin).
HOLDER = """
import sys
from pathlib import Path
from generator.bot import lock
held = lock.TickLock(Path(sys.argv[1]), wait=5).acquire()
for name in sys.argv[2:]:
    (Path(sys.argv[1]) / name).parent.mkdir(parents=True, exist_ok=True)
    (Path(sys.argv[1]) / name).write_text("")
print("held", flush=True)
sys.stdin.read()
held.release()
"""


@pytest.fixture
def work(tmp_path, git_remote) -> Path:
    tree = build_file_tree(tmp_path / "bot", {"apps/ratings.yaml": APP, "environments/dev.yaml": ENV})
    return git_remote(tree)[1]


def hold(work: Path, *leave: str) -> subprocess.Popen:
    """Start a process holding ``work``'s tick lock; returns once it holds it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(work / ".git"), *leave], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_tick_is_waited_for_then_exit_3_naming_it(work):
    holder = hold(work)
    try:
        proc = run_meshgen("rollout", "step", cwd=work, env={lock.WAIT_ENV: "0.3"})
        assert proc.returncode == 3, proc.stderr
        assert f"another meshgen tick holds {work / '.git' / lock.LOCK_NAME} (pid {holder.pid}, started " \
               in proc.stderr
        assert "waited 0.3 s" in proc.stderr
        assert git(work, "status", "--porcelain") == ""
    finally:
        holder.communicate("")
    assert holder.returncode == 0
    run_meshgen("rollout", "step", cwd=work, check=True)  # released: the next tick runs


def test_a_lock_released_during_the_wait_is_taken(work):
    first = lock.TickLock(work / ".git", wait=0).acquire()
    threading.Timer(0.3, first.release).start()
    started = time.monotonic()
    report = bot.tick(work, lock_wait=30)
    assert time.monotonic() - started >= 0.25
    assert [o.committed is not None for o in report.outcomes] == [True]  # the rollout started


def test_a_killed_tick_leaves_git_locks_that_the_next_tick_removes(work):
    holder = hold(work, "index.lock", "refs/heads/main.lock")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    holder.stdin.close()
    assert (work / ".git" / "index.lock").exists()
    proc = run_meshgen("rollout", "step", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "finishing an interrupted tick: removed stale git lock(s) .git/index.lock, " \
           ".git/refs/heads/main.lock" in proc.stderr
    assert not (work / ".git" / "index.lock").exists()
    assert "rollout ratings (dev): start canary v2" in git(work, "log", "-1", "--format=%s")
    assert git(work, "status", "--porcelain") == ""


def test_a_git_lock_after_a_clean_tick_belongs_to_someone_else_and_stays(work):
    run_meshgen("rollout", "step", cwd=work, check=True)
    (work / ".git" / "index.lock").write_text("")
    with lock.TickLock(work / ".git", wait=0) as held:
        assert not held.interrupted and held.removed == []
    assert (work / ".git" / "index.lock").exists()
    assert (work / ".git" / lock.LOCK_NAME).read_text() == ""  # a clean end leaves it empty


def test_the_lock_file_names_its_holder_while_held(work):
    with lock.TickLock(work / ".git", wait=0) as held:
        text = held.path.read_text()
        assert text.startswith(f"ticking pid={os.getpid()} started=")
        with pytest.raises(lock.TickLockBusy, match=f"pid {os.getpid()}"):
            lock.TickLock(work / ".git", wait=0.05).acquire()


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_wait_setting_is_a_usage_error(value):
    from generator.errors import UsageError

    with pytest.raises(UsageError, match=lock.WAIT_ENV):
        lock.default_wait({lock.WAIT_ENV: value})
    assert lock.default_wait({}) == lock.DEFAULT_WAIT


def interrupted_reset(tmp_path: Path, work: Path) -> None:
    """A person pushes a change of ``docs/owners.md``; then a tick of the bot is killed in
    ``git reset --hard`` after moving HEAD onto it, before updating the working tree."""
    person = tmp_path / "person"
    git(tmp_path, "clone", "-q", str(tmp_path / "remote.git"), str(person))
    (person / "docs").mkdir()
    (person / "docs" / "owners.md").write_text("# owners\n")
    git(person, "add", "-A")
    git(person, "commit", "-qm", "owners")
    git(person, "push", "-q")
    git(work, "fetch", "-q")
    git(work, "update-ref", "-m", "reset: moving to origin/main", "HEAD", "origin/main")
    (work / ".git" / lock.LOCK_NAME).write_text("ticking pid=999999 started=2026-01-01T00:00:00Z\n")


def test_a_reset_cut_short_by_a_kill_is_finished_by_the_next_tick(tmp_path, work):
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)
    interrupted_reset(tmp_path, work)
    assert "docs/owners.md" in git(work, "status", "--porcelain")
    proc = run_meshgen("rollout", "step", "--push", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "finishing an interrupted tick: put back docs/owners.md" in proc.stderr
    assert git(work, "status", "--porcelain") == ""
    assert (work / "docs" / "owners.md").read_text() == "# owners\n"


def test_a_persons_edit_is_never_put_back_even_after_a_killed_tick(tmp_path, work):
    run_meshgen("rollout", "step", "--push", cwd=work, check=True)
    interrupted_reset(tmp_path, work)
    (work / "docs").mkdir(exist_ok=True)
    (work / "docs" / "owners.md").write_text("# owners\nmy uncommitted note\n")
    proc = run_meshgen("rollout", "step", "--push", cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert "uncommitted changes outside status/, rendered/" in proc.stderr and "docs/owners.md" in proc.stderr
    assert (work / "docs" / "owners.md").read_text() == "# owners\nmy uncommitted note\n"
