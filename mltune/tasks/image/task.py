"""Image classification with a CNN.

Sources: the built-in ``sklearn:digits`` (8x8 grey digits, values 0..16), or a folder with one
sub-folder of images per class (PNG/JPEG, any size and mode; resized to ``data.image_size``).
The served model takes images as the user has them: a DataFrame column ``image`` of encoded bytes
or base64 strings, or raw pixels as (N, H*W*C) rows, (N, H, W) or (N, H, W, C) arrays on the
data's own scale; standardisation is the network's first layer and other sizes are resized.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from mlflow.models import ModelSignature
from PIL import Image
from torch import nn
from torch.utils.data import Subset

from mltune.core.errors import DataError
from mltune.data.splits import TaskData, fingerprint_arrays
from mltune.data.streaming import Streamed, default_workers
from mltune.models.augment import Augment
from mltune.models.description import ImageData
from mltune.spec.model import DataSpec
from mltune.spec.options import integer, number, prefixed
from mltune.spec.rules import Flag, Number, Rule
from mltune.spec.tasks import TASKS
from mltune.tasks.base import Params, Task
from mltune.tasks.classification import (
    CLASSIFICATION_LOSSES,
    ClassificationMixin,
    encode_labels,
    stratified_split,
)
from mltune.tasks.image.folder import (
    ImageFiles,
    class_files,
    decode,
    load_folder,
    scan_folder,
    to_array,
)
from mltune.tasks.inputs import finite, not_empty, numbers, within

BUILTINS = ("sklearn:digits",)
DEFAULT_IMAGE_SIZE = 32
DEFAULT_MEMORY_BUDGET_MB = 2048  # decoded folders larger than this stream from disk
STATS_SAMPLE = 512  # train images whose pixels give a streamed folder's mean and std
log = logging.getLogger(__name__)


def _load_builtin(source: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, H, W, C) float32, labels) of a built-in data set."""
    if source == "sklearn:digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images.astype(np.float32)[..., None], digits.target
    raise DataError(
        f"data.source: {source!r} is not a built-in image data set nor a folder; available: "
        f"{', '.join(BUILTINS)}, or a folder with one sub-folder per class"
    )


def image_size(options: Mapping[str, Any]) -> int:
    """``data.image_size``: the side, in pixels, every image is resized to."""
    return integer(prefixed(options, "data"), "data.image_size", DEFAULT_IMAGE_SIZE, minimum=4,
                   maximum=1024, unit="pixels per side")


def memory_budget_mb(options: Mapping[str, Any]) -> float:
    """``data.memory_budget_mb``: the most a decoded folder may take in memory."""
    return number(prefixed(options, "data"), "data.memory_budget_mb", DEFAULT_MEMORY_BUDGET_MB,
                  above=0, unit="megabytes")


def workers(options: Mapping[str, Any]) -> int:
    """``data.workers``: decoding processes per streamed split (0: in the training process)."""
    return integer(prefixed(options, "data"), "data.workers", default_workers(), minimum=0,
                   unit="decoding processes")


def _decoded(column: pd.Series, meta: Mapping[str, Any]) -> np.ndarray:
    """A column of encoded images -> float32 (N, H, W, C) in the training mode and size."""
    mode = meta.get("mode") or ("L" if meta["channels"] == 1 else "RGB")
    size = (meta["width"], meta["height"])
    arrays = [to_array(decode(value, i), mode, size) for i, value in enumerate(column)]
    if not arrays:
        return np.zeros((0, meta["height"], meta["width"], meta["channels"]), np.float32)
    return np.stack(arrays).astype(np.float32)


