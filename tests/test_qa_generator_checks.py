"""The Q&A generator's checks and reply handling, on the sample's real metadata: what a
candidate must do to be kept, and the reason it is given when it is not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from paths import REPO

from evads_generate.checks import Deduplicator, form_check, ground, language_check
from evads_generate.records import CandidateRecord
from evads_generate.schema import (
    PROPOSAL_SCHEMA,
    PROPOSAL_SCHEMA_NAME,
    Proposal,
    ReplyError,
    parse_proposal,
)
from evads_generate.selection import preference_order
from evads_tasks.core.annotations import load_annotations
from evads_tasks.core.chat.response_format import messages_in_mode, response_format


@pytest.fixture(scope="module")
def ad_01(sample_dir):
    """The first sample video's metadata (12 s T-shirt ad: price card 69.9元 at 7-11 s)."""
    return next(r for r in load_annotations(sample_dir / "annotations" / "test.parquet")
                if r.video_id == "ad_01")


def candidate(task="BP", question="视频中T恤的价格是多少？", answer="价格是69.9元。",
              evidence=(), modalities=(), role="consumer", index=0) -> CandidateRecord:
    return CandidateRecord(f"v/r1/{role}/{index}", "v", role, 1, task, question, answer,
                           list(evidence), list(modalities), "理由。", f"v/r1/{role}")


def item(source, start, quote, end=None):
    return {"source": source, "start_s": start, "end_s": start if end is None else end,
            "quote": quote}


def test_grounding_finds_quotes_where_they_are_and_names_what_is_wrong(ad_01):
    events = ad_01.events
    good = ground([item("ocr", 7, "69.9元"), item("asr", 2, "This shirt is made of pure "
                                                          "cotton")], events, 2.0)
    assert good["ok"], good  # the spoken sentence spans the 2 s and 3 s lines
    assert ground([item("OCR", 8, "６９．９元")], events, 2.0)["ok"]  # width and case folded
    cases = {
        "is not in the metadata": item("ocr", 7, "限量版9999元"),
        "not within 2s of 1s": item("ocr", 1, "69.9元"),
        "is ASR text, not OCR": item("ocr", 5, "The best shirt"),
        "too short to check": item("ocr", 7, "元"),
        "the proposer saw no frames": item("visual", 3, "a white T-shirt"),
        "unknown evidence source": item("smell", 3, "cotton"),
    }
    for expected, evidence in cases.items():
        verdict = ground([item("ocr", 7, "69.9元"), evidence], events, 2.0)
        assert not verdict["ok"] and expected in verdict["detail"], (expected, verdict)
    assert ground([item("visual", 3, "a white T-shirt")], events, 2.0, frames_shown=True)["ok"]
    assert ground([], events, 2.0)["detail"] == "no evidence given"


def test_form_rejects_wrong_task_language_length_and_single_modality_cm():
    assert form_check(candidate(task="Basic Perception"), "zh", 100) is None
    assert form_check(candidate(task="XX"), "zh", 100)[0] == "unknown_task"
    mislabelled = candidate(task="BP", question="视频宣称“全网最好的T恤”是否违规？")
    code, reason = form_check(mislabelled, "zh", 100)
    assert code == "task_mismatch" and "RC" in reason
    english = candidate(question="What does the shirt cost?", answer="69.9 yuan.")
    assert form_check(english, "zh", 100)[0] == "wrong_language"
    assert form_check(english, "en", 100) is None
    assert form_check(candidate(answer="价格" * 60), "zh", 100)[0] == "answer_too_long"
    spoken = item("asr", 2, "This shirt is")
    shown = item("ocr", 2, "100% 纯棉")
    cm = dict(task="CM", question="当旁白说出“This shirt is”时，画面上显示的文字是什么？")
    assert form_check(candidate(**cm, evidence=[spoken, shown], modalities=["asr", "ocr"]),
                      "zh", 100) is None
    assert form_check(candidate(**cm, evidence=[shown], modalities=["asr", "ocr"]),
                      "zh", 100)[0] == "cm_modalities"
    # the picture is a modality only when frames were shown
    picture = candidate(**cm, evidence=[shown], modalities=["ocr", "visual"])
    assert form_check(picture, "zh", 100)[0] == "cm_modalities"
    assert form_check(picture, "zh", 100, frames_shown=True) is None


