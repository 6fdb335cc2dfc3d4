"""The E-VAds tasks under each modality condition (:mod:`evads_tasks.tasks.ablation`).

Each condition is a set of lmms-eval tasks of its own, in a folder of YAMLs beside the full
ones: ``textonly/`` (``evads_textonly`` = ``evads_textonly_perception`` (``_bp``, ``_cm``) +
``evads_textonly_reasoning`` (``_ml``, ``_ci``, ``_rc``)), ``blind/``, ``videoonly/`` and
``oneframe/``; the full condition is ``evads`` itself. The same questions, judge, cache and
metrics as ``evads``; the model's input differs:

- text only: the protocol's text (``asr_input`` and the question, in our wording or the
  authors' template), no video;
- blind: that text without ``asr_input``: the instruction and the question;
- video only: the video and the blind text;
- one frame: the middle frame of the video and the protocol's text.

The prompt's wording (which still mentions the video) stays the protocol's, so that the input
removed is the only difference between the conditions.
"""

from __future__ import annotations

from evads_tasks.core.annotations import TASK_CODES

from .ablation import Ablation, Condition, split_variant, variant_name
from .utils import doc_to_text, doc_to_visual

BASE = "evads"
# The doc field that carries the ASR/metadata text the model reads (``asr_input``).
CONTEXT_FIELDS = ("model_text",)
GROUPS: dict[str, tuple[str, ...]] = {  # lmms-eval's groups of a condition, by name suffix
    "perception": ("BP", "CM"), "reasoning": ("ML", "CI", "RC"), "": TASK_CODES}

EVADS_ABLATION = Ablation(doc_to_visual, doc_to_text, CONTEXT_FIELDS)

textonly_doc_to_visual = EVADS_ABLATION.doc_to_visual("textonly")
textonly_doc_to_text = EVADS_ABLATION.doc_to_text("textonly")
blind_doc_to_visual = EVADS_ABLATION.doc_to_visual("blind")
blind_doc_to_text = EVADS_ABLATION.doc_to_text("blind")
videoonly_doc_to_visual = EVADS_ABLATION.doc_to_visual("videoonly")
videoonly_doc_to_text = EVADS_ABLATION.doc_to_text("videoonly")
oneframe_doc_to_visual = EVADS_ABLATION.doc_to_visual("oneframe")
oneframe_doc_to_text = EVADS_ABLATION.doc_to_text("oneframe")


def task_of(condition: Condition, code: str) -> str:
    """The lmms-eval task of a task code under ``condition`` (``evads_textonly_bp``)."""
    return variant_name(BASE, condition, code.lower())


def group_of(condition: Condition, suffix: str = "") -> str:
    """The lmms-eval group (``evads_textonly``, ``evads_textonly_perception``, ...)."""
    return variant_name(BASE, condition, suffix)


def condition_of_task(name: str) -> tuple[Condition, str]:
    """(the condition, the task code) of an E-VAds lmms-eval task name; ValueError for a
    name that is not one (a group, another benchmark's task)."""
    chosen, rest = split_variant(BASE, name)
    code = rest.upper()
    if code not in TASK_CODES:
        raise ValueError(f"{name!r} is not an E-VAds task (expected {task_of(chosen, 'BP')} "
                         "and the like)")
    return chosen, code

