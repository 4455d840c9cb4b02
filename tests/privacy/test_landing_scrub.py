"""The optional landing rewrite of an erasure: the users' raw lines leave the landing files, every
other line stays byte for byte, gzip files stay gzip, and a file without them is not touched."""

import gzip

from pipelines.lib.privacy.landing_erasure import scrub_landing
from tests.conftest import DAY, event, line


def test_only_the_users_lines_leave_landing(lake):
    keep = [line(event("click", user_id="u-keep")), b'{"user_id": "u-gone", broken', b"not json"]
    gone = [line(event("click", user_id="u-gone")), line(event("request", user_id="u-gone"))]
    plain = lake.land(DAY, "a.jsonl", [keep[0], gone[0], keep[1], gone[1], keep[2]])
    packed = lake.land(DAY, "b.jsonl.gz", [gone[0], keep[0]], gz=True)
    other = lake.land(DAY, "c.jsonl", [keep[0]])
    untouched = (lake.root / other).stat().st_mtime_ns

    rewrites = scrub_landing(lake.lake, ["u-gone"], [DAY])

    assert {(r.path, r.lines_removed) for r in rewrites} == {(plain, 2), (packed, 1)}
    assert (lake.root / plain).read_bytes() == b"\n".join(keep) + b"\n"
    assert gzip.decompress((lake.root / packed).read_bytes()) == keep[0] + b"\n"
    assert (lake.root / other).stat().st_mtime_ns == untouched
    assert scrub_landing(lake.lake, ["u-gone"], [DAY]) == []
