"""Datasets in their standard on-disk layouts, decoded once, batched and augmented on the device.

One subpackage per modality, each with its readers, cache, augmentation and loader:
:mod:`poolskip.data.classification`, :mod:`poolskip.data.seg2d` and :mod:`poolskip.data.seg3d`. Shared by all:
:class:`Batch` and :func:`mix_seed` (:mod:`poolskip.data.loader`), :class:`DatasetError`
(:mod:`poolskip.data.errors`) and the cache folder (:func:`poolskip.data.cache.cache_root`).

Augmentation has one interface in every modality (``ClassificationAugment``, ``Seg2dAugment``,
``Seg3dAugment``), in two phases so that every process of a distributed run draws the same random parameters
for the global batch and applies only its own share:

- ``sample(sizes, generator) -> params``: the random parameters of a global batch whose samples have spatial
  sizes ``sizes`` (N, D), drawn in a fixed order from ``generator``; ``params`` is a dict of tensors whose
  first dimension is the sample, so ``{k: v[share] for k, v in params.items()}`` is a process's share;
- ``apply(inputs, targets, params, normalise=None) -> (inputs, targets)``: the augmented samples, the
  inputs normalised by ``normalise`` (the loader's; applied where the augmentation needs it, e.g. before
  cutout).

In 3D, MONAI's transforms draw their own parameters from a random state: ``Seg3dAugment.sample`` draws one
seed per sample (``params["seed"]``) from the batch's NumPy generator in ``PatchSampler.plan``, where the seed
also places the patch, and ``Seg3dAugment.apply`` seeds the transforms with it.
"""

from .classification import DATASETS, ClassificationAugment, ImageData, TensorLoader, load_dataset
from .errors import DatasetError
from .loader import Batch, mix_seed

__all__ = [
    "DATASETS",
    "Batch",
    "ClassificationAugment",
    "DatasetError",
    "ImageData",
    "TensorLoader",
    "load_dataset",
    "mix_seed",
]
