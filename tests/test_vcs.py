"""The bot's git workspace, on real repositories with a real bare remote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from generator.bot import pack, vcs
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
    runs leaves nothing in $TMPDIR, and the next commit removes what it left. (A repository's
    first commit goes through fast-import; later ones are written as a pack.)"""
    first = tmp_path / "fresh"
    first.mkdir()
    git(first, "init", "-q", "-b", "main")
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
def test_many_commits_in_wide_directories_are_what_git_itself_would_commit(repos, monkeypatch):
    """One commit per app across directories of hundreds of entries (the pack is written by
    meshgen: tree deltas, chains cut at their depth limit): every commit holds exactly its
    paths, git fsck finds nothing wrong, the last tree is what ``git add`` of the working
    tree gives, and one app's commit reverts alone. Trees' hashes resume from kept states
    (every 64 bytes here, so most commits resume mid-tree), a tree at the end of its delta
    chain is a delta against its last whole version until 120 entries changed since (then
    whole again), and a file committed unchanged is in no commit's diff."""
    monkeypatch.setattr(pack, "HASH_STEP", 64)
    monkeypatch.setattr(pack, "REBASE_MAX", 120)
    _, first, _ = repos
    apps = [f"app-{i:03d}" for i in range(240)]
    for app in apps:
        write(first, f"status/dev/{app}.yaml", f"phase: Progressing\napp: {app}\nweight: 10\n")
        write(first, f"rendered/dev/mesh/{app}/virtualservice.yaml", f"weight: 10 # {app}\n")
        write(first, f"rendered/dev/mesh/{app}/destinationrule.yaml", f"subsets of {app}\n")
    write(first, "rendered/dev/mesh/old.yaml", "a file that becomes a directory\n")
    git(first, "add", "-A")
    git(first, "commit", "-qm", "apps")
    ws = workspace(first)
    commits = []
    for app in apps[:-2]:  # more commits than a delta chain may be long
        write(first, f"status/dev/{app}.yaml", f"phase: Progressing\napp: {app}\nweight: 25\n")
        write(first, f"rendered/dev/mesh/{app}/virtualservice.yaml", f"weight: 25 # {app}\n")
        commits.append((f"rollout {app} (dev): step\n", [f"status/dev/{app}.yaml",
                                                           f"rendered/dev/mesh/{app}/virtualservice.yaml",
                                                           f"rendered/dev/mesh/{app}/destinationrule.yaml"]))
    (first / "status/dev/app-238.yaml").unlink()
    write(first, "status/dev/zz-new.yaml", "new\n")
    commits.append(("drop one, add one\n", ["status/dev/app-238.yaml", "status/dev/zz-new.yaml"]))
    (first / "rendered/dev/mesh/old.yaml").unlink()
    write(first, "rendered/dev/mesh/old.yaml/virtualservice.yaml", "now a directory\n")
    commits.append(("file to directory\n", ["rendered/dev/mesh/old.yaml", "rendered/dev/mesh/old.yaml/virtualservice.yaml"]))
    made = ws.commit_all(commits, BOT)
    assert git(first, "rev-parse", "HEAD").strip() == made[-1]
    assert git(first, "rev-list", "--count", "HEAD").strip() == str(len(commits) + 2)
    for sha, (message, paths) in zip(made, commits, strict=True):
        assert git(first, "log", "-1", "--format=%B", sha) == message + "\n"
        assert git(first, "diff-tree", "-r", "--no-commit-id", "--name-only", sha).split() == \
            sorted(p for p in paths if not p.endswith("destinationrule.yaml"))
    git(first, "fsck", "--strict", "--no-dangling")
    assert git(first, "status", "--porcelain") == ""
    git(first, "add", "-A")
    assert git(first, "write-tree").strip() == git(first, "rev-parse", "HEAD^{tree}").strip()
    git(first, "-c", "user.name=t", "-c", "user.email=t@example.com", "revert", "--no-edit", made[100])
    assert (first / "status/dev/app-100.yaml").read_text().endswith("weight: 10\n")
    assert (first / "status/dev/app-101.yaml").read_text().endswith("weight: 25\n")


def test_what_before_update_raises_leaves_the_branch_and_no_pack(repos):
    """``before_update`` runs once the commits are written, before the branch moves: what it
    raises comes up as it is (a full disk stays a full disk, not a git failure), the branch
    stays where it was and the pack written for them is removed again; when it returns, the
    branch moves."""
    _, first, _ = repos
    write(first, "status/dev/a.yaml", "phase: Progressing\n")
    git(first, "add", "-A")
    git(first, "commit", "-qm", "a")
    head = git(first, "rev-parse", "HEAD").strip()
    packs = sorted((first / ".git" / "objects" / "pack").glob("*"))
    ws = workspace(first)
    write(first, "status/dev/a.yaml", "phase: Succeeded\n")

    def full() -> None:
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match="No space left"):
        ws.commit_all([("step\n", ["status/dev/a.yaml"])], BOT, before_update=full)
    assert git(first, "rev-parse", "HEAD").strip() == head
    assert sorted((first / ".git" / "objects" / "pack").glob("*")) == packs
    called = []
    made = ws.commit_all([("step\n", ["status/dev/a.yaml"])], BOT, before_update=lambda: called.append(True))
    assert called == [True] and git(first, "rev-parse", "HEAD").strip() == made[0] != head
    git(first, "fsck", "--strict", "--no-dangling")
