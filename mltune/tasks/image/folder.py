"""Reading the user's images: a folder with one sub-folder per class, and encoded images.

Pillow decodes; every image is converted to one mode (the majority of L or RGB) and resized
to a square of ``size`` pixels, so a folder of mixed sizes and modes becomes one uint8 array.
Unreadable files are skipped and reported (count and first paths), never silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from mltune.core.errors import DataError

log = logging.getLogger(__name__)

GREY_MODES = {"1", "L", "LA", "I", "I;16", "F", "P;L"}
SHOWN = 3  # paths named in a warning or an error


def target_mode(mode: str) -> str:
    """The mode an image of ``mode`` counts for: L (grey) or RGB (everything else)."""
    return "L" if mode in GREY_MODES else "RGB"


def to_array(image: Image.Image, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One PIL image -> uint8 (H, W, C) in ``mode`` at ``size`` (width, height)."""
    if image.mode in ("I", "I;16", "F"):  # 16-bit/float grey: scale into 0..255 first
        pixels = np.asarray(image, dtype=np.float64)
        top = pixels.max() or 1.0
        image = Image.fromarray(np.uint8(np.clip(pixels / top * 255, 0, 255)))
    image = image.convert(mode)
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _open(path: Path) -> Image.Image | None:
    """The decoded image, or None when Pillow cannot read the file."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def class_files(source: str) -> dict[str, list[Path]]:
    """The files of each class sub-folder of ``source`` (validated: a folder, 2+ classes)."""
    root = Path(source)
    if not root.exists():
        raise DataError(f"data.source: folder {source!r} does not exist")
    if not root.is_dir():
        raise DataError(f"data.source: {source!r} is a file, not a folder of class sub-folders")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data.source: folder {source!r} has no class sub-folders; expected "
                        "one sub-folder of images per class")
    if len(classes) < 2:
        raise DataError(f"data.source: folder {source!r} has only one class sub-folder "
                        f"({classes[0].name!r}); classification needs at least 2")
    return {folder.name: sorted(p for p in folder.rglob("*")
                                if p.is_file() and not p.name.startswith("."))
            for folder in classes}


def _no_readable(name: str, files: list[Path]) -> DataError:
    return DataError(f"data.source: class folder {name!r} has no readable images "
                     f"({len(files)} files, none PNG/JPEG/... Pillow can read)")


def _report_skipped(skipped: list[Path], kept: int) -> None:
    if skipped:
        log.warning("data.source: skipped %d unreadable file(s) of %d: %s%s", len(skipped),
                    len(skipped) + kept, ", ".join(str(p) for p in skipped[:SHOWN]),
                    ", ..." if len(skipped) > SHOWN else "")


def load_folder(source: str, size: int) -> tuple[np.ndarray, list[str], str]:
    """(images uint8 (N, size, size, C), class names per image, mode) of an ImageFolder."""
    decoded: list[tuple[Image.Image, str]] = []
    skipped: list[Path] = []
    for name, files in class_files(source).items():
        before = len(decoded)
        for path in files:
            image = _open(path)
            if image is None:
                skipped.append(path)
            else:  # kept small at once: a folder of large photos never sits decoded in memory
                small = to_array(image, target_mode(image.mode), (size, size))
                decoded.append((Image.fromarray(small[..., 0] if small.shape[2] == 1 else small),
                                name))
        if len(decoded) == before:
            raise _no_readable(name, files)
    _report_skipped(skipped, len(decoded))
    votes = Counter(target_mode(image.mode) for image, _ in decoded)
    mode = "RGB" if votes["RGB"] >= votes["L"] else "L"
    images = np.stack([to_array(image, mode, (size, size)) for image, _ in decoded])
    return images, [label for _, label in decoded], mode


def scan_folder(source: str) -> tuple[list[Path], list[str], str]:
    """(paths, class names, mode) of an ImageFolder, reading only each file's header: for
    folders streamed from disk rather than decoded at once."""
    paths: list[Path] = []
    labels: list[str] = []
    modes: Counter[str] = Counter()
    skipped: list[Path] = []
    for name, files in class_files(source).items():
        before = len(paths)
        for path in files:
            try:
                with Image.open(path) as image:
                    modes[target_mode(image.mode)] += 1
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                skipped.append(path)
                continue
            paths.append(path)
            labels.append(name)
        if len(paths) == before:
            raise _no_readable(name, files)
    _report_skipped(skipped, len(paths))
    return paths, labels, "RGB" if modes["RGB"] >= modes["L"] else "L"


class ImageFiles(Dataset):
    """Image files decoded one at a time (in DataLoader workers): uint8 (C, size, size)."""

    def __init__(self, paths: list[Path], mode: str, size: int) -> None:
        self.paths, self.mode, self.size = paths, mode, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = _open(self.paths[index])
        if image is None:  # its header read, its pixels not: a truncated or corrupt file
            raise DataError(f"data.source: {self.paths[index]} cannot be decoded")
        array = to_array(image, self.mode, (self.size, self.size))
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def decode(value: Any, index: int) -> Image.Image:
    """An encoded image (bytes, or a base64 string of them) -> a PIL image; DataError if not."""
    if isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") else value  # data URLs
        try:
            value = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise DataError(f"input: image {index} is a string but not base64") from None
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise DataError(f"input: image {index} is {type(value).__name__}; expected encoded "
                        "bytes (PNG/JPEG), a base64 string, or an array")
    try:
        with Image.open(io.BytesIO(bytes(value))) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, ValueError):
        raise DataError(f"input: image {index} is not an image Pillow can read") from None
