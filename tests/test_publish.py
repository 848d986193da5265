"""Publishing rendered files into a deploy repository: real git, a bare remote, real races.

The bare remote refuses non-fast-forward updates (``receive.denyNonFastForwards``), so a
force-push would fail the tests rather than pass silently.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import git
import pytest

from generator import errors
from generator.gitops import publish


def sh(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    """A bare deploy repository whose ``main`` holds a README the publishes must keep."""
    bare = tmp_path / "deploy.git"
    sh("git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    sh("git", "config", "receive.denyNonFastForwards", "true", cwd=bare)
    seed = tmp_path / "seed"
    sh("git", "clone", "--quiet", str(bare), str(seed))
    (seed / "README.md").write_text("deploy repo\n")
    sh("git", "add", ".", cwd=seed)
    sh("git", "commit", "--quiet", "-m", "Start", cwd=seed)
    sh("git", "push", "--quiet", "origin", "HEAD:main", cwd=seed)
    return bare


def rendered(env: str, weight: int = 100) -> dict[str, bytes]:
    return {f"rendered/{env}/kustomization.yaml": b"resources:\n- mesh/ratings/virtualservice.yaml\n",
            f"rendered/{env}/mesh/ratings/virtualservice.yaml": f"weight: {weight}\n".encode()}


SOURCE = publish.Source("git@github.com:acme/mesh-config.git", "1a2b3c4d" * 5)


def run(files: dict[str, bytes], bare: Path, envs: list[str] | None, branch: str = "main",
        path: str = "rendered", attempts: int = 5) -> publish.Published:
    selected, replaced = publish.select(files, envs, path)
    return publish.publish_files(selected, replaced, to=str(bare), branch=branch,
                                 message=publish.message(SOURCE, replaced), attempts=attempts)


def tree(bare: Path, ref: str = "main") -> dict[str, str]:
    repo = git.Repo(bare)
    return {b.path: b.data_stream.read().decode() for b in repo.commit(ref).tree.traverse()
            if b.type == "blob"}


def log(bare: Path, ref: str = "main") -> list[str]:
    return [c.summary for c in git.Repo(bare).iter_commits(ref)]


def test_publish_commits_files_with_a_link_to_the_source(deploy: Path) -> None:
    result = run(rendered("prod"), deploy, ["prod"])
    assert result.attempts == 1 and result.files == 2
    assert tree(deploy) == {"README.md": "deploy repo\n",
                            "rendered/prod/kustomization.yaml": "resources:\n- mesh/ratings/virtualservice.yaml\n",
                            "rendered/prod/mesh/ratings/virtualservice.yaml": "weight: 100\n"}
    head = git.Repo(deploy).commit("main")
    assert head.hexsha == result.commit
    assert head.message == (
        "Publish rendered/prod from mesh-config@1a2b3c4\n\n"
        "Rendered by meshgen from https://github.com/acme/mesh-config/commit/" + SOURCE.commit + "\n\n"
        "Source-Repository: git@github.com:acme/mesh-config.git\n"
        "Source-Commit: " + SOURCE.commit + "\n")


def test_nothing_changed_means_no_commit(deploy: Path) -> None:
    first = run(rendered("prod"), deploy, ["prod"])
    again = run(rendered("prod"), deploy, ["prod"])
    assert again == publish.Published(None, 0, 2)
    assert git.Repo(deploy).commit("main").hexsha == first.commit


def test_publishing_one_environment_replaces_only_its_directory(deploy: Path) -> None:
    run({**rendered("prod"), "rendered/prod/mesh/old/gateway.yaml": b"old\n"}, deploy, ["prod"])
    run(rendered("dev"), deploy, ["dev"])
    run(rendered("prod", 90), deploy, ["prod"])
    files = tree(deploy)
    assert "rendered/prod/mesh/old/gateway.yaml" not in files
    assert files["rendered/prod/mesh/ratings/virtualservice.yaml"] == "weight: 90\n"
    assert files["rendered/dev/mesh/ratings/virtualservice.yaml"] == "weight: 100\n"
    assert files["README.md"] == "deploy repo\n"
    assert len(log(deploy)) == 4


def test_publishing_all_environments_drops_removed_ones(deploy: Path) -> None:
    run({**rendered("prod"), **rendered("dev")}, deploy, None)
    run(rendered("prod"), deploy, None)
    assert sorted(tree(deploy)) == ["README.md", "rendered/prod/kustomization.yaml",
                                    "rendered/prod/mesh/ratings/virtualservice.yaml"]


def test_new_environment_branch_in_an_empty_repository(tmp_path: Path) -> None:
    bare = tmp_path / "empty.git"
    sh("git", "init", "--quiet", "--bare", str(bare))
    result = run(rendered("prod"), bare, ["prod"], branch="env/prod", path=".")
    assert result.commit is not None
    assert sorted(tree(bare, "env/prod")) == ["prod/kustomization.yaml", "prod/mesh/ratings/virtualservice.yaml"]
    assert len(log(bare, "env/prod")) == 1


def test_push_rejected_because_the_branch_moved_is_fetched_and_retried(deploy: Path, tmp_path: Path) -> None:
    """A pre-push hook pushes a competing commit the first time: the remote moves mid-publish."""
    hooks, marker, other = tmp_path / "hooks", tmp_path / "raced", tmp_path / "other"
    hooks.mkdir()
    (hooks / "pre-push").write_text(f"""#!/bin/sh
