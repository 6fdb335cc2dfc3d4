"""The E-VAds annotation model: one normalized record for the test, RL and SFT schemas."""

from .categories import CATEGORIES, canonical_category
from .errors import AnnotationError
from .events import Event, parse_metadata, render_metadata
from .io import (
    ANNOTATIONS_ENV,
    HUB_DATASET,
    load_annotations,
    parse_rows,
    read_rows,
    write_jsonl,
    write_schema,
)
from .record import EvadsRecord
from .task_classifier import assign_tasks, infer_task
from .task_labels import PERCEPTION, REASONING, TASK_CODES, TASKS, task_code
from .videos import VIDEO_DIR_ENV, resolve_video

__all__ = [
    "ANNOTATIONS_ENV", "CATEGORIES", "HUB_DATASET", "PERCEPTION", "REASONING", "TASKS",
    "TASK_CODES", "VIDEO_DIR_ENV", "AnnotationError", "EvadsRecord", "Event", "assign_tasks",
    "canonical_category", "infer_task", "load_annotations", "parse_metadata", "parse_rows",
    "read_rows", "render_metadata", "resolve_video", "task_code", "write_jsonl", "write_schema",
]
