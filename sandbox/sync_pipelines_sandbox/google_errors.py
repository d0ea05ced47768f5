"""Google's JSON error bodies, shared by the Google emulators (mail, Sheets and Drive).

Google APIs answer errors as {"error": {"code", "message", "errors": [{"message", "domain",
"reason"}], "status"}}: `status` is the gRPC-style name of the HTTP status, `reason` the
legacy v1 reason (rate limits come from the `usageLimits` domain). Clients decide by both
(e.g. a 403 whose reason is `userRateLimitExceeded` is a rate limit, not a permission error),
so every emulator builds them here, the one way.
"""

from __future__ import annotations

from sync_pipelines_sandbox.paged import ApiError

STATUS_NAMES = {
    400: ("badRequest", "INVALID_ARGUMENT"),
    401: ("authError", "UNAUTHENTICATED"),
    403: ("forbidden", "PERMISSION_DENIED"),
    404: ("notFound", "NOT_FOUND"),
    429: ("rateLimitExceeded", "RESOURCE_EXHAUSTED"),
    500: ("backendError", "INTERNAL"),
    503: ("backendError", "UNAVAILABLE"),
}
RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}


class GoogleError(ApiError):
    """An error with Google's own reason (and domain), e.g. 403 userRateLimitExceeded."""

    def __init__(self, status: int, message: str, reason: str | None = None):
        super().__init__(status, message)
        self.reason = reason


def error_body(status: int, message: str, reason: str | None = None) -> dict:
    """Google's error body for `status`; `reason` defaults to the status's usual one."""
    default_reason, name = STATUS_NAMES.get(status, ("failed", "UNKNOWN"))
    reason = reason or default_reason
    domain = "usageLimits" if reason in RATE_REASONS else "global"
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": name,
        }
    }
