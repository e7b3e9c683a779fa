"""The signals that stop training with a checkpoint."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Signals that stop training with a checkpoint (SIGUSR1, SIGUSR2: cluster pre-emption / time
#: limit notices; SIGUSR2 is submitit's, see distrl_agents.training.sweep).
STOP_SIGNALS = tuple(
    s
    for s in (
        signal.SIGINT,
        signal.SIGTERM,
        *(getattr(signal, n, None) for n in ("SIGUSR1", "SIGUSR2")),
    )
    if s is not None
)


@contextmanager
def catching_stop_signals(on_signal: Callable[[int], None]) -> Iterator[None]:
    """Inside the block each of :data:`STOP_SIGNALS` calls ``on_signal(signum)`` instead of its
    handler; the handlers are restored on leaving. Outside the main thread nothing changes."""

    def handler(signum: int, frame: Any) -> None:
        on_signal(signum)

    previous = {}
    try:
        for s in STOP_SIGNALS:
            previous[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: signals stay as they are
        previous = {}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
