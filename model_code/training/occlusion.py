"""An occlusion-sensitivity map for one image (monai.visualize), saved as a PNG beside the image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_code.training.data_classification import spatial_dims_of
from model_code.training.data_errors import TrainingDataError


def write_occlusion_map(
    *, model: torch.nn.Module, transforms: Any, image: Path, classes: list[str], out_path: Path
) -> Path:
    """Occlude patches of ``image`` and plot how the predicted class's probability drops."""
    from monai.visualize import OcclusionSensitivity

    if not image.is_file():
        raise TrainingDataError(f"--occlusion-map {image} does not exist")
    dims = spatial_dims_of(image)
    sample = transforms({"image": str(image), "label": 0})["image"]
    batch = torch.as_tensor(sample)[None].float()
    model = model.cpu().eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(batch), dim=1)[0]
    predicted = int(probabilities.argmax())
    side = batch.shape[-1]
    # Masks a quarter of the side: about 100 positions, cheap on CPU and still able to localise.
    occlusion = OcclusionSensitivity(nn_module=model, mask_size=max(side // 4, 1), n_batch=16, verbose=False)
    occ_map, _ = occlusion(batch)
    heat = occ_map[0, predicted].detach().cpu().numpy()
    picture = batch[0].numpy()
    if dims == 3:  # show the middle slice of the last axis
        heat, picture = heat[..., heat.shape[-1] // 2], picture[..., picture.shape[-1] // 2]
    picture = np.moveaxis(picture, 0, -1).squeeze()
    # MONAI arrays are (W, H): transpose so the PNG shows the image the right way up.
    picture = np.swapaxes(picture, 0, 1)
    heat = heat.T

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(8, 4), dpi=100)
    axes[0].imshow(np.clip(picture, 0, 1), cmap="gray" if picture.ndim == 2 else None)
    axes[0].set_title(f"{image.name}: {classes[predicted]} ({float(probabilities[predicted]):.2f})")
    shown = axes[1].imshow(heat, cmap="jet")
    axes[1].set_title("occlusion sensitivity (low = important)")
    figure.colorbar(shown, ax=axes[1], fraction=0.046)
    for axis in axes:
        axis.axis("off")
    figure.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path)
    plt.close(figure)
    return out_path
