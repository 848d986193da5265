"""A fresh clone stands on its own: every schema the tests read is vendored in the tree with its
SOURCE note, tests that need Prometheus say why they skip when it is missing, and building the
package prints no warning about the project's metadata.

``.ci/run`` is the end-to-end check: it runs the suite from a clone in an empty temporary folder,
so a test that reads outside the tree fails there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
try:
    import vendor_crds
finally:
    sys.path.pop(0)


def test_every_vendored_file_matches_its_source_note() -> None:
    assert vendor_crds.check() == []
    for upstream in vendor_crds.UPSTREAMS:
        note = (ROOT / "vendor" / upstream.directory / "SOURCE.md").read_text()
        assert re.search(rf"https://github.com/{upstream.repo}, release tag `{re.escape(upstream.tag)}` "
                         rf"\(commit [0-9a-f]{{40}}\), licence Apache-2.0", note), upstream.name


def test_the_check_notices_a_changed_vendored_file(tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "vendor"
    for upstream in vendor_crds.UPSTREAMS:
        (copy / upstream.directory).mkdir(parents=True, exist_ok=True)
        for name in ("SOURCE.md", *(n for _, n in upstream.files)):
            (copy / upstream.directory / name).write_bytes((ROOT / "vendor" / upstream.directory / name).read_bytes())
    with (copy / "flux" / "source.toolkit.fluxcd.io_gitrepositories.yaml").open("a") as f:
        f.write("# edited\n")
    (copy / "argo-cd" / "application-crd.yaml").unlink()
    monkeypatch.setattr(vendor_crds, "VENDOR", copy)
    assert vendor_crds.check() == ["vendor/argo-cd/application-crd.yaml: missing",
                                   "vendor/flux/source.toolkit.fluxcd.io_gitrepositories.yaml: sha256 differs from SOURCE.md"]


def test_prometheus_tests_skip_with_the_reason_when_prometheus_is_missing(tmp_path: Path) -> None:
    """Run the Prometheus tests with the binary hidden: every one is reported skipped, with why."""
    (tmp_path / "hide_prometheus.py").write_text(
        "def pytest_configure(config):\n"
        "    import tests.promfixtures as p\n"
        "    p.prometheus_binary = lambda: None\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "hide_prometheus", "-m", "prometheus",
                           "tests/test_prometheus.py", "tests/test_rollout.py", "tests/test_metrics.py"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ skipped, \d+ deselected in .*", summary), summary
    reason = "the prometheus binary is not installed (apt-get install prometheus; CI installs it)"
    assert re.search(rf"^SKIPPED \[\d+\] .*: {re.escape(reason)}$", proc.stdout, re.M)


def test_building_the_package_prints_no_warning_about_its_metadata(tmp_path: Path) -> None:
    """The licence is an SPDX string and every package-data entry names a package: setuptools has
    nothing to warn about (a warning would show as ``...Warning:`` even under ``pip -q``)."""
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources, which other
    # tests running in parallel read from this checkout
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                                ".hypothesis", ".pytest_cache"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "wheel"), str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not re.findall(r"\w+Warning\b.*", proc.stdout + proc.stderr)
