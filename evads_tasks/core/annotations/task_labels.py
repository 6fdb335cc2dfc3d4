"""The five E-VAds tasks and the labels that name them (codes, English, Chinese)."""

from __future__ import annotations

from dataclasses import dataclass

PERCEPTION = "Perception"
REASONING = "Cognition & Reasoning"


@dataclass(frozen=True)
class Task:
    code: str
    name: str
    chinese: str
    dimension: str


TASKS: dict[str, Task] = {
    "BP": Task("BP", "Basic Perception", "基础感知", PERCEPTION),
    "CM": Task("CM", "Cross-Modal Detection", "跨模态检测", PERCEPTION),
    "ML": Task("ML", "Marketing Logic", "营销逻辑", REASONING),
    "CI": Task("CI", "Consumer Insight", "消费者洞察", REASONING),
    "RC": Task("RC", "Regulatory Compliance", "合规审查", REASONING),
}
TASK_CODES: tuple[str, ...] = tuple(TASKS)

# Alternative spellings seen or plausible for the unpublished `ques_categories` values.
_ALIASES = {
    "BP": ["perception", "basic perception", "基础感知", "基本感知", "基础感知能力", "视觉感知"],
    "CM": ["cross-modal", "cross modal", "cross-modal detection", "cross modal detection",
           "cross-modal consistency", "跨模态检测", "跨模态", "跨模态一致性", "多模态一致性"],
    "ML": ["marketing", "marketing logic", "营销逻辑", "营销策略", "营销"],
    "CI": ["consumer", "consumer insight", "consumer insights", "消费者洞察", "用户洞察",
           "消费洞察", "人群洞察"],
    "RC": ["compliance", "regulatory compliance", "regulation", "合规审查", "合规", "合规检测",
           "广告合规", "法规合规"],
}
_LOOKUP: dict[str, str] = {}
for _code, _task in TASKS.items():
    for _label in [_code, _task.name, _task.chinese, *_ALIASES[_code]]:
        _LOOKUP[_label.strip().lower().replace("_", " ")] = _code


def task_code(label: str) -> str:
    """The task code for a label (code, English or Chinese name); KeyError when unknown."""
    key = str(label).strip().lower().replace("_", " ")
    if key not in _LOOKUP:
        raise KeyError(
            f"unknown task label {label!r}; expected one of {', '.join(TASK_CODES)} "
            f"or their English/Chinese names")
    return _LOOKUP[key]

