"""The render pipeline on the bundled example: golden tree, Istio's schemas, kustomize, determinism, files."""

from __future__ import annotations

import filecmp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.render import output, render
from tests import istio_crds
from tests.conftest import ROOT, build_file_tree, run_meshgen
from tests.example import copy_example

ENVS = ("dev", "staging", "prod")


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_fresh_render_equals_the_committed_golden_tree(tmp_path: Path) -> None:
    """rendered/ in the repository is the golden tree (reviewed by eye); a fresh render reproduces it."""
    repo = copy_example(tmp_path, ("apps", "environments", "status"))
    run_meshgen("render", cwd=repo, check=True)
    assert tree(repo / "rendered") == tree(ROOT / "rendered")


def test_writing_rendered_makes_each_directory_once_and_writes_the_golden_bytes(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A write into an empty rendered/ makes each directory once (not once per file) and
    leaves the golden tree, every file whole and no temporary behind."""
    repo = copy_example(tmp_path, ("apps", "environments", "status"))
    rendering = render.render_repo(repo, cache=False)
    made: list[Path] = []
    real = Path.mkdir

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    changes = output.write_rendering(repo, rendering)
    monkeypatch.setattr(Path, "mkdir", real)
    folders = [repo / rel.rpartition("/")[0] for rel in rendering.files]
    assert max(Counter(folders).values()) >= 3  # a folder of three files: made three times if once per file
    # each directory made once (once more after its missing parents, as Path.mkdir(parents=True) does)
    assert set(made) == {d for f in folders for d in (f, *f.parents) if repo / "rendered" in (d, *d.parents)}
    assert max(Counter(made).values()) <= 2
    assert changes.written == sorted(rendering.files)
    assert tree(repo / "rendered") == tree(ROOT / "rendered")
    assert not [p for p in (repo / "rendered").rglob(".*.tmp")]


def _reorder_keys(root: Path, order: Callable[[list[str]], list[str]]) -> None:
    """Rewrite every spec under ``root`` with each mapping's keys in ``order(keys)``: same meaning."""
    def reorder(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: reorder(node[k]) for k in order(list(node))}
        if isinstance(node, list):
            return [reorder(v) for v in node]
        return node

    for path in sorted([*root.glob("apps/*.yaml"), *root.glob("environments/*.yaml")]):
        docs = list(yaml.safe_load_all(path.read_text()))
        path.write_text(yaml.safe_dump_all([reorder(d) for d in docs], sort_keys=False))


def test_reordering_spec_keys_changes_no_rendered_byte(tmp_path: Path) -> None:
    """Every mapping of every spec written in reverse key order (trafficPolicy's fields, versions,
    a route's `to`, metadata...) renders, through the CLI, the very bytes of the committed tree."""
    repo = copy_example(tmp_path, ("apps", "environments", "status"))
    _reorder_keys(repo, lambda keys: keys[::-1])
    assert (repo / "apps/books.yaml").read_text() != (ROOT / "apps/books.yaml").read_text()
    run_meshgen("render", cwd=repo, check=True)
    assert tree(repo / "rendered") == tree(ROOT / "rendered")


@settings(max_examples=8, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_any_key_order_renders_the_same_bytes(seed: int) -> None:
    """Property: for any permutation of the keys of every spec mapping, the rendering is the same."""
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_example(Path(tmp), ("apps", "environments", "status"))
        shuffle = random.Random(seed).sample
        _reorder_keys(repo, lambda keys: shuffle(keys, len(keys)))
        rendering = render.render_repo(repo)
    assert rendering.files == {f"rendered/{p}": b for p, b in tree(ROOT / "rendered").items()}


def test_committed_rendered_tree_is_not_stale() -> None:
    proc = run_meshgen("check", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout


def test_every_rendered_object_is_valid_against_istio_crds() -> None:
    rendering = render.render_repo(ROOT)
    kinds = {o.kind for o in rendering.objects}
    assert kinds == {"DestinationRule", "VirtualService", "Gateway"}
    for obj in rendering.objects:
        assert istio_crds.problems(obj.obj) == [], obj.path


def test_crd_check_refuses_unknown_fields() -> None:
    """The test's own validator must be able to fail: an unknown field under spec is refused."""
    obj = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
           "metadata": {"name": "x"}, "spec": {"host": "x", "trafficPolicy": {"tls": {"mood": "ISTIO_MUTUAL"}}}}
    assert any("mood" in p for p in istio_crds.problems(obj))


@pytest.mark.parametrize("env", ENVS)
def test_kubectl_kustomize_builds_each_environment(env: str) -> None:
    proc = subprocess.run(["kubectl", "kustomize", str(ROOT / "rendered" / env)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    committed = [p for p in (ROOT / "rendered" / env).rglob("*.yaml") if p.name != "kustomization.yaml"]
    assert len(docs) == len(committed)
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "meshgen" for d in docs)


def test_rendered_files_carry_header_naming_sources() -> None:
    text = (ROOT / "rendered/prod/mesh/gw/gateway.yaml").read_text()
    assert text.splitlines()[0] == "# Generated by meshgen from apps/gw.yaml, environments/prod.yaml; do not edit."


def test_output_is_identical_across_hash_seeds(tmp_path: Path) -> None:
    trees = []
    for seed in ("0", "1", "12345"):
        repo = copy_example(tmp_path / seed, ("apps", "environments", "status"))
        run_meshgen("render", cwd=repo, env={"PYTHONHASHSEED": seed}, check=True)
        trees.append(tree(repo / "rendered"))
    assert trees[0] == trees[1] == trees[2]


def test_files_are_written_only_when_their_bytes_change(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    target = repo / "rendered/prod/mesh/ratings/virtualservice.yaml"
    os.utime(target, (1_000_000, 1_000_000))
    proc = run_meshgen("render", "--verbose", cwd=repo, check=True)
    assert "0 written" in proc.stdout
    assert target.stat().st_mtime == 1_000_000
    spec = repo / "apps/ratings.yaml"
    spec.write_text(spec.read_text().replace("{v1: 50, v2: 50}", "{v1: 70, v2: 30}"))
    proc = run_meshgen("render", "--verbose", cwd=repo, check=True)
    written = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("wrote")}
    assert written == {f"rendered/{e}/mesh/ratings/virtualservice.yaml" for e in ENVS}
    assert "weight: 70" in target.read_text()


def test_removed_app_files_are_deleted_but_foreign_files_are_kept(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    foreign = repo / "rendered/prod/mesh/ratings/README.md"
    foreign.write_text("kept: not generated by meshgen\n")
    (repo / "apps/ratings.yaml").unlink()
    for env in ENVS:
        env_file = repo / f"environments/{env}.yaml"
        env_file.write_text(env_file.read_text())
    run_meshgen("render", cwd=repo, check=True)
    assert foreign.exists()
    assert not (repo / "rendered/prod/mesh/ratings/virtualservice.yaml").exists()
    assert not (repo / "rendered/dev/mesh/ratings").exists()
    assert "ratings" not in (repo / "rendered/prod/kustomization.yaml").read_text()


def test_check_lists_stale_files_and_exits_1(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    spec = repo / "apps/reviews.yaml"
    spec.write_text(spec.read_text().replace("timeout: 10s", "timeout: 12s"))
    proc = run_meshgen("check", cwd=repo)
    assert proc.returncode == 1
    stale = [line.split(":")[0] for line in proc.stderr.splitlines() if "stale;" in line]
    assert stale == [f"rendered/{e}/mesh/reviews/virtualservice.yaml" for e in ("dev", "prod", "staging")]
    assert "run `meshgen render`" in proc.stderr


def test_check_reports_orphaned_generated_files(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    orphan = repo / "rendered/dev/mesh/old/virtualservice.yaml"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("# Generated by meshgen from apps/old.yaml; do not edit.\n{}\n")
    proc = run_meshgen("check", cwd=repo)
    assert proc.returncode == 1
    assert "rendered/dev/mesh/old/virtualservice.yaml: error: stale" in proc.stderr


def test_render_single_environment_leaves_others_alone(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    spec = repo / "apps/reviews.yaml"
    spec.write_text(spec.read_text().replace("timeout: 10s", "timeout: 12s"))
    run_meshgen("render", "--env", "dev", cwd=repo, check=True)
    assert "timeout: 12s" in (repo / "rendered/dev/mesh/reviews/virtualservice.yaml").read_text()
    assert "timeout: 10s" in (repo / "rendered/prod/mesh/reviews/virtualservice.yaml").read_text()
    proc = run_meshgen("render", "--env", "nope", cwd=repo)
    assert proc.returncode == 2 and "unknown environment nope" in proc.stderr


def test_init_scaffolds_a_repository_that_renders_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "config"
    proc = run_meshgen("init", str(target), cwd=tmp_path, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=target, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert proc.stdout.splitlines() == [
        f"initialised {target}: 18 files, a new git repository on branch main with them as its first commit "
        f"({sha[:7]})",
        "Next:",
        f"  1. cd {target}, then edit apps/hello.yaml (or add apps/<name>.yaml) and environments/*.yaml "
        "(cluster, Prometheus)",
        "  2. meshgen render, then meshgen diff: what your change does to the mesh, in words",
        '  3. git commit -am "..." (git add new files first), push it, and let Argo CD or Flux sync '
        "rendered/<env> (`gitops:` in meshgen.yaml writes their manifests)"]

    def git_(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=target, capture_output=True, text=True, check=True).stdout

    assert git_("log", "--format=%s") == "meshgen init: one app, two environments, rendered\n"
    assert git_("status", "--porcelain") == "" and git_("branch", "--show-current") == "main\n"
    assert "rendered/dev/default/hello/virtualservice.yaml" in git_("ls-files").splitlines()
    nothing = run_meshgen("diff", cwd=target, check=True)  # works right away: a base to compare with
    assert nothing.stdout.rstrip().endswith("no change to the rendered output")
    hello = target / "apps/hello.yaml"
    hello.write_text(hello.read_text().replace("to: {v1: 90, v2: 10}", "to: {v1: 80, v2: 20}"))
    changed = run_meshgen("diff", cwd=target, check=True)
    assert "  route `default`: v1 90 / v2 10 → v1 80 / v2 20" in changed.stdout.splitlines()
    hello.write_text(hello.read_text().replace("to: {v1: 80, v2: 20}", "to: {v1: 90, v2: 10}"))
    assert (target / "apps/hello.yaml").read_text().startswith("# yaml-language-server: $schema=../schemas/app.schema.json")
    assert (target / "schemas/app.schema.json").is_file()
    assert (target / "rendered/dev/default/hello/virtualservice.yaml").is_file()
    assert run_meshgen("check", cwd=target).returncode == 0
    assert run_meshgen("validate", cwd=target).returncode == 0
    again = run_meshgen("init", str(target), cwd=tmp_path)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_init_inside_a_git_repository_adds_files_and_leaves_the_commit_to_you(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    proc = run_meshgen("init", "config", cwd=tmp_path, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == f"initialised config: 18 files, inside the git repository at {tmp_path} (not committed)"
    assert lines[4].startswith('  3. git add config && git commit -m "..."; push it, and let Argo CD or Flux')
    assert not (tmp_path / "config/.git").exists()
    log = subprocess.run(["git", "log"], cwd=tmp_path, capture_output=True, text=True)
    assert log.returncode != 0  # still no commit: the files are the user's to commit


def test_validate_runs_istio_schemas_on_overridden_templates(tmp_path: Path) -> None:
    repo = copy_example(tmp_path, ("apps", "environments"))
    build_file_tree(repo, {"templates/gateway.yaml.j2": (ROOT / "templates/gateway.yaml.j2").read_text()
                           .replace("  selector:", "  selectr:")})
    proc = run_meshgen("render", cwd=repo)
    assert proc.returncode == 1
    assert "templates/gateway.yaml.j2: error: rendered Gateway of app 'gw'" in proc.stderr
    assert "'selectr' was unexpected" in proc.stderr


def test_wheel_carries_templates_and_schemas(tmp_path: Path) -> None:
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources, which other
    # tests running in parallel read from this checkout
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                ".hypothesis", ".pytest_cache"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    wheel = next(tmp_path.glob("meshgen-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("generator/templates/virtualservice.yaml.j2", "generator/templates/kustomization.yaml.j2",
                     "generator/schemas/app.schema.json", "generator/schemas/istio/virtualservice.json",
                     "generator/cli/__init__.py"):
        assert required in names


def test_schemas_are_in_sync_with_istio_crds() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import sync_istio_schemas
    finally:
        sys.path.pop(0)
    for path, text in sync_istio_schemas.build(sync_istio_schemas.BUNDLE).items():
        assert path.read_text() == text, f"{path} is out of date: run tools/sync_istio_schemas.py"


def test_write_rendering_is_atomic_and_idempotent(tmp_path: Path) -> None:
    repo = copy_example(tmp_path, ("apps", "environments"))
    rendering = render.render_repo(repo)
    first = output.write_rendering(repo, rendering)
    assert first.written and not first.unchanged
    second = output.write_rendering(repo, rendering)
    assert not second.written and not second.deleted
    assert not list(repo.rglob("*.tmp"))
    assert filecmp.cmp(repo / "rendered/prod/kustomization.yaml", ROOT / "rendered/prod/kustomization.yaml", shallow=False)


def test_render_cache_reuses_and_invalidates(tmp_path: Path) -> None:
    repo = copy_example(tmp_path, ("apps", "environments"))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    first = render.render_repo(repo)
    cache_file = repo / ".git/meshgen/render-cache.pickle"
    assert cache_file.is_file()
    again = render.render_repo(repo)
    assert again.files == first.files and again.all_envs == first.all_envs
    spec = repo / "apps/reviews.yaml"
    spec.write_text(spec.read_text().replace("timeout: 10s", "timeout: 11s"))
    changed = render.render_repo(repo)
    assert b"timeout: 11s" in changed.files["rendered/prod/mesh/reviews/virtualservice.yaml"]
    cache_file.write_bytes(b"damaged")
    assert render.render_repo(repo).files == changed.files


def test_render_cache_lives_in_a_worktrees_own_git_dir(tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo", ("apps", "environments"))
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "example"], ["worktree", "add", "-q", "../wt"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    worktree = tmp_path / "wt"
    assert (worktree / ".git").is_file()
    first = render.render_repo(worktree)
    caches = list((repo / ".git/worktrees").rglob("render-cache.pickle"))
    assert len(caches) == 1
    assert render.render_repo(worktree).files == first.files


def test_render_cache_key_covers_the_code_of_every_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change anywhere in generator/ (the compiler, the status reader...) invalidates the cache;
    compiled bytecode, which changes as Python writes it, does not."""
    from generator.render import cache

    read: list[Path] = []
    real = Path.read_bytes

    def spy(self: Path) -> bytes:
        read.append(self)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    cache._code_digest(cache._Stats())
    code = {p.relative_to(ROOT).as_posix() for p in read if "generator" in p.parts}
    for module in ("generator/routing/compiler.py", "generator/spec/status.py", "generator/rollout/decision.py",
                   "generator/render/render.py", "generator/errors.py"):
        assert module in code
    assert not [p for p in code if "__pycache__" in p]


def test_noop_render_command_imports_only_what_it_needs(tmp_path: Path) -> None:
    """``meshgen render`` with nothing changed writes from the cache without importing the
    renderer or its libraries (YAML, Jinja2, JSON Schema, CEL, rich, the spec loader): what
    ``python -X importtime`` lists is the command line, the cache and the writer."""
    repo = copy_example(tmp_path, ("apps", "environments", "status"))
    shutil.copy(ROOT / "meshgen.yaml", repo / "meshgen.yaml")  # configured settings are read from the index too
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    first = run_meshgen("render", cwd=repo, check=True)
    assert "0 unchanged" in first.stdout
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "generator", "render"], cwd=repo, env=env,
                          capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "generator.render.cache" in imported and "generator.render.output" in imported
    heavy = {"yaml", "jinja2", "jsonschema", "celpy", "rich", "generator.render.render", "generator.spec.config",
             "generator.spec.loader", "generator.spec.schema", "generator.render.checks"}
    assert not heavy & imported
    assert " 0 written, 0 deleted," in proc.stdout and proc.stdout.split(" objects")[0] == first.stdout.split(" objects")[0]


def test_writing_lists_each_rendered_directory_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing a rendering lists rendered/ in one walk that serves the odd-file check, stale
    temporaries and orphans alike (a no-op's cost is that walk and reading each file once),
    and still finds each: a managed orphan is deleted, a stale temporary removed, a hand-made
    file kept, a link refused."""
    repo = copy_example(tmp_path, ("apps", "environments", "status", "rendered"))
    rendering = render.render_repo(repo, cache=False)
    orphan = repo / "rendered/dev/mesh/gone/virtualservice.yaml"
    orphan.parent.mkdir(parents=True)
    orphan.write_text(f"{output.HEADER} from apps/gone.yaml; do not edit.\n")
    (repo / "rendered/dev/notes.txt").write_text("kept\n")
    stale = repo / "rendered/dev/.kustomization.yaml.999999999.tmp"
    stale.write_text("half")
    listed: list[str] = []
    real = os.scandir

    def counting(path: Any = ".") -> Any:
        listed.append(os.path.realpath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    changes = output.write_rendering(repo, rendering)
    monkeypatch.setattr(os, "scandir", real)
    assert changes.written == [] and changes.deleted == ["rendered/dev/mesh/gone/virtualservice.yaml"]
    assert changes.temporaries == ["rendered/dev/.kustomization.yaml.999999999.tmp"]
    assert (repo / "rendered/dev/notes.txt").is_file() and not stale.exists() and not orphan.parent.exists()
    assert listed and len(listed) == len(set(listed))
    (repo / "rendered/dev/link.yaml").symlink_to(repo / "apps/reviews.yaml")
    with pytest.raises(output.SpecErrors, match="rendered/dev/link.yaml: error: is a symbolic link"):
        output.write_rendering(repo, rendering)


def test_render_cache_key_reads_only_files_whose_stat_changed(tmp_path: Path) -> None:
    """The key is computed from the stat index: an unchanged file is not read again; a file
    whose bytes changed is always seen, its size and mtime kept (the ctime moves), and a file
    modified just now (racily clean) is read every time."""
    from generator.render import cache

    repo = copy_example(tmp_path, ("apps", "environments"))
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    old = time.time_ns() - 3600 * 10**9
    inputs = [p for p in repo.rglob("*.yaml") if ".git" not in p.parts]
    for path in inputs:
        os.utime(path, ns=(old, old))
    first = render.render_repo(repo)
    store = cache.RenderCache.for_repo(repo, None, False)
    assert store.reads == 0 and store.get() is not None
    spec = repo / "apps/reviews.yaml"
    spec.write_text(spec.read_text().replace("timeout: 10s", "timeout: 11s"))  # same size
    os.utime(spec, ns=(old, old))  # and the same mtime
    changed = cache.RenderCache.for_repo(repo, None, False)
    assert changed.reads == 1 and changed.key != store.key and changed.get() is None
    rendering = render.render_repo(repo)
    assert b"timeout: 11s" in rendering.files["rendered/prod/mesh/reviews/virtualservice.yaml"]
    assert rendering.files != first.files
    spec.write_text(spec.read_text().replace("timeout: 11s", "timeout: 12s"))  # now: racily clean
    racy = cache.RenderCache.for_repo(repo, None, False)
    assert racy.reads == 1 and racy.key != changed.key
    spec.write_text(spec.read_text().replace("timeout: 12s", "timeout: 13s"))  # within the same tick, maybe
    assert cache.RenderCache.for_repo(repo, None, False).reads == 1
    assert b"timeout: 13s" in render.render_repo(repo).files["rendered/prod/mesh/reviews/virtualservice.yaml"]


def test_the_apps_a_tick_renders_are_the_bytes_a_whole_render_writes(tmp_path):
    """AppsRendering (what a tick commits) dumps as a whole render does, the dump once per shape
    included: the same bytes for every file of the named apps."""
    repo = copy_example(tmp_path, ("apps", "environments", "status"))
    whole = render.render_repo(repo, cache=False)
    pairs = sorted({(o.env, o.app) for o in whole.objects})
    some = render.AppsRendering(render.load_repo(repo)).render(pairs[::2], {})
    assert some.files and all(path in whole.files for path in some.files)
    assert {p: some.files[p] for p in some.files} == {p: whole.files[p] for p in some.files}
    assert {(o.env, o.app) for o in some.objects} == set(pairs[::2])
