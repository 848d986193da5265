"""The bot's git workspace, on real repositories with a real bare remote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from generator.bot import vcs
from generator.errors import GitError, UsageError
from tests.conftest import ROOT
from tests.promfixtures import clone, git

BOT = vcs.Identity("meshgen-bot", "bot@example.com")


@pytest.fixture
def repos(tmp_path, git_remote):
    tree = tmp_path / "first"
    (tree / "apps").mkdir(parents=True)
    (tree / "apps" / "a.yaml").write_text("a: 1\n")
    remote, first = git_remote(tree)
    return remote, first, clone(remote, tmp_path / "second")


def workspace(path: Path) -> vcs.Workspace:
    return vcs.Workspace(path, ["status", "rendered"])


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def log(path: Path, ref: str = "HEAD") -> list[str]:
    return git(path, "log", "--format=%s <%ae>", ref).splitlines()


def test_bot_identity_from_settings_and_environment():
    assert vcs.bot_identity({}, {}) == vcs.Identity("meshgen-bot", "meshgen-bot@meshgen.invalid")
    settings = {"bot": {"name": "Rollouts", "email": "rollouts@example.com"}}
    assert vcs.bot_identity(settings, {}) == vcs.Identity("Rollouts", "rollouts@example.com")
    assert vcs.bot_identity(settings, {"MESHGEN_BOT_EMAIL": "x@example.com"}).email == "x@example.com"


def test_commit_with_the_bot_identity_and_push(repos):
    remote, first, _ = repos
    ws = workspace(first)
    write(first, "status/dev/a.yaml", "phase: Progressing\n")
    ws.commit(["status/dev/a.yaml"], "rollout a (dev): start\n\nbody\n", BOT)
    assert ws.push(ws.upstream())
    assert log(remote, "main")[0] == "rollout a (dev): start <bot@example.com>"
    assert git(first, "status", "--porcelain") == ""


def test_commit_removes_deleted_files(repos):
    _, first, _ = repos
    ws = workspace(first)
    (first / "apps" / "a.yaml").unlink()
    ws.commit(["apps/a.yaml"], "drop a", BOT)
    assert git(first, "ls-files").strip() == ""


def human_push(clone):
    """A human commit pushed from another clone: the remote moves under the bot."""
    write(clone, "apps/b.yaml", "b: 1\n")
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "human change")
    git(clone, "push", "-q")


def test_push_rejected_when_the_remote_moved(repos):
    remote, first, second = repos
    human_push(second)
    ws = workspace(first)
    write(first, "status/dev/a.yaml", "x\n")
    ws.commit(["status/dev/a.yaml"], "bot step", BOT)
    assert ws.push(ws.upstream()) is False
    assert log(remote, "main")[0].startswith("human change")


def test_sync_drops_only_the_bots_unpushed_commits(repos):
    remote, first, second = repos
    human_push(second)
    ws = workspace(first)
    write(first, "status/dev/a.yaml", "x\n")
    ws.commit(["status/dev/a.yaml"], "bot step", BOT)
    head = ws.sync(ws.upstream(), BOT)
    assert head == git(remote, "rev-parse", "main").strip()
    assert log(first)[0].startswith("human change")
    assert not (first / "status/dev/a.yaml").exists()


def test_sync_refuses_to_drop_a_human_commit(repos):
    _, first, second = repos
    human_push(second)
    write(first, "apps/c.yaml", "c: 1\n")
    git(first, "add", "-A")
    git(first, "commit", "-qm", "local human work")
    ws = workspace(first)
    with pytest.raises(GitError, match="1 commit.*the bot did not make"):
        ws.sync(ws.upstream(), BOT)
    assert log(first)[0].startswith("local human work")


def test_a_bot_commit_touching_human_files_is_not_the_bots(repos):
    _, first, _ = repos
    ws = workspace(first)
    write(first, "apps/a.yaml", "a: 2\n")
    write(first, "status/dev/a.yaml", "x\n")
    sha = ws.commit(["apps/a.yaml", "status/dev/a.yaml"], "mixed", BOT)
    assert not ws.own_commit(sha, BOT)


def test_sync_fast_forwards(repos):
    remote, first, second = repos
    human_push(second)
    ws = workspace(first)
    ws.sync(ws.upstream(), BOT)
    assert (first / "apps/b.yaml").read_text() == "b: 1\n"


def test_restore_puts_bot_paths_back_and_refuses_human_changes(repos):
    _, first, _ = repos
    ws = workspace(first)
    write(first, "status/dev/a.yaml", "committed\n")
    ws.commit(["status/dev/a.yaml"], "status", BOT)
    write(first, "status/dev/a.yaml", "half a tick\n")
    write(first, "rendered/dev/new.yaml", "new\n")
    assert ws.restore() == ["rendered/dev/new.yaml", "status/dev/a.yaml"]
    assert (first / "status/dev/a.yaml").read_text() == "committed\n"
    assert not (first / "rendered/dev/new.yaml").exists()
    write(first, "apps/a.yaml", "edited\n")
    with pytest.raises(UsageError, match="uncommitted changes outside status/, rendered/.*apps/a.yaml"):
        ws.restore()


def test_upstream_errors(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "f").write_text("x")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "x")
    with pytest.raises(UsageError, match="tracks no remote branch"):
        workspace(tmp_path).upstream()
    with pytest.raises(UsageError, match="not a git working tree"):
        workspace(tmp_path / "nowhere")


def test_unreachable_remote_is_a_git_error(repos, tmp_path):
    _, first, _ = repos
    git(first, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    ws = workspace(first)
    with pytest.raises(GitError, match="git fetch origin/main failed"):
        ws.sync(ws.upstream(), BOT)
    with pytest.raises(GitError, match="git push origin/main failed"):
        ws.push(ws.upstream())


def test_a_process_killed_mid_commit_leaves_nothing_in_the_system_temp_dir(repos, tmp_path):
    """A commit's fast-import stream lives in the git directory: a kill -9 while fast-import
    runs leaves nothing in $TMPDIR, and the next commit removes what it left."""
    _, first, _ = repos
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    wrapper = tmp_path / "git-killing-its-caller"  # git, except that fast-import kills the caller first
    wrapper.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = fast-import ] && kill -9 $PPID && exit 1; done\n'
                       'exec git "$@"\n')
    wrapper.chmod(0o755)
    write(first, "status/dev/a.yaml", "phase: Progressing\n")
    script = ("import sys; from pathlib import Path; from generator.bot import vcs\n"
              "vcs.Workspace(Path(sys.argv[1]), ['status']).commit(['status/dev/a.yaml'], 'start')\n")
    env = dict(os.environ, TMPDIR=str(system_tmp), GIT_PYTHON_GIT_EXECUTABLE=str(wrapper), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script, str(first)], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert list(system_tmp.iterdir()) == []
    workspace(first).commit(["status/dev/a.yaml"], "start", BOT)
    assert not list((first / ".git").glob("meshgen-commit-*"))
    assert log(first)[0] == "start <bot@example.com>"
