"""A scripted stand-in LLM for the Q&A generator's tests and benchmark (not a model).

``ScriptedAdLLM`` is a ``JudgeServer`` policy (``tests/judge_server.py``: the same loopback
OpenAI-compatible server) that tells the generator's calls apart by their system message
and answers each like a scripted model would:

- a role agent's proposal: candidates built from the metadata in the prompt (it quotes the
  OCR/ASR lines it reads there, as a model would) and from the sample's script
  (``script.json``: prices, hooks, claims and their verdicts), with good ones and, per role,
  the bad ones of ``BAD``: hallucinated evidence, a near-duplicate, a wrong task label, an
  unknown task, a wrong language, a question answerable without the video, one the
  metadata cannot answer. Per video (``FAULTS``) one role's first-round reply is broken:
  truncated JSON, a refusal, or JSON of the wrong shape; the second round asks again and
  gets a good reply;
- the metadata-only answerer: the reference of a known question (the unanswerable one
  excepted, which it says it cannot answer);
- the blind answerer: the reference of the blind-answerable question, else a non-answer;
- the judge: ``fake_judge_policy``.

A video is known by the price on its screen (``script.json``), so the policy works on
metadata perceived from the videos as well as on the sample's annotations.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from judge_server import fake_judge_policy

from evads_generate.checks.grounding import normalize
from evads_tasks.core.annotations import Event, parse_metadata

BLIND_QUESTION = "广告里可以说自己的产品是“全网最好”吗？"
BLIND_ANSWER = "不可以。“最好”属于广告法禁止的绝对化用语。"
UNANSWERABLE_QUESTION = "视频中的目标消费者平均年龄是多少岁？"
UNANSWERABLE_REFERENCE = "目标消费者平均年龄为35岁。"
NO_ANSWER = "元数据中没有这个信息，无法回答。"
BLIND_NON_ANSWER = "看不到视频，无法判断。"
# The bad candidate each role adds, and the rejection it must get.
BAD = {
    "expert": "ungrounded",          # quotes a price that is nowhere on screen
    "skeptic": "task_mismatch",      # an RC question labelled BP
    "pragmatist": "duplicate",       # the consumer's BP question, reworded a little
    "creative_director": "unanswerable",
}
# Candidates added once per video that fail on their own rule.
EXTRA_BAD = ("unknown_task", "wrong_language", "blind_answerable")
# (video index in script order, role, reply) for broken first-round replies.
FAULTS = ((0, "creative_director", "truncated_json"), (1, "consumer", "refusal"),
          (2, "expert", "schema"))
_TASKS = re.compile(r"for each of these tasks: ([A-Z, ]+)\.")
_ROLE = re.compile(r"Your viewpoint: you are the ([A-Za-z ]+)\.")


def _ocr_second(events: list[Event], text: str) -> Event | None:
    """The first event whose screen text holds ``text`` (normalised)."""
    want = normalize(text)
    return next((e for e in events if any(want in normalize(t) for t in e.ocr)), None)


def _evidence(source: str, event: Event, quote: str) -> dict:
    return {"source": source, "start_s": event.start, "end_s": event.end, "quote": quote}


class ScriptedAdLLM:
    """The policy; ``calls`` counts calls per kind, ``answered`` keeps every answered prompt."""

    def __init__(self, script_path: Path, faults: bool = True) -> None:
        script = json.loads(Path(script_path).read_text(encoding="utf-8"))
        self.videos = script["videos"]
        self.faults = faults
        self.calls: dict[str, int] = {}
        self.answered: list[str] = []
        self._lock = threading.Lock()

    # ---- which call is it ---------------------------------------------------------
    def __call__(self, messages: list[dict[str, Any]]) -> str:
        system = str(messages[0]["content"]) if messages[0]["role"] == "system" else ""
        if "You design test questions" in system:
            content = messages[-1]["content"]  # text, or text and image parts (--frames)
            text = content if isinstance(content, str) else "".join(
                part.get("text", "") for part in content)
            kind, reply = "propose", self.propose(system, text)
        elif "from its time-aligned OCR" in system:
            kind, reply = "answer", self.answer(messages[-1]["content"])
        elif "that you cannot see or hear" in system:
            kind, reply = "blind", self.blind(messages[-1]["content"])
        else:
            kind, reply = "judge", fake_judge_policy(messages)
        with self._lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1
            self.answered.append(json.dumps(messages, ensure_ascii=False, sort_keys=True))
        return reply

    def video(self, events: list[Event]) -> tuple[int, dict] | None:
        """The sample video whose price is on screen."""
        for index, video in enumerate(self.videos):
            if _ocr_second(events, video["product"]["price"]) is not None:
                return index, video
        return None

    # ---- role agents --------------------------------------------------------------
    def plan(self, events: list[Event]) -> dict[str, list[dict]]:
        """Every role's candidates for one video (good and bad), by role name."""
        found = self.video(events)
        if found is None:
            return {}
        _, video = found
        product, claim = video["product"], video["claim"]
        price = _ocr_second(events, product["price"])
        # the opening line as the metadata spells it (OCR may misread a character)
        hook = next(e for e in events if e.ocr)
        hook_text = hook.ocr[0]
        said = _ocr_second(events, claim["text"]) or price
        spoken = next((e for e in events if e.asr and e.ocr), None)
        bp = {"task": "BP", "question": f"视频中{product['title']}的价格是多少？",
              "answer": f"价格是{product['price']}。",
              "evidence": [_evidence("ocr", price, product["price"])], "modalities": [],
              "rationale": "价格卡上的文字。"}
        ci = {"task": "CI", "question": "该视频主要面向哪类人群，击中了他们的什么痛点？",
              "answer": f"面向{product['audience']}，痛点是{product['pain']}。",
              "evidence": [_evidence("ocr", hook, hook_text)], "modalities": [],
              "rationale": "开场字幕点出痛点。"}
        rc = {"task": "RC", "question": f"视频中“{claim['text']}”的说法是否合规？",
              "answer": claim["verdict"], "evidence": [_evidence("ocr", said, claim["text"])],
              "modalities": [], "rationale": "依据广告法判断该宣称。"}
        ml = {"task": "ML", "question": "视频如何一步步说服消费者下单？",
              "answer": f"先用“{hook_text}”点出痛点，再展示卖点，最后用"
                        f"{product['price']}促单。",
              "evidence": [_evidence("ocr", hook, hook_text),
                           _evidence("ocr", price, product["price"])], "modalities": [],
              "rationale": "开头痛点，结尾价格。"}
        if spoken is not None:
            words = spoken.asr.split()[:4]
            cm = {"task": "CM", "question": f"当旁白说出“{' '.join(words)}”时，画面上显示的"
                                            "文字是什么？",
                  "answer": f"画面显示“{spoken.ocr[0]}”。",
                  "evidence": [_evidence("asr", spoken, " ".join(words)),
                               _evidence("ocr", spoken, spoken.ocr[0])],
                  "modalities": ["asr", "ocr"], "rationale": "同一秒的语音和字幕。"}
        else:  # a silent video: the only CM a model could write cites no speech
            cm = {"task": "CM", "question": "当旁白提到价格时，画面上显示的文字是什么？",
                  "answer": f"画面显示“{product['price']}”。",
                  "evidence": [_evidence("ocr", price, product["price"])],
                  "modalities": ["asr", "ocr"], "rationale": "价格卡。"}
        hallucinated = {**bp, "question": f"视频中{product['title']}的限量版售价是多少？",
                        "answer": "限量版售价9999元。",
                        "evidence": [_evidence("ocr", price, "限量版9999元")]}
        mislabelled = {**rc, "task": "BP", "question": f"视频宣称“{claim['text']}”是否违规？"}
        duplicate = {**bp, "question": f"视频中{product['title']}的价格是多少钱？"}
        unanswerable = {**ci, "question": UNANSWERABLE_QUESTION,
                        "answer": UNANSWERABLE_REFERENCE}
        unknown = {**ml, "task": "XX", "question": "视频的背景音乐是什么风格？"}
        english = {**ml, "question": "How does the video persuade viewers to buy?",
                   "answer": "It opens with a pain point and closes with the price."}
        blind = {**rc, "question": BLIND_QUESTION, "answer": BLIND_ANSWER}
        return {"consumer": [bp, ci], "expert": [hallucinated, rc],
                "skeptic": [mislabelled, blind], "pragmatist": [cm, duplicate, unknown],
                "creative_director": [ml, unanswerable, english]}

    def propose(self, system: str, user: str) -> str:
        role = _ROLE.search(system).group(1).strip().lower().replace(" ", "_")
        tasks = _TASKS.search(user).group(1).replace(" ", "").split(",")
        events = list(parse_metadata(user).events)
        found = self.video(events)
        first_round = len(tasks) == 5
        if self.faults and found is not None and first_round:
            for index, faulty_role, fault in FAULTS:
                if found[0] == index and role == faulty_role:
                    return self.broken(fault)
        candidates = [c for c in self.plan(events).get(role, []) if c["task"] in tasks
                      or first_round]
        category = found[1]["category"] if found else "Others"
        return json.dumps({"product_category": category, "candidates": candidates},
                          ensure_ascii=False)

    @staticmethod
    def broken(fault: str) -> str:
        if fault == "truncated_json":
            return '{"product_category": "Others", "candidates": [{"task": "ML", "quest'
        if fault == "refusal":
            return "I'm sorry, but I can't help with creating questions about this ad."
        return json.dumps({"category": "Others", "questions": []})

    # ---- answerers ----------------------------------------------------------------
    def answer(self, user: str) -> str:
        question = user.rsplit("Question: ", 1)[1].strip()
        if question == UNANSWERABLE_QUESTION:
            return NO_ANSWER
        for candidates in self.plan(list(parse_metadata(user).events)).values():
            for candidate in candidates:
                if candidate["question"] == question:
                    return candidate["answer"]
        return NO_ANSWER

    @staticmethod
    def blind(user: str) -> str:
        question = user.rsplit("Question: ", 1)[1].strip()
        return BLIND_ANSWER if question == BLIND_QUESTION else BLIND_NON_ANSWER
