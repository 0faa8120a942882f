"""Admission: a bounded number of POST requests per ingress replica; past it, 503 at once.

Ray Serve caps the requests one ingress replica works on (`max_ongoing_requests`, 1000 by
default, ingress/app.py) and queues the rest at its HTTP proxy, where an overflow is a
plain-text 503 (or, unbounded by default, a growing queue). This middleware refuses POST
requests (the ones that generate) a little below that cap, with an OpenAI error (`type`
`service_unavailable`, code `overloaded`, `Retry-After`), so a flood is answered in the
OpenAI shape while the slots above the limit stay free for `/health`, `/v1/models` and
for refusing. A request holds its place until its last byte is sent (a stream's too).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.errors import EngineUnavailableError
from ingress.errors import error_response
from ingress.metrics import RequestObserver


def admission_limit(max_ongoing_requests: int) -> int:
    """POST requests admitted at once when Serve allows `max_ongoing_requests`: 5% (at
    least one slot) is kept for probes and refusals."""
    return max(1, max_ongoing_requests - max(1, max_ongoing_requests // 20))


class AdmissionLimit:
    """ASGI middleware: at most `limit` POST requests in flight in this replica."""

    def __init__(self, app: ASGIApp, limit: int, served: frozenset[str], default_model: str) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self._served = served
        self._default_model = default_model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            error = EngineUnavailableError("The server is overloaded; retry shortly.", code="overloaded")
            RequestObserver(self._served, self._default_model).failed(error)
            await error_response(error)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
