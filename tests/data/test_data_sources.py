"""Image sources, crops-of-source classes and the seeded multi-crop dataset."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from franca_core.data import (
    SKIMAGE_PHOTOS,
    CropsOfSourceDataset,
    ImageFolderSource,
    ImageListSource,
    MultiCropAugmentation,
    MultiCropBatch,
    MultiCropCollator,
    MultiCropDataset,
    sample_images,
)
from franca_core.masking import CyclicMask


def _write(path: Path, mode: str = "RGB", size: tuple[int, int] = (20, 10)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def test_image_folder_is_recursive_sorted_and_rgb(tmp_path: Path) -> None:
    _write(tmp_path / "b" / "z.png", mode="RGBA")
    _write(tmp_path / "a.JPG")
    _write(tmp_path / "b" / "c" / "y.webp", mode="L")
    _write(tmp_path / "d.bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    source = ImageFolderSource(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in source.paths] == [
        "a.JPG",
        "b/c/y.webp",
        "b/z.png",
        "d.bmp",
    ]
    assert len(source) == 4
    assert all(source[i].mode == "RGB" and source[i].size == (20, 10) for i in range(4))


def test_image_folder_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        ImageFolderSource(missing)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no images.*" + re.escape(str(tmp_path / "empty"))):
        ImageFolderSource(tmp_path / "empty")


def test_sample_images_are_real_rgb_photographs() -> None:
    images = sample_images()
    assert len(images) == len(SKIMAGE_PHOTOS) >= 15
    for i in range(len(images)):
        img = images[i]
        assert img.mode == "RGB" and min(img.size) >= 150
        assert np.asarray(img).std() > 10  # not a flat synthetic image
    with pytest.raises(ValueError, match="unknown"):
        sample_images(["eagle"])


@pytest.fixture(scope="module")
def photos() -> ImageListSource:
    return sample_images(["astronaut", "coffee", "rocket"])


def test_crops_of_source_are_deterministic_and_split_by_seed(photos: ImageListSource) -> None:
    train = CropsOfSourceDataset(photos, crops_per_image=5, crop_size=32, split="train", seed=0)
    again = CropsOfSourceDataset(photos, crops_per_image=5, crop_size=32, split="train", seed=0)
    heldout = CropsOfSourceDataset(photos, crops_per_image=5, crop_size=32, split="heldout", seed=0)
    other_seed = CropsOfSourceDataset(photos, crops_per_image=5, crop_size=32, split="train", seed=1)
    assert len(train) == 15 and train.num_classes == 3
    assert train.labels == [0] * 5 + [1] * 5 + [2] * 5 == heldout.labels
    x, y = train[7]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 1
    assert all(torch.equal(train[i][0], again[i][0]) for i in range(len(train)))
    assert train.items != heldout.items and train.items != other_seed.items


def test_crops_of_source_custom_transform_and_validation(photos: ImageListSource) -> None:
    dataset = CropsOfSourceDataset(photos, 2, crop_size=16, transform=lambda im: torch.tensor(im.size))
    assert dataset[0][0].tolist() == [16, 16]
    with pytest.raises(ValueError):
        CropsOfSourceDataset(photos, crops_per_image=0)


def test_multicrop_dataset_seeds_per_sample_and_epoch(photos: ImageListSource) -> None:
    aug = MultiCropAugmentation(global_size=32, local_size=16, n_local=2)
    dataset = MultiCropDataset(photos, aug, base_seed=3)
    first = dataset[1].global_crops[0]
    assert torch.equal(dataset[1].global_crops[0], first)
    assert torch.equal(MultiCropDataset(photos, aug, base_seed=3)[1].global_crops[0], first)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1].global_crops[0], first)


def test_dataloader_end_to_end(photos: ImageListSource) -> None:
    aug = MultiCropAugmentation(global_size=56, local_size=28, n_local=2)
    loader = DataLoader(
        MultiCropDataset(photos, aug), batch_size=3, collate_fn=MultiCropCollator(CyclicMask(56 // 14))
    )
    batch = next(iter(loader))
    assert isinstance(batch, MultiCropBatch)
    assert batch.global_crops.shape == (6, 3, 56, 56) and batch.local_crops.shape == (6, 3, 28, 28)
    assert batch.masks.shape == (6, 16) and batch.n_masked <= batch.upperbound


def _first_crops(samples: list) -> list[torch.Tensor]:
    return [sample.global_crops[0] for sample in samples]


def test_crops_do_not_depend_on_worker_count(photos: ImageListSource) -> None:
    dataset = MultiCropDataset(photos, MultiCropAugmentation(global_size=32, local_size=16, n_local=1))
    serial = [x for batch in DataLoader(dataset, batch_size=1, collate_fn=_first_crops) for x in batch]
    loader = DataLoader(dataset, batch_size=1, collate_fn=_first_crops, num_workers=2)
    parallel = [x for batch in loader for x in batch]
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