def to_images(model_input: Any, meta: Mapping[str, Any]) -> torch.Tensor:
    """Raw input -> float tensor (N, C, H, W) at the training size."""
    height, width, channels = meta["height"], meta["width"], meta["channels"]
    if isinstance(model_input, pd.DataFrame) and "image" in model_input.columns:
        model_input = model_input["image"]
    elif isinstance(model_input, Mapping) and "image" in model_input:  # JSON {"inputs": {...}}
        model_input = model_input["image"]
    if isinstance(model_input, (list, tuple, np.ndarray)) and len(model_input) and \
            isinstance(model_input[0], (str, bytes)):
        model_input = pd.Series(list(model_input), dtype=object)
    if isinstance(model_input, pd.Series) and not pd.api.types.is_numeric_dtype(model_input):
        first = next(iter(model_input), None)
        if not isinstance(first, (np.ndarray, list)):
            model_input = _decoded(model_input, meta)
        else:
            model_input = list(model_input)
    elif isinstance(model_input, (bytes, str)):
        model_input = _decoded(pd.Series([model_input]), meta)
    if isinstance(model_input, (pd.DataFrame, pd.Series)):
        model_input = model_input.to_numpy()
    array = numbers(model_input, "pixel", dtype=np.float32)
    not_empty(array.size, "images")
    finite(array, name="pixel")
    if "pixel_range" in meta:  # models logged before 0.2 did not record it
        low, high = meta["pixel_range"]
        span = max(high - low, 1e-6)
        within(array, low - span if low < 0 else 0.0, high + 2 * span, (low, high), "pixel")
    if array.ndim == 2 and array.shape[1] == height * width * channels:
        array = array.reshape(len(array), height, width, channels)
    elif array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise DataError(
            f"input: expected images (N, H, W[, C]) or rows of {height * width * channels} "
            f"pixels, got an array of shape {tuple(np.asarray(model_input).shape)}"
        )
    images = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    if images.shape[1] != channels:
        images = images.mean(dim=1, keepdim=True).expand(-1, channels, -1, -1)
    if images.shape[2:] != (height, width):
        images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False)
    return images.contiguous()