def test_language_check_by_script():
    assert language_check("CottonDay 纯棉T恤的到手价为69.9元。", "zh")[0]
    assert not language_check("The price is 69.9 yuan.", "zh")[0]
    assert language_check("価格は69.9元です", "ja")[0]
    assert not language_check("价格是69.9元", "ja")[0]  # no kana: Chinese
    assert language_check("Цена 69 рублей", "ru")[0]
    assert language_check("anything", "xx")[1].startswith("not checked")


def test_near_duplicates_are_rejected_against_earlier_candidates():
    first = candidate(question="视频中CottonDay 纯棉T恤的到手价是多少？")
    reworded = candidate(question="视频中CottonDay纯棉T恤到手价是多少钱？", role="pragmatist")
    other = candidate(task="CI", question="该视频主要面向哪类人群，击中了他们的什么痛点？",
                      role="expert")
    dedup = Deduplicator(0.6)
    dedup.mark([reworded, other], earlier=[first])
    assert reworded.rejection == "duplicate" and first.id in reworded.reason
    assert other.open and other.checks["duplicate"]["ok"]


def test_preference_spreads_first_choices_over_roles():
    bp = [candidate(role="consumer"), candidate(role="expert", index=1)]
    ci = [candidate(task="CI", role="consumer", index=2)]
    order = preference_order({"BP": bp, "CI": ci})
    assert order["CI"][0].role == "consumer"     # the scarcer task chooses first
    assert order["BP"][0].role == "expert"       # so BP prefers another role


@pytest.mark.parametrize("reply, kind", [
    ('{"product_category": "Others", "candidates": [{"task": "ML", "quest', "truncated_json"),
    ("I'm sorry, but I can't help with that.", "refusal"),
    ("抱歉，我无法协助完成这个请求。", "refusal"),
    ('{"product_category": "Others", "candidates": [,]}', "invalid_json"),
    ('{"category": "Others", "questions": []}', "schema"),
    ("", "invalid_json"),
])
def test_broken_replies_are_named(reply, kind):
    with pytest.raises(ReplyError) as caught:
        parse_proposal(reply)
    assert caught.value.kind == kind


def test_the_schema_sent_is_the_one_that_validates():
    sent = response_format("json_schema", PROPOSAL_SCHEMA,
                           PROPOSAL_SCHEMA_NAME)["json_schema"]["schema"]
    assert sent == Proposal.model_json_schema()
    assert sent["additionalProperties"] is False
    fenced = "```json\n" + json.dumps({"product_category": "Others", "candidates": []}) + "\n```"
    assert parse_proposal(fenced).candidates == []
    # below json_schema the same schema rides in json_object's schema field and the prompt
    assert response_format("json_object", PROPOSAL_SCHEMA, PROPOSAL_SCHEMA_NAME) == {
        "type": "json_object", "schema": sent}
    assert response_format("none", PROPOSAL_SCHEMA, PROPOSAL_SCHEMA_NAME) is None
    messages = [{"role": "system", "content": "Propose."}, {"role": "user", "content": "ad"}]
    assert messages_in_mode("json_schema", messages, sent) == messages
    for mode in ("json_object", "none"):
        asked = messages_in_mode(mode, messages, sent)
        assert asked[1:] == messages[1:] and asked[0]["content"].startswith("Propose.\n\n")
        assert json.dumps(sent, ensure_ascii=False) in asked[0]["content"]


def test_dry_run_estimates_calls_and_tokens_without_a_server(sample_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "evads_generate",
         str(sample_dir / "annotations" / "test.parquet"), "--out", str(tmp_path / "out"),
         "--dry-run", "--price-input", "0.4", "--price-output", "1.2"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dry run: 8 videos, nothing sent (metadata measured for 8" in done.stdout
    assert "calls" in done.stdout and "tokens in" in done.stdout and "cost" in done.stdout
    assert not (tmp_path / "out").exists()


def test_help_and_missing_llm_are_usage_errors(sample_dir, tmp_path):
    command = [sys.executable, "-m", "evads_generate"]
    shown = subprocess.run([*command, "--help"], cwd=REPO, capture_output=True, text=True)
    for flag in ("--out", "--llm-base-url", "--llm-model", "--language", "--dry-run"):
        assert flag in shown.stdout
    done = subprocess.run([*command, str(sample_dir / "annotations" / "test.parquet"),
                           "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--llm-base-url and --llm-model are required" in done.stderr
