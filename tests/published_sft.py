"""Rows in the layout of the authors' published SFT split, written from its facts.

The facts (``../shared/EVADS.md``, SFT schema; issue 18, checked on the real
``EVAds_SFT.parquet``: 1,880 rows, 376 videos, 5 per video): columns ``data_source``
(``EVAdsBench``), ``videos`` (``../videos/1485.mp4``), ``prompt`` (a list of exactly one user
message), ``ability`` (``QA``), ``answer`` (``<think>...</think>\\n<answer>...</answer>``) and
``extra_info`` {``id``, ``video_path``}. The message reads::

    <video>Category: 美容彩妆
    Duration: 21s

    [Time-aligned Events]:
    Time 0s: ASR Text: "..."
    Time 4s: OCR Text: [a | b] ; ASR Text: "..."
    <the question, on its own line, with no label>

    You are permitted to gather any relevant clues, think step by step, to answer this question. ...
    <think>your_thinking</think> <answer>your_answer_within_50_words</answer>

No row carries a task label and a video's five questions come in no fixed order. This module
writes that text itself (not through evads' writer), so that a test of the loaders against it
tests them against the published layout; :class:`Variation` adds what other copies of the
file plausibly do (CRLF, extra blank lines, the prompt as JSON text or a numpy array, a
fractional duration, no ``Category`` line).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

INSTRUCTION = (
    "You are permitted to gather any relevant clues, think step by step, to answer this "
    "question. Output your thought process (no length limit) and the final answer (using "
    "approximately 50 words; longer answers will be truncated) in the following format\n"
    "<think>your_thinking</think> <answer>your_answer_within_50_words</answer>")
CATEGORIES = ("服饰鞋包", "美容彩妆", "个人护理", "食品生鲜 & 医药保健", "家居家装", "家用电器",
              "母婴玩具 & 宠物", "其他")  # the authors' spellings
PRODUCTS = ("防晒霜", "连衣裙", "电动牙刷", "坚果礼盒", "记忆棉枕", "空气炸锅", "猫粮", "充电宝")
# Question shapes per task, in the wording of the released questions (product filled in).
QUESTIONS = {
    "BP": ("视频中{p}的到手价是多少？", "视频展示的{p}具体规格和品牌分别是什么？"),
    "CM": ("当ASR提到“{p}真的好用”时，画面中展示的包装是什么颜色？",
           "当字幕显示“{p}限时特价”时，主播手中拿着什么？"),
    "ML": ("视频如何利用痛点场景与价格对比促成{p}下单？",
           "视频如何通过实测背书构建购买{p}的信任闭环？"),
    "CI": ("视频精准锁定了哪类核心受众，试图解决其何种痛点？", "视频主要吸引哪类人群购买{p}？"),
    "RC": ("视频宣称{p}“全网第一”是否违规？", "视频称{p}“七天见效”是否属于违规夸大宣传？"),
}
TASKS = tuple(QUESTIONS)


@dataclass(frozen=True)
class Variation:
    """What a copy of the file may do differently from the published one."""

    crlf: bool = False  # line ends \r\n
    extra_blank_lines: bool = False  # two blank lines where the layout has one, one after
    prompt_as: str = "list"  # list | json (the message list as JSON text) | numpy | tuple
    fractional_duration: bool = False  # "Duration: 21.5s"
    category_line: bool = True


@dataclass(frozen=True)
class PublishedVideo:
    """One video's five rows and what they were written from (for assertions)."""

    video: str
    rows: list[dict]
    tasks: list[str]  # the task of each row, in row order
    questions: list[str]
    metadata: str  # the metadata block as the prompt holds it (no <video>, LF line ends)


def _events(rng: random.Random, seconds: int, product: str) -> list[str]:
    lines = []
    for second in range(0, seconds, rng.choice((2, 3, 4))):
        ocr = [f"{product}限时特价", f"¥{rng.randint(19, 299)}"][:rng.choice((1, 2))]
        asr = rng.choice(("姐妹们这个真的好用", "今天下单还送小样", "面料是纯棉的",
                          "我自己回购了三次"))
        kind = rng.choice(("asr", "ocr", "both"))
        if kind == "asr":
            lines.append(f'Time {second}s: ASR Text: "{asr}"')
        elif kind == "ocr":
            lines.append(f"Time {second}s: OCR Text: [{' | '.join(ocr)}]")
        else:
            lines.append(f'Time {second}s: OCR Text: [{" | ".join(ocr)}] ; ASR Text: "{asr}"')
    return lines


def published_video(number: int, seed: int = 0, variation: Variation = Variation()
                    ) -> PublishedVideo:
    """The five rows of video ``number`` (``../videos/<number>.mp4``)."""
    rng = random.Random(f"{seed}:{number}")
    product = rng.choice(PRODUCTS)
    seconds = rng.randint(12, 60)
    duration = f"{seconds}.5" if variation.fractional_duration else str(seconds)
    header = [f"Category: {rng.choice(CATEGORIES)}"] if variation.category_line else []
    metadata = "\n".join([*header, f"Duration: {duration}s", "", "[Time-aligned Events]:",
                          *_events(rng, seconds, product)])
    tasks = list(TASKS)
    rng.shuffle(tasks)  # no fixed order within a video
    video = str(number)
    rows, questions = [], []
    gap = "\n\n\n" if variation.extra_blank_lines else "\n\n"
    for index, task in enumerate(tasks):
        question = rng.choice(QUESTIONS[task]).format(p=product)
        questions.append(question)
        lead = "\n" if variation.extra_blank_lines else ""
        content = f"<video>{metadata}\n{lead}{question}{gap}{INSTRUCTION}"
        if variation.crlf:
            content = content.replace("\n", "\r\n")
        path = f"../videos/{video}.mp4"
        rows.append({
            "data_source": "EVAdsBench",
            "videos": path,
            "prompt": _prompt([{"content": content, "role": "user"}], variation.prompt_as),
            "ability": "QA",
            "answer": (f"<think>第{index + 1}步：先看{product}的字幕与口播。</think>\n"
                       f"<answer>{product}的参考答案{index + 1}。</answer>"),
            "extra_info": {"id": f"ques_{rng.getrandbits(128):032x}", "video_path": path},
        })
    return PublishedVideo(video, rows, tasks, questions, metadata)


def _prompt(messages: list[dict], form: str):
    if form == "json":
        return json.dumps(messages, ensure_ascii=False)
    if form == "numpy":
        import numpy as np

        array = np.empty(len(messages), dtype=object)
        array[:] = messages
        return array
    if form == "tuple":
        return tuple(messages)
    if form != "list":
        raise ValueError(f"prompt_as must be list, json, numpy or tuple, got {form!r}")
    return messages


def published_split(videos: int = 376, seed: int = 0, first: int = 1000,
                    variation: Variation = Variation()) -> list[PublishedVideo]:
    """``videos`` videos of five rows each (376 -> the published 1,880 rows)."""
    return [published_video(first + n, seed, variation) for n in range(videos)]


def rows_of(videos: list[PublishedVideo]) -> list[dict]:
    return [row for video in videos for row in video.rows]
