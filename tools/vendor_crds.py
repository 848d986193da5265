"""Refresh the CRD files vendored under ``vendor/``: Istio's, the Gateway API's (standard channel), Argo CD's
and Flux's, each with its SOURCE.md.

Usage::

    python tools/vendor_crds.py                  # download every upstream at the pinned release
    python tools/vendor_crds.py istio=1.31.0     # move one upstream to another release tag, then download
    python tools/vendor_crds.py --check          # offline: every vendored file matches its SOURCE.md sha256

Each upstream below names its GitHub repository, release tag, licence and the files taken from
it (copied unmodified). A download resolves the tag to its commit with ``git ls-remote``, fetches
each file from ``raw.githubusercontent.com`` at that commit, and rewrites the directory's
``SOURCE.md`` (repository, path, tag, commit, sha256, licence). After moving Istio to a new
release, run ``tools/sync_istio_schemas.py`` to regenerate ``schemas/istio/`` from the new bundle; after moving
the Gateway API, ``tools/sync_gateway_api_schemas.py`` (``schemas/gateway-api/``).

The test suite reads only these vendored copies (``tests/test_standalone.py`` runs the ``--check``); it
never uses the network.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "vendor"


@dataclass(frozen=True)
class Upstream:
    """One upstream repository at one release tag, and the files vendored from it."""

    name: str          # key on the command line (``name=tag``)
    directory: str     # under vendor/
    repo: str          # GitHub owner/name
    tag: str           # release tag
    licence: str       # SPDX identifier and holder
    files: tuple[tuple[str, str], ...]  # (path in the upstream repository, file name under vendor/DIRECTORY)


UPSTREAMS = (
    Upstream("istio", "istio", "istio/istio", "1.30.3", "Apache-2.0 (Copyright Istio Authors)",
             (("manifests/charts/base/files/crd-all.gen.yaml", "crd-all.gen.yaml"),)),
    Upstream("argo-cd", "argo-cd", "argoproj/argo-cd", "v3.5.1", "Apache-2.0 (Copyright The Argo Authors)",
             (("manifests/crds/application-crd.yaml", "application-crd.yaml"),
              ("manifests/crds/applicationset-crd.yaml", "applicationset-crd.yaml"))),
    Upstream("kustomize-controller", "flux", "fluxcd/kustomize-controller", "v1.9.4",
             "Apache-2.0 (Copyright The Flux authors)",
             (("config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml",
               "kustomize.toolkit.fluxcd.io_kustomizations.yaml"),)),
    Upstream("source-controller", "flux", "fluxcd/source-controller", "v1.9.1",
             "Apache-2.0 (Copyright The Flux authors)",
             (("config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml",
               "source.toolkit.fluxcd.io_gitrepositories.yaml"),)),
    Upstream("gateway-api", "gateway-api", "kubernetes-sigs/gateway-api", "v1.6.1",
             "Apache-2.0 (Copyright The Kubernetes Authors)",
             tuple((f"config/crd/standard/gateway.networking.k8s.io_{kind}.yaml",
                    f"gateway.networking.k8s.io_{kind}.yaml")
                   for kind in ("gatewayclasses", "gateways", "grpcroutes", "httproutes", "referencegrants",
                                "backendtlspolicies", "listenersets", "tcproutes", "tlsroutes", "udproutes"))),
)

_ENTRY = re.compile(r"^- `(?P<file>[^`]+)`: .*\bsha256 (?P<sha>[0-9a-f]{64})\b", re.M)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resolve(repo: str, tag: str) -> str:
    """The commit SHA a release tag points at (annotated tags peeled), via ``git ls-remote``.

    Raises ``RuntimeError`` when the tag does not exist upstream."""
    out = subprocess.run(["git", "ls-remote", f"https://github.com/{repo}.git", f"refs/tags/{tag}",
                          f"refs/tags/{tag}^{{}}"], capture_output=True, text=True, check=True, timeout=60).stdout
    refs = dict(line.split("\t")[::-1] for line in out.splitlines())
    commit = refs.get(f"refs/tags/{tag}^{{}}") or refs.get(f"refs/tags/{tag}")
    if not commit:
        raise RuntimeError(f"{repo} has no tag {tag}")
    return commit


def download(upstream: Upstream, commit: str) -> dict[str, bytes]:
    """``{file name: bytes}`` of the upstream's files at ``commit``."""
    import httpx  # a dependency of meshgen; imported here so --check needs nothing

    out = {}
    for path, name in upstream.files:
        resp = httpx.get(f"https://raw.githubusercontent.com/{upstream.repo}/{commit}/{path}",
                         follow_redirects=True, timeout=60)
        resp.raise_for_status()
        out[name] = resp.content
    return out


def source_note(directory: str, entries: list[tuple[Upstream, str, dict[str, bytes]]]) -> str:
    """The text of ``vendor/DIRECTORY/SOURCE.md`` for the downloaded files."""
    lines = [f"# Source of the files in vendor/{directory}/", "",
             "Copied unmodified from upstream by `tools/vendor_crds.py` (run it to refresh them; do not edit).", ""]
    for upstream, commit, files in entries:
        lines.append(f"From https://github.com/{upstream.repo}, release tag `{upstream.tag}` "
                     f"(commit {commit}), licence {upstream.licence}:")
        lines.append("")
        for path, name in upstream.files:
            lines.append(f"- `{name}`: upstream path `{path}`, sha256 {sha256(files[name])}")
        lines.append("")
    return "\n".join(lines)


def refresh(upstreams: tuple[Upstream, ...]) -> None:
    """Download every upstream and rewrite its files and its directory's SOURCE.md."""
    by_dir: dict[str, list[tuple[Upstream, str, dict[str, bytes]]]] = {}
    for upstream in upstreams:
        commit = resolve(upstream.repo, upstream.tag)
        by_dir.setdefault(upstream.directory, []).append((upstream, commit, download(upstream, commit)))
    for directory, entries in by_dir.items():
        where = VENDOR / directory
        where.mkdir(parents=True, exist_ok=True)
        for _, _, files in entries:
            for name, data in files.items():
                (where / name).write_bytes(data)
                print(f"wrote vendor/{directory}/{name}")
        (where / "SOURCE.md").write_text(source_note(directory, entries))


def check() -> list[str]:
    """Problems with the vendored files, offline: a file missing, or its sha256 not the one SOURCE.md records."""
    problems = []
    for directory in sorted({u.directory for u in UPSTREAMS}):
        note = VENDOR / directory / "SOURCE.md"
        recorded = {m["file"]: m["sha"] for m in _ENTRY.finditer(note.read_text())} if note.is_file() else {}
        for upstream in UPSTREAMS:
            if upstream.directory != directory:
                continue
            for _, name in upstream.files:
                path = VENDOR / directory / name
                if not path.is_file():
                    problems.append(f"vendor/{directory}/{name}: missing")
                elif recorded.get(name) != sha256(path.read_bytes()):
                    problems.append(f"vendor/{directory}/{name}: sha256 differs from SOURCE.md")
    return problems


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        problems = check()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    tags = dict(arg.split("=", 1) for arg in argv[1:])
    unknown = set(tags) - {u.name for u in UPSTREAMS}
    if unknown:
        print(f"unknown upstream {', '.join(sorted(unknown))} (known: {', '.join(u.name for u in UPSTREAMS)})",
              file=sys.stderr)
        return 2
    refresh(tuple(Upstream(**{**u.__dict__, "tag": tags.get(u.name, u.tag)}) for u in UPSTREAMS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
