"""An image source wrapped with multi-crop augmentation and per-sample deterministic seeds.

Sample `index` of epoch `epoch` is augmented with seed `derive_seed(base_seed, epoch, index)`, so
its crops do not depend on worker count, sampling order or what was drawn before: a resumed run
sees exactly the crops it would have seen. With persistent DataLoader workers, `set_epoch` on the
main-process copy does not reach the workers; recreate the loader per epoch or use non-persistent
workers.
"""

from __future__ import annotations

from torch.utils.data import Dataset

from franca_core.data.augment import MultiCropAugmentation, MultiCropSample, derive_seed
from franca_core.data.sources import ImageSource


class MultiCropDataset(Dataset[MultiCropSample]):
    """`source[index]` -> `augmentation(image, seed=derive_seed(base_seed, epoch, index))`."""

    def __init__(
        self, source: ImageSource, augmentation: MultiCropAugmentation, base_seed: int = 0, epoch: int = 0
    ) -> None:
        self.source = source
        self.augmentation = augmentation
        self.base_seed = base_seed
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """New crops for a new epoch."""
        self.epoch = epoch

    def sample_seed(self, index: int) -> int:
        return derive_seed(self.base_seed, self.epoch, index)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> MultiCropSample:
        return self.augmentation(self.source[index], seed=self.sample_seed(index))
