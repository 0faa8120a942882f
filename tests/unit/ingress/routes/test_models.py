"""/health answers 200 only when every engine answers; /v1/models lists answering models."""

from __future__ import annotations

from deployments.deployment_options import DeploymentOptions


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


def _scale_to_zero(router, name: str) -> None:  # noqa: ANN001 - ingress.router.ModelRouter
    options = DeploymentOptions.model_validate({"autoscaling_config": {"min_replicas": 0, "max_replicas": 1}})
    router.routes[name].config.deployment = options


async def test_a_model_scaled_to_zero_is_healthy_listed_and_not_woken(http, router, servers):
    _scale_to_zero(router, "tiny-qwen2")
    router.routes["tiny-qwen2"].client.replicas = 0
    servers["tiny-qwen2"]._engine.healthy = False  # would fail if asked: it must not be asked
    response = await http.get("/health")
    assert response.status_code == 200 and response.json()["models"]["tiny-qwen2"] is True
    listed = [m["id"] for m in (await http.get("/v1/models")).json()["data"]]
    assert "tiny-qwen2" in listed


async def test_a_scale_to_zero_model_with_a_replica_up_is_probed(http, router, servers):
    _scale_to_zero(router, "tiny-qwen2")
    router.routes["tiny-qwen2"].client.replicas = 1
    servers["tiny-qwen2"]._engine.healthy = False
    assert (await http.get("/health")).status_code == 503
    router.routes["tiny-qwen2"].client.replicas = None  # status unknown: probed as well
    assert (await http.get("/health")).status_code == 503
