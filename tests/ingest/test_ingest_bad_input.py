"""Bad input becomes a quarantine reason or a zero, never a crash and never a silent drop."""

from __future__ import annotations

import gzip
import os
from datetime import timedelta

from pipelines.lib.ingest import pii
from pipelines.lib.ingest.landing import GZIP_NOT_NAMED_GZ, NAMED_GZ_NOT_GZIP
from pipelines.lib.ingest.ledger import audit_ledger
from tests.conftest import DAY, event, line


def _reasons(lake) -> dict[int, str]:
    return {q["line_no"]: q["reason"] for q in lake.quarantine()}


def test_missing_landing_folder_gives_empty_partition(lake):
    result = lake.ingest()
    assert result.files == 0 and result.lines_taken == 0
    assert result.rows == {t: 0 for t in result.rows} and result.quarantined == {}
    assert lake.events("click") == [] and lake.quarantine() == []
    assert audit_ledger(lake.lake, DAY).passed


def test_empty_file_and_blank_lines(lake):
    lake.land(DAY, "empty.jsonl", b"")
    blanks = [b"", b"   ", b"\t\r", b" \r"]
    lake.land(DAY, "blanks.jsonl", [line(event("click")), *blanks, line(event("click")), b" x"])
    result = lake.ingest()
    # Blank lines (nothing but spaces, tabs, CR) are counted in the ledger, not quarantined.
    assert result.rows["click"] == 2 and result.blank_lines == 4
    assert result.quarantined == {"malformed_json": 1}
    assert [q["line_no"] for q in lake.quarantine()] == [7]
    ledger = {r["landing_file"].rsplit("/", 1)[-1]: r for r in lake.ledger()}
    assert (ledger["blanks.jsonl"]["file_lines"], ledger["blanks.jsonl"]["lines_taken"]) == (7, 7)
    assert ledger["blanks.jsonl"]["blank_lines"] == 4
    assert (ledger["empty.jsonl"]["file_lines"], ledger["empty.jsonl"]["file_errors"]) == (0, None)
    assert audit_ledger(lake.lake, DAY).passed


def test_blank_lines_belong_to_their_landing_date(lake):
    """A blank line has no event date: partition A counts it, the other readers of A do not."""
    lake.land(DAY, "a.jsonl", [b"", line(event("click", day=DAY + timedelta(days=1))), b""])
    on_landing_day = lake.ingest(DAY)
    next_day = lake.ingest(DAY + timedelta(days=1))
    assert (on_landing_day.blank_lines, on_landing_day.lines_taken) == (2, 2)
    assert (next_day.blank_lines, next_day.lines_taken, next_day.rows["click"]) == (0, 1, 1)
    for day in (DAY, DAY + timedelta(days=1)):
        assert audit_ledger(lake.lake, day).passed


def test_non_utf8_bytes(lake):
    bad = line(event("click"))[:-2] + b"\xff\xfe" + b"}"
    lake.land(DAY, "a.jsonl", [line(event("click")), bad])
    result = lake.ingest()
    assert result.quarantined == {"not_utf8": 1}
    [row] = lake.quarantine()
    assert row["line_no"] == 2 and row["detail"] == "bytes are not valid UTF-8"
    assert "\ufffd" in row["text"]  # shown decoded with replacement characters


