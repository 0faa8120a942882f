"""The one error hierarchy (deployments/errors.py): classification of any exception, fields
kept across Ray's pickling, and the media refusal codes derived from where they are raised."""

from __future__ import annotations

import ast
import pickle

import pytest
from pydantic import BaseModel, ValidationError
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayTaskError
from ray.serve.exceptions import BackPressureError

from deployments.errors import (
    EngineUnavailableError,
    MODEL_UNAVAILABLE,
    InvalidRequestError,
    MediaRefusedError,
    ServeError,
    UnprocessableMediaError,
    as_serve_error,
)
from tests.helpers import ROOT

# Calls that raise a media refusal, and where their code sits when it is not `code=`.
_REFUSERS = {"MediaRefusedError": None, "UnprocessableMediaError": None, "MediaTimeoutError": None,
             "_FetchRefused": 1, "_refuse": 3}


def _raised_refusal_codes() -> set[str]:
    """Every code a media refusal is raised with in ingress/ (f-strings over `kind`)."""
    codes = set()
    for path in (ROOT / "ingress").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) in _REFUSERS):
                continue
            position = _REFUSERS[node.func.id]
            values = [k.value for k in node.keywords if k.arg == "code"]
            if position is not None and len(node.args) > position:
                values.append(node.args[position])
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    codes.add(value.value)
                elif isinstance(value, ast.JoinedStr):
                    codes |= {_format(value, kind) for kind in ("image", "video")}
    return codes


def _format(text: ast.JoinedStr, kind: str) -> str:
    return "".join(v.value if isinstance(v, ast.Constant) else kind for v in text.values)


def test_refusal_codes_are_exactly_those_raised():
    assert _raised_refusal_codes() == MediaRefusedError.codes


def test_statuses_and_types_follow_the_hierarchy():
    assert (MediaRefusedError.status_code, UnprocessableMediaError.status_code) == (400, 422)
    assert issubclass(UnprocessableMediaError, MediaRefusedError) and issubclass(MediaRefusedError, InvalidRequestError)
    assert UnprocessableMediaError.error_type == "invalid_request_error"
    assert (EngineUnavailableError.status_code, EngineUnavailableError.error_type) == (503, "service_unavailable")


def test_fields_survive_pickling_as_ray_does_across_the_handle():
    error = pickle.loads(pickle.dumps(UnprocessableMediaError("bad", "messages[0]", code="invalid_image")))
    assert type(error) is UnprocessableMediaError
    assert (error.message, error.param, error.code) == ("bad", "messages[0]", "invalid_image")


class _Body(BaseModel):
    n: int


def test_any_exception_is_classified_once_into_a_serve_error():
    refused = InvalidRequestError("no", "x")
    assert as_serve_error(refused) is refused
    overloaded = as_serve_error(BackPressureError(num_queued_requests=2, max_queued_requests=1))
    assert (overloaded.status_code, overloaded.code) == (503, "overloaded")
    with pytest.raises(ValidationError) as caught:
        _Body.model_validate({"n": "many"})
    assert as_serve_error(caught.value).param == "n"
    wrapped = RayTaskError("generate", "traceback", refused, proctitle="replica")
    assert as_serve_error(wrapped).message == "no"
    internal = as_serve_error(RuntimeError("/secret/path at 0xdeadbeef"))
    assert type(internal) is ServeError and internal.status_code == 500
    assert "secret" not in internal.message and "0x" not in internal.message


@pytest.mark.parametrize("death", [ActorDiedError(), ActorUnavailableError("unreachable", None)])
def test_a_replica_that_died_under_the_request_is_a_503_to_retry(death):
    error = as_serve_error(death)
    assert (error.status_code, error.error_type, error.code) == (503, "service_unavailable", MODEL_UNAVAILABLE)
    assert "retry" in error.message
