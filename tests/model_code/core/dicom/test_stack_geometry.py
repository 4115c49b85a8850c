"""stack_geometry: the slice rules every loader shares, on datasets and on metadata-document values alike."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.multival import MultiValue

from model_code.core.dicom import InvalidSeriesError, series_from_datasets
from model_code.core.dicom.series import stack_geometry
from tests.model_code.healthimaging.hi_helpers import shuffled, synthetic_series


def _document_values(datasets):
    """Each slice's attributes as a HealthImaging document holds them: DS and IS as text, lists for multi-values."""
    keywords = ("SeriesInstanceUID", "ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows", "Columns")
    rows = []
    for ds in datasets:
        row = {}
        for keyword in keywords:
            value = ds.get(keyword)
            row[keyword] = [str(v) for v in value] if isinstance(value, MultiValue) else value
        rows.append(row)
    return rows


def test_document_values_give_the_geometry_the_datasets_give():
    datasets, arrays = synthetic_series(6)
    order = shuffled(list(range(6)))
    datasets, arrays = [datasets[i] for i in order], [arrays[i] for i in order]
    rows = _document_values(datasets)
    geometry = stack_geometry(len(rows), lambda index, keyword: rows[index].get(keyword), [str(i) for i in range(6)])
    expected = series_from_datasets(datasets, pixel_arrays=arrays)
    assert [str(datasets[i].SOPInstanceUID) for i in geometry.order] == [str(d.SOPInstanceUID) for d in expected.datasets]
    np.testing.assert_allclose(geometry.affine, expected.affine)
    assert geometry.spacing == pytest.approx(expected.spacing)
    assert (geometry.rows, geometry.cols) == arrays[0].shape


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("ImageOrientationPatient", ["1", "0", "0", "0", "1"], "must have 6 values, has 5"),
        ("ImagePositionPatient", None, "ImagePositionPatient is missing"),
        ("PixelSpacing", ["0.75", "0.6"], "PixelSpacing .* differs"),
    ],
)
def test_a_bad_slice_is_named(keyword, value, message):
    datasets, _ = synthetic_series(4)
    rows = _document_values(datasets)
    rows[2][keyword] = value
    labels = [f"slice-{i}" for i in range(4)]
    with pytest.raises(InvalidSeriesError, match=message) as raised:
        stack_geometry(4, lambda index, keyword: rows[index].get(keyword), labels)
    assert list(raised.value.files) == ["slice-2"]
