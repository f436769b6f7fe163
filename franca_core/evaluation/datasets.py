"""Dataset readers for evaluation: labelled image lists and image + mask pairs.

Layouts (facts from ``shared/reference/evaluation-protocols.md``):
- classification: torchvision ``ImageFolder`` (``root/<split>/<class>/*.jpg``, ImageNet and clothing-10), a
  CSV manifest (``path,label[,split]``), or an unlabelled folder of images (OOD sets);
- segmentation: ``root/<images>/<split>/*`` + ``root/<masks>/<split>/*.png`` paired by file stem (CamVid);
  Pascal VOC 2012 (``JPEGImages``, ``SegmentationClass[Aug]``, ``ImageSets/Segmentation/<split>.txt``; 21
  classes, ignore 255); ADE20K / ADEChallengeData2016 (``images|annotations/{training,validation}``; 151
  ids with 0 = "other", used as the ignore index as open-hummingbird-eval does).

Errors are :class:`DatasetError` with the offending path: a missing split, unpaired images or masks,
masks that are not single-channel, label ids outside ``[0, C)`` that are not the ignore index.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# An image is a file path or an in-memory HxWx3 uint8 array (the built-in sample data).
ImageRef = Path | np.ndarray


class DatasetError(ValueError):
    """A dataset on disk does not have the layout or the labels the reader expects."""


def _fingerprint(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
    return h.hexdigest()[:16]


def _files_fingerprint(root: Path, files: Sequence[Path]) -> str:
    """Hash of relative paths and sizes, so a changed file invalidates cached features."""
    entries = [
        (str(f.relative_to(root)) if f.is_relative_to(root) else str(f), f.stat().st_size) for f in files
    ]
    return _fingerprint(str(root.resolve()), entries)


def load_rgb(ref: ImageRef) -> Image.Image:
    if isinstance(ref, np.ndarray):
        return Image.fromarray(ref).convert("RGB")
    with Image.open(ref) as im:
        return im.convert("RGB")


class ClassificationSplit:
    """One split of a labelled (or unlabelled: label -1) image list."""

    def __init__(
        self, images: Sequence[ImageRef], labels: Sequence[int], classes: Sequence[str], fingerprint: str
    ):
        if len(images) != len(labels):
            raise DatasetError(f"{len(images)} images but {len(labels)} labels")
        self.images = list(images)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = list(classes)
        self.fingerprint = fingerprint

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int) -> Image.Image:
        return load_rgb(self.images[i])

    def subset(self, indices: Sequence[int]) -> ClassificationSplit:
        idx = list(indices)
        return ClassificationSplit(
            [self.images[i] for i in idx],
            self.labels[idx].tolist(),
            self.classes,
            _fingerprint(self.fingerprint, idx),
        )


class SegmentationSplit:
    """One split of image + mask pairs whose mask pixels are class ids or the ignore index."""

    def __init__(
        self,
        images: Sequence[ImageRef],
        masks: Sequence[ImageRef],
        num_classes: int,
        ignore_index: int,
        fingerprint: str,
        class_names: Sequence[str] | None = None,
    ):
        if len(images) != len(masks):
            raise DatasetError(f"{len(images)} images but {len(masks)} masks")
        self.images = list(images)
        self.masks = list(masks)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.fingerprint = fingerprint
        self.class_names = list(class_names) if class_names else [str(c) for c in range(num_classes)]

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int) -> Image.Image:
        return load_rgb(self.images[i])

    def mask(self, i: int) -> np.ndarray:
        """The i-th mask as an int64 [H, W] array; raises on ids outside the label set."""
        ref = self.masks[i]
        if isinstance(ref, np.ndarray):
            mask = ref.astype(np.int64)
        else:
            with Image.open(ref) as im:
                if im.mode not in ("L", "P", "I", "I;16"):
                    raise DatasetError(
                        f"{ref}: mask mode {im.mode!r}; expected single-channel class ids (L or P)"
                    )
                mask = np.asarray(im).astype(np.int64)
        ids = np.unique(mask)
        bad = ids[((ids < 0) | (ids >= self.num_classes)) & (ids != self.ignore_index)]
        if bad.size:
            raise DatasetError(
                f"{ref if isinstance(ref, Path) else f'mask {i}'}: unknown label ids {bad.tolist()[:10]} "
                f"(classes 0..{self.num_classes - 1}, ignore {self.ignore_index})"
            )
        return mask

    def validate(self) -> None:
        """Read every mask once (label ids, image/mask size agreement); raises on the first problem."""
        for i in range(len(self)):
            mask = self.mask(i)
            size = self.image(i).size
            if (mask.shape[1], mask.shape[0]) != size:
                raise DatasetError(f"image {self.images[i]} is {size} but its mask is {mask.shape[::-1]}")

    def subset(self, indices: Sequence[int]) -> SegmentationSplit:
        idx = list(indices)
        return SegmentationSplit(
            [self.images[i] for i in idx],
            [self.masks[i] for i in idx],
            self.num_classes,
            self.ignore_index,
            _fingerprint(self.fingerprint, idx),
            self.class_names,
        )


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        siblings = sorted(p.name for p in path.parent.iterdir() if p.is_dir()) if path.parent.is_dir() else []
        raise DatasetError(f"missing {what}: {path} does not exist (found: {siblings or 'nothing'})")
    return path


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def read_image_folder(root: Path, split: str, classes: Sequence[str] | None = None) -> ClassificationSplit:
    """``root/<split>/<class>/*``; class ids follow sorted folder names (as ImageFolder) or ``classes``."""
    split_dir = _require_dir(Path(root) / split, f"split {split!r}")
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    names = list(classes) if classes is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DatasetError(f"{split_dir}: class folders {unknown} are not in the class list {names}")
    images, labels = [], []
    for cid, name in enumerate(names):
        files = _images_in(split_dir / name) if (split_dir / name).is_dir() else []
        images += files
        labels += [cid] * len(files)
    if not images:
        raise DatasetError(f"{split_dir}: no images found in class folders")
    return ClassificationSplit(images, labels, names, _files_fingerprint(Path(root), images))


def read_manifest(path: Path, split: str | None = None) -> ClassificationSplit:
    """CSV with columns ``path,label`` (+ optional ``split``); paths relative to the CSV's folder."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DatasetError(f"{path}: a manifest needs 'path' and 'label' columns")
    if split is not None:
        if "split" not in rows[0]:
            raise DatasetError(f"{path}: split {split!r} requested but the manifest has no 'split' column")
        have = sorted({r["split"] for r in rows})
        rows = [r for r in rows if r["split"] == split]
        if not rows:
            raise DatasetError(f"{path}: no rows for split {split!r} (splits: {have})")
    classes = sorted({r["label"] for r in rows})
    images = [path.parent / r["path"] for r in rows]
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} listed images do not exist, e.g. {missing[:3]}")
    labels = [classes.index(r["label"]) for r in rows]
    return ClassificationSplit(images, labels, classes, _files_fingerprint(path.parent, images))


def read_unlabeled_folder(root: Path) -> ClassificationSplit:
    """Every image under ``root`` (recursively), label -1: OOD sets."""
    images = _images_in(_require_dir(Path(root), "image folder"))
    if not images:
        raise DatasetError(f"{root}: no images found")
    return ClassificationSplit(images, [-1] * len(images), [], _files_fingerprint(Path(root), images))


def _pair_by_stem(images: list[Path], masks: list[Path], where: str) -> None:
    img_stems = {p.stem for p in images}
    mask_stems = {p.stem for p in masks}
    if img_stems != mask_stems:
        no_mask = sorted(img_stems - mask_stems)[:5]
        no_img = sorted(mask_stems - img_stems)[:5]
        raise DatasetError(f"{where}: images without a mask {no_mask}, masks without an image {no_img}")


def read_mask_folder(
    root: Path,
    split: str,
    num_classes: int,
    ignore_index: int,
    images_dir: str = "images",
    masks_dir: str = "masks",
    class_names: Sequence[str] | None = None,
) -> SegmentationSplit:
    """``root/<images_dir>/<split>/*`` paired by stem with ``root/<masks_dir>/<split>/*.png``."""
    root = Path(root)
    img_dir = _require_dir(root / images_dir / split, f"image split {split!r}")
    mask_dir = _require_dir(root / masks_dir / split, f"mask split {split!r}")
    images = _images_in(img_dir)
    masks = sorted(p for p in mask_dir.iterdir() if p.suffix.lower() == ".png")
    _pair_by_stem(images, masks, str(root))
    by_stem = {p.stem: p for p in masks}
    masks = [by_stem[p.stem] for p in images]
    fp = _files_fingerprint(root, images + masks)
    return SegmentationSplit(images, masks, num_classes, ignore_index, fp, class_names)


def _listed_pairs(
    listing: Path, img_dir: Path, mask_dir: Path, img_ext: str
) -> tuple[list[Path], list[Path]]:
    stems = [s.strip() for s in listing.read_text().splitlines() if s.strip()]
    images = [img_dir / f"{s}{img_ext}" for s in stems]
    masks = [mask_dir / f"{s}.png" for s in stems]
    missing = [str(p) for p in images + masks if not p.is_file()]
    if missing:
        raise DatasetError(f"{listing}: {len(missing)} listed files do not exist, e.g. {missing[:3]}")
    return images, masks


VOC_CLASSES = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]


def read_voc(root: Path, split: str) -> SegmentationSplit:
    """Pascal VOC 2012: ``split`` in {train, val, trainaug}; ``trainaug`` reads ``SegmentationClassAug``."""
    root = Path(root)
    if (root / "VOC2012").is_dir():
        root = root / "VOC2012"
    sets = _require_dir(root / "ImageSets" / "Segmentation", "VOC ImageSets/Segmentation")
    listing = sets / f"{split}.txt"
    if not listing.is_file():
        have = sorted(p.stem for p in sets.glob("*.txt"))
        raise DatasetError(f"missing split {split!r}: {listing} does not exist (splits: {have})")
    mask_name = "SegmentationClassAug" if split == "trainaug" else "SegmentationClass"
    mask_dir = _require_dir(root / mask_name, f"VOC {mask_name}")
    images, masks = _listed_pairs(listing, root / "JPEGImages", mask_dir, ".jpg")
    return SegmentationSplit(images, masks, 21, 255, _files_fingerprint(root, images + masks), VOC_CLASSES)


def read_ade20k(root: Path, split: str) -> SegmentationSplit:
    """ADEChallengeData2016: ``split`` in {training, validation}; 151 ids, id 0 ("other") ignored."""
    root = Path(root)
    if (root / "ADEChallengeData2016").is_dir():
        root = root / "ADEChallengeData2016"
    return read_mask_folder(
        root, split, num_classes=151, ignore_index=0, images_dir="images", masks_dir="annotations"
    )
