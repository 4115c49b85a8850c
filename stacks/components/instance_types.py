"""Facts about SageMaker instance types that decide how the endpoints and training jobs are configured."""

from __future__ import annotations

import re

# Families with local NVMe instance storage: SageMaker refuses a volume KmsKeyId for them ("d" variants such as
# g4dn, m5d, p4d, and the families whose only storage is NVMe). Read from the SageMaker instance-type tables.
_INSTANCE_STORAGE_FAMILY = re.compile(r"^([a-z]+\d+[a-z]*d[a-z]*|g5|g6|g6e|p5|p5e|p5en|inf2|trn1|trn1n)$")


def has_instance_storage(instance_type: str) -> bool:
    """Whether ``ml.<family>.<size>`` has local NVMe storage (and so cannot take a volume KMS key)."""
    return bool(_INSTANCE_STORAGE_FAMILY.match(instance_type.split(".")[1]))
