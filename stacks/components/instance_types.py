"""Facts about SageMaker instance types that decide how the endpoints and training jobs are configured."""

from __future__ import annotations

import re

# Families with local NVMe instance storage: SageMaker refuses a volume KmsKeyId for them ("d" variants such as
# g4dn, m5d, p4d, and the families whose only storage is NVMe). Read from the SageMaker instance-type tables.
_INSTANCE_STORAGE_FAMILY = re.compile(r"^([a-z]+\d+[a-z]*d[a-z]*|g5|g6|g6e|p5|p5e|p5en|inf2|trn1|trn1n)$")


def has_instance_storage(instance_type: str) -> bool:
    """Whether ``ml.<family>.<size>`` has local NVMe storage (and so cannot take a volume KMS key)."""
    return bool(_INSTANCE_STORAGE_FAMILY.match(instance_type.split(".")[1]))


# (vCPUs, GPUs) of the SageMaker hosting types the endpoints are sized for (the EC2/SageMaker instance-type
# tables). The thread rule (model_code/core/threads.py) needs them; a type missing here must have its
# workers and threads set in the configuration (stacks/config/sections.py says so).
_VCPUS = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "9xlarge": 36, "12xlarge": 48,
          "16xlarge": 64, "18xlarge": 72, "24xlarge": 96, "32xlarge": 128, "48xlarge": 192}
_CPU_FAMILIES = {
    "m5": ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge"),
    "c5": ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge"),
    "m6i": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge"),
    "c6i": ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge"),
}
# GPUs per size; vCPUs as above.
_GPU_FAMILIES = {
    "g4dn": {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "12xlarge": 4, "16xlarge": 1},
    "g5": {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "12xlarge": 4, "16xlarge": 1, "24xlarge": 4,
           "48xlarge": 8},
    "p3": {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8},
}
INSTANCE_CAPACITY: dict[str, tuple[int, int]] = {
    **{f"ml.{family}.{size}": (_VCPUS[size], 0) for family, sizes in _CPU_FAMILIES.items() for size in sizes},
    **{f"ml.{family}.{size}": (_VCPUS[size], gpus) for family, sizes in _GPU_FAMILIES.items()
       for size, gpus in sizes.items()},
}


def instance_capacity(instance_type: str) -> tuple[int, int] | None:
    """(vCPUs, GPUs) of a SageMaker instance type, None for one the table above does not list."""
    return INSTANCE_CAPACITY.get(instance_type)
