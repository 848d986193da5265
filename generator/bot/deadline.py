"""The rollout tick's overall deadline: one time budget that every slow step draws on.

A tick asks Prometheus, renders, commits and pushes; each outside call can hang (a Prometheus
that trickles its answer, a pre-receive hook that sleeps, a remote that does not answer).
Each of them gets its own total timeout, never more than what is left of the tick's deadline,
so one tick ends in bounded time and the next one starts on schedule. Exceeding it raises
:class:`~generator.errors.DeadlineExceeded` (exit 3); nothing is committed after the deadline.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from generator.errors import DeadlineExceeded

#: The tick's deadline by default (seconds): well under ``rollout run``'s default 30 s interval.
DEFAULT_SECONDS = 25.0

#: Largest time one git network operation (fetch, push) may take, deadline or not (seconds).
GIT_NETWORK_SECONDS = 60.0


class Deadline:
    """A point in time (monotonic) by which the tick must be done.

    Args:
        seconds: the budget from now; ``None`` or ``math.inf`` for none.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, seconds: float | None = DEFAULT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = math.inf if seconds is None else float(seconds)
        self._clock = clock
        self._end = clock() + self.seconds

    def remaining(self) -> float:
        """Seconds left (``inf`` without a deadline; 0 or less once passed)."""
        return self._end - self._clock()

    def budget(self, cap: float, what: str) -> float:
        """The time one operation may take: ``cap``, or what is left when that is less.

        Raises:
            DeadlineExceeded: the deadline has passed (``what`` says what was about to happen).
        """
        left = self.remaining()
        if left <= 0:
            raise self.exceeded(what)
        return min(cap, left)

    def check(self, what: str) -> None:
        """Raise :class:`DeadlineExceeded` if the deadline has passed."""
        if self.remaining() <= 0:
            raise self.exceeded(what)

    def exceeded(self, what: str) -> DeadlineExceeded:
        """The error to raise: it names the deadline and where the tick was."""
        return DeadlineExceeded(f"the tick's deadline of {_seconds(self.seconds)} passed {what}; "
                                f"nothing more was done (hint: raise --deadline, or find what is slow)")


def _seconds(value: float) -> str:
    return f"{value:g} s"
