"""The one door every request of the `jira` package goes through (see client.py): paced and
counted per connection, 429s waited out for the whole connection, non-JSON 2xx refused."""

from __future__ import annotations

from requests.adapters import HTTPAdapter

from sync_pipelines.errors import Verdict, classify_status, parse_retry_after
from sync_pipelines.http import require_json
from sync_pipelines.resilience import CallStats, RateLimiter, rate_limit_wait


class MeteredAdapter(HTTPAdapter):
    """Paces and counts every request the package sends; waits out 429s and re-sends; turns
    a 2xx answer that is not JSON into a MalformedResponseError."""

    def __init__(self, limiter: RateLimiter, stats: CallStats, max_rate_limit_waits: int):
        super().__init__()
        self.limiter = limiter
        self.stats = stats
        self.max_rate_limit_waits = max_rate_limit_waits

    def send(self, request, **kwargs):
        waits = 0
        while True:
            # Also the wait of a 429's hold, this thread's or another's.
            self.stats.add(throttle_wait_s=self.limiter.acquire(), api_calls=1)
            response = super().send(request, **kwargs)
            if classify_status(response.status_code) is not Verdict.RATE_LIMITED:
                require_json(response)  # a proxy's HTML page: named with status and first bytes
                return response
            self.stats.add(rate_limited=1)
            if waits >= self.max_rate_limit_waits:
                return response  # the package raises it as a JIRAError 429
            waits += 1
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            response.close()
            self.limiter.hold(rate_limit_wait(retry_after, waits))
            self.stats.add(retries=1)
