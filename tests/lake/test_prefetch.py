import threading

import pytest

from pipelines.lib.lake.prefetch import prefetched


def test_items_arrive_in_order_and_all_of_them():
    assert list(prefetched(iter(range(1000)), ahead=2)) == list(range(1000))
    assert list(prefetched(iter([]))) == []


def test_an_error_in_the_producer_is_raised_at_its_place():
    def items():
        yield 1
        yield 2
        raise ValueError("landing file vanished")

    seen = []
    with pytest.raises(ValueError, match="landing file vanished"):
        for item in prefetched(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_closing_early_stops_the_producer():
    produced = []

    def items():
        for n in range(10_000):
            produced.append(n)
            yield n

    stream = prefetched(items(), ahead=1)
    assert next(stream) == 0
    stream.close()
    # The producer is joined on close: at most the item handed over, the one queued and the one
    # being made were produced, not the 10,000.
    assert len(produced) <= 3
    assert not any(t.name == "prefetch" for t in threading.enumerate())
