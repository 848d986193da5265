"""Import speed: N Istio objects (half DestinationRules, half VirtualServices) into app specs.

Usage: ``python bench/import.py [N]`` (default 1000).

Prints, side by side in one run:
  * floor: parsing the same files with libyaml (PyYAML's ``CSafeLoader``, every document);
  * ``meshgen import``: reading with places, grouping, converting (each route list compiled),
    validating each spec against the schema, and writing ``apps/*.yaml``, in-process;
  * their ratio.

Wall and CPU seconds, side by side. Exits 1 when the import takes 5 s or more of wall time
(the goal: 1,000 objects in under 5 s).
"""

from __future__ import annotations

import gc
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Table, best_of  # noqa: E402
from generator.importer import write  # noqa: E402

GOAL_SECONDS = 5.0
PER_FILE = 50

DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc-{i}
  namespace: team-{team}
  resourceVersion: "{i}"
  managedFields:
  - manager: kubectl
    operation: Update
spec:
  host: svc-{i}
  trafficPolicy:
    tls: {{mode: ISTIO_MUTUAL}}
    connectionPool: {{tcp: {{maxConnections: 100}}}}
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
status: {{}}
"""
VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-{i}
  namespace: team-{team}
spec:
  hosts: [svc-{i}]
  http:
  - name: beta
    match:
    - headers: {{x-beta: {{exact: "yes"}}}}
      uri: {{prefix: /api}}
    - queryParams: {{beta: {{exact: "1"}}}}
    route:
    - destination: {{host: svc-{i}, subset: v2, port: {{number: 8080}}}}
  - name: default
    route:
    - destination: {{host: svc-{i}, subset: v1, port: {{number: 8080}}}}
      weight: 90
    - destination: {{host: svc-{i}, subset: v2, port: {{number: 8080}}}}
      weight: 10
    timeout: 5s
    retries: {{attempts: 3, perTryTimeout: 2s}}
"""


def make_inputs(directory: Path, n: int) -> list[Path]:
    docs = []
    for i in range(n // 2):
        docs.append(DR.format(i=i, team=i % 20))
        docs.append(VS.format(i=i, team=i % 20))
    files = []
    for k in range(0, len(docs), PER_FILE):
        path = directory / f"objects-{k // PER_FILE:03d}.yaml"
        path.write_text("---\n".join(docs[k:k + PER_FILE]))
        files.append(path)
    return files


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory(prefix="meshgen-bench-import-") as tmp:
        base = Path(tmp)
        (base / "in").mkdir()
        files = make_inputs(base / "in", n)
        gc.collect()
        floor, parsed = best_of(lambda: sum(1 for f in files for d in yaml.load_all(f.read_text(),
                                                                                    Loader=yaml.CSafeLoader) if d),
                                runs=1)
        root = base / "repo"
        (root / "apps").mkdir(parents=True)
        gc.collect()
        took, report = best_of(lambda: write.import_paths(root, [base / "in"]), runs=1)
        failed = [line.format() for line in report.lines if line.error]
        if failed:
            print("\n".join(failed[:5]), file=sys.stderr)
            return 1
        table = Table(f"{parsed} objects in {len(files)} files -> {len(report.written)} app specs", width=24)
        table.row("floor: libyaml parse", floor)
        table.row("meshgen import", took, floor)
        table.goal(f"under {GOAL_SECONDS:.0f} s for {n} objects ({took.wall:.2f} s)", took.wall < GOAL_SECONDS)
        return table.exit_code()

if __name__ == "__main__":
    sys.exit(main())
