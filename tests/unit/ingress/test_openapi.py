"""The OpenAPI document (ingress/openapi.py) names the real request and response schemas."""

from __future__ import annotations


async def test_openapi_document_describes_every_endpoint(http):
    document = (await http.get("/openapi.json")).json()
    paths = document["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/generate", "/"):
        assert "requestBody" in paths[path]["post"], path
    chat = paths["/v1/chat/completions"]["post"]
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = document["components"]["schemas"]
    assert "messages" in schemas[ref.rsplit("/", 1)[1]]["properties"]
    answer_ref = chat["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "choices" in schemas[answer_ref.rsplit("/", 1)[1]]["properties"]
    # every reference resolves inside the document
    for found in _refs(document):
        assert found.rsplit("/", 1)[1] in schemas, found
    assert {"/v1/models", "/health"} <= set(paths)


def _refs(node) -> list[str]:  # noqa: ANN001 - any JSON value
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
