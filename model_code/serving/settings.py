"""The SageMaker runtime's settings: the model server's (``model_code.core.settings``) plus its AWS endpoints."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from model_code.core.settings import ServerSettings, env_value

# Endpoint overrides for local runs (a loopback HealthImaging stand-in, a local S3).
HEALTHIMAGING_ENDPOINT_URL = "HEALTHIMAGING_ENDPOINT_URL"
S3_ENDPOINT_URL = "S3_ENDPOINT_URL"
AWS_REGION = "AWS_REGION"


@dataclass(frozen=True)
class ServingSettings(ServerSettings):
    healthimaging_endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        """Read every setting once; an invalid value raises ValueError naming the variable, at model load."""
        env = os.environ if environ is None else environ
        base = ServerSettings.from_env(env)
        return cls(
            # fields(), not asdict(): asdict would turn the nested InputLimits into a dict.
            **{item.name: getattr(base, item.name) for item in dataclasses.fields(base)},
            healthimaging_endpoint_url=env_value(env, HEALTHIMAGING_ENDPOINT_URL),
            s3_endpoint_url=env_value(env, S3_ENDPOINT_URL),
            region=env_value(env, AWS_REGION) or env_value(env, "AWS_DEFAULT_REGION"),
        )
