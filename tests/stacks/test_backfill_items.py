"""The backfill's item logic against the loopback HealthImaging (5,200 image sets, 104 pages) and moto.

The archive: image set i is CT unless i % 4 == 2 (MR), its study date is day i % 1460 after 2019-01-01, patient
P<i % 997>. Listing runs over HTTP through botocore's whole stack (its retry handler included); submission writes
to moto's S3 and calls moto's InvokeEndpointAsync, whose every request botocore validated against the service
model. Time is simulated where the pacer waits (no wall-clock assertions).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from stacks.backfill.runtime import backfill_items as items
from stacks.backfill.runtime.backfill_items import BackfillInputError, ImageSetItem, Run, Selection
from stacks.components.function_shared.healthimaging_quotas import SEARCH_IMAGE_SETS, Pacer
from stacks.components.function_shared.results_layout import record_key
from testkit.healthimaging import DATASTORE_ID, catalog_image_set, loopback_client, serve
from tests.stacks.fake_aws import REGION, mocked_aws

ARCHIVE_SIZE = 5_200
PAGES = ARCHIVE_SIZE // 50 + (ARCHIVE_SIZE % 50 > 0)
BUCKET = "inference-bucket"
ENDPOINT = "monai-imaging-dev-spleen-async"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
FIRST_DAY = date(2019, 1, 1)


def modality_of(index: int) -> str:
    return "MR" if index % 4 == 2 else "CT"


def study_date_of(index: int) -> str:
    return (FIRST_DAY + timedelta(days=index % 1460)).strftime("%Y%m%d")


ARCHIVE = [
    catalog_image_set(i, modality=modality_of(i), study_date=study_date_of(i)) for i in range(ARCHIVE_SIZE)
]
BY_ID = {image_set.image_set_id: i for i, image_set in enumerate(ARCHIVE)}


def expected(selection: Selection) -> set[str]:
    """What a selection should give, computed from the archive's own documents (not through any search)."""
    out = set()
    for image_set in ARCHIVE:
        study = image_set.document["Study"]["DICOM"]
        (series,) = image_set.document["Study"]["Series"].values()
        if selection.modality and series["DICOM"]["Modality"] != selection.modality:
            continue
        if selection.study_date_from and not (
            selection.study_date_from <= study["StudyDate"] <= (selection.study_date_to or "")
        ):
            continue
        if selection.attribute == "DICOMPatientId" and image_set.document["Patient"]["DICOM"]["PatientID"] != (
            selection.value
        ):
            continue
        out.add(image_set.image_set_id)
    return out


