"""Datasets in their standard on-disk layouts, decoded once to uint8 tensors, batched and augmented on the device."""

from .augment import BatchAugment
from .datasets import DATASETS, DatasetError, ImageData, load_dataset
from .loader import Batch, TensorLoader

__all__ = ["DATASETS", "Batch", "BatchAugment", "DatasetError", "ImageData", "TensorLoader", "load_dataset"]
