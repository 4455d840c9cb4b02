"""Erasure and export requests: where a request file may be (directly in ``requests/erasure/``
or ``requests/export/``, nowhere else), what it must hold, the hashes it stands for, and what is
kept of it once processed (by default, nothing raw)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pipelines.lib.ingest import pii
from pipelines.lib.lake.storage import Lake, OutsideFolderError

REQUESTS_DIR = "requests/erasure"
PROCESSED_DIR = f"{REQUESTS_DIR}/processed"
EXPORT_REQUESTS_DIR = "requests/export"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_USER_ID_CHARS = 128  # the schemas' maxLength for user_id


class ErasureRequestError(ValueError):
    """A request that cannot be processed; the message says what to fix."""


class ExportRequestError(ValueError):
    """An export request that cannot be processed; the message says what to fix."""


def request_file(lake: Lake, rel: str, folder: str = REQUESTS_DIR) -> str:
    """``rel`` if it names a file directly in ``folder`` (the requests inbox of its kind), else
    the reason, naming the folder; checked before the file is read, processed or deleted."""
    try:
        return lake.file_in(folder, rel)
    except OutsideFolderError as exc:
        error = ExportRequestError if folder == EXPORT_REQUESTS_DIR else ErasureRequestError
        raise error(f"request_file {exc}") from exc


@dataclass(frozen=True)
class ErasureRequest:
    request_id: str
    user_ids: tuple[str, ...]
    received_at: datetime
    source: str | None = None  # the request file, relative to the lake root

    def hashes(self, secrets: list[bytes]) -> list[str]:
        """Every user's HMAC under every key: a user is erased whichever key hashed their rows."""
        return sorted({pii.hmac_hex(s, uid) for s in secrets for uid in self.user_ids})


def parse_request(data: object, received_at: datetime, source: str | None = None) -> ErasureRequest:
    where = source or "the request"
    if not isinstance(data, dict):
        raise ErasureRequestError(f"{where}: expected a JSON object with request_id and user_ids")
    unknown = sorted(set(data) - {"request_id", "user_ids"})
    if unknown:
        raise ErasureRequestError(f"{where}: unknown field(s) {unknown}")
    request_id = data.get("request_id")
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise ErasureRequestError(
            f"{where}: request_id must be 1-128 letters, digits, '.', '_' or '-' "
            f"(got {request_id!r})"
        )
    # The id names the audit's folder and the processed copy: it must not be a way in for PII.
    if found := pii.detect_class(request_id):
        raise ErasureRequestError(
            f"{where}: request_id looks like it holds personal data ({found}); "
            "use an opaque ticket id such as r-2026-001"
        )
    user_ids = data.get("user_ids")
    if (
        not isinstance(user_ids, list)
        or not user_ids
        or not all(isinstance(u, str) and 0 < len(u) <= MAX_USER_ID_CHARS for u in user_ids)
    ):
        raise ErasureRequestError(
            f"{where}: user_ids must be a non-empty list of user ids "
            f"(strings of 1-{MAX_USER_ID_CHARS} characters)"
        )
    if any(len(u) >= 6 and u.lower() in request_id.lower() for u in user_ids):
        raise ErasureRequestError(
            f"{where}: request_id contains one of the user ids; use an opaque ticket id"
        )
    return ErasureRequest(request_id, tuple(dict.fromkeys(user_ids)), received_at, source)


def _read_json(lake: Lake, rel: str, error: type[ValueError]) -> object:
    """The JSON of request file ``rel``; ``error`` (the request kind's) when it is not JSON."""
    with lake.open(rel) as handle:
        raw = handle.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{rel}: not valid JSON ({exc})") from exc


def load_request(lake: Lake, rel: str) -> ErasureRequest:
    """A request file of ``requests/erasure/``; it was received when it landed (its modification
    time)."""
    rel = request_file(lake, rel, REQUESTS_DIR)
    data = _read_json(lake, rel, ErasureRequestError)
    modified = lake.fs.modified(lake.path(rel))
    received = modified if modified.tzinfo else modified.replace(tzinfo=UTC)
    return parse_request(data, received.astimezone(UTC), rel)


def pending_requests(lake: Lake) -> list[tuple[str, int]]:
    """Request files waiting in the inbox, with their sizes (the sensor's run keys use both)."""
    return [
        (f.path, f.size_bytes)
        for f in lake.list_files(REQUESTS_DIR)
        if f.path.endswith(".json") and not f.path.rsplit("/", 1)[-1].startswith(".")
    ]


def retire_request(lake: Lake, request: ErasureRequest, hashes: list[str], keep_raw: bool) -> str:
    """Move the request to processed/: as it was only if configured to keep it, otherwise a
    redacted copy (hashes, no raw id) replaces it, so raw ids outlive the run nowhere."""
    if request.source is None:
        return ""
    # The redacted copy is named by the (checked) request id: the file's own name was chosen by
    # whoever dropped it and may hold the very identifier being erased.
    name = request.source.rsplit("/", 1)[-1] if keep_raw else f"{request.request_id}.json"
    target = f"{PROCESSED_DIR}/{name}"
    with lake.staged_file(target) as local:
        if keep_raw:
            with lake.open(request.source) as src, open(local, "wb") as dst:
                dst.write(src.read())
        else:
            redacted = {
                "request_id": request.request_id,
                "hashed_ids": hashes,
                "received_at": request.received_at.isoformat(),
                "raw_ids_removed": True,
            }
            with open(local, "w", encoding="utf-8") as dst:
                json.dump(redacted, dst, indent=2)
    lake.fs.rm(lake.path(request.source))
    return target


def load_export_request(lake: Lake, rel: str) -> tuple[str, str]:
    """(the file, checked to be directly in ``requests/export/``; the raw user id it names)."""
    rel = request_file(lake, rel, EXPORT_REQUESTS_DIR)
    data = _read_json(lake, rel, ExportRequestError)
    user_id = data.get("user_id") if isinstance(data, dict) else None
    if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_USER_ID_CHARS:
        raise ExportRequestError(
            f'{rel}: expected {{"user_id": "..."}} with a user id of 1-{MAX_USER_ID_CHARS} '
            "characters"
        )
    return rel, user_id