class SimulatedTime:
    """A clock the pacer reads and a sleep that advances it; every acquire's moment is kept."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def free_pacer() -> Pacer:
    """Quota pacing in simulated time: the listing never waits on the wall clock."""
    simulated = SimulatedTime()
    return Pacer.for_quota(SEARCH_IMAGE_SETS, clock=simulated.clock, sleep=simulated.sleep)


@pytest.fixture(scope="module")
def archive() -> Iterator[Any]:
    with serve(ARCHIVE, page_size=50) as server:
        yield server


def client_of(server: Any, **kwargs: Any) -> Any:
    return loopback_client(server.url, **kwargs)


# --- listing ----------------------------------------------------------------------------------------------------


def test_the_listing_follows_every_page_of_the_archive_under_the_published_quota(archive: Any) -> None:
    simulated, moments = SimulatedTime(), []
    pacer = Pacer.for_quota(SEARCH_IMAGE_SETS, workers=2, clock=simulated.clock, sleep=simulated.sleep)
    original = pacer.acquire

    def acquire() -> None:
        original()
        moments.append(simulated.now)

    pacer.acquire = acquire  # type: ignore[method-assign]
    before = archive.requests["SearchImageSets"]
    listing = items.list_image_sets(client_of(archive), DATASTORE_ID, Selection(), pacer=pacer)
    assert listing.complete
    assert listing.pages == PAGES == archive.requests["SearchImageSets"] - before
    ids = [item.image_set_id for item in listing.items]
    assert len(ids) == len(set(ids)) == ARCHIVE_SIZE == listing.scanned
    first = listing.items[0]
    assert first.study_instance_uid == ARCHIVE[BY_ID[first.image_set_id]].study_instance_uid
    assert first.modality == modality_of(BY_ID[first.image_set_id])
    # The pace: the backfill's share of SearchImageSets' 25 TPS, split between two workers.
    rate, burst = pacer.rate_per_s, pacer.burst
    assert rate == SEARCH_IMAGE_SETS.rate_per_s * 0.5 / 2
    assert len(moments) == PAGES
    # In any window of w seconds a token bucket lets at most burst + rate * w calls through.
    for start, moment in enumerate(moments):
        for end in range(start, len(moments)):
            assert end - start + 1 <= burst + rate * (moments[end] - moment) + 1e-9
    assert moments[-1] == pytest.approx((PAGES - burst) / rate)  # and it waited no longer than that


@pytest.mark.parametrize(
    "document",
    [
        {"modality": "CT"},  # the service cannot search on modality: matched on each summary
        {"studyDateFrom": "20200301", "studyDateTo": "20200430"},  # BETWEEN on DICOMStudyDateAndTime, server side
        {"attribute": {"name": "DICOMPatientId", "value": "P0042"}},  # EQUAL on a searchable attribute
        {"modality": "MR", "studyDateFrom": "20190101", "studyDateTo": "20191231",
         "attribute": {"name": "DICOMPatientId", "value": "P0042"}},  # all three (two service filters, the limit)
        {"modality": "PT", "studyDateFrom": "20200101", "studyDateTo": "20200131"},  # nothing matches: no item
    ],
)  # fmt: skip
def test_a_filter_gives_exactly_the_matching_image_sets(archive: Any, document: dict[str, Any]) -> None:
    selection = Selection.from_input(document)
    listing = items.list_image_sets(client_of(archive), DATASTORE_ID, selection, pacer=free_pacer())
    assert listing.complete
    assert {item.image_set_id for item in listing.items} == expected(selection)
    if selection.modality == "CT":
        assert listing.pages == PAGES
        assert listing.scanned == ARCHIVE_SIZE


def test_throttling_is_answered_with_throttling_exception_and_retried(archive: Any) -> None:
    """botocore's standard retry mode (the client's) retries the 429s; the listing is the unthrottled one."""
    before = archive.requests["SearchImageSets"]
    archive.fail_next("SearchImageSets", 429, "ThrottlingException", times=2)
    listing = items.list_image_sets(client_of(archive), DATASTORE_ID, Selection(), pacer=free_pacer())
    assert listing.complete
    assert len({i.image_set_id for i in listing.items}) == ARCHIVE_SIZE
    assert archive.requests["SearchImageSets"] - before == PAGES + 2  # each throttled page asked again


def test_throttling_past_the_retries_stops_with_the_token_and_the_listing_resumes_from_it(archive: Any) -> None:
    client = client_of(archive, max_attempts=1)  # no botocore retry: the first 429 ends the call
    first = items.list_image_sets(client, DATASTORE_ID, Selection(), pacer=free_pacer(), max_pages=30)
    assert first.pages == 30
    assert first.next_token is not None
    assert first.interrupted_by is None
    archive.fail_next("SearchImageSets", 429, "ThrottlingException")
    stopped = items.list_image_sets(client, DATASTORE_ID, Selection(), pacer=free_pacer(), next_token=first.next_token)
    assert stopped.interrupted_by == "ThrottlingException"
    assert stopped.pages == 0
    assert stopped.next_token == first.next_token  # the page that failed is the one to read again
    rest = items.list_image_sets(client, DATASTORE_ID, Selection(), pacer=free_pacer(), next_token=stopped.next_token)
    assert rest.complete
    ids = [i.image_set_id for i in first.items + rest.items]
    assert len(ids) == len(set(ids)) == ARCHIVE_SIZE


def test_an_error_no_retry_can_clear_raises(archive: Any) -> None:
    archive.fail_next("SearchImageSets", 403, "AccessDeniedException")
    with pytest.raises(ClientError, match="AccessDeniedException"):
        items.list_image_sets(client_of(archive), DATASTORE_ID, Selection(), pacer=free_pacer())


# --- submission, resume and the failure path --------------------------------------------------------------------

# A slice of the archive small enough to submit quickly through moto: CT studies of March 2020 (~92).
MARCH_2020 = Selection.from_input({"modality": "CT", "studyDateFrom": "20200301", "studyDateTo": "20200331"})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mocked_aws(monkeypatch):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        runtime = boto3.client("sagemaker-runtime", region_name=REGION)
        invocations: list[dict[str, Any]] = []
        runtime.meta.events.register(
            "provide-client-params.sagemaker-runtime.InvokeEndpointAsync",
            lambda params, **_: invocations.append(dict(params)),
        )
        yield {"s3": s3, "runtime": runtime, "cloudwatch": boto3.client("cloudwatch", region_name=REGION),
               "invocations": invocations}  # fmt: skip


def run_of(version: str = "0.5.9") -> Run:
    return Run(DATASTORE_ID, "spleen_ct_segmentation", version, ENDPOINT, BUCKET)


def march(archive: Any) -> list[ImageSetItem]:
    listing = items.list_image_sets(client_of(archive), DATASTORE_ID, MARCH_2020, pacer=free_pacer())
    assert len(listing.items) == len(expected(MARCH_2020)) > 50
    return listing.items


def index_result(s3: Any, run: Run, image_set_id: str, day: date = date(2026, 12, 2)) -> None:
    """What the results index holds once a result arrived (stacks/components/function_shared/results_layout.py)."""
    s3.put_object(Bucket=BUCKET, Key=record_key(run.model_name, run.model_version, day, image_set_id), Body=b"{}")


def test_a_submission_writes_the_request_and_invokes_the_endpoint_with_the_version_s_output_path(
    archive: Any, aws: dict[str, Any]
) -> None:
    run, (item, *_) = run_of(), march(archive)
    outcome = items.submit_batch([item], s3=aws["s3"], sagemaker_runtime=aws["runtime"], run=run, room=1, now=NOW)
    assert len(outcome.submitted) == 1
    assert not outcome.failed
    (call,) = aws["invocations"]
    assert call == {
        "EndpointName": ENDPOINT,
        "InputLocation": f"s3://{BUCKET}/input/{DATASTORE_ID}/{item.image_set_id}.json",
        "ContentType": "application/json",
        "Accept": "application/dicom",
        "InferenceId": item.image_set_id,
        "S3OutputPathExtension": f"{DATASTORE_ID}/{item.image_set_id}/spleen_ct_segmentation-0.5.9",
        "Filename": "seg.dcm",
    }
    claim = aws["s3"].get_object(Bucket=BUCKET, Key=run.claim_key(item.image_set_id))["Body"].read()
    assert b'"status": "INVOKED"' in claim


def test_a_rerun_resumes_after_a_partial_run(archive: Any, aws: dict[str, Any]) -> None:
    s3, runtime, run = aws["s3"], aws["runtime"], run_of()
    todo = march(archive)[:60]
    # Before any run, some image sets already have a result of this version (the live flow made them).
    for item in todo[:10]:
        index_result(s3, run, item.image_set_id)
    plan = items.pending(s3, run, todo)
    assert (len(plan.pending), plan.finished, plan.in_flight) == (len(todo) - 10, 10, 0)
    # A partial run: 30 submitted, then it stops; 20 of their results arrive.
    first = items.submit_batch(plan.pending[:30], s3=s3, sagemaker_runtime=runtime, run=run, room=30, now=NOW)
    assert len(first.submitted) == 30
    for done in first.submitted[:20]:
        index_result(s3, run, done["imageSetId"])
    again = items.pending(s3, run, todo)
    assert (again.finished, again.in_flight, len(again.pending)) == (30, 10, len(todo) - 40)
    second = items.submit_batch(again.pending, s3=s3, sagemaker_runtime=runtime, run=run, room=10_000, now=NOW)
    assert len(second.submitted) == len(todo) - 40
    invoked = [call["InferenceId"] for call in aws["invocations"]]
    assert len(invoked) == len(set(invoked)) == len(todo) - 10  # nothing finished or in flight was redone
    # A new model version has no results yet: everything is pending again, under its own claims.
    assert len(items.pending(s3, run_of("0.6.0"), todo).pending) == len(todo)


def test_two_submitters_racing_on_one_item_invoke_once(archive: Any, aws: dict[str, Any]) -> None:
    run, (item, *_) = run_of(), march(archive)
    kwargs = {"s3": aws["s3"], "sagemaker_runtime": aws["runtime"], "run": run, "room": 1, "now": NOW}
    assert len(items.submit_batch([item], **kwargs).submitted) == 1
    assert items.submit_batch([item], **kwargs).skipped == [item.image_set_id]
    assert len(aws["invocations"]) == 1


def test_a_claim_left_by_a_dead_submitter_is_taken_over_once_it_is_stale(archive: Any, aws: dict[str, Any]) -> None:
    s3, run, (item, *_) = aws["s3"], run_of(), march(archive)
    # A submitter claimed the item and died before invoking: the claim stays CLAIMED.
    s3.put_object(Bucket=BUCKET, Key=run.claim_key(item.image_set_id),
                  Body=b'{"status": "CLAIMED", "claimedAt": "2026-12-02T11:00:00+00:00"}')
    written = s3.head_object(Bucket=BUCKET, Key=run.claim_key(item.image_set_id))["LastModified"]
    kwargs = {"s3": s3, "sagemaker_runtime": aws["runtime"], "run": run, "room": 1}
    fresh = items.submit_batch([item], **kwargs, now=written + timedelta(minutes=1))
    assert fresh.skipped == [item.image_set_id]  # maybe still alive: left alone
    stale = items.submit_batch([item], **kwargs, now=written + items.STALE_CLAIM + timedelta(seconds=1))
    assert [s["imageSetId"] for s in stale.submitted] == [item.image_set_id]
    assert [call["InferenceId"] for call in aws["invocations"]] == [item.image_set_id]
    # An INVOKED claim is never taken over, however old.
    later = items.submit_batch([item], **kwargs, now=written + timedelta(days=1))
    assert later.skipped == [item.image_set_id]


def fail_invocations(runtime: Any, failing: dict[str, tuple[str, int]]) -> None:
    """Answer InvokeEndpointAsync of the named inference IDs with a service error (code, HTTP status)."""

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params.get("InferenceId") in failing:
            code, status = failing[params["InferenceId"]]
            raise ClientError(
                {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                "InvokeEndpointAsync",
            )

    runtime.meta.events.register_first("provide-client-params.sagemaker-runtime.InvokeEndpointAsync", refuse)


def test_a_failed_item_lands_in_the_failure_path_and_is_retried_alone(archive: Any, aws: dict[str, Any]) -> None:
    s3, runtime, run = aws["s3"], aws["runtime"], run_of()
    todo = march(archive)[:12]
    broken, invalid = todo[5].image_set_id, todo[6].image_set_id
    fail_invocations(runtime, {broken: ("ServiceUnavailable", 503), invalid: ("ValidationError", 400)})
    outcome = items.submit_batch(todo, s3=s3, sagemaker_runtime=runtime, run=run, room=10_000, now=NOW)
    assert len(outcome.submitted) == len(todo) - 2
    failures = {f["imageSetId"]: f for f in outcome.failed}
    assert failures[broken]["retryable"] is True
    assert failures[broken]["code"] == "ServiceUnavailable"
    assert failures[invalid]["retryable"] is False
    assert "injected ValidationError" in failures[invalid]["reason"]
    recorded = {item.image_set_id: record for item, record in items.failed_items(s3, run)}
    assert recorded.keys() == {broken, invalid}
    # A rerun leaves failed items to retry-failed; none was left claimed.
    plan = items.pending(s3, run, todo)
    assert (plan.pending, plan.failed, plan.in_flight) == ([], 2, len(todo) - 2)
    # The endpoint recovers; retry-failed submits the one named item and nothing else.
    runtime.meta.events.unregister("provide-client-params.sagemaker-runtime.InvokeEndpointAsync", unique_id=None)
    aws["invocations"].clear()
    fresh = boto3.client("sagemaker-runtime", region_name=REGION)
    fresh.meta.events.register(
        "provide-client-params.sagemaker-runtime.InvokeEndpointAsync",
        lambda params, **_: aws["invocations"].append(dict(params)),
    )
    retried = items.retry_failed(s3, fresh, run, room=10, now=NOW, image_set_ids=[broken])
    assert [s["imageSetId"] for s in retried.submitted] == [broken]
    assert [call["InferenceId"] for call in aws["invocations"]] == [broken]
    assert [item.image_set_id for item, _ in items.failed_items(s3, run)] == [invalid]


# --- the backlog ------------------------------------------------------------------------------------------------


def put_backlog(cloudwatch: Any, value: float, *, ago: timedelta) -> None:
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[{"MetricName": "ApproximateBacklogSize", "Value": value, "Timestamp": NOW - ago,
                     "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}]}],
    )  # fmt: skip


def test_the_backlog_is_the_newest_point_and_zero_without_one(aws: dict[str, Any]) -> None:
    assert items.read_backlog(aws["cloudwatch"], ENDPOINT, now=NOW) == 0.0  # never invoked: no metric yet
    put_backlog(aws["cloudwatch"], 12, ago=timedelta(minutes=3))
    put_backlog(aws["cloudwatch"], 7, ago=timedelta(seconds=30))
    assert items.read_backlog(aws["cloudwatch"], ENDPOINT, now=NOW) == 7.0


@pytest.mark.parametrize(
    ("backlog", "target", "workers", "room"),
    [
        (0, 20, 1, 20),  # an idle endpoint: fill to the target
        (7, 20, 4, 4),  # a quarter of the gap of 13 each, rounded up
        (20, 20, 4, 0),  # at the target: wait
        (35, 20, 2, 0),  # over it (scale-out pending): wait, never negative
    ],
)
def test_the_room_keeps_the_backlog_near_its_target(backlog: float, target: int, workers: int, room: int) -> None:
    assert items.room(backlog, target, workers) == room


def test_a_batch_over_the_room_is_deferred_for_the_wait_loop(archive: Any, aws: dict[str, Any]) -> None:
    todo = march(archive)[:10]
    outcome = items.submit_batch(todo, s3=aws["s3"], sagemaker_runtime=aws["runtime"], run=run_of(), room=4, now=NOW)
    assert [s["imageSetId"] for s in outcome.submitted] == [i.image_set_id for i in todo[:4]]
    assert outcome.deferred == todo[4:]


# --- input ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"modality": "ct"}, "filter.modality 'ct' is not a DICOM modality code"),
        ({"studyDateFrom": "2020-01-01", "studyDateTo": "20200101"}, "filter.studyDateFrom '2020-01-01' is not a date"),
        ({"studyDateFrom": "20200230", "studyDateTo": "20200301"}, "'20200230' is not a date written YYYYMMDD"),
        ({"studyDateFrom": "20200101"}, "needs both studyDateFrom and studyDateTo"),
        ({"studyDateFrom": "20210101", "studyDateTo": "20200101"}, "20210101 is after filter.studyDateTo 20200101"),
        ({"attribute": {"name": "PatientName", "value": "X"}}, "'PatientName' is not searchable: use one of"),
        ({"attribute": {"name": "DICOMPatientId"}}, 'filter.attribute must be {"name": ..., "value": ...}'),
        ({"bodyPart": "ABDOMEN"}, "filter has unknown keys ['bodyPart']"),
    ],
)
def test_a_bad_filter_is_refused_with_what_to_send(document: dict[str, Any], message: str) -> None:
    with pytest.raises(BackfillInputError, match=message.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{")):
        Selection.from_input(document)
    assert BackfillInputError.status == 400


@pytest.mark.parametrize(
    ("datastore_id", "version", "message"),
    [
        ("nope", "0.5.9", "datastoreId 'nope' is not a HealthImaging ID"),
        (DATASTORE_ID, "0.5.9/../x", "model version '0.5.9/../x' cannot name a results partition"),
    ],
)
def test_a_bad_run_is_refused(datastore_id: str, version: str, message: str) -> None:
    with pytest.raises(BackfillInputError, match=message.replace(".", r"\.")):
        Run(datastore_id, "spleen_ct_segmentation", version, ENDPOINT, BUCKET)


def test_selection_round_trips_through_the_state_machine_input() -> None:
    document = {"modality": "CT", "studyDateFrom": "20200101", "studyDateTo": "20201231",
                "attribute": {"name": "DICOMAccessionNumber", "value": "A0000042"}}  # fmt: skip
    assert Selection.from_input(document).to_input() == document
    item = ImageSetItem.from_summary(
        {"imageSetId": ARCHIVE[0].image_set_id, "DICOMTags": {"DICOMSeriesModality": "CT"}}
    )
    assert ImageSetItem.from_json(item.to_json()) == item

