"""The five questions of each sample video (BP, CM, ML, CI, RC), answered from its script.

Questions follow the wording of the real training splits so that the task
classifier recognises them; answers, clues and the OCR/ASR metadata are
derived from the script, so they are right by construction.
"""

from __future__ import annotations

import random
from dataclasses import replace

from evads_tasks.core.annotations import EvadsRecord, render_metadata
from evads_tasks.core.annotations.schemas import sft_target
from evads_tasks.core.annotations.task_labels import TASK_CODES

from .timeline import screen_text, video_events

VIDEO_PATH = "../videos/{video_id}.mp4"  # as in the authors' tree
DATA_SOURCE = "EVAdsBench"  # the authors' value, so training code treats rows alike


def _span(item: dict) -> str:
    return f"第{int(item['start'])}-{int(item['end'])}秒"


def _quoted(texts) -> str:
    return "".join(f"“{t}”" for t in texts)


def _overlay(video: dict, role: str) -> dict:
    return next(o for o in video["overlays"] if o["role"] == role)


def basic_perception(video: dict) -> tuple[str, str, str]:
    product, price = video["product"], _overlay(video, "price")
    question = f"视频中{product['title']}的到手价是多少？"
    answer = (f"到手价为{price['text']}，{_span(price)}的静止价格卡上显示，"
              f"并附“{product['promo']}”优惠。")
    heard = "，旁白同步口播价格" if video["has_audio"] else ""
    clues = (f"OCR在{_span(price)}识别到价格文字“{price['text']}”与促销“{product['promo']}”"
             f"{heard}，该画面为静止的价格卡，可直接读出到手价。")
    return question, answer, clues


def cross_modal(video: dict) -> tuple[str, str, str]:
    anchor = _overlay(video, video["cm_role"])
    if not video["has_audio"]:
        shown = screen_text(video, int(anchor["start"]))
        question = f"当字幕显示“{anchor['text']}”时，视频是否有旁白配音？画面上同时出现了哪些文字？"
        answer = f"无旁白；{_span(anchor)}画面显示{_quoted(shown)}。"
        clues = (f"视频不含音频流，ASR为空；OCR在{_span(anchor)}识别到{_quoted(shown)}，"
                 "信息全部由字幕传达。")
        return question, answer, clues
    line = next(s for s in video["speech"] if s["role"] == video["cm_role"])
    second = int(line["start"])
    shown = screen_text(video, second)
    question = f"当旁白提到“{line['text'].rstrip('.?!')}”时，画面上显示的文字是什么？"
    answer = f"第{second}秒画面显示{_quoted(shown)}。"
    clues = (f"ASR在{line['start']:g}-{line['end']:g}秒说出“{line['text']}”，同一时段OCR识别到"
             f"{_quoted(shown)}，以此定位该时刻的画面文字。")
    return question, answer, clues


def marketing_logic(video: dict) -> tuple[str, str, str]:
    product = video["product"]
    question = f"视频如何一步步说服消费者下单购买{product['name']}？"
    answer = (f"以“{product['hook']}”切入痛点，用“{product['feature']}”展示卖点，"
              f"再以{product['price']}和“{product['promo']}”促单。")
    cuts = "、".join(f"{c:g}" for c in video["scene_cuts"])
    clues = (f"视频在第{cuts}秒硬切换镜头，构成“痛点钩子-卖点展示-价格促单”的结构："
             f"开头字幕“{product['hook']}”引发共鸣，中段“{product['feature']}”建立信任，"
             f"结尾静止价格卡给出{product['price']}与“{product['promo']}”完成转化。")
    return question, answer, clues


def consumer_insight(video: dict) -> tuple[str, str, str]:
    product = video["product"]
    question = "该视频主要面向哪类人群，击中了他们的什么痛点？"
    answer = (f"面向{product['audience']}，针对“{product['pain']}”的痛点，"
              f"用“{product['feature']}”回应。")
    clues = (f"开场字幕“{product['hook']}”直接点出{product['pain']}的场景，"
             f"这是{product['audience']}的典型困扰；随后用“{product['feature']}”给出解决方案。")
    return question, answer, clues


def regulatory_compliance(video: dict) -> tuple[str, str, str]:
    claim = video["claim"]
    shown = _overlay(video, "claim")
    question = f"视频宣称“{claim['text']}”是否合规？"
    clues = (f"OCR在{_span(shown)}显示“{claim['text']}”。依据《广告法》：不得使用绝对化用语，"
             "普通商品不得宣称医疗功效，功效与数据宣称须有依据。" + claim["verdict"])
    return question, claim["verdict"], clues


QUESTION_WRITERS = {"BP": basic_perception, "CM": cross_modal, "ML": marketing_logic,
                    "CI": consumer_insight, "RC": regulatory_compliance}
assert tuple(QUESTION_WRITERS) == TASK_CODES


def video_records(video: dict, seed: int) -> list[EvadsRecord]:
    """The five records of one video, in a seeded order (the training splits have none)."""
    events = video_events(video)
    metadata = render_metadata(video["category_zh"], video["duration"], events)
    tasks = list(TASK_CODES)
    random.Random(f"{seed}:{video['video_id']}").shuffle(tasks)
    records = []
    for number, task in enumerate(tasks, start=1):
        question, answer, clues = QUESTION_WRITERS[task](video)
        records.append(EvadsRecord(
            question_id=f"{video['video_id']}_q{number}",
            video_id=video["video_id"],
            video_file=VIDEO_PATH.format(video_id=video["video_id"]),
            question=question,
            answer=answer,
            task=task,
            task_inferred=False,
            split=video["split"],
            clues=clues,
            metadata=metadata,
            events=events,
            category=video["category"],
            duration=float(video["duration"]),
            extra={"accuracy_ratio": 1, "format_ratio": 1, "data_source": DATA_SOURCE},
        ))
    return [replace(record, reasoning_target=sft_target(record)) for record in records]
