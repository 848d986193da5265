#!/usr/bin/env python3
"""Write docs/istio-samples.md: every object of Istio's samples (tests/istio-samples/) through
``meshgen import`` and ``meshgen render``, and whether it round-trips (in form, or in the
answers of a real Envoy), or why it is not imported.

    python tools/import_samples_table.py          # needs the Envoy of the test extra

tests/test_import_samples.py fails when the committed file differs from what this writes.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import envoy, import_roundtrip  # noqa: E402

DOC = ROOT / "docs" / "istio-samples.md"


def main() -> int:
    binary, why = envoy.envoy_binary()
    if binary is None:
        print(f"error: {why}", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory(prefix="meshgen-samples-") as tmp:
        rows = import_roundtrip.sample_rows(binary, Path(tmp))
    DOC.write_text(import_roundtrip.table(rows))
    print(f"wrote {DOC.relative_to(ROOT)}: {len(rows)} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
