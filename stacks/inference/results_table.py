"""The results index's table: a Glue database and table over ``results-index/`` of the inference bucket, and an
Athena workgroup whose query results are KMS-encrypted beside it.

The table is the record of ``runtime/index_result.py`` (RECORD_COLUMNS, one JSON line per object, read with the
OpenX JSON SerDe) partitioned as ``results_layout`` writes keys: model_name, model_version, result_date. New
partitions are loaded with ``MSCK REPAIR TABLE`` (Hive-style ``key=value`` folders; docs/backfill.md). The objects
stay in the inference bucket (KMS with the data key, TLS only, retained); the workgroup enforces its result
location and SSE-KMS, so no query can write results elsewhere or unencrypted.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.components.function_shared.results_layout import RESULTS_PREFIX
from stacks.inference.runtime.index_result import RECORD_COLUMNS

PARTITION_KEYS = (("model_name", "string"), ("model_version", "string"), ("result_date", "string"))
TABLE_NAME = "results"
ATHENA_RESULTS_PREFIX = "athena-results/"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"


def database_name(prefix: str) -> str:
    """Glue database names are lowercase letters, digits and underscores (Athena refuses hyphens unquoted)."""
    return f"{prefix.replace('-', '_')}_results"


class ResultsTable(Construct):
    """``database``, ``table`` and ``workgroup`` over the results index of ``bucket``."""

    def __init__(self, scope: Construct, id_: str, *, prefix: str, bucket: s3.IBucket, key: kms.IKey) -> None:
        super().__init__(scope, id_)
        account = Stack.of(self).account
        self.database_name = database_name(prefix)
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="The platform's results index: one record per segmentation result",
            ),
        )
        self.table = glue.CfnTable(
            self,
            "Table",
            catalog_id=account,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=TABLE_NAME,
                description="One record per result: UIDs, model, per-label volumes in mL, timings, SEG location",
                table_type="EXTERNAL_TABLE",
                parameters={"classification": "json", "EXTERNAL": "TRUE"},
                partition_keys=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in PARTITION_KEYS],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=f"s3://{bucket.bucket_name}/{RESULTS_PREFIX}",
                    input_format="org.apache.hadoop.mapred.TextInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=JSON_SERDE, parameters={"ignore.malformed.json": "FALSE"}
                    ),
                    columns=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in RECORD_COLUMNS],
                ),
            ),
        )
        self.table.add_dependency(self.database)
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=f"{prefix}-results",
            description="Queries over the results index; results KMS-encrypted in the inference bucket",
            state="ENABLED",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=key.key_arn
                    ),
                ),
            ),
        )
