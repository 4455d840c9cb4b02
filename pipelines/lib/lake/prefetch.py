"""Run an iterator one step ahead on a thread of its own."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


def prefetched(items: Iterator[T], ahead: int = 1) -> Iterator[T]:
    """``items``, produced on a background thread up to ``ahead`` items before they are asked for.

    Ingest reads and inflates the next landing batch (file reads, zlib and numpy release the GIL)
    while DuckDB stages the current one. An exception in ``items`` is raised here, at the item it
    replaced; closing this generator early stops the producer after the item it is making."""
    handoff: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as exc:  # handed to the consumer, which raises it
            put((False, exc))

    producer = threading.Thread(target=produce, name="prefetch", daemon=True)
    producer.start()
    try:
        while True:
            ok, item = handoff.get()
            if not ok:
                raise item  # type: ignore[misc]
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        producer.join()
