"""Request ids: the client's `X-Request-Id` when usable, echoed on the answer exactly once;
every engine request gets a fresh id of its own (`engine_request_id`).

Under Ray Serve the proxy already gives every HTTP request an `x-request-id` (the client's,
else a fresh one) and echoes it on the response, so the ingress uses that id and adds no
header of its own (a second would reach the client as `id, id`). Outside Serve (unit tests,
the bare FastAPI app) the ingress echoes it itself.
"""

from __future__ import annotations

import uuid

from starlette.requests import Request

HEADER = "x-request-id"
_MAX_LENGTH = 128


def request_id_of(request: Request) -> str:
    """The client's (or Serve's) `X-Request-Id` when usable, else a fresh id."""
    given = request.headers.get(HEADER, "")
    if 0 < len(given) <= _MAX_LENGTH and given.isprintable():
        return given
    return uuid.uuid4().hex


def engine_request_id(completion_id: str) -> str:
    """A fresh id for one engine request. The client's id is for echo and logs only: two
    clients may send the same one, and the engine aborts by id (one disconnecting would
    abort the other's generation). `completion_id` keeps it readable in the engine's logs."""
    return f"{completion_id}-{uuid.uuid4().hex[:16]}"


def echo_headers(request_id: str | None) -> dict[str, str]:
    """The response header carrying `request_id`, unless Serve's proxy adds it already."""
    if not request_id or _serve_echoes_request_id():
        return {}
    return {HEADER: request_id}


def _serve_echoes_request_id() -> bool:
    # Ray Serve has no public accessor for the request context (its `request_id` is what the
    # proxy echoes); tests/unit/ingress/test_request_ids.py fails if Ray renames it.
    from ray.serve.context import _get_serve_request_context

    return bool(_get_serve_request_context().request_id)
