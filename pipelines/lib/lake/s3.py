"""The lake's S3 filesystem with bounded waits: every request has a connect and a read timeout and
a fixed number of retries, so an endpoint that accepts connections but never answers fails the
operation in bounded time, with an error naming the endpoint (no Dagster here).

Without this, s3fs's defaults (15 s read timeout, its own 5 attempts around botocore's 5) let
one listing of a silent endpoint hang for about 7 minutes. Here botocore alone retries (standard
mode: timeouts, connection errors, 5xx and throttling, with backoff) and s3fs's own retry loop
makes one pass, so the two never multiply: one request waits at most about
``(retries + 1) * (connect + read timeout)`` plus the backoff between attempts.

Imported only when a lake is on S3 (``storage.Lake``): s3fs and botocore take a third of a
second to import.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from s3fs import S3FileSystem

from pipelines.lib.lake import lake_root
from pipelines.lib.lake.errors import S3EndpointError


class BoundedS3FileSystem(S3FileSystem):
    """``S3FileSystem`` whose requests fail with ``S3EndpointError`` once botocore's attempts are
    used up (the timeouts and attempts come in ``config_kwargs``, see ``storage.S3Timeouts``)."""

    # botocore retries each request (config_kwargs["retries"]); a second loop here would
    # multiply the attempts (and the wait) by this number.
    retries = 1

    async def _call_s3(self, method: str, *akwarglist: Any, **kwargs: Any) -> Any:
        try:
            return await super()._call_s3(method, *akwarglist, **kwargs)
        except (ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError) as exc:
            raise S3EndpointError(self._unanswered(method, kwargs, exc)) from exc
        except FileNotFoundError as exc:
            if not _no_such_bucket(exc):
                raise
            missing = lake_root.missing_bucket(str(kwargs.get("Bucket")), self.endpoint(), method)
        # Raised outside the handler, with no botocore error chained: s3fs turns NoSuchBucket into
        # a FileNotFoundError that listings take for an empty folder (a run would succeed over
        # nothing), and lease.py would read the chained 404 as a lost race.
        raise missing

    def endpoint(self) -> str:
        """The endpoint requests go to (``TELEMETRY_S3_ENDPOINT_URL``, or AWS's for the region)."""
        client = self._s3
        url = getattr(getattr(client, "meta", None), "endpoint_url", None)
        return url or self.client_kwargs.get("endpoint_url") or "the AWS S3 endpoint"

    def _unanswered(self, method: str, kwargs: dict[str, Any], exc: Exception) -> str:
        config = self.config_kwargs
        # botocore rewrites {"max_attempts": n} as {"total_max_attempts": n + 1} in place.
        policy = config.get("retries") or {}
        retries = int(policy.get("total_max_attempts", 1)) - 1
        retries = int(policy.get("max_attempts", retries))
        attempts = f"{retries + 1} attempt{'s' if retries else ''} (TELEMETRY_S3_RETRIES={retries})"
        target = "/".join(str(kwargs[k]) for k in ("Bucket", "Key", "Prefix") if kwargs.get(k))
        if isinstance(exc, ReadTimeoutError):
            what = (
                f"did not answer within {config.get('read_timeout'):g} s "
                "(TELEMETRY_S3_READ_TIMEOUT_S)"
            )
        elif isinstance(exc, ConnectTimeoutError):
            what = (
                f"did not accept a connection within {config.get('connect_timeout'):g} s "
                "(TELEMETRY_S3_CONNECT_TIMEOUT_S)"
            )
        else:
            what = "could not be reached"
        return (
            f"S3 endpoint {self.endpoint()} {what} on any of {attempts}, for {method} {target}: "
            "check the endpoint (TELEMETRY_S3_ENDPOINT_URL) and the network to it"
        )


def _no_such_bucket(exc: BaseException) -> bool:
    """Whether s3fs's FileNotFoundError comes from botocore's NoSuchBucket (it keeps the
    ClientError as the cause)."""
    response = getattr(exc.__cause__, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "NoSuchBucket"
