"""Ray Serve options are checked by Ray's own schema: what Ray takes passes, typos are named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from ray.serve.config import AutoscalingConfig

from deployments.config import ModelConfig
from deployments.deployment_options import DeploymentOptions, ray_deployment_options


def _model(deployment: dict) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", "source": "tiny://qwen2-vl", "deployment": deployment})


@pytest.mark.parametrize(
    "options",
    [
        {"max_replicas_per_node": 1},
        {"logging_config": {"log_level": "DEBUG", "enable_access_log": False}},
        {"user_config": {"anything": [1, 2]}},
        {"num_replicas": "auto"},
        {"health_check_period_s": 5, "graceful_shutdown_wait_loop_s": 1},
        {"autoscaling_config": {"min_replicas": 0, "max_replicas": 3, "upscale_smoothing_factor": 1.5}},
        {"ray_actor_options": {"num_cpus": 2, "accelerator_type": "L4", "runtime_env": {"env_vars": {"A": "1"}}}},
    ],
)
def test_options_ray_2_60_takes_are_accepted_and_passed_on(options):
    model = _model(options)
    for key, value in options.items():
        assert model.serve_options()[key] == value


@pytest.mark.parametrize(
    ("options", "named", "suggested"),
    [
        ({"max_replica_per_node": 1}, "deployment.max_replica_per_node", "max_replicas_per_node"),
        ({"ray_actor_options": {"num_gpu": 1}}, "deployment.ray_actor_options.num_gpu", "num_gpus"),
        ({"autoscaling_config": {"min_replica": 0}}, "deployment.autoscaling_config.min_replica", "min_replicas"),
    ],
)
def test_a_typo_is_refused_with_the_close_match(options, named, suggested):
    with pytest.raises(ValidationError) as caught:
        _model(options)
    assert named in str(caught.value) and f"did you mean {suggested!r}" in str(caught.value)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_ongoing_requests": 0}, "deployment.max_ongoing_requests"),
        ({"autoscaling_config": {"min_replicas": 3, "max_replicas": 1}}, "max_replicas"),
        ({"num_replicas": 2, "autoscaling_config": {"min_replicas": 1}}, "num_replicas"),
        ({"logging_config": {"log_level": "LOUD"}}, "log_level"),
        ({"name": "mine"}, "deployment.name"),
    ],
)
def test_values_ray_refuses_are_refused_before_start(options, named):
    with pytest.raises(ValidationError) as caught:
        _model(options)
    assert named in str(caught.value)


def test_autoscaling_config_is_rays_own_object():
    options = DeploymentOptions.model_validate({"autoscaling_config": {"min_replicas": 0, "max_replicas": 2}})
    assert isinstance(options.autoscaling_config, AutoscalingConfig)
    assert options.autoscaling_config.min_replicas == 0
    assert _model({"autoscaling_config": {"min_replicas": 0, "max_replicas": 2}}).scales_to_zero


def test_options_survive_the_round_trip_to_the_replicas():
    model = _model({"max_replicas_per_node": 1, "bundle_per_worker": {"CPU": 1}})
    again = ModelConfig.model_validate(model.model_dump())
    assert again.serve_options() == model.serve_options()
    assert again.deployment.bundle_per_worker == {"CPU": 1}


def test_every_option_ray_schema_knows_is_one_deployment_options_takes():
    assert {"max_replicas_per_node", "logging_config", "user_config", "autoscaling_config"} <= ray_deployment_options()
    assert not {"name", "placement_group_bundles"} & ray_deployment_options()  # set by build_app / derived
