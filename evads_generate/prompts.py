"""The generator's prompts, in our own words: role agents, the metadata-only answerer and
the blind answerer.

The proposer's system message carries the role's viewpoint, the five task definitions and
the rules a candidate must meet (the same rules the checks enforce, so a good model is told
what will be checked); the user message carries the video's metadata and what to propose.
The answerers get the question with the metadata (answerability) or without anything
(blind). Every prompt names the language the questions and answers must be in.
"""

from __future__ import annotations

import json

from evads_tasks.core.annotations import CATEGORIES, TASKS

from .roles import Role

LANGUAGE_NAMES = {
    "zh": "Simplified Chinese", "en": "English", "ja": "Japanese", "ko": "Korean",
    "fr": "French", "de": "German", "es": "Spanish", "pt": "Portuguese", "it": "Italian",
    "ru": "Russian", "ar": "Arabic", "th": "Thai", "vi": "Vietnamese", "id": "Indonesian",
    "hi": "Hindi", "tr": "Turkish", "nl": "Dutch", "pl": "Polish", "ms": "Malay",
}

# What each task asks, in our words (EVADS.md lists the tasks; the wording is ours).
TASK_BRIEFS = {
    "BP": "a concrete fact a viewer can read or hear in the ad: the product, brand, price, "
          "quantity, colour, ingredient, specification or offer.",
    "CM": "how the modalities line up: pin a moment by what is said (ASR) or shown as text "
          "(OCR) and ask what the other modality carries at that moment, or whether speech, "
          "on-screen text and picture agree.",
    "ML": "the persuasion: how the ad hooks attention, builds trust, presents selling points "
          "and pushes the viewer to buy, and in what order.",
    "CI": "the audience: whom the ad is made for, which need, worry or desire it speaks to, "
          "and how it appeals to them.",
    "RC": "advertising compliance: whether a specific claim in the ad is acceptable under "
          "advertising law (absolute superlatives, unproven efficacy or medical claims, "
          "misleading prices or data) and why.",
}

REPLY_SHAPE = {
    "product_category": "one of: " + ", ".join(CATEGORIES),
    "candidates": [{
        "task": "BP | CM | ML | CI | RC",
        "question": "...",
        "answer": "reference answer, at most about 50 words",
        "evidence": [{"source": "ocr | asr", "start_s": 7, "end_s": 8,
                      "quote": "text copied exactly from that line"}],
        "modalities": ["asr", "ocr"],
        "rationale": "one or two sentences",
    }],
}


def language_name(code: str) -> str:
    """A readable language name for a prompt (the code itself when we have no name)."""
    return LANGUAGE_NAMES.get(code.lower(), code)


def _task_lines(tasks: list[str]) -> str:
    return "\n".join(f"- {code} ({TASKS[code].name}): {TASK_BRIEFS[code]}" for code in tasks)


def proposer_system(role: Role, language: str, max_answer_units: int,
                    with_frames: bool) -> str:
    visual = ("You also see frames sampled from the video; evidence about the picture uses "
              "source \"visual\" and describes what is visible." if with_frames else
              "You do not see the picture, only the text; cite only OCR and ASR lines.")
    return (
        "You design test questions for a benchmark that checks whether AI models understand "
        "e-commerce short video ads. For one ad you receive its time-aligned metadata: per "
        "second, the on-screen text found by OCR and the speech transcribed by ASR.\n\n"
        f"Your viewpoint: you are the {role.title}. {role.viewpoint}\n\n"
        f"The task types:\n{_task_lines(list(TASKS))}\n\n"
        "Rules for every candidate:\n"
        "- A model must need the ad to answer it: no question that general knowledge or the "
        "product type alone settles.\n"
        "- Every fact in the answer rests on evidence: quote the OCR or ASR text exactly as "
        "it appears in the metadata (copy it, do not translate or paraphrase it) with the "
        "seconds of its line. Never cite text that is not in the metadata.\n"
        f"- {visual}\n"
        "- A CM question ties at least two modalities; list them in \"modalities\" and give "
        "evidence from each one you can quote.\n"
        f"- The reference answer is short and specific: at most {max_answer_units} words "
        "(count a Chinese, Japanese or Korean character as one word).\n"
        f"- Write the question, the answer and the rationale in {language_name(language)}, "
        "whatever the language of the ad.\n"
        "- Questions must differ from each other; label each with the task it tests.\n\n"
        "Reply with one JSON object and nothing else, shaped like this:\n"
        + json.dumps(REPLY_SHAPE, ensure_ascii=False, indent=1)
    )


def proposer_user(metadata: str, tasks: list[str], per_task: int,
                  frame_urls: list[str] | None = None) -> str | list[dict]:
    """The user turn: the metadata, then which tasks to propose for (text, or parts with
    images when frames are shown)."""
    wanted = ", ".join(tasks)
    text = (f"The ad's metadata:\n\n{metadata}\n\n"
            f"Propose {per_task} candidate(s) for each of these tasks: {wanted}. "
            "Take your viewpoint, and cite the evidence exactly.")
    if not frame_urls:
        return text
    parts: list[dict] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in frame_urls]
    return parts


def proposer_messages(role: Role, metadata: str, tasks: list[str], *, language: str,
                      per_task: int, max_answer_units: int,
                      frame_urls: list[str] | None = None) -> list[dict]:
    return [{"role": "system", "content": proposer_system(role, language, max_answer_units,
                                                          bool(frame_urls))},
            {"role": "user", "content": proposer_user(metadata, tasks, per_task, frame_urls)}]


ANSWERER_SYSTEM = (
    "You answer questions about an e-commerce short video ad from its time-aligned OCR "
    "(on-screen text) and ASR (speech) metadata alone. Use only what the metadata says. "
    "Answer in at most 50 words, in {language}. If the metadata does not settle the "
    "question, say that it cannot be answered from it."
)

BLIND_SYSTEM = (
    "You answer questions about an e-commerce short video ad that you cannot see or hear: "
    "you have only the question. Give your best guess in at most 50 words, in {language}."
)


def answerer_messages(metadata: str, question: str, language: str) -> list[dict]:
    """The answerability check's independent answer: the metadata and the question."""
    return [{"role": "system", "content": ANSWERER_SYSTEM.format(language=language_name(language))},
            {"role": "user", "content": f"Metadata:\n\n{metadata}\n\nQuestion: {question}"}]


def blind_messages(question: str, language: str) -> list[dict]:
    """The blind check's answer: the question alone, no video and no metadata."""
    return [{"role": "system", "content": BLIND_SYSTEM.format(language=language_name(language))},
            {"role": "user", "content": f"Question: {question}"}]
