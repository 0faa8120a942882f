"""Request ids (ingress/request_ids.py): the client's id when usable; echoed once; never the
engine's id (each engine request has its own)."""

from __future__ import annotations

from starlette.requests import Request

from ingress.request_ids import echo_headers, engine_request_id, request_id_of


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


def test_every_engine_request_gets_its_own_id():
    assert engine_request_id("chatcmpl-same") != engine_request_id("chatcmpl-same")
    assert engine_request_id("chatcmpl-same").startswith("chatcmpl-same-")


async def test_two_clients_with_the_same_request_id_do_not_share_an_engine_request(http, servers):
    engine, seen = servers["tiny-qwen2-vl"]._engine, []
    generate = engine.generate

    def recording(prompt, params, request_id):  # noqa: ANN001, ANN202 - the fake engine's generate
        seen.append(request_id)
        return generate(prompt, params, request_id)

    engine.generate = recording
    chat = {"model": "tiny-qwen2-vl", "messages": [{"role": "user", "content": "hi"}]}
    for path, body in (("/v1/chat/completions", chat), ("/v1/completions", {"model": "tiny-qwen2-vl", "prompt": "hi"})):
        answers = [await http.post(path, json=body, headers={"x-request-id": "shared"}) for _ in range(2)]
        assert all(a.status_code == 200 and a.headers["x-request-id"] == "shared" for a in answers)
    assert len(seen) == 4 and len(set(seen)) == 4  # an abort of one can no longer reach another
    assert all("shared" in request_id for request_id in seen)  # still readable in the engine's logs
