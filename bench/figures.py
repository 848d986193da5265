"""What the benches share: timing a figure (wall and CPU, best of N), printing it beside its
floor in one table, and checking the goals, so that each bench exits 1 when one is missed.

A figure is timed by wall clock and by CPU seconds (user + system, of the process and of the
child processes it waited for, as ``getrusage`` counts them). On a machine shared with other
work, wall times stretch with the load while CPU seconds hardly move; both are printed, each
with its ratio to the floor, and a goal names which of the two it judges.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Timing:
    """One figure: ``wall`` and ``cpu`` in seconds (the best of the runs, each taken alone)."""

    wall: float
    cpu: float

    def ratio(self, floor: Timing) -> tuple[float, float]:
        """``(wall ratio, CPU ratio)`` to ``floor``."""
        return self.wall / max(floor.wall, 1e-9), self.cpu / max(floor.cpu, 1e-9)


def _cpu() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def best_of(fn: Callable[[], Any], runs: int = 3) -> tuple[Timing, Any]:
    """Run ``fn`` ``runs`` times; the least wall and the least CPU seconds, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(runs):
        cpu, wall = _cpu(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(_cpu() - cpu)
    return Timing(min(walls), min(cpus)), result


class Table:
    """Figures side by side: name, wall s, CPU s, each ratio to the row's floor, a note; then
    one line per goal and :meth:`exit_code` (0: every goal met, 1: one missed)."""

    def __init__(self, title: str, width: int = 46) -> None:
        self.width = width
        self.missed: list[str] = []
        print(title)
        print(f"{'':<{width}} {'wall s':>8} {'CPU s':>8} {'x floor':>8} {'x CPU':>7}")

    def row(self, name: str, timing: Timing, floor: Timing | None = None, note: str = "") -> None:
        ratios = f"{timing.ratio(floor)[0]:>7.2f}x {timing.ratio(floor)[1]:>6.2f}x" if floor else f"{'':>8} {'':>7}"
        print(f"{name:<{self.width}} {timing.wall:>8.3f} {timing.cpu:>8.3f} {ratios}  {note}".rstrip())

    def goal(self, text: str, met: bool) -> None:
        """Print ``goal: TEXT: met`` or ``NOT met`` and remember a miss."""
        print(f"goal: {text}: {'met' if met else 'NOT met'}")
        if not met:
            self.missed.append(text)

    def exit_code(self) -> int:
        return 1 if self.missed else 0
