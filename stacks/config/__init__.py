"""Platform configuration: frozen, validated sections built once, at the edge, from cdk.json context.

cdk.json embeds the default configuration under ``platform.defaults`` and per-stage overrides under
``platform.stages.<stage>``; ``-c stage=prod`` picks a stage and ``-c platform.<section>.<key>=value``
overrides one key. Every invalid value raises :class:`ConfigError` with the key, the value and what to do.

- document.py: defaults, the stage's overrides and ``-c`` keys merged into one document;
- fields.py: the one reader (:class:`Section`, :func:`read_section`) and the field kinds;
- sections.py: one type per section (network, data, serving, images, training, monitoring, edge, audit, viewer),
  each field's key and validation beside it;
- platform.py: :class:`PlatformConfig` (one stage) and :func:`build_config`;
- pipeline.py: the release pipeline's section (``-c pipeline=true``).
"""

from stacks.config.document import DEFAULT_STAGE, STAGE_CONTEXT_KEY, deep_merge, resolve_document
from stacks.config.fields import CONTEXT_ROOT, LOG_RETENTION_DAYS, ConfigError
from stacks.config.pipeline import PIPELINE_CONTEXT_KEY, PipelineConfig, build_pipeline_config, pipeline_enabled
from stacks.config.platform import HEALTHIMAGING_REGIONS, PlatformConfig, build_config
from stacks.config.sections import (
    DEPLOYMENT_STRATEGIES,
    SOURCE_KINDS,
    AuditConfig,
    BackfillConfig,
    DataConfig,
    EdgeConfig,
    ImagesConfig,
    ImageSourceConfig,
    MonitoringConfig,
    NetworkConfig,
    ServingConfig,
    TrainingConfig,
    ViewerConfig,
)

__all__ = [
    "CONTEXT_ROOT",
    "DEFAULT_STAGE",
    "DEPLOYMENT_STRATEGIES",
    "HEALTHIMAGING_REGIONS",
    "LOG_RETENTION_DAYS",
    "PIPELINE_CONTEXT_KEY",
    "SOURCE_KINDS",
    "STAGE_CONTEXT_KEY",
    "AuditConfig",
    "BackfillConfig",
    "ConfigError",
    "DataConfig",
    "EdgeConfig",
    "ImageSourceConfig",
    "ImagesConfig",
    "MonitoringConfig",
    "NetworkConfig",
    "PipelineConfig",
    "PlatformConfig",
    "ServingConfig",
    "TrainingConfig",
    "ViewerConfig",
    "build_config",
    "build_pipeline_config",
    "deep_merge",
    "pipeline_enabled",
    "resolve_document",
]
