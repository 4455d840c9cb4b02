"""The event's own raw id in its free text is not found when the id holds a backslash (issue 19
attack finding). Windows account names are written ``DOMAIN\\user`` ("CORP\\jsmith"); an error
message that quotes the user's own id keeps it as sent, while the same id without the backslash
becomes a ``<raw_id:...>`` token. (A `"` in the id is likely the same: both are escaped in JSON.)"""

from __future__ import annotations

import duckdb
import pytest

from tests.conftest import DAY, LakeHelper, event, line


@pytest.mark.parametrize("user_id", ["CORP\\jsmith", 'jsmith"corp'])
def test_own_raw_id_with_escaped_characters_is_scrubbed(lake: LakeHelper, user_id: str) -> None:
    doc = event("error", user_id=user_id, message=f"access denied for {user_id} on share")
    lake.land(DAY, "a.jsonl", [line(doc)])
    lake.ingest()
    path = lake.root / f"events/event_type=error/event_date={DAY}/part-00000.parquet"
    query = f"select message from read_parquet('{path}')"
    [(message,)] = duckdb.connect().execute(query).fetchall()
    assert user_id.lower() not in message.lower(), f"stored message: {message!r}"
