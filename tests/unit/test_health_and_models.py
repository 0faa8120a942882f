"""/health answers 200 only when every engine answers; /v1/models lists answering models."""

from __future__ import annotations


async def test_health_ok_when_all_engines_answer(http):
    response = await http.get("/health")
    assert response.status_code == 200
    assert response.json()["models"] == {"tiny-qwen2-vl": True, "tiny-qwen2.5-vl": True, "tiny-qwen2": True}


async def test_health_503_when_one_engine_is_dead(http, servers):
    servers["tiny-qwen2.5-vl"]._engine.healthy = False
    response = await http.get("/health")
    assert response.status_code == 503
    assert response.json()["models"]["tiny-qwen2.5-vl"] is False


async def test_models_lists_only_answering_models(client, servers):
    servers["tiny-qwen2"]._engine.healthy = False
    listed = [m.id async for m in client.models.list()]
    assert listed == ["tiny-qwen2-vl", "tiny-qwen2.5-vl"]
    servers["tiny-qwen2"]._engine.healthy = True
    listed = [m.id async for m in client.models.list()]
    assert listed == ["tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-qwen2"]
    model = await client.models.retrieve("tiny-qwen2.5-vl")
    assert model.id == "tiny-qwen2.5-vl"
