"""Dataset readers: layouts, and clear errors for missing splits, unpaired files and unknown label ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from franca_core.evaluation import datasets as ds
from franca_core.evaluation.sample_data import SAMPLE_IGNORE_INDEX, sample_classification, sample_mosaics


def write_image(path: Path, size: tuple[int, int] = (20, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)
    return path


def write_mask(path: Path, values: np.ndarray, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode=mode).save(path)
    return path


def test_image_folder_and_missing_split(tmp_path: Path) -> None:
    for cls, n in (("cat", 2), ("dog", 3)):
        for i in range(n):
            write_image(tmp_path / "train" / cls / f"{i}.jpg")
    split = ds.read_image_folder(tmp_path, "train")
    assert split.classes == ["cat", "dog"] and split.labels.tolist() == [0, 0, 1, 1, 1]
    assert split.image(0).size == (20, 16)
    with pytest.raises(ds.DatasetError, match=r"missing split 'val'.*found: \['train'\]"):
        ds.read_image_folder(tmp_path, "val")
    with pytest.raises(ds.DatasetError, match="not in the class list"):
        ds.read_image_folder(tmp_path, "train", classes=["cat"])


def test_manifest(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "b.jpg")
    (tmp_path / "m.csv").write_text("path,label,split\na.jpg,zebra,train\nb.jpg,ant,train\n")
    split = ds.read_manifest(tmp_path / "m.csv", "train")
    assert split.classes == ["ant", "zebra"] and split.labels.tolist() == [1, 0]
    with pytest.raises(ds.DatasetError, match="no rows for split 'val'"):
        ds.read_manifest(tmp_path / "m.csv", "val")
    (tmp_path / "bad.csv").write_text("path,label\nmissing.jpg,x\n")
    with pytest.raises(ds.DatasetError, match="do not exist"):
        ds.read_manifest(tmp_path / "bad.csv")


def test_mask_folder_pairs_and_label_checks(tmp_path: Path) -> None:
    for stem in ("f1", "f2"):
        write_image(tmp_path / "images" / "train" / f"{stem}.jpg", (4, 2))
    write_mask(tmp_path / "masks" / "train" / "f1.png", np.array([[0, 1, 2, 11], [0, 0, 1, 1]]))
    write_mask(tmp_path / "masks" / "train" / "f2.png", np.array([[0, 1, 7, 3], [0, 0, 1, 1]]))
    split = ds.read_mask_folder(tmp_path, "train", num_classes=4, ignore_index=11)
    assert len(split) == 2 and split.mask(0).tolist() == [[0, 1, 2, 11], [0, 0, 1, 1]]
    with pytest.raises(ds.DatasetError, match=r"f2.png: unknown label ids \[7\]"):
        split.mask(1)
    with pytest.raises(ds.DatasetError, match="unknown label ids"):
        split.validate()
    write_image(tmp_path / "images" / "train" / "orphan.jpg")
    with pytest.raises(ds.DatasetError, match=r"images without a mask \['orphan'\]"):
        ds.read_mask_folder(tmp_path, "train", num_classes=4, ignore_index=11)
    with pytest.raises(ds.DatasetError, match="missing image split 'val'"):
        ds.read_mask_folder(tmp_path, "val", num_classes=4, ignore_index=11)


def test_rgb_masks_are_refused(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "val" / "x.jpg", (4, 2))
    rgb = np.zeros((2, 4, 3), np.uint8)
    write_mask(tmp_path / "masks" / "val" / "x.png", rgb, mode="RGB")
    split = ds.read_mask_folder(tmp_path, "val", num_classes=3, ignore_index=255)
    with pytest.raises(ds.DatasetError, match="single-channel"):
        split.mask(0)


def test_voc_layout(tmp_path: Path) -> None:
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for stem in ("2007_000032", "2007_000039"):
        write_image(root / "JPEGImages" / f"{stem}.jpg", (4, 2))
        palette_mask = Image.fromarray(
            np.array([[0, 15, 15, 255], [0, 0, 20, 255]], np.uint8), mode="L"
        ).convert("P")
        (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        palette_mask.save(root / "SegmentationClass" / f"{stem}.png")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n2007_000039\n")
    split = ds.read_voc(tmp_path / "VOCdevkit", "val")
    assert split.num_classes == 21 and split.ignore_index == 255 and split.class_names[15] == "person"
    assert split.mask(0).tolist() == [[0, 15, 15, 255], [0, 0, 20, 255]]
    with pytest.raises(ds.DatasetError, match=r"missing split 'trainaug'.*splits: \['val'\]"):
        ds.read_voc(root, "trainaug")


def test_ade20k_layout(tmp_path: Path) -> None:
    root = tmp_path / "ADEChallengeData2016"
    write_image(root / "images" / "validation" / "ADE_val_00000001.jpg", (4, 2))
    write_mask(
        root / "annotations" / "validation" / "ADE_val_00000001.png", np.array([[0, 150, 3, 3], [1, 1, 1, 1]])
    )
    split = ds.read_ade20k(tmp_path, "validation")
    assert split.num_classes == 151 and split.ignore_index == 0
    assert split.mask(0).max() == 150


def test_sample_data_is_deterministic_and_disjoint() -> None:
    a, b = sample_classification("train", 2, size=32), sample_classification("train", 2, size=32)
    assert a.fingerprint == b.fingerprint and np.array_equal(np.asarray(a.image(0)), np.asarray(b.image(0)))
    val = sample_classification("val", 2, size=32)
    assert val.fingerprint != a.fingerprint and len(val) == 2 * len(val.classes)
    mos = sample_mosaics("val", 2, size=48)
    mask = mos.mask(0)
    assert mask.shape == (48, 48) and SAMPLE_IGNORE_INDEX in mask
    assert set(np.unique(mask)) <= set(range(mos.num_classes)) | {SAMPLE_IGNORE_INDEX}
