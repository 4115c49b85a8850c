"""The results index queried by a real SQL engine: DuckDB reads the partitioned records with the Glue table's schema.

The records are written by the index function itself (``index_result.build_record`` over SEGs the platform's SEG
writer made, under ``results_layout.record_key``); the schema is the synthesized Glue table's (columns and
partition keys, Hive types turned into DuckDB's); the queries are docs/backfill.md's, run verbatim. Expected rows
come from what the test wrote.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stacks.components.function_shared.results_layout import record_key
from stacks.inference.results_table import ATHENA_RESULTS_PREFIX, TABLE_NAME
from stacks.inference.runtime.index_result import RECORD_COLUMNS, Result, build_record
from testkit.results import make_seg
from tests.stacks.assembly import PROJECT_ROOT, Assembly
from tests.stacks.scaffold import alone
from tests.stacks.test_inference_stack import STACK, build

assembly = alone(build)
DOCS = PROJECT_ROOT / "docs" / "backfill.md"
DATASTORE_ID = "0123456789abcdef0123456789abcdef"
BUCKET = "inference-bucket"
# (image set, model version, spleen voxels, voxel mm, day): volumes 640, 256, 419.84, 0 and 450 mL.
RESULTS = [
    ("a" * 32, "0.5.9", 2000, (5.0, 8.0, 8.0), 1),
    ("b" * 32, "0.5.9", 800, (5.0, 8.0, 8.0), 2),
    ("c" * 32, "0.6.0", 1312, (5.0, 8.0, 8.0), 2),
    ("d" * 32, "0.5.9", 0, (2.0, 1.0, 1.0), 3),
    ("e" * 32, "0.6.0", 1000, (4.5, 10.0, 10.0), 3),
]


def duckdb_type(hive: str) -> str:
    """A Glue (Hive) column type as DuckDB spells it: string, double, bigint and map<k,v> are what the table uses."""
    hive = hive.strip()
    scalar = {"string": "VARCHAR", "double": "DOUBLE", "bigint": "BIGINT", "int": "INTEGER", "boolean": "BOOLEAN"}
    if hive in scalar:
        return scalar[hive]
    match = re.fullmatch(r"map<([^,]+),(.+)>", hive)
    if match:
        return f"MAP({duckdb_type(match[1])}, {duckdb_type(match[2])})"
    raise AssertionError(f"no DuckDB type for Glue type {hive!r}: extend duckdb_type")


def docs_query(name: str) -> str:
    text = DOCS.read_text()
    match = re.search(rf"```sql\n-- query: {re.escape(name)}\n(.*?)```", text, re.S)
    assert match, f"docs/backfill.md has no ```sql block starting '-- query: {name}'"
    return match[1]


@pytest.fixture(scope="module")
def table(assembly: Assembly) -> dict[str, Any]:
    return dict(assembly.one(STACK, "AWS::Glue::Table")["Properties"]["TableInput"])


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The index as the function writes it, in a folder laid out like the bucket."""
    root = tmp_path_factory.mktemp("bucket")
    rows = []
    for image_set_id, version, voxels, voxel_mm, day in RESULTS:
        seg, summary = make_seg(voxels, voxel_mm=voxel_mm, version=version, seed=day)
        completed = datetime(2026, 11, day, 9, tzinfo=UTC)
        result = Result(image_set_id, DATASTORE_ID, image_set_id, BUCKET, f"output/{image_set_id}/seg.dcm",
                        received_at=completed - timedelta(seconds=90), completed_at=completed)  # fmt: skip
        name, model_version, result_date, record = build_record(result, seg)
        assert record["label_volumes_ml"]["spleen"] == summary["spleen_volume_ml"]
        path = root / record_key(name, model_version, result_date, image_set_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record) + "\n")
        rows.append({**record, "model_name": name, "model_version": model_version,
                     "result_date": result_date.isoformat()})  # fmt: skip
    return root, rows


@pytest.fixture(scope="module")
def engine(table: dict[str, Any], written: tuple[Path, list[dict[str, Any]]]) -> Any:
    root, _ = written
    storage = table["StorageDescriptor"]
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    # s3://<bucket, a reference>/<prefix>: CDK joins the bucket name and the literal prefix.
    prefix = storage["Location"]["Fn::Join"][1][-1].lstrip("/")
    columns = {c["Name"]: duckdb_type(c["Type"]) for c in storage["Columns"]}
    partitions = {c["Name"]: duckdb_type(c["Type"]) for c in table["PartitionKeys"]}
    connection = duckdb.connect()
    files = str(root / prefix / "**" / "*.json").replace("'", "''")
    # DDL takes no prepared parameters; every piece is the test's own (a temporary folder, the table's schema).
    view = (
        f"CREATE VIEW {TABLE_NAME} AS SELECT * FROM read_json('{files}', format='newline_delimited', "  # noqa: S608
        f"hive_partitioning=true, columns={_struct(columns)}, hive_types={_struct(partitions)})"
    )
    connection.execute(view)
    return connection


def _struct(types: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in types.items()) + "}"


def test_the_glue_table_is_the_record_and_the_layout(table: dict[str, Any]) -> None:
    storage = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in storage["Columns"]] == list(RECORD_COLUMNS)
    assert [c["Name"] for c in table["PartitionKeys"]] == ["model_name", "model_version", "result_date"]
    assert storage["Location"]["Fn::Join"][1][-1] == "/results-index/"
    assert table["TableType"] == "EXTERNAL_TABLE"


def test_the_workgroup_enforces_kms_encrypted_results_in_the_inference_bucket(assembly: Assembly) -> None:
    (workgroup,) = assembly.resources(STACK, "AWS::Athena::WorkGroup").values()
    configuration = workgroup["Properties"]["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    results = configuration["ResultConfiguration"]
    assert results["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    assert "KmsKey" in results["EncryptionConfiguration"]
    assert results["OutputLocation"]["Fn::Join"][1][-1] == f"/{ATHENA_RESULTS_PREFIX}"


def test_every_record_reads_back_with_the_table_s_schema(engine: Any, written: Any) -> None:
    _, rows = written
    got = engine.execute(f"SELECT image_set_id, model_version, result_date, inference_seconds FROM {TABLE_NAME} "  # noqa: S608
                         "ORDER BY image_set_id").fetchall()  # fmt: skip
    assert got == [(r["image_set_id"], r["model_version"], r["result_date"], 90.0) for r in rows]


def test_studies_with_a_spleen_over_400_ml(engine: Any, written: Any) -> None:
    _, rows = written
    expected = sorted(
        ((r["study_instance_uid"], r["model_version"], r["label_volumes_ml"]["spleen"]) for r in rows
         if r["label_volumes_ml"]["spleen"] > 400),
        key=lambda row: (-row[2], row[0]),
    )  # fmt: skip
    assert len(expected) == 3  # 640, 450 and 419.84 mL; 256 and 0 are not
    got = engine.execute(docs_query("spleen-over-400")).fetchall()
    print("spleen-over-400:", got)  # the closing note's rows: pytest tests/stacks/test_results_index.py -s
    assert got == expected


def test_segs_from_model_version_0_5_9(engine: Any, written: Any) -> None:
    _, rows = written
    expected = sorted((r["image_set_id"], r["seg_sop_instance_uid"], r["seg_location"]) for r in rows
                      if r["model_version"] == "0.5.9")  # fmt: skip
    assert [row[0] for row in expected] == ["a" * 32, "b" * 32, "d" * 32]
    got = engine.execute(docs_query("segs-of-0.5.9")).fetchall()
    print("segs-of-0.5.9:", got)
    assert got == expected
