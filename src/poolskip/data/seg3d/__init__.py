"""3D segmentation data: readers for Decathlon, nnU-Net raw, BTCV and AMOS folders (:mod:`.readers`), splits
(:mod:`.splits`), preprocessing and its cache (:mod:`.preprocess`), patch augmentation (:mod:`.augment`) and
patch sampling (:mod:`.sampling`)."""

from .augment import Seg3dAugment
from .preprocess import (
    Preprocessing,
    header_geometry,
    plan_from_headers,
    plan_geometry,
    preprocess_all,
    preprocess_case,
    ras_spacing,
    read_case,
    resampled_size,
    to_original,
)
from .readers import LAYOUTS, Case, VolumeDataset, load_volumes
from .sampling import PatchSampler, crop_patch, patch_start
from .splits import case_set_hash, default_splits_name, make_splits, read_splits

__all__ = [
    "LAYOUTS",
    "Case",
    "PatchSampler",
    "Preprocessing",
    "Seg3dAugment",
    "VolumeDataset",
    "case_set_hash",
    "crop_patch",
    "default_splits_name",
    "header_geometry",
    "load_volumes",
    "make_splits",
    "patch_start",
    "plan_from_headers",
    "plan_geometry",
    "preprocess_all",
    "preprocess_case",
    "ras_spacing",
    "read_case",
    "read_splits",
    "resampled_size",
    "to_original",
]
