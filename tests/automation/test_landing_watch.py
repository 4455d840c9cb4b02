"""The landing sensor's decisions as plain functions, at fixed instants, over a real lake."""

import json
from datetime import UTC, date, datetime

from pipelines.lib.automation.landing_watch import decide, list_landing, run_key
from pipelines.lib.ingest.landing import RETIRED_MARKER, landing_dates
from tests.conftest import event, line

FIRST = date(2025, 6, 1)
D = date(2025, 6, 2)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def idle(day: date) -> bool:
    return False


def tick(lake, now, cursor=None, busy=idle):
    return decide(lake.lake, list_landing(lake.lake), cursor, now, FIRST, busy)


def test_on_time_files_wait_for_the_schedule_and_a_missed_day_runs(lake):
    lake.land(D, "part-00000.jsonl", [line(event("request", D))])
    decision = tick(lake, at(2025, 6, 2, 15))
    # dt=06-02 is read by 05-31 .. 06-03; 05-31 is before the first date; 06-01 is due
    # (its 02:00 run should have happened) but was never built; 06-02 and 06-03 are not due.
    assert [r.day for r in decision.runs] == [date(2025, 6, 1)]
    assert decision.skipped == {
        D: "not due yet: the daily schedule builds it",
        date(2025, 6, 3): "not due yet: the daily schedule builds it",
    }
    size = (lake.root / "landing/dt=2025-06-02/part-00000.jsonl").stat().st_size
    assert json.loads(decision.cursor) == {
        "2025-06-02": {"landing/dt=2025-06-02/part-00000.jsonl": size}
    }


def test_a_repeated_tick_requests_nothing_and_a_restart_repeats_the_same_run_key(lake):
    lake.land(D, "part-00000.jsonl", [line(event("request", D))])
    first = tick(lake, at(2025, 6, 2, 15))
    assert tick(lake, at(2025, 6, 2, 15, 2), first.cursor).runs == []
    restarted = tick(lake, at(2025, 6, 2, 15, 4), cursor=None)
    assert [r.run_key for r in restarted.runs] == [r.run_key for r in first.runs]


def test_a_late_file_re_runs_exactly_the_materialised_day_that_has_not_read_it(lake):
    lake.land(D, "part-00000.jsonl", [line(event("request", D))])
    lake.ingest(D)
    seen = tick(lake, at(2025, 6, 4, 0, 30)).cursor
    late = lake.land(date(2025, 6, 4), "part-00000.jsonl", [line(event("click", D))])
    # 01:00 on 06-04: 06-02 is materialised and has not read the file; 06-03 is neither
    # materialised nor due (its run is at 02:00); 06-04 and 06-05 are not due.
    decision = tick(lake, at(2025, 6, 4, 1), seen)
    [run] = decision.runs
    assert (run.day, run.new_files, run.files_covered) == (D, [late], 2)
    covered = {
        f.path: f.size_bytes
        for dt in landing_dates(D)
        for f in lake.lake.list_files(f"landing/dt={dt}")
    }
    assert run.run_key == run_key(D, covered)
    assert sorted(decision.skipped) == [date(2025, 6, 3), date(2025, 6, 4), date(2025, 6, 5)]
    # Once the run has read it, the partition is up to date even without a cursor.
    lake.ingest(D)
    again = tick(lake, at(2025, 6, 4, 1, 5))
    assert D not in [r.day for r in again.runs]
    assert again.skipped[D] == "up to date: its ledger lists every file it reads"


def test_a_busy_partition_waits_and_its_files_stay_new(lake):
    lake.land(D, "part-00000.jsonl", [line(event("request", D))])
    lake.ingest(D)
    seen = tick(lake, at(2025, 6, 4, 0, 30)).cursor
    lake.land(date(2025, 6, 4), "part-00000.jsonl", [line(event("click", D))])
    waiting = tick(lake, at(2025, 6, 4, 1), seen, busy=lambda day: day == D)
    assert waiting.runs == []
    assert waiting.skipped[D] == "waiting: a run for this partition is queued or in progress"
    assert "2025-06-04" not in json.loads(waiting.cursor)
    later = tick(lake, at(2025, 6, 4, 1, 2), waiting.cursor)
    assert [r.day for r in later.runs] == [D]


def test_a_partition_whose_landing_was_retired_is_final(lake):
    lake.land(D, "part-00000.jsonl", [line(event("request", D))])
    lake.ingest(D)
    (lake.root / "landing" / "dt=2025-06-01").mkdir(parents=True)
    (lake.root / "landing" / "dt=2025-06-01" / RETIRED_MARKER).write_text("{}")
    lake.land(date(2025, 6, 4), "part-00000.jsonl", [line(event("click", D))])
    decision = tick(lake, at(2025, 6, 4, 1))
    assert decision.runs == []
    assert decision.skipped[D].startswith("final: landing 2025-06-01 was retired")


def test_folders_that_are_not_arrival_dates_are_ignored(lake):
    lake.land(D, "part-00000.jsonl", [line(event("request", D))])
    (lake.root / "landing" / "incoming").mkdir()
    (lake.root / "landing" / "dt=2025-06-02" / "notes.txt").write_text("x")
    assert list(list_landing(lake.lake)) == [D]
    assert list(list_landing(lake.lake)[D]) == ["landing/dt=2025-06-02/part-00000.jsonl"]


def test_a_day_never_built_before_the_lakes_first_built_day_is_left_to_a_backfill(lake):
    # A landing zone whose first files (dt=06-02) predate what was built (06-03 on), as the
    # demo's early lines do: 05-31 .. 06-02 read dt=06-02 and are due, but none was ever built,
    # and all come before the lake's first built day. Days after it are still run.
    later = date(2025, 6, 3)
    lake.land(D, "part-00000.jsonl", [line(event("request", later))])
    lake.land(later, "part-00000.jsonl", [line(event("request", later))])
    lake.ingest(later)
    decision = tick(lake, at(2025, 6, 10, 3))
    history = "never built and before the lake's first built day (2025-06-03)"
    assert decision.skipped[date(2025, 6, 1)].startswith(history)
    assert decision.skipped[D].startswith(history)
    assert decision.skipped[later] == "up to date: its ledger lists every file it reads"
    assert [r.day for r in decision.runs] == [date(2025, 6, 4)]
