"""Infer the task of an unlabeled question from its wording.

The training splits carry no task label, but the five tasks are asked in
distinct ways (checked against 160 hand-labelled RL questions in
``tests/fixtures/rl_task_labels.jsonl``):

- RC asks for a verdict on a claim: 是否违规 / 是否合规 / 合规修辞还是违规承诺.
- CI asks who the ad is for: 锁定哪类受众 / 目标人群 / 吸引哪类车主.
- CM pins a spoken or subtitle moment and asks about the picture:
  当ASR提到“…”时，画面中… / 字幕显示“…”时 / 提及…瞬间.
- ML asks how the video persuades: 视频如何利用… / 转化逻辑 / 构建信任闭环.
- BP asks for a concrete fact: 什么 / 多少 / 哪两种 / 分别是 / 型号 / 品牌.

Each task has weighted cue patterns (cue words and phrase shapes, never whole
questions); a question scores the sum of the weights of its matching cues.
Words borrowed across tasks are the hard cases: 风险 and 合规 appear in ML
questions (风险逆转, 合规背书), 人群 in BP ones (适用人群是什么), 字幕 in BP
ones (字幕显示的含量是多少). So the verdict shape, not the bare word, carries
RC's weight, and a quoted moment (…时/瞬间), not the word 字幕, carries CM's.

Because every video carries exactly one question per task,
:func:`assign_tasks` labels a video's five questions together by the
permutation with the highest total score, which settles the remaining
ambiguous single questions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from .task_labels import TASK_CODES

# (pattern, weight) per task; patterns are searched in the raw question.
CUES: dict[str, tuple[tuple[str, float], ...]] = {
    "RC": (
        # A yes/no or either/or verdict on a claim.
        (r"是否.{0,8}(合规|违规|违法|违反|违背|虚假|夸大|误导|绝对化|触犯|红线|越界|侵权)", 4.0),
        (r"(违规|违法|虚假|夸大|误导|合规)(宣传|承诺|用语|风险|修辞|夸张|营销)?(吗|[?？]$)", 3.0),
        (r"合规(修辞|夸张|创意|性).{0,6}(还是|如何界定)", 3.0),
        # Legal vocabulary alone is weaker: ML questions borrow it (合规背书).
        (r"违规|违法|广告法|虚假|夸大|极限词|绝对化用语|合规", 1.5),
    ),
    "CI": (
        # Who the ad targets.
        (r"受众|客群|用户画像|目标用户|目标人群|消费群体"
         r"|哪类(人|用户|家庭|车主|[男女]性|群体)", 3.0),
        (r"锁定|瞄准|触达|吸引哪|针对哪|狙击", 1.5),
        (r"人群|群体|车主|宝妈|家长", 1.0),
        (r"痛点|诉求|心理|情感|情绪|焦虑|需求", 0.8),
    ),
    "CM": (
        # A moment opens the question (…时， / …瞬间，), then it asks about the picture.
        (r"^[^，,。？?]{0,40}(时|瞬间|时刻|时候|期间|时间段内?|时机|之际)[，,]", 2.0),
        # The moment is something said or shown: a quote, or ASR/OCR/subtitle/voice.
        (r"([”\"」]|ASR|OCR|语音|旁白|口播|字幕|听到|提到|提及)[^，,。？?]{0,30}"
         r"(时|瞬间|时刻|时候|期间|时间段内?|时机|之际)[，,]", 1.5),
        (r"^当|^(ASR|OCR)|语音|旁白|口播", 1.0),
        (r"画面|镜头|特写|正在|呈(现)?(什么|何种|怎样)", 1.0),
    ),
    "ML": (
        # How the video persuades.
        (r"如何|怎样(?!的)|何种(逻辑|策略|叙事)|采用.{0,6}(逻辑|策略|叙事)"
         r"|(转化|营销|说服|叙事|核心)逻辑", 2.5),
        (r"逻辑|策略|闭环|转化|说服|心智|叙事|漏斗|钩子|留人|驱动|促单|促成|下单|决策"
         r"|顾虑|递进", 1.5),
        (r"信任|可信|背书|卖点|营销|价值|认知|剖析", 1.0),
        (r"利用|构建|建立|确立|借助|通过|将", 0.5),
    ),
    "BP": (
        # A concrete fact to read off the video.
        (r"什么|多少|哪(个|款|种|些|几|里|一|两|三|四|家|国)|几(种|个|款|颗|次|秒|项)"
         r"|是谁|分别", 1.5),
        (r"型号|品牌|价格|名称|成分|规格|容量|材质|颜色|含量|数值|参数|重量|年限|编号|等级"
         r"|数量|时长|尺寸|厚度|温度|频率|比例|具体|明确", 1.0),
        (r"视频(中|里)|字幕|包装|标注|显示|展示", 0.5),
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
               key=lambda perm: sum(s[t] for s, t in zip(scores, perm, strict=True)))
    return list(best)
