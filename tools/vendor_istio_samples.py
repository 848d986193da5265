#!/usr/bin/env python3
"""Refresh tests/istio-samples/: every YAML file of Istio's ``samples/`` that holds a
networking.istio.io VirtualService, DestinationRule, Gateway or ServiceEntry, with Istio's
LICENSE and a SOURCE.md naming the commit.

    python tools/vendor_istio_samples.py                 # clones istio/istio (network)
    python tools/vendor_istio_samples.py --git-dir DIR   # reads a local clone (bare or not)
    python tools/vendor_istio_samples.py --ref 1.30.3

The files are copied byte for byte (paths kept under ``samples/``); the test suite imports
and renders them (tests/test_import_samples.py) and never needs the network.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "tests" / "istio-samples"
UPSTREAM = "https://github.com/istio/istio.git"
KINDS = re.compile(r"^kind:\s*(VirtualService|DestinationRule|Gateway|ServiceEntry)\s*$", re.M)
API = re.compile(r"^apiVersion:\s*networking\.istio\.io/", re.M)


def git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True, capture_output=True,
                          text=True).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--git-dir", type=Path, help="a local clone of istio/istio (its .git or a bare repository)")
    ap.add_argument("--ref", default="HEAD", help="commit, tag or branch (default: HEAD)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        git_dir = args.git_dir
        if git_dir is None:
            git_dir = Path(tmp) / "istio.git"
            subprocess.run(["git", "clone", "--bare", "--filter=blob:none", UPSTREAM, str(git_dir)], check=True)
        elif (git_dir / ".git").is_dir():
            git_dir = git_dir / ".git"
        commit = git(git_dir, "rev-parse", f"{args.ref}^{{commit}}").strip()
        date = git(git_dir, "show", "-s", "--format=%cI", commit).strip()
        names = [n for n in git(git_dir, "ls-tree", "-r", "--name-only", commit, "samples").splitlines()
                 if n.endswith((".yaml", ".yml"))]
        picked = []
        for name in names:
            text = git(git_dir, "show", f"{commit}:{name}")
            if API.search(text) and KINDS.search(text):
                picked.append((name, text))
        if DEST.exists():
            shutil.rmtree(DEST / "samples", ignore_errors=True)
        for name, text in picked:
            out = DEST / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        (DEST / "LICENSE").write_text(git(git_dir, "show", f"{commit}:LICENSE"), encoding="utf-8")
        listing = "\n".join(f"- `{name}`" for name, _ in picked)
        (DEST / "SOURCE.md").write_text(
            "# Istio's samples (networking objects)\n\n"
            f"Copied byte for byte from {UPSTREAM.removesuffix('.git')}, commit `{commit}` ({date}),\n"
            "by `tools/vendor_istio_samples.py`: every YAML file under `samples/` holding a\n"
            "networking.istio.io VirtualService, DestinationRule, Gateway or ServiceEntry.\n"
            "Licence: Apache License 2.0 (`LICENSE`, Istio's own).\n\n"
            f"{len(picked)} files:\n\n{listing}\n", encoding="utf-8")
    print(f"vendored {len(picked)} files of istio/istio {commit[:12]} into {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
