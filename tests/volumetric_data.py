"""Tiny NIfTI datasets in the real on-disk layouts, written by the tests (MONAI's ``create_test_image_3d``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHAPE = (20, 24, 16)


def volume(seed: int, shape=SHAPE, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """An image with a few balls and its label map, values 0..classes-1 (every class present)."""
    from monai.data import create_test_image_3d

    rs = np.random.RandomState(seed)
    rad_max = min(5, min(shape) // 2 - 1)
    img, seg = create_test_image_3d(*shape, num_objs=4, rad_max=rad_max, rad_min=rad_max - 2, noise_max=0.1,
                                    num_seg_classes=classes - 1, random_state=rs)  # fmt: skip
    return (img * 100 + 10).astype(np.float32), seg.astype(np.uint8)


def save(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), affine: np.ndarray | None = None) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    aff = np.diag([*spacing, 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(array, aff), str(path))
    return path


def decathlon(root: Path, n: int = 6, classes: int = 3, spacing=(1.0, 1.0, 1.0), modality: str = "MRI") -> Path:
    """The Medical Segmentation Decathlon layout: dataset.json + imagesTr/ + labelsTr/."""
    training = []
    for i in range(n):
        img, seg = volume(i, classes=classes)
        name = f"task_{i:03d}.nii.gz"
        save(root / "imagesTr" / name, img, spacing)
        save(root / "labelsTr" / name, seg, spacing)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    labels = {str(c): ("background" if c == 0 else f"class{c}") for c in range(classes)}
    desc = {"name": "Tiny", "modality": {"0": modality}, "labels": labels, "numTraining": n, "training": training,
            "test": []}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(desc))
    return root


def nnunet_raw(root: Path, n: int = 6, classes: int = 3, channels=("CT",)) -> Path:
    """nnU-Net v2's raw layout: Dataset###_Name/{imagesTr/{case}_{c:04d}.nii.gz, labelsTr/, dataset.json}."""
    for i in range(n):
        img, seg = volume(i, classes=classes)
        for c in range(len(channels)):
            save(root / "imagesTr" / f"case_{i:03d}_{c:04d}.nii.gz", img * (c + 1) - 100)
        save(root / "labelsTr" / f"case_{i:03d}.nii.gz", seg)
    desc = {"channel_names": {str(c): m for c, m in enumerate(channels)},
            "labels": {("background" if c == 0 else f"organ{c}"): c for c in range(classes)},
            "numTraining": n, "file_ending": ".nii.gz", "name": "Dataset999_Tiny"}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(desc))
    return root


def listed(
    root: Path, json_name: str, groups: dict[str, list[str]], classes: int = 3, shapes: dict[str, tuple] | None = None
) -> Path:
    """BTCV (MONAI's dataset_0.json) or AMOS (dataset.json): image/label entries under each group key, each case
    12x12x10 voxels or its size in ``shapes``."""
    desc: dict = {"labels": {str(c): f"organ{c}" for c in range(classes)}, "modality": {"0": "CT"}}
    for key, names in groups.items():
        desc[key] = []
        for j, name in enumerate(names):
            img, seg = volume(j, shape=(shapes or {}).get(name, (12, 12, 10)), classes=classes)
            save(root / "imagesTr" / f"{name}.nii.gz", img - 100)
            save(root / "labelsTr" / f"{name}.nii.gz", seg)
            desc[key].append({"image": f"imagesTr/{name}.nii.gz", "label": f"labelsTr/{name}.nii.gz"})
    (root / json_name).write_text(json.dumps(desc))
    return root


def tiny_segmentation3d(tmp_path: Path) -> dict:
    """The tiny run config of the segmentation3d task (for tests/test_tasks.py's TINY): five 20x24x16 volumes
    in the Decathlon layout, nnU-Net with Pool Skip on 16^3 patches, 2 steps of batch 2 per epoch."""
    root = decathlon(Path(tmp_path) / "Task96_Tiny", n=5)
    return {"task": "segmentation3d", "model": "nnunet", "pool_skip": True, "dataset": "decathlon",
            "data_dir": str(root), "cache_dir": str(Path(tmp_path) / "cache"), "batch_size": 2, "threads": 1,
            "eval_batch_size": 2, "iterations": 2, "patch_size": [16, 16, 16], "schedule": "constant"}  # fmt: skip
