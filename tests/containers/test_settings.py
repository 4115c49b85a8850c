"""Serving settings: parsed once from the environment; a wrong value names the variable."""

from __future__ import annotations

import pytest

from model_code.serving.settings import S3Location, ServingSettings, parse_s3_uri

ROLE = "arn:aws:iam::123456789012:role/import"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        # nothing configured: nothing published, device chosen by the pipeline
        ({}, ServingSettings()),
        # SEG to S3 only
        ({"SEG_OUTPUT_S3_URI": "s3://out-bucket/segs/"}, ServingSettings(seg_output=S3Location("out-bucket", "segs/"))),
        # SEG to S3 and back into HealthImaging, local endpoint overrides
        (
            {
                "SEG_OUTPUT_S3_URI": "s3://out-bucket/segs",
                "HEALTHIMAGING_IMPORT_ROLE_ARN": ROLE,
                "HEALTHIMAGING_IMPORT_OUTPUT_S3_URI": "s3://out-bucket/import-reports/",
                "HEALTHIMAGING_ENDPOINT_URL": "http://127.0.0.1:9999",
                "AWS_REGION": "eu-west-1",
                "SERVING_DEVICE": "cpu",
                "SERVING_SW_BATCH_SIZE": "2",
            },
            ServingSettings(
                seg_output=S3Location("out-bucket", "segs"),
                import_role_arn=ROLE,
                import_output=S3Location("out-bucket", "import-reports/"),
                healthimaging_endpoint_url="http://127.0.0.1:9999",
                region="eu-west-1",
                device="cpu",
                sw_batch_size=2,
            ),
        ),
    ],
)
def test_settings_from_env(environ: dict[str, str], expected: ServingSettings) -> None:
    assert ServingSettings.from_env(environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SEG_OUTPUT_S3_URI": "s://typo/segs"}, "SEG_OUTPUT_S3_URI must look like s3://bucket/prefix/"),
        ({"HEALTHIMAGING_IMPORT_ROLE_ARN": "import-role"}, "HEALTHIMAGING_IMPORT_ROLE_ARN must be an IAM role ARN"),
        ({"HEALTHIMAGING_IMPORT_ROLE_ARN": ROLE}, "needs SEG_OUTPUT_S3_URI"),
        ({"SERVING_SW_BATCH_SIZE": "0"}, "SERVING_SW_BATCH_SIZE must be an integer >= 1"),
    ],
)
def test_invalid_settings_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServingSettings.from_env(environ)


@pytest.mark.parametrize(
    ("location", "name", "key"),
    [
        (S3Location("b", "segs/"), "x.dcm", "segs/x.dcm"),
        (S3Location("b", "segs"), "x.dcm", "segs/x.dcm"),
        (S3Location("b", ""), "x.dcm", "x.dcm"),
    ],
)
def test_keys_join_prefix_and_name(location: S3Location, name: str, key: str) -> None:
    assert location.key(name) == key


def test_parse_s3_uri_round_trips() -> None:
    assert parse_s3_uri("s3://bucket-1/a/b/", what="x").uri == "s3://bucket-1/a/b/"
