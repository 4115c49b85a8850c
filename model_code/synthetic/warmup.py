"""The series every model server segments before it reports ready (issue 19: ready means ready).

The first request of a fresh worker paid ~0.8 s more than the next (highdicom parsing its standard tables on
first use, TorchScript's profiling executor compiling on its first runs, numpy and pydicom code paths paged
in). A small phantom through the whole request flow -- zip, decode, model, inverse, SEG, its Part-10 bytes --
pays that at start, before /ping says 200.
"""

from __future__ import annotations

import functools
import gc
import io
import tempfile
import zipfile
from pathlib import Path

from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom

# At the spleen model's 1.5 x 1.5 x 2 mm this is a 96 x 97 x 97 grid: 2 x 2 windows of 96^3, one batch of the
# default sw_batch_size 4 -- the input shape real requests give the network (TorchScript's profiling executor
# specialises on it), at the cost of one batch; 0.4 MB of pixels.
WARMUP_SHAPE = (48, 73, 73)
WARMUP_SPACING = (4.0, 2.0, 2.0)
# TorchScript profiles the first run and runs the optimised graph from the second on.
WARMUP_RUNS = 2


@functools.cache
def warmup_zip() -> bytes:
    """A zip of one synthetic CT series (a phantom with a spleen-like organ), built once per process."""
    phantom = make_phantom(shape=WARMUP_SHAPE, spacing=WARMUP_SPACING, seed=0)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="warmup-") as folder:
        paths = write_dicom_series(
            phantom.volume_hu, phantom.affine, Path(folder), patient_id="WARMUP", series_description="Warm-up phantom"
        )
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in paths:
                archive.write(path, arcname=path.name)
    return buffer.getvalue()


def settle_after_warm_up() -> None:
    """Collect the warm-up's garbage, then freeze what is left (the model, the imported libraries, their
    tables) out of the cyclic collector's view.

    Measured through TorchServe (benchmarks/serving.py): the second real request paid a full collection of
    every object the start-up had made, 0.14 s in the SEG stage, as the requests' allocations crossed the
    collector's threshold. Frozen objects are never scanned again, so that collection only walks what
    requests allocate. What is frozen lives as long as the worker anyway.
    """
    gc.collect()
    gc.freeze()
