# What mypy reads for ``s3_uri``, the top-level module of every function's asset (pyproject.toml, mypy_path):
# the repository module it is a copy of.
from model_code.core.s3_uri import S3Location as S3Location
from model_code.core.s3_uri import parse_s3_uri as parse_s3_uri
