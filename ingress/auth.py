"""API keys: `Authorization: Bearer <key>` on every OpenAI and seed route, when keys are set.

Keys come from the ingress config (`ingress.api_keys`) and from the environment variable
named by `ingress.api_keys_env` (comma-separated; how a Kubernetes Secret reaches the
replica). With no key configured the server is open, as `vllm serve` without `--api-key`.
`/health` stays open for probes. A missing or wrong key is OpenAI's 401 `invalid_api_key`.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

from fastapi import Request

from deployments.config import IngressConfig
from deployments.errors import AuthenticationError


def configured_keys(config: IngressConfig, environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """Every accepted key: the config's plus the environment's."""
    from_env = environ.get(config.api_keys_env, "") if config.api_keys_env else ""
    keys = [*config.api_keys, *(k.strip() for k in from_env.split(","))]
    return tuple(k for k in keys if k)


class ApiKeyCheck:
    """A FastAPI dependency refusing requests without one of `keys` (open when empty)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    async def __call__(self, request: Request) -> None:
        if not self._keys:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise AuthenticationError(
                "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
                code="invalid_api_key",
            )
        candidate = given.strip().encode()
        # compare with every key, in constant time per key, so timing reveals nothing
        if not any([hmac.compare_digest(candidate, key) for key in self._keys]):
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
