"""Spleen CT segmentation: the MONAI model-zoo spleen_ct_segmentation contract and pipeline."""
