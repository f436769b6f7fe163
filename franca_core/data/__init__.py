"""Data for Franca pretraining: multi-crop augmentation, a typed collate with iBOT masks, image sources.

Typical use (see each module's docstring for the paper details):

    source = ImageFolderSource(root)  # or sample_images() without a dataset
    dataset = MultiCropDataset(source, MultiCropAugmentation(), base_seed=0)
    collate = MultiCropCollator(CyclicMask(224 // 14), seed=0)
    loader = DataLoader(dataset, batch_size=32, collate_fn=collate)  # yields MultiCropBatch
"""

from franca_core.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiCropAugmentation,
    MultiCropSample,
    derive_seed,
)
from franca_core.data.collate import (
    FRANCA_MASK_RATIO_RANGE,
    MultiCropBatch,
    MultiCropCollator,
    collate_multicrop,
    mask_upperbound,
    ratio_bin_edges,
    sample_masks,
)
from franca_core.data.dataset import MultiCropDataset
from franca_core.data.sources import (
    SKIMAGE_PHOTOS,
    CropsOfSourceDataset,
    ImageFolderSource,
    ImageListSource,
    ImageSource,
    sample_images,
)

__all__ = [
    "FRANCA_MASK_RATIO_RANGE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SKIMAGE_PHOTOS",
    "CropsOfSourceDataset",
    "ImageFolderSource",
    "ImageListSource",
    "ImageSource",
    "MultiCropAugmentation",
    "MultiCropBatch",
    "MultiCropCollator",
    "MultiCropDataset",
    "MultiCropSample",
    "collate_multicrop",
    "derive_seed",
    "mask_upperbound",
    "ratio_bin_edges",
    "sample_images",
    "sample_masks",
]
