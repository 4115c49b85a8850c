"""A loaded series written as Part-10 files reads back with the same pixels, geometry and UIDs."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from model_code.core.dicom import series_from_datasets
from model_code.healthimaging import load_image_set, write_part10
from testkit.healthimaging import build_image_set, stub_load
from tests.model_code.healthimaging.hi_helpers import shuffled, synthetic_series


@pytest.mark.parametrize("dtype", ["int16", "uint8"])  # OW and OB pixel data
def test_written_files_reload_to_the_same_series(stubbed, tmp_path, dtype):
    datasets, arrays = synthetic_series(4, dtype=dtype, slope="1", intercept="-5")
    order = shuffled(list(range(4)))
    fake = build_image_set([datasets[i] for i in order], pixel_arrays=[arrays[i] for i in order])
    client, stubber = stubbed
    stub_load(stubber, fake)
    loaded = load_image_set(client, fake.datastore_id, fake.image_set_id, max_workers=1)

    paths = write_part10(loaded, tmp_path / "out")

    assert [path.name.split("_")[0] for path in paths] == ["0000", "0001", "0002", "0003"]  # slice order
    reread = [pydicom.dcmread(path) for path in paths]
    assert all(ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian for ds in reread)
    assert [str(ds.SOPInstanceUID) for ds in reread] == [str(ds.SOPInstanceUID) for ds in loaded.datasets]
    again = series_from_datasets(reread)  # decodes the written pixel data itself
    np.testing.assert_array_equal(again.volume, loaded.volume)
    np.testing.assert_allclose(again.affine, loaded.affine)


def test_datasets_without_pixels_are_refused(tmp_path):
    datasets, _ = synthetic_series(1)
    with pytest.raises(ValueError, match="has no pixel data: load the series before writing it"):
        write_part10(datasets, tmp_path)
