"""An erasure request file named after the user it erases (issue 19 attack finding).

Whoever drops the request names the file; data subjects' e-mail addresses are the most common
ticket names. The processed copy is renamed to the request id for exactly this reason, but the
sensor puts the file's path into the run key and the run config, which Dagster keeps in its run
storage under DAGSTER_HOME for as long as the run history lives: raw PII at rest outside
landing/. The erasure must not leave the address anywhere in DAGSTER_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from pipelines.defs.privacy.erasure import erase_users, erasure_requests_sensor
from pipelines.defs.resources import LakeResource
from tests.conftest import DAY, LakeHelper, event, line, privacy_resources

ADDRESS = "alice.subject@example.com"


def test_request_named_after_the_user_leaves_no_trace_in_dagster_home(
    lake: LakeHelper, tmp_path: Path
) -> None:
    lake.land(DAY, "a.jsonl", [line(event("click", user_id=ADDRESS))])
    lake.ingest()
    inbox = lake.root / "requests" / "erasure"
    inbox.mkdir(parents=True)
    (inbox / f"{ADDRESS}.json").write_text(
        json.dumps({"request_id": "r-2026-001", "user_ids": [ADDRESS]})
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    root = str(lake.root)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        context = dg.build_sensor_context(
            instance=instance, resources={"lake": LakeResource(root=root)}
        )
        [request] = erasure_requests_sensor(context).run_requests
        result = erase_users.execute_in_process(
            run_config=request.run_config,
            resources=privacy_resources(root),
            instance=instance,
        )
        assert result.success
    leaks = [
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and ADDRESS.encode() in p.read_bytes()
    ]
    assert not leaks, f"{ADDRESS} stored under DAGSTER_HOME in {leaks}"
