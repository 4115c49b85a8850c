"""The training job itself: the raw ``createTrainingJob.sync`` state and the settings it is made of.

Pure functions of the configuration (and of the resource references the stack passes in), so tests can read
every variant without synthesizing an app.
"""

from __future__ import annotations

import json
from typing import Any

from model_code.training.metrics import METRIC_DEFINITIONS
from stacks.components.instance_types import has_instance_storage
from stacks.config import PlatformConfig

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"  # model_code.training.environment.DEFAULT_CHECKPOINT_DIR
TRAINING_CHANNEL = "training"  # SM_CHANNEL_TRAINING
VOLUME_SIZE_GB = 100
# Spot capacity can take a while to appear and interruptions add restarts: wait up to twice the run time,
# within SageMaker's 28-day limit on MaxWaitTimeInSeconds.
SPOT_WAIT_FACTOR = 2
MAX_WAIT_SECONDS = 28 * 24 * 3600
# What the SageMaker PyTorch estimator sends for distribution={"torch_distributed": {"enabled": True}}: the
# training toolkit then launches train.py with torchrun on every instance (values JSON-encoded, as the SDK does).
TORCH_DISTRIBUTED_HYPERPARAMETER = "sagemaker_torch_distributed_enabled"
INSTANCE_TYPE_HYPERPARAMETER = "sagemaker_instance_type"


def metric_key(name: str) -> str:
    """``validation:dice`` -> ``validation_dice``: a JSONPath field name for a SageMaker metric name."""
    return name.replace(":", "_")


def job_name_expression(prefix: str) -> str:
    """``<prefix>-<20 hex digits of a UUID>``: unique per execution, within SageMaker's 63 characters."""
    # Project (<= 25) and stage (<= 10) keep "<project>-<stage>-train" at 42 characters: 63 at most in all.
    return f"States.Format('{prefix}-{{}}{{}}', $.ids[0], $.ids[4])"


def platform_hyperparameters(config: PlatformConfig) -> dict[str, str]:
    """torchrun on every instance (1..N), as the SageMaker SDK requests it."""
    return {
        TORCH_DISTRIBUTED_HYPERPARAMETER: "true",
        INSTANCE_TYPE_HYPERPARAMETER: json.dumps(config.training.instance_type),
    }


def stopping_condition(config: PlatformConfig) -> dict[str, int]:
    runtime = config.training.max_runtime_hours * 3600
    if not config.training.use_spot:
        return {"MaxRuntimeInSeconds": runtime}
    wait = min(runtime * SPOT_WAIT_FACTOR, MAX_WAIT_SECONDS)
    return {"MaxRuntimeInSeconds": runtime, "MaxWaitTimeInSeconds": wait}


def uses_volume_key(config: PlatformConfig) -> bool:
    """Instance types with local NVMe storage refuse a volume key; AWS encrypts that storage itself."""
    return not has_instance_storage(config.training.instance_type)


def training_job_state(
    config: PlatformConfig,
    *,
    role_arn: str,
    image: str,
    output_uri: str,
    data_key_arn: str,
    subnet_ids: list[str],
    security_group_id: str,
    partition: str,
) -> dict[str, Any]:
    """The raw ``createTrainingJob.sync`` state: the L2 task has no spot, checkpoint or MaxWaitTime settings."""
    trn = config.training
    resources: dict[str, Any] = {
        "InstanceType": trn.instance_type,
        "InstanceCount": trn.instance_count,
        "VolumeSizeInGB": VOLUME_SIZE_GB,
    }
    if uses_volume_key(config):
        resources["VolumeKmsKeyId"] = data_key_arn
    parameters: dict[str, Any] = {
        "TrainingJobName.$": "$.job.name",
        "RoleArn": role_arn,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            # One source of truth: the regexes the trainer's own metric lines are written for.
            "MetricDefinitions": [dict(d) for d in METRIC_DEFINITIONS],
        },
        "HyperParameters.$": "$.job.hyperparameters",
        "InputDataConfig": [
            {
                "ChannelName": TRAINING_CHANNEL,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri.$": "$.job.dataUri",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": output_uri, "KmsKeyId": data_key_arn},
        "ResourceConfig": resources,
        "StoppingCondition": stopping_condition(config),
        "VpcConfig": {"SecurityGroupIds": [security_group_id], "Subnets": subnet_ids},
        # The trainer needs no network: SageMaker itself moves data, checkpoints and the model.
        "EnableNetworkIsolation": True,
        "EnableInterContainerTrafficEncryption": True,
    }
    if trn.use_spot:
        parameters["EnableManagedSpotTraining"] = True
        parameters["CheckpointConfig"] = {"S3Uri.$": "$.checkpoint.uri", "LocalPath": CHECKPOINT_LOCAL_PATH}
    return {
        "Type": "Task",
        "Resource": f"arn:{partition}:states:::sagemaker:createTrainingJob.sync",
        "Parameters": parameters,
        # The .sync result is DescribeTrainingJob's output: keep it for the metrics and the model URI.
        "ResultPath": "$.training",
    }
