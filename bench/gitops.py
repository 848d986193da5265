"""Speed of the review side: analysis and the diff summary next to the render they follow.

Usage: ``python bench/gitops.py [N]`` (default 1000): N synthetic apps x 3 environments (the
repository of ``bench/render.py``). Prints, side by side in one run:

  * full render (the baseline every figure is compared with);
  * cross-object analysis of that rendering (``meshgen validate`` adds it to the render);
  * the diff of two renderings that differ in every app's weights: summary in words and
    unified YAML diff (``meshgen diff`` adds this to two renders);
  * ``meshgen diff`` end to end (render the base in a temporary git worktree, render the
    working tree, compare), against two plain renders.

Wall and CPU seconds, each beside the full render. Exits 1 when a goal is missed, in CPU
seconds: analysis and the diff summary each within 1x a render (they read what the render
made), ``meshgen diff`` end to end within 3x (two renders and the comparison).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Table, best_of  # noqa: E402
from bench.render import build  # noqa: E402
from generator.gitops import diff  # noqa: E402
from generator.render import (  # noqa: E402
    analysis,  # noqa: E402
    render,
)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    tmp = Path(tempfile.mkdtemp(prefix="meshgen-bench-"))
    try:
        repo = tmp / "repo"
        build(repo, n)
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@example.com",
                        "commit", "-qm", "base"], check=True)
        render_s, base = best_of(lambda: render.render_repo(repo, cache=False), runs=1)
        analysis_s, findings = best_of(lambda: analysis.analyze(base), runs=1)
        for spec in (repo / "apps").glob("*.yaml"):
            spec.write_text(spec.read_text().replace("to: {v1: 90, v2: 10}", "to: {v1: 80, v2: 20}"))
        head = render.render_repo(repo, cache=False)
        compare_s, d = best_of(lambda: diff.compare(base.files, head.files, base_objects=diff.objects_of(base),
                                                    head_objects=diff.objects_of(head)), runs=1)
        format_s, md = best_of(lambda: diff.format_markdown(d), runs=1)
        end_s, _ = best_of(lambda: diff.diff_repo(repo, "HEAD"), runs=1)
        table = Table(f"apps: {n} x 3 environments = {len(base.objects)} objects; {len(findings)} findings", width=34)
        table.row("floor: full render", render_s)
        table.row("analysis", analysis_s, render_s)
        table.row("diff summary + YAML diff", compare_s, render_s, f"{len(d.changes)} app changes, "
                  f"{d.changed_files} files")
        table.row("markdown", format_s, render_s, f"{len(md):,} characters")
        table.row("meshgen diff end to end", end_s, render_s, "two renders + worktree + compare")
        for name, timing, goal in (("analysis", analysis_s, 1.0), ("diff summary + YAML diff", compare_s, 1.0),
                                   ("meshgen diff end to end", end_s, 3.0)):
            ratio = timing.ratio(render_s)[1]
            table.goal(f"{name} within {goal:g}x a full render in CPU seconds ({ratio:.2f}x)", ratio <= goal)
        return table.exit_code()
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