def _encoded(image: torch.Tensor, meta: Mapping[str, Any]) -> str:
    """One (C, H, W) tensor of 0..255 pixels -> a base64 PNG string."""
    pixels = image.permute(1, 2, 0).cpu().numpy().clip(0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if meta["mode"] == "L" else pixels, meta["mode"])
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class ImageTask(ClassificationMixin, Task):
    name = "image"
    default_source = "sklearn:digits"
    default_metric = "val_accuracy"
    data_options = ("image_size", "memory_budget_mb", "workers")
    family = "cnn"

    def builtin_space(self) -> dict[str, Any]:
        return {
            "num_blocks": {"quniform": [1, 3, 1]},
            "channels": {"choice": [16, 32, 64]},
            "kernel_size": {"choice": [3, 5]},
            "hidden_size": {"choice": [64, 128, 256]},
            "activation": {"choice": ["relu", "leaky_relu", "gelu", "tanh", "elu"]},
            "batch_norm": {"choice": [True, False]},
            "dropout": {"uniform": [0.0, 0.5]},
            "learning_rate": {"loguniform": [1.0e-4, 3.0e-2]},
            "weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
            "loss": {"choice": CLASSIFICATION_LOSSES},
            "weight_init": {"choice": ["default", "xavier_uniform", "xavier_normal",
                                       "kaiming_uniform", "kaiming_normal", "orthogonal",
                                       "normal"]},
            "optimizer": {"choice": [{"name": "adam"}, {"name": "adamw"},
                                     {"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
            "batch_size": {"choice": [32, 64, 128]},
        }

    def builtin_params(self) -> dict[str, Any]:
        return {"num_blocks": 2, "channels": 32, "kernel_size": 3, "hidden_size": 128,
                "activation": "relu", "batch_norm": True, "dropout": 0.1,
                "learning_rate": 3e-3, "weight_decay": 1e-4, "loss": "cross_entropy",
                "weight_init": "default", "optimizer": "adam", "batch_size": 64,
                # augmentation is opt-in (space.augment_*): a flip or a shift can change a class
                "augment_shift": 0.0, "augment_rotation": 0.0, "augment_flip": False}

    def load(self, data: DataSpec, seed: int) -> TaskData:
        size = image_size(data.options)
        budget = memory_budget_mb(data.options)
        workers(data.options)  # checked now, used only if the folder streams
        mode = None
        if data.source in BUILTINS or (":" in data.source and not Path(data.source).exists()):
            images, labels = _load_builtin(data.source)
        else:
            files = sum(len(f) for f in class_files(data.source).values())
            decoded_mb = files * size * size * 3 * 4 / 2**20  # float32 RGB, the largest case
            if decoded_mb > budget:
                return self._load_streamed(data, seed, size, decoded_mb, budget)
            pixels, labels, mode = load_folder(data.source, size)
            images = pixels.astype(np.float32)
        codes, classes = encode_labels(labels, "data.source (class folders)")
        train, val, test = stratified_split(len(images), codes, data, seed)
        mean = images[train].mean(axis=(0, 1, 2)).tolist()
        std = images[train].std(axis=(0, 1, 2)).tolist()
        n, height, width, channels = images.shape
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        y = torch.from_numpy(codes)
        pixel_range = [float(images[train].min()), float(images[train].max())]
        meta = {"classes": classes, "height": height, "width": width, "channels": channels,
                "mean": mean, "std": std, "source": data.source, "mode": mode,
                "pixel_range": pixel_range}
        return TaskData(x[train], y[train], x[val], y[val], x[test], y[test], meta=meta,
                        fingerprint=fingerprint_arrays(images, codes))

    def _load_streamed(self, data: DataSpec, seed: int, size: int, decoded_mb: float,
                       budget: float) -> TaskData:
        """A folder too large to decode at once: splits read from disk by worker processes.

        Mean and std come from a seeded sample of the train split's images."""
        paths, labels, mode = scan_folder(data.source)
        codes, classes = encode_labels(labels, "data.source (class folders)")
        train, val, test = stratified_split(len(paths), codes, data, seed)
        files = ImageFiles(paths, mode, size)
        sample = np.random.default_rng(seed).permutation(train)[:STATS_SAMPLE]
        pixels = torch.stack([files[int(i)] for i in sample]).float()
        mean = pixels.mean(dim=(0, 2, 3)).tolist()
        std = pixels.std(dim=(0, 2, 3)).tolist()
        processes = workers(data.options)
        log.info("data.source: %d images (~%.0f MB decoded) exceed data.memory_budget_mb=%g: "
                 "streamed from disk by %d worker process(es) per split", len(paths),
                 decoded_mb, budget, processes)

        def split(index: np.ndarray) -> Streamed:
            return Streamed(Subset(files, index.tolist()), workers=processes)

        y = torch.from_numpy(codes)
        stats = [f"{p.relative_to(data.source)}:{p.stat().st_size}" for p in paths]
        meta = {"classes": classes, "height": size, "width": size,
                "channels": 1 if mode == "L" else 3, "mean": mean, "std": std,
                "source": data.source, "mode": mode, "streamed": True,
                "pixel_range": [0.0, 255.0]}  # decoded files: 8-bit pixels
        return TaskData(split(train), y[train], split(val), y[val], split(test), y[test],
                        meta=meta, fingerprint=fingerprint_arrays(np.array(stats), codes))

    def task_rules(self) -> dict[str, Rule]:
        return {"augment_shift": Number(0, 1), "augment_rotation": Number(minimum=0),
                "augment_flip": Flag()}

    def describe_data(self, meta: Mapping[str, Any], params: Params | None = None) -> ImageData:
        return ImageData(channels=int(meta["channels"]), height=int(meta["height"]),
                         width=int(meta["width"]), classes=len(meta["classes"]),
                         mean=tuple(float(m) for m in meta["mean"]),
                         std=tuple(float(s) for s in meta["std"]))

    def build_model(self, params: Params, meta: Mapping[str, Any]) -> nn.Module:
        """The family's network, behind the augmentation layer when the params ask for one."""
        model = super().build_model(params, meta)
        p = self.with_defaults(params)
        augment = Augment(shift=float(p["augment_shift"]),
                          rotation=float(p["augment_rotation"]),
                          flip=bool(p["augment_flip"]))
        return nn.Sequential(augment, model) if augment.active else model

    def input_example(self, data: TaskData) -> Any:
        if data.meta.get("mode"):  # a folder: the example is what users send, base64 images
            return pd.DataFrame({"image": [_encoded(x, data.meta) for x in data.x_val[:2]]})
        pixels = data.x_val[:2].permute(0, 2, 3, 1).reshape(2, -1).cpu().numpy()
        return pixels.astype(np.float64)

    def signature(self, data: TaskData) -> ModelSignature:
        # No input schema: the model takes several shapes and dtypes of raw pixels, which a
        # fixed tensor spec would reject; the input example documents the simplest form.
        return self.signature_for(None, data.meta)

    def predict(self, model: nn.Module, meta: Mapping[str, Any], model_input: Any) -> pd.DataFrame:
        images = to_images(model_input, meta)
        with torch.no_grad():
            return self.labelled(model(images), meta)


TASKS.add("image", ImageTask())