def test_truncated_gzip_keeps_what_it_read(lake):
    docs = [line(event("impression", seconds=60 + i)) for i in range(2000)]
    full = gzip.compress(b"\n".join(docs) + b"\n", mtime=0)
    folder = lake.root / "landing" / f"dt={DAY}"
    folder.mkdir(parents=True)
    (folder / "cut.jsonl.gz").write_bytes(full[: len(full) * 2 // 3])
    result = lake.ingest()
    assert result.truncated_files == [f"landing/dt={DAY}/cut.jsonl.gz"]
    read = result.rows["impression"] + result.quarantined.get("malformed_json", 0)
    assert 0 < result.rows["impression"] < 2000
    assert read == result.lines_taken
    assert result.quarantined.get("malformed_json", 0) <= 1  # at most the cut last line
    ledger = lake.query("select file_truncated, file_errors from '{root}/ledger/*/*.parquet'")
    assert ledger[0][0] is True and "truncated" in ledger[0][1]


def test_file_named_gz_that_is_not_gzip_is_read_as_plain_text(lake):
    name = lake.land(DAY, "fake.jsonl.gz", [line(event("click")) for _ in range(50)])
    result = lake.ingest()
    assert result.truncated_files == [] and result.lines_taken == result.rows["click"] == 50
    assert result.file_errors == {name: NAMED_GZ_NOT_GZIP}
    assert audit_ledger(lake.lake, DAY).passed
    assert audit_ledger(lake.lake, DAY).file_errors[0]["read_whole"] is True


def test_gzip_data_in_a_file_not_named_gz_is_inflated(lake):
    name = lake.land(DAY, "packed.jsonl", [line(event("click")) for _ in range(3)], gz=True)
    result = lake.ingest()
    assert result.rows["click"] == 3 and result.file_errors == {name: GZIP_NOT_NAMED_GZ}


def test_five_mib_line_is_quarantined_not_fatal(lake):
    huge = b'{"event_type":"click","user_id":"' + b"u" * (5 << 20) + b'"}'
    lake.land(DAY, "a.jsonl", [line(event("click")), huge, line(event("click"))])
    result = lake.ingest()
    assert result.rows["click"] == 2
    assert result.quarantined == {"line_too_large": 1}
    [row] = lake.quarantine()
    assert row["line_bytes"] == len(huge) and row["text_truncated"] is True
    assert "uuuuuuuuuuuuuuuu" not in row["text"]  # the raw user id is hashed even in a fragment


def test_oversize_line_longer_than_a_batch_is_not_held_whole(lake):
    huge = b'{"message":"' + b"x" * (3 << 20) + b'"}'
    lake.land(DAY, "a.jsonl", [huge, line(event("error"))])
    result = lake.ingest(batch_bytes=1 << 20, max_line_bytes=1 << 19)
    assert result.quarantined == {"line_too_large": 1} and result.rows["error"] == 1
    assert lake.quarantine()[0]["line_bytes"] == len(huge)


def test_file_that_is_not_json_at_all(lake):
    lake.land(DAY, "binary.jsonl", os.urandom(20000))
    lake.land(DAY, "prose.jsonl", [b"hello world", b"this is not json", b"<xml/>"])
    result = lake.ingest()
    assert result.rows_total == 0
    # Random bytes may hold blank lines ("\n\n", "\r\n"): counted, not quarantined.
    assert result.quarantined_total + result.blank_lines == result.lines_taken > 3
    assert set(result.quarantined) <= {"not_utf8", "malformed_json"}
    assert audit_ledger(lake.lake, DAY).passed


def test_reason_codes_and_details(lake):
    lines = [
        line(event("request")),
        line({**event("click"), "event_type": "pageview"}),
        line({**event("click"), "schema_version": "9.9.9"}),
        line({**event("click"), "dwell_ms": -5, "usr_id": "x"}),
        b'{"event_type":"click",}',
        b"[1, 2, 3]",
        line(event("click"))[:-1] + b',"latency":NaN}',
    ]
    lake.land(DAY, "a.jsonl", lines)
    lake.ingest()
    by_line = {q["line_no"]: q for q in lake.quarantine()}
    assert {n: q["reason"] for n, q in by_line.items()} == {
        2: "unknown_event_type",
        3: "unknown_schema_version",
        4: "schema_violation",
        5: "malformed_json",
        6: "unknown_event_type",
        7: "malformed_json",
    }
    assert by_line[4]["detail"] == ":additionalProperties; /dwell_ms:minimum"
    assert by_line[4]["event_type"] == "click" and by_line[2]["event_type"] is None


def test_late_and_future_lines_belong_to_their_landing_partition(lake):
    late_day = DAY + timedelta(days=3)
    lake.land(
        late_day, "late.jsonl", [line(event("click", day=DAY)), line(event("click", day=late_day))]
    )
    lake.land(DAY, "future.jsonl", [line(event("click", day=DAY + timedelta(days=2)))])
    on_time = lake.ingest(DAY)
    assert on_time.quarantined == {"future_timestamp": 1} and on_time.rows["click"] == 0
    landing_owner = lake.ingest(late_day)
    assert landing_owner.quarantined == {"late_arrival": 1}
    assert landing_owner.rows["click"] == 1


def test_window_neighbours_are_rows_of_their_own_day(lake):
    # Just after midnight of D, from a clock running ahead, landed on D-1: still D's.
    early = event("click", seconds=30)
    late = event("impression", seconds=80000)
    lake.land(DAY - timedelta(days=1), "a.jsonl", [line(early)])
    lake.land(DAY + timedelta(days=2), "b.jsonl", [line(late)])
    result = lake.ingest()
    assert result.rows["click"] == 1 and result.rows["impression"] == 1
    assert result.rows_landed_late == 1 and result.late_share == 0.5


def test_duplicates_and_conflicting_duplicates(lake):
    original = event("click")
    conflict = {**event("click"), "event_id": original["event_id"], "dwell_ms": 1}
    lake.land(DAY, "a.jsonl", [line(original), line(original)])
    lake.land(DAY + timedelta(days=1), "b.jsonl", [line(original), line(conflict)])
    result = lake.ingest()
    assert result.rows["click"] == 1 and result.duplicates == 2
    assert result.quarantined == {"conflicting_duplicate": 1}
    [row] = lake.events("click")
    assert row["landing_line"] == 1 and row["landing_file"].endswith("a.jsonl")
    assert audit_ledger(lake.lake, DAY).passed


def test_a_raw_id_under_a_key_the_schemas_do_not_know_is_hashed_in_the_quarantine(lake):
    raw = "u-raw-000123"
    lake.land(
        DAY,
        "a.jsonl",
        [
            line({**event("click"), "usr_id": raw}),  # parses: redacted structurally
            line({**event("click"), "usr_id": raw})[:-2],  # truncated: redacted by pattern
        ],
    )
    lake.ingest()
    texts = [q["text"] for q in lake.quarantine()]
    assert len(texts) == 2
    hashed = pii.hmac_hex(pii.DEV_KEY, raw)
    assert all(raw not in t and hashed in t for t in texts)
