"""A CPU-time bound for work that cannot bound itself: a user's template rendering.

:func:`time_limit` arms ``SIGPROF`` (``setitimer(ITIMER_PROF)``: the process's user and system
CPU time, so a busy machine does not make a slow but finite template fail) for the block and raises
:class:`~generator.spec.templating.TemplateLimit` in it when the time is up, so a repository
template or a custom query that loops for ever becomes a placed error. Python delivers the
signal between bytecodes, which is why :mod:`generator.spec.templating` also refuses huge
single operations up front. Signals reach only the main thread: elsewhere the block runs
unbounded in time (its size bounds still hold).

:func:`cyclic_gc_paused` pauses Python's cyclic garbage collector for a block that allocates
many small acyclic objects (a render, a tick), where each collection would scan the growing
heap again for nothing.
"""

from __future__ import annotations

import gc
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from generator.spec.templating import TemplateLimit

#: CPU seconds one repository template or custom query template may take to render.
TEMPLATE_SECONDS = 2.0


@contextmanager
def time_limit(seconds: float = TEMPLATE_SECONDS, what: str = "rendering the template") -> Iterator[None]:
    """Raise :class:`TemplateLimit` inside the block once it has used ``seconds`` of CPU time."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise TemplateLimit(f"{what} took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGPROF, on_alarm)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for the block (reference counting still frees
    what the block drops), and enabled again after it if it was enabled before: a render of
    1000 apps spent about a fifth of its time in collections, a 5,000-app tick a tenth.

    What the block allocated and still holds goes to the oldest generation as it is enabled
    again (``gc.freeze``, then ``gc.unfreeze``), so the first allocation after the block does
    not start a collection of all of it at once (0.3 s after a 5,000-app tick): it is looked
    at with the oldest generation, when that is next collected."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.freeze()
            gc.enable()
            gc.unfreeze()
