"""The CLI reads its series from a real DICOMweb server (Orthanc on loopback) and stores the SEG back into the
source study with STOW-RS: ``--dicomweb-url URL --study-uid UID --series-uid UID [--store]``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from model_code.core.dicomweb import DicomWebSession
from model_code.segmentation import predict
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom
from testkit.orthanc import OrthancServer, orthanc_server

SERIES_UID = "1.2.826.0.1.3680043.8.498.77"
# Orthanc's Lua filter (https://orthanc.uclouvain.be/book/users/lua.html) that drops every SEG it receives.
DROP_SEG = 'function ReceivedInstanceFilter(dicom, origin, info) return dicom.Modality ~= "SEG" end'


def _write_series(folder: Path) -> tuple[list[pydicom.Dataset], str]:
    phantom = make_phantom(shape=(8, 32, 32), spacing=(2.5, 1.6, 1.6))
    paths = write_dicom_series(phantom.volume_hu, phantom.affine, folder, series_uid=SERIES_UID)
    datasets: list[pydicom.Dataset] = [pydicom.dcmread(path) for path in paths]
    return datasets, str(datasets[0].StudyInstanceUID)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[pydicom.Dataset], str]:
    folder = tmp_path_factory.mktemp("ct")
    datasets, study = _write_series(folder)
    return folder, datasets, study


@pytest.fixture(scope="module")
def orthanc(source: tuple[Path, list[pydicom.Dataset], str]) -> Iterator[OrthancServer]:
    _, datasets, study = source
    with orthanc_server() as server:
        DicomWebSession(server.dicomweb_url).store(datasets, study_instance_uid=study)
        yield server


def _args(model_dir: Path, out: Path, url: str, study: str, *extra: str) -> list[str]:
    return ["--model-dir", str(model_dir), "--output-dir", str(out), "--device", "cpu",
            "--dicomweb-url", url, "--study-uid", study, "--series-uid", SERIES_UID, *extra]


def test_reads_segments_and_stores_the_seg_into_the_study(tmp_path, threshold_model_dir, source, orthanc):
    folder, _, study = source
    out = tmp_path / "out"
    assert predict.main(_args(threshold_model_dir, out, orthanc.dicomweb_url, study, "--store")) == predict.EXIT_OK

    seg = pydicom.dcmread(out / "seg.dcm")
    result = json.loads((out / "result.json").read_text())
    assert result["source"] == {"dicomwebUrl": orthanc.dicomweb_url, "studyInstanceUid": study,
                                "seriesInstanceUid": SERIES_UID}
    assert result["stored"]["sopInstanceUid"] == str(seg.SOPInstanceUID)
    assert result["stored"]["studyInstanceUid"] == study
    assert result["stored"]["retrieveUrl"].endswith(f"/instances/{seg.SOPInstanceUID}")
    assert result["timings_s"]["store"] > 0

    # The server holds it, in the source study, as the SEG written to disk.
    session = DicomWebSession(orthanc.dicomweb_url)
    series = {item["0020000E"]["Value"][0]: item["00080060"]["Value"][0] for item in session.search_series(study)}
    assert series == {SERIES_UID: "CT", str(seg.SeriesInstanceUID): "SEG"}
    stored = session.retrieve_instance(study, str(seg.SeriesInstanceUID), str(seg.SOPInstanceUID))
    assert stored.SOPClassUID == seg.SOPClassUID
    np.testing.assert_array_equal(stored.pixel_array, seg.pixel_array)

    # The same series read from the folder gives the same segmentation.
    from_folder = tmp_path / "folder"
    assert predict.main(["--model-dir", str(threshold_model_dir), "--dicom-dir", str(folder), "--output-dir",
                         str(from_folder), "--device", "cpu"]) == predict.EXIT_OK
    np.testing.assert_array_equal(pydicom.dcmread(from_folder / "seg.dcm").pixel_array, seg.pixel_array)
    assert "stored" not in json.loads((from_folder / "result.json").read_text())


def test_without_store_nothing_is_written_back(tmp_path, threshold_model_dir, source, orthanc):
    _, _, study = source
    before = len(DicomWebSession(orthanc.dicomweb_url).search_series(study))
    assert predict.main(_args(threshold_model_dir, tmp_path, orthanc.dicomweb_url, study)) == predict.EXIT_OK
    assert "stored" not in json.loads((tmp_path / "result.json").read_text())
    assert len(DicomWebSession(orthanc.dicomweb_url).search_series(study)) == before


def test_a_series_that_is_not_there_exits_2(tmp_path, capsys, threshold_model_dir, source, orthanc):
    _, _, study = source
    args = _args(threshold_model_dir, tmp_path, orthanc.dicomweb_url, study)
    args[args.index(SERIES_UID)] = "1.2.3.4.5"
    assert predict.main(args) == predict.EXIT_BAD_INPUT
    assert "HTTP 404" in capsys.readouterr().err


def test_a_store_the_server_drops_exits_1_and_keeps_the_seg(tmp_path, capsys, threshold_model_dir, source):
    _, datasets, study = source
    with orthanc_server(DROP_SEG) as server:
        DicomWebSession(server.dicomweb_url).store(datasets, study_instance_uid=study)
        code = predict.main(_args(threshold_model_dir, tmp_path, server.dicomweb_url, study, "--store"))
    assert code == predict.EXIT_FAILED
    err = capsys.readouterr().err
    assert "does not hold instance" in err
    assert "the SEG is kept at" in err
    assert (tmp_path / "seg.dcm").is_file()
    assert not (tmp_path / "result.json").exists()  # no result claims a stored SEG


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], "give the series as --dicom-dir"),  # no source
        (["--dicom-dir", "d", "--dicomweb-url", "http://x/dicom-web"], "give the series as"),  # two sources
        (["--dicom-dir", "d", "--store"], "--store go with --dicomweb-url"),
        (["--dicomweb-url", "http://x/dicom-web", "--series-uid", "1.2"], "needs --study-uid and --series-uid"),
        (["--dicomweb-url", "ftp://x", "--study-uid", "1", "--series-uid", "2"], "http(s) DICOMweb root"),
        (["--dicomweb-url", "http://x", "--study-uid", "1.2.x", "--series-uid", "2"], "must be a DICOM UID"),
        (["--dicomweb-url", "http://x", "--study-uid", "1", "--series-uid", "2", "--dicomweb-auth", "basic"],
         "invalid choice"),
    ],
)
def test_bad_source_arguments_exit_2(tmp_path, capsys, threshold_model_dir, arguments, expected):
    with pytest.raises(SystemExit) as raised:
        predict.main(["--model-dir", str(threshold_model_dir), "--output-dir", str(tmp_path), *arguments])
    assert raised.value.code == predict.EXIT_BAD_INPUT
    assert expected in capsys.readouterr().err
