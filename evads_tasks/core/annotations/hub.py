"""Downloading parts of a hub dataset (annotations, videos): one place for its failure message."""

from __future__ import annotations

from pathlib import Path

from .errors import AnnotationError


def download_hub_dataset(dataset_id: str, patterns: list[str], offline_hint: str) -> Path:
    """The local folder of ``dataset_id``'s files matching ``patterns`` (needs network access).

    A failure is an AnnotationError naming the dataset, the cause and ``offline_hint``
    (what to set instead), since most machines that run evaluations cannot reach the hub.
    """
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(dataset_id, repo_type="dataset",
                                      allow_patterns=patterns))
    except Exception as exc:  # the hub client raises many types (offline, auth, HTTP)
        raise AnnotationError(
            f"could not fetch {', '.join(patterns)} ({type(exc).__name__}: {exc}); "
            f"{offline_hint}", dataset=dataset_id) from None
