"""Suite-wide settings: no test reaches AWS, and jsii stays quiet about node 20."""

from __future__ import annotations

import os

# Tests never talk to real AWS: fake credentials and a fixed region for every client built in the suite.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
