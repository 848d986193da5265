"""Speed of the review side: analysis and the diff summary next to the render they follow.

Usage: ``python bench/gitops.py [N]`` (default 1000): N synthetic apps x 3 environments (the
repository of ``bench/render.py``). Prints, side by side in one run:

  * full render (the baseline every figure is compared with);
  * cross-object analysis of that rendering (``meshgen validate`` adds it to the render);
  * the diff of two renderings that differ in every app's weights: summary in words and
    unified YAML diff (``meshgen diff`` adds this to two renders);
  * ``meshgen diff`` end to end (render the base in a temporary git worktree, render the
    working tree, compare), against two plain renders.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.render import build, timed  # noqa: E402
from generator.gitops import diff  # noqa: E402
from generator.render import (  # noqa: E402
    analysis,  # noqa: E402
    render,
)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    tmp = Path(tempfile.mkdtemp(prefix="meshgen-bench-"))
    try:
        repo = tmp / "repo"
        build(repo, n)
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com",
                        "commit", "-qm", "base"], check=True)
        render_s, base = timed(lambda: render.render_repo(repo, cache=False))
        analysis_s, findings = timed(lambda: analysis.analyze(base))
        for spec in (repo / "apps").glob("*.yaml"):
            spec.write_text(spec.read_text().replace("to: {v1: 90, v2: 10}", "to: {v1: 80, v2: 20}"))
        head = render.render_repo(repo, cache=False)
        compare_s, d = timed(lambda: diff.compare(base.files, head.files))
        format_s, md = timed(lambda: diff.format_markdown(d))
        end_s, _ = timed(lambda: diff.diff_repo(repo, "HEAD"))
        print(f"apps: {n} x 3 environments = {len(base.objects)} objects; {len(findings)} findings")
        print(f"{'full render (baseline)':<34}{render_s:8.2f} s")
        print(f"{'analysis':<34}{analysis_s:8.2f} s   {analysis_s / render_s:6.2f} x render")
        print(f"{'diff summary + YAML diff':<34}{compare_s:8.2f} s   {compare_s / render_s:6.2f} x render"
              f"   ({len(d.changes)} app changes, {d.changed_files} files)")
        print(f"{'markdown':<34}{format_s:8.2f} s   {len(md):,} characters")
        print(f"{'meshgen diff end to end':<34}{end_s:8.2f} s   {end_s / render_s:6.2f} x render"
              f"   (two renders + worktree + compare)")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
