"""The bundled example (the project root is a working config repo), copied into a temp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import ROOT

EXAMPLE_PARTS = ("apps", "environments", "rendered", "status")


def copy_example(dest: Path, parts: tuple[str, ...] = EXAMPLE_PARTS) -> Path:
    """Copy the example's spec directories (and the committed ``rendered/``) into ``dest``."""
    for part in parts:
        if (ROOT / part).exists():
            shutil.copytree(ROOT / part, dest / part)
    return dest
