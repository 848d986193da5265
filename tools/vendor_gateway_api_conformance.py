#!/usr/bin/env python3
"""Vendor the routing cases of the Gateway API conformance suite into tests/gateway-api-conformance/.

Usage: tools/vendor_gateway_api_conformance.py GIT_DIR [COMMIT]

GIT_DIR is a clone (or bare repository) of https://github.com/kubernetes-sigs/gateway-api;
COMMIT defaults to HEAD. Copies, from that commit, the LICENSE, ``conformance/base/manifests.yaml``,
``conformance/mesh/manifests.yaml`` and the manifests of ``conformance/tests/httproute-*`` and
``conformance/tests/mesh/``, and extracts the cases of their Go test files (the
``http.ExpectedResponse`` literals: request, expected backend or status, redirect, expected
request; the ``expectedWeights`` of weight tests) into ``cases.json``, with SOURCE.md naming
the commit. The Go literals are read by a small parser of Go composite literals; constants
come from ``conformance/utils/suite/consts.go``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Istio's own conformance report in the repository: which features and tests Istio skips.
ISTIO_REPORT = "conformance/reports/v1.5/istio-istio/1.30.0-default-report.yaml"
DEST = Path(__file__).resolve().parent.parent / "tests" / "gateway-api-conformance"
TOKEN = re.compile(r'\s+|//[^\n]*|"(?:[^"\\]|\\.)*"|`[^`]*`|[&*]?[A-Za-z_][\w.]*|-?\d+(?:\.\d+)?|[{}\[\]:,()]')


def git(git_dir: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True, capture_output=True,
                          text=True).stdout


class GoLiteral:
    """A recursive-descent reader of Go composite literals, from a token position."""

    def __init__(self, text: str, pos: int, names: dict[str, Any]) -> None:
        self.tokens = [m.group(0) for m in TOKEN.finditer(text, pos)
                       if not m.group(0).isspace() and not m.group(0).startswith("//")]
        self.i = 0
        self.names = names

    def peek(self) -> str:
        return self.tokens[self.i]

    def take(self) -> str:
        self.i += 1
        return self.tokens[self.i - 1]

    def value(self) -> Any:
        if self.peek() == "{":  # an element of a slice literal, its type elided
            return self.body()
        tok = self.take()
        if tok.startswith('"'):
            return json.loads(tok)
        if tok.startswith("`"):
            return tok[1:-1]
        if re.fullmatch(r"-?\d+(\.\d+)?", tok):
            return float(tok) if "." in tok else int(tok)
        if tok in ("true", "false"):
            return tok == "true"
        if tok in ("[", "map"):  # a slice or map type, then its literal
            depth = 1 if tok == "[" else 0
            while not (depth == 0 and self.peek() == "{"):
                t = self.take()
                depth += {"[": 1, "]": -1}.get(t, 0)
            return self.body()
        if self.i < len(self.tokens) and self.peek() == "{":
            return self.body()
        if tok == "string" and self.peek() == "(":  # a conversion: string(ns)
            self.take()
            inner = self.value()
            self.take()
            return inner
        if self.i < len(self.tokens) and self.peek() == "(":
            depth = 0
            while True:
                t = self.take()
                depth += {"(": 1, ")": -1}.get(t, 0)
                if depth == 0:
                    break
            return {"$call": tok}
        return self.names.get(tok, self.names.get(tok.rpartition(".")[2], {"$ref": tok}))

    def body(self) -> Any:
        assert self.take() == "{"
        keyed: dict[str, Any] = {}
        items: list[Any] = []
        while self.peek() != "}":
            if re.fullmatch(r"[A-Za-z_]\w*", self.peek()) and self.tokens[self.i + 1] == ":":
                first: Any = self.take()  # a struct field name
            else:
                first = self.value()
            if self.peek() == ":":
                self.take()
                keyed[str(first)] = self.value()
            else:
                items.append(first)
            if self.peek() == ",":
                self.take()
        self.take()
        return keyed if keyed else items


def constants(git_dir: str, commit: str) -> dict[str, Any]:
    text = git(git_dir, "show", f"{commit}:conformance/utils/suite/consts.go")
    return {m.group(1): m.group(2) for m in re.finditer(r'^\s*(\w+)\s*=\s*"([^"]*)"', text, re.M)}


def cases_of(text: str, consts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every conformance test of one Go file: name, manifests, gateway or mesh, cases, weights."""
    tests = []
    starts = [m.start() for m in re.finditer(r"confsuite\.ConformanceTest\{|suite\.ConformanceTest\{", text)]
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(text)
        chunk = text[start:end]
        name = re.search(r'ShortName:\s*"([^"]+)"', chunk)
        if not name:
            continue
        names = dict(consts)
        for m in re.finditer(r'^\s*(\w+)\s*:?=\s*("[^"\n]*"|[\w.]+)\s*$', chunk, re.M):
            val = m.group(2)
            names[m.group(1)] = json.loads(val) if val.startswith('"') else names.get(val.rpartition(".")[2], val)
        manifests = re.search(r"Manifests:\s*\[\]string\{([^}]*)\}", chunk)
        gw = re.search(r"gwNN\s*:?=\s*types\.NamespacedName\{", chunk)
        test: dict[str, Any] = {
            "name": name.group(1),
            "manifests": re.findall(r'"([^"]+)"', manifests.group(1)) if manifests else [],
            "mesh": "echo.ConnectToApp" in chunk,
            "features": re.findall(r"features\.(Support\w+)", chunk.split("Test:", 1)[0]),
        }
        if gw:
            ref = GoLiteral(chunk, gw.end() - 1, names).body()
            test["gateway"] = f"{ref.get('Namespace')}/{ref.get('Name')}"
        cases: list[Any] = []
        slices = list(re.finditer(r"\[\]http\.ExpectedResponse\{|\bexpected\s*:?=\s*http\.ExpectedResponse\{", chunk))
        for n, m in enumerate(slices):
            brace = chunk.index("{", m.end() - 1)
            parsed = GoLiteral(chunk, brace, names).body()
            parsed = parsed if isinstance(parsed, list) else [parsed]
            # the Gateway named last before these cases, and whether they are sent over TLS
            after = chunk[m.end():slices[n + 1].start() if n + 1 < len(slices) else len(chunk)]
            addr = re.search(r"TimeoutConfig, (gwAddr\w*)", after)
            bound = re.search(rf"\b{addr.group(1)}\s*:?=", chunk) if addr else None
            end = bound.start() if bound else m.start()
            before = list(re.finditer(r"gwNN\s*:?=\s*types\.NamespacedName\{", chunk[:end]))
            for case in parsed:
                if before:
                    ref = GoLiteral(chunk, before[-1].end() - 1, names).body()
                    case["gateway"] = f"{ref.get('Namespace')}/{ref.get('Name')}"
                if "tls.MakeTLSRequest" in after:
                    case["scheme"] = "https"
            cases += parsed
        test["cases"] = cases
        weights = re.search(r"expectedWeights\s*:?=\s*map\[string\]float64\{", chunk)
        if weights:
            test["weights"] = GoLiteral(chunk, chunk.index("{", weights.end() - 1), names).body()
        tests.append(test)
    return tests


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    git_dir = argv[1]
    commit = git(git_dir, "rev-parse", argv[2] if len(argv) == 3 else "HEAD").strip()
    tag = git(git_dir, "describe", "--tags", "--always", commit).strip()
    files = [p for p in git(git_dir, "ls-tree", "-r", "--name-only", commit, "conformance/tests/").split()
             if re.match(r"conformance/tests/(httproute-[^/]*|mesh/[^/]*)\.(go|yaml)$", p)]
    DEST.mkdir(parents=True, exist_ok=True)
    keep = ["LICENSE", "conformance/base/manifests.yaml", "conformance/mesh/manifests.yaml", ISTIO_REPORT]
    for path in keep + [p for p in files if p.endswith(".yaml")]:
        out = DEST / path.removeprefix("conformance/")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(git(git_dir, "show", f"{commit}:{path}"), encoding="utf-8")
    consts = constants(git_dir, commit)
    tests = []
    for path in sorted(p for p in files if p.endswith(".go") and not p.endswith("/main.go")):
        for test in cases_of(git(git_dir, "show", f"{commit}:{path}"), consts):
            tests.append({"file": path.removeprefix("conformance/"), **test})
    (DEST / "cases.json").write_text(json.dumps({"commit": commit, "describe": tag, "tests": tests},
                                                indent=1, sort_keys=False) + "\n", encoding="utf-8")
    (DEST / "SOURCE.md").write_text(f"""# Gateway API conformance: routing cases

From https://github.com/kubernetes-sigs/gateway-api at commit `{commit}` ({tag}),
Apache License 2.0 (LICENSE, copied from the repository).

- `base/manifests.yaml`, `mesh/manifests.yaml`: the suite's Gateways, Services and namespaces.
- `tests/httproute-*.yaml`, `tests/mesh/*.yaml`: the manifests of the HTTPRoute and mesh tests.
- `reports/v1.5/istio-istio/1.30.0-default-report.yaml`: Istio 1.30's conformance report
  (its `unsupportedFeatures` and `skippedTests`: the cases Istio does not pass, skipped here).
- `cases.json`: the `http.ExpectedResponse` cases of the matching Go files, extracted by
  `tools/vendor_gateway_api_conformance.py` (request, expected backend or status, redirect,
  expected request; `weights` from `expectedWeights`).

Refresh: `python tools/vendor_gateway_api_conformance.py <gateway-api git dir> [commit]`.
""", encoding="utf-8")
    print(f"{len(tests)} tests, {sum(len(t['cases']) for t in tests)} cases from {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
