"""Image classification data: readers for digits, CIFAR and ImageFolder (:mod:`.readers`), their decoded-tensor
cache (:mod:`.cache`), batch augmentation (:mod:`.augment`) and the on-device loader (:mod:`.loader`)."""

from .augment import ClassificationAugment
from .loader import TensorLoader
from .readers import DATASETS, ImageData, imagefolder_counts, load_dataset

__all__ = ["DATASETS", "ClassificationAugment", "ImageData", "TensorLoader", "imagefolder_counts", "load_dataset"]
