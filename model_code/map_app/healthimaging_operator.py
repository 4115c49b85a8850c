"""A MONAI Deploy operator that loads one HealthImaging image set into the SDK's DICOM study model.

It emits the same ``dicom_study_list`` (a list of the SDK's ``DICOMStudy``) as the stock
``DICOMDataLoaderOperator``, so the stock series selector, series-to-volume and SEG-writer operators
follow unchanged. The frames come through our connector (``load_image_set``: concurrent GetImageFrame,
HTJ2K decode, CRC32 check), whose datasets carry uncompressed pixel data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pydicom
from monai.deploy.core.domain.dicom_series import DICOMSeries
from monai.deploy.core.domain.dicom_study import DICOMStudy
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator

from model_code.healthimaging import load_image_set

ClientFactory = Callable[[], Any]


class HealthImagingLoaderOperator(DICOMDataLoaderOperator):  # type: ignore[misc]  # the SDK is untyped here
    """Inputs: none. Output ``dicom_study_list``: one study, one series (the image set's chosen series).

    A subclass of the stock loader only to reuse its study/series attribute population (the selector's
    rules match on those attributes), its output name and its optional-input port; ``compute`` replaces
    the folder scan. ``client_factory`` builds the ``medical-imaging`` client inside ``compute``, on the
    operator's thread, since boto3 clients are made per thread.
    """

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        datastore_id: str,
        image_set_id: str,
        client_factory: ClientFactory,
        series_instance_uid: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.datastore_id = datastore_id
        self.image_set_id = image_set_id
        self.series_instance_uid = series_instance_uid
        self._client_factory = client_factory
        super().__init__(fragment, *args, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        series = load_image_set(
            self._client_factory(),
            self.datastore_id,
            self.image_set_id,
            series_instance_uid=self.series_instance_uid,
        )
        op_output.emit(self.studies_from_datasets(series.datasets), self.output_name)

    def studies_from_datasets(self, datasets: Sequence[pydicom.Dataset]) -> list[Any]:
        """The SDK's study model of ``datasets`` (grouped by study and series, instance order kept)."""
        studies: dict[str, Any] = {}
        series_by_uid: dict[str, Any] = {}
        for dataset in datasets:
            study_uid = str(dataset.StudyInstanceUID)
            series_uid = str(dataset.SeriesInstanceUID)
            if study_uid not in studies:
                studies[study_uid] = DICOMStudy(study_uid)
                self.populate_study_attributes(studies[study_uid], dataset)
            if series_uid not in series_by_uid:
                series_by_uid[series_uid] = DICOMSeries(series_uid)
                self.populate_series_attributes(series_by_uid[series_uid], dataset)
                studies[study_uid].add_series(series_by_uid[series_uid])
            series_by_uid[series_uid].add_sop_instance(dataset)
        return list(studies.values())
