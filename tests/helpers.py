"""Helpers shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import jax

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@contextmanager
def count_compiles() -> Iterator[list[int]]:
    """Counts XLA backend compilations inside the block (``counter[0]``)."""
    counter = [0]

    def listener(event: str, duration: float, **kwargs: object) -> None:
        if event == _COMPILE_EVENT:
            counter[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