[ -e {marker} ] && exit 0
touch {marker}
git clone --quiet {deploy} {other}
cd {other}
echo competing > competing.txt
git add competing.txt
git -c core.hooksPath=/dev/null commit --quiet -m "Competing commit"
git -c core.hooksPath=/dev/null push --quiet origin HEAD:main
""")
    (hooks / "pre-push").chmod(0o755)
    sh("git", "config", "--global", "core.hooksPath", str(hooks))
    result = run(rendered("prod"), deploy, ["prod"])
    assert marker.exists()
    assert result.attempts == 2
    assert log(deploy)[:2] == ["Publish rendered/prod from mesh-config@1a2b3c4", "Competing commit"]
    assert tree(deploy)["competing.txt"] == "competing\n"


def test_two_concurrent_publishes_never_lose_a_commit(deploy: Path) -> None:
    results: dict[str, publish.Published] = {}
    failures: list[BaseException] = []

    def one(env: str) -> None:
        try:
            results[env] = run(rendered(env), deploy, [env], attempts=10)
        except BaseException as e:  # pragma: no cover - reported below
            failures.append(e)

    threads = [threading.Thread(target=one, args=(env,)) for env in ("dev", "prod")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    history = [c.hexsha for c in git.Repo(deploy).iter_commits("main")]
    assert {results["dev"].commit, results["prod"].commit} <= set(history)
    assert len(history) == 3
    files = tree(deploy)
    assert "rendered/dev/kustomization.yaml" in files and "rendered/prod/kustomization.yaml" in files


def test_a_remote_that_refuses_says_what_the_remote_said_with_exit_3(deploy: Path) -> None:
    hook = deploy / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'frozen for the release' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(errors.GitError) as e:
        run(rendered("prod"), deploy, ["prod"], attempts=2)
    assert e.value.exit_code == 3
    assert "pre-receive hook declined" in str(e.value) and "frozen for the release" in str(e.value)
    assert "keeps moving" not in str(e.value)
    assert log(deploy) == ["Start"]


def test_unreachable_remote_is_a_git_error(tmp_path: Path) -> None:
    with pytest.raises(errors.GitError) as e:
        run(rendered("prod"), tmp_path / "nowhere.git", ["prod"])
    assert e.value.exit_code == 3 and "cannot reach" in str(e.value)


def test_select_maps_rendered_paths_into_the_target_layout() -> None:
    files = {**rendered("prod"), **rendered("dev"), "apps/ratings.yaml": b"x"}
    selected, replaced = publish.select(files, ["prod"], "deploy/mesh")
    assert sorted(selected) == ["deploy/mesh/prod/kustomization.yaml",
                                "deploy/mesh/prod/mesh/ratings/virtualservice.yaml"]
    assert replaced == ["deploy/mesh/prod"]
    assert publish.select(files, ["prod"], ".")[1] == ["prod"]


@pytest.mark.parametrize("path", ["", " ", ".", "./", "./.", "/"])
def test_select_refuses_an_empty_path_and_the_root_for_every_environment(path: str) -> None:
    """Each would make a commit that replaces the whole target branch."""
    with pytest.raises(errors.UsageError, match="--path"):
        publish.select(rendered("prod"), None, path)


@pytest.mark.parametrize("path", ["/etc", "../elsewhere", "a/../../b"])
def test_select_refuses_paths_outside_the_target(path: str) -> None:
    with pytest.raises(errors.UsageError):
        publish.select(rendered("prod"), ["prod"], path)


def test_select_refuses_an_environment_with_nothing_rendered() -> None:
    with pytest.raises(errors.UsageError, match="--env staging"):
        publish.select(rendered("prod"), ["staging"])


@pytest.mark.parametrize("url,web", [
    ("git@github.com:acme/mesh.git", "https://github.com/acme/mesh"),
    ("ssh://git@gitlab.example.com/platform/mesh.git", "https://gitlab.example.com/platform/mesh"),
    ("https://token@github.com/acme/mesh.git", "https://github.com/acme/mesh"),
    ("/srv/git/mesh.git", None),
])
def test_web_url(url: str, web: str | None) -> None:
    assert publish.web_url(url) == web


def test_source_of_a_repository(tmp_path: Path) -> None:
    sh("git", "init", "--quiet", str(tmp_path))
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "a.yaml").write_text("a\n")
    sh("git", "add", ".", cwd=tmp_path)
    sh("git", "commit", "--quiet", "-m", "x", cwd=tmp_path)
    source = publish.source_of(tmp_path)
    assert source.url == str(tmp_path.resolve()) and not source.dirty
    (tmp_path / "apps" / "a.yaml").write_text("b\n")
    (tmp_path / "notes.txt").write_text("not an input\n")
    assert publish.source_of(tmp_path).dirty
    assert "(with uncommitted changes)" in publish.message(publish.source_of(tmp_path), ["rendered/prod"])


def test_commit_identity_is_the_bots_when_set(deploy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGEN_BOT_NAME", "rollout bot")
    monkeypatch.setenv("MESHGEN_BOT_EMAIL", "bot@example.com")
    run(rendered("prod"), deploy, ["prod"])
    head = git.Repo(deploy).commit("main")
    assert (head.author.name, head.author.email, head.committer.email) == \
        ("rollout bot", "bot@example.com", "bot@example.com")


def test_commit_identity_without_any_configured(deploy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh container: no git config, no variables -- the publish still commits, as meshgen-bot."""
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    run(rendered("prod"), deploy, ["prod"])
    head = git.Repo(deploy).commit("main")
    assert (head.author.name, head.author.email) == publish.DEFAULT_IDENTITY
