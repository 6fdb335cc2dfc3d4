"""Infer the task of an unlabeled question from its wording.

The training splits carry no task label, but their wording is distinctive:
RC asks whether a claim is compliant (合规/违规/虚假), CI asks which audience
(人群/受众/客群), CM ties a spoken or subtitle moment to the picture
(当旁白/字幕...时, 画面), ML asks how the video persuades (如何/逻辑/转化),
and BP asks for a concrete fact (什么/多少/哪个).

Each task has weighted cue patterns; a question scores the sum of the weights
of its cues. Because every video carries exactly one question per task,
:func:`assign_tasks` labels a video's five questions together by the
permutation with the highest total score, which resolves most ties
between single questions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from .task_labels import TASK_CODES

# (pattern, weight) per task; patterns are matched against the raw question.
CUES: dict[str, tuple[tuple[str, float], ...]] = {
    "RC": (
        (r"合规|违规|违法|违反|广告法|虚假|夸大|极限词|误导|绝对化|风险|是否属于", 3.0),
        (r"是否.*(承诺|宣传|宣称)", 1.5),
    ),
    "CI": (
        (r"人群|受众|客群|群体|用户画像|画像|目标用户|消费者|买家|哪类人|哪类用户", 3.0),
        (r"痛点|心理|情感|情绪|需求", 0.8),
    ),
    "CM": (
        (r"^(当|在)|时[，,]|时的|之时|的同时|语音提到|旁白提到|字幕(显示|出现)|ASR|OCR", 2.5),
        (r"画面|镜头|特写|背景|正在", 1.5),
    ),
    "ML": (
        (r"如何|怎样|逻辑|策略|转化|营销|说服|信任|卖点|钩子|闭环|心智|布局|节奏|叙事", 2.0),
        (r"利用|构建|建立|借助|通过", 1.0),
    ),
    "BP": (
        (r"什么|多少|哪(个|款|种|些|几|国)|几(种|个|款|颗|次|秒)|是谁|型号|品牌|颜色|价格|名称", 1.5),
        (r"视频(中|里)|字幕|包装|显示|展示", 0.5),
    ),
}
_COMPILED = {task: tuple((re.compile(p), w) for p, w in cues) for task, cues in CUES.items()}
# Tie-break order when scores are equal: the concrete-fact task is the default.
_PRIOR = {"RC": 0.04, "CI": 0.03, "CM": 0.02, "ML": 0.01, "BP": 0.0}


def task_scores(question: str) -> dict[str, float]:
    """Cue score of one question for each task."""
    return {task: sum(w for pattern, w in cues if pattern.search(question)) + _PRIOR[task]
            for task, cues in _COMPILED.items()}


def infer_task(question: str) -> str:
    """The single most likely task of one question."""
    scores = task_scores(question)
    return max(scores, key=scores.get)


def assign_tasks(questions: Sequence[str]) -> list[str]:
    """Tasks for the questions of one video, one task each when there are exactly five."""
    if len(questions) != len(TASK_CODES):
        return [infer_task(q) for q in questions]
    scores = [task_scores(q) for q in questions]
    best = max(itertools.permutations(TASK_CODES),
               key=lambda perm: sum(s[t] for s, t in zip(scores, perm)))
    return list(best)
