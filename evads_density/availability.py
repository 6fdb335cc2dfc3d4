"""Can a backend run here? Checked before a run writes anything, so a missing model or GPU
is one clear line instead of a traceback from inside transformers/whisper and a half-made
output folder."""

from __future__ import annotations

import os

DEVICES_HELP = "cpu, cuda or cuda:N"
_TRUE = {"1", "ON", "YES", "TRUE"}


class BackendUnavailable(ValueError):
    """A model, its weights or the device the settings ask for is not available here."""


def downloads_off() -> bool:
    """True under ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` (the Makefile's default):
    nothing may be fetched, so a model must already be on disk."""
    return any(os.environ.get(name, "").upper() in _TRUE
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def not_local(what: str, where: str) -> BackendUnavailable:
    """The error for weights that would have to be downloaded while downloads are off."""
    return BackendUnavailable(
        f"{what}: the weights are not available locally ({where}) and downloads are off "
        "(HF_HUB_OFFLINE=1); set HF_HUB_OFFLINE=0 TRANSFORMERS_OFFLINE=0 (with network) to "
        "download them, or pass a local folder/file")


def check_device(device: str) -> str:
    """``device`` when torch can use it here (cpu, or a CUDA GPU that is present)."""
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return device
    if kind != "cuda" or (index and not index.isdigit()):
        raise BackendUnavailable(f"must be {DEVICES_HELP}, got {device!r}")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise BackendUnavailable(f"{device!r} needs a CUDA GPU and none is visible here "
                                 "(torch.cuda.is_available() is False); use --device cpu")
    if index and int(index) >= count:
        raise BackendUnavailable(f"{device!r}: only {count} CUDA GPU(s) here "
                                 f"(cuda:0..cuda:{count - 1})")
    return device
