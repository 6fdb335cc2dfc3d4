"""Per-frame visual features for Vden: a learned vision model, or offline pixels.

``offline-pixels (no learned weights)`` needs no download: for each frame it concatenates
three blocks, each mean-centred and unit-normalised so unrelated pictures score near 0:
a 32x18 grayscale thumbnail (layout), a 4x4x4 RGB colour histogram (square-rooted) and a
16x9 map of gradient magnitude (edges). A flat block carries one small constant so two flat
frames still match. It tracks cuts and motion, not semantics: it is not the paper's
DINOv3-Base, and the output says which backend ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from .availability import BackendUnavailable, downloads_off, not_local

DINOV3_BASE = "facebook/dinov3-vitb16-pretrain-lvd1689m"
OFFLINE_PIXELS = "offline-pixels (no learned weights)"
_FLAT = 1e-3
# What TransformersVision reads: the config, the image processor and one weights file.
_NEEDED = ("config.json", "preprocessor_config.json")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "pytorch_model.bin.index.json")


class VisualBackend(Protocol):
    name: str

    def embed(self, frames: list[np.ndarray]) -> np.ndarray: ...


def _block(values: np.ndarray) -> np.ndarray:
    centred = values.reshape(-1).astype(np.float64)
    centred = centred - centred.mean()
    with_flat = np.append(centred, _FLAT * max(1.0, float(np.abs(values).max(initial=0))))
    return with_flat / np.linalg.norm(with_flat)


def pixel_features(frame: np.ndarray) -> np.ndarray:
    """The offline feature vector of one RGB uint8 frame (see the module docstring)."""
    image = Image.fromarray(frame)
    small = np.asarray(image.resize((64, 36), Image.Resampling.BOX), dtype=np.float64) / 255.0
    gray = small @ np.array([0.299, 0.587, 0.114])
    layout = np.asarray(Image.fromarray((gray * 255).astype(np.uint8)).resize(
        (32, 18), Image.Resampling.BOX), dtype=np.float64) / 255.0
    bins = np.minimum((small * 4).astype(int), 3)
    hist = np.bincount((bins[..., 0] * 16 + bins[..., 1] * 4 + bins[..., 2]).ravel(),
                       minlength=64) / (64 * 36)
    gy, gx = np.gradient(gray)
    edges = np.hypot(gx, gy).reshape(9, 4, 16, 4).mean(axis=(1, 3))
    return np.concatenate([_block(layout), _block(np.sqrt(hist)), _block(edges)])


class OfflinePixels:
    """Hand-made pixel features; fast and deterministic, no learned weights."""

    name = OFFLINE_PIXELS

    def embed(self, frames: list[np.ndarray]) -> np.ndarray:
        return np.stack([pixel_features(f) for f in frames])


class TransformersVision:
    """Any transformers vision backbone (DINOv3/DINOv2/ViT...): the CLS / pooled feature."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 16) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModel

        self.processor = AutoImageProcessor.from_pretrained(model)
        self.model = AutoModel.from_pretrained(model).to(device).eval()
        self.device, self.batch_size, self.torch = device, batch_size, torch
        self.name = f"transformers:{model}"

    def embed(self, frames: list[np.ndarray]) -> np.ndarray:
        chunks = []
        with self.torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                batch = self.processor(images=frames[start:start + self.batch_size],
                                       return_tensors="pt").to(self.device)
                out = self.model(**batch)
                pooled = getattr(out, "pooler_output", None)
                if pooled is None:
                    pooled = out.last_hidden_state[:, 0]
                chunks.append(pooled.float().cpu().numpy())
        return np.concatenate(chunks)


def _has_model_files(exists) -> bool:
    return all(exists(name) for name in _NEEDED) and any(exists(name) for name in _WEIGHTS)


def cached_locally(model_id: str) -> bool:
    """True when a hub model's config, image processor and weights are in the local
    Hugging Face cache (loading it needs no download)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False

    def exists(name: str) -> bool:
        found = try_to_load_from_cache(model_id, name)
        return isinstance(found, str) and Path(found).is_file()

    return _has_model_files(exists)


def check_visual_model(choice: str) -> None:
    """Raise :class:`BackendUnavailable` when a resolved choice cannot load here."""
    if choice == "offline-pixels":
        return
    folder = Path(choice).expanduser()
    if folder.exists():
        if not _has_model_files(lambda name: (folder / name).is_file()):
            raise BackendUnavailable(
                f"--visual-model {choice}: the folder is not a saved transformers vision "
                f"model (needs {' and '.join(_NEEDED)} and one of {', '.join(_WEIGHTS)})")
        return
    if downloads_off() and not cached_locally(choice):
        raise not_local(f"--visual-model {choice}",
                        "not a folder here, not in the Hugging Face cache")


def resolve_visual_model(choice: str) -> str:
    """``auto`` -> DINOv3-Base when cached locally, else the offline pixel features."""
    if choice == "auto":
        return DINOV3_BASE if cached_locally(DINOV3_BASE) else "offline-pixels"
    return choice


def load_visual(choice: str, device: str = "cpu") -> VisualBackend:
    """A backend from a resolved choice: ``offline-pixels``, a model id or a local folder."""
    if choice == "offline-pixels":
        return OfflinePixels()
    return TransformersVision(choice, device=device)
