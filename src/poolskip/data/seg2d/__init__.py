"""2D semantic segmentation data: readers for VOC, Cityscapes, CamVid and image/mask folders (:mod:`.readers`),
their memory-mapped cache (:mod:`.cache`), augmentation of image and mask together (:mod:`.augment`) and the
loader of training crops and evaluation images (:mod:`.loader`)."""

from .augment import Seg2dAugment
from .loader import SegLoader
from .readers import IGNORE, SEG_DATASETS, SegData, SegSplit, load_segmentation, voc_palette

__all__ = [
    "IGNORE",
    "SEG_DATASETS",
    "Seg2dAugment",
    "SegData",
    "SegLoader",
    "SegSplit",
    "load_segmentation",
    "voc_palette",
]
