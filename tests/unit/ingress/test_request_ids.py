"""Request ids (ingress/request_ids.py): the client's id when usable; echoed once."""

from __future__ import annotations

from starlette.requests import Request

from ingress.request_ids import echo_headers, request_id_of


def _request(**headers: str) -> Request:
    return Request({"type": "http", "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})


def test_a_usable_client_id_is_kept_else_a_fresh_one():
    assert request_id_of(_request(**{"x-request-id": "abc-123"})) == "abc-123"
    assert len(request_id_of(_request(**{"x-request-id": "x" * 500}))) == 32
    assert request_id_of(_request()) != request_id_of(_request())


def test_outside_serve_the_ingress_echoes_the_id_itself():
    """Serve's request context is read through `ray.serve.context._get_serve_request_context`,
    a private function: this fails if Ray renames it or its `request_id`."""
    from ray.serve.context import _get_serve_request_context

    assert _get_serve_request_context().request_id == ""
    assert echo_headers("abc") == {"x-request-id": "abc"}
    assert echo_headers(None) == {}
