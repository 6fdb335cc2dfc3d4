"""The model-free parts of speech recognition: Simplified text, spoken numbers, CER, where a
language switch is cut, per-second text, and how a model name is resolved."""

from __future__ import annotations

import pytest

from evads_density.asr import (
    BackendUnavailable,
    Segment,
    Transcript,
    Word,
    check_language,
    language_spans,
    resolve_model,
    simplified,
)
from evads_density.zh_text import (
    character_error_rate,
    normalize_for_cer,
    read_integer,
    read_numbers,
    to_simplified,
)

RATE = 16000


def test_traditional_output_becomes_simplified():
    # the example of what Whisper base wrote for a Mandarin ad line
    assert to_simplified("已經通過了皮膚測試") == "已经通过了皮肤测试"
    assert to_simplified("頭髮乾燥，乾隆 iPhone 15") == "头发干燥，乾隆 iPhone 15"


def test_a_chinese_segment_and_its_words_come_out_simplified_others_do_not():
    words = (Word(0.0, 0.4, "頭髮"), Word(0.4, 0.9, "測試"))
    zh = simplified(Segment(0.0, 0.9, "頭髮測試", "zh", words))
    assert zh.text == "头发测试" and [w.text for w in zh.words] == ["头发", "测试"]
    ja = Segment(0.0, 0.9, "頭髮測試", "ja", words)
    assert simplified(ja) == ja


@pytest.mark.parametrize(("number", "said"), [
    (4, "四"), (10, "十"), (12, "十二"), (20, "二十"), (99, "九十九"), (105, "一百零五"),
    (110, "一百一十"), (200, "二百"), (1299, "一千二百九十九"), (10005, "一万零五"),
    (120000000, "一亿二千万")])
def test_integers_are_read_as_spoken(number, said):
    assert read_integer(number) == said


def test_digits_whisper_writes_are_read_back_for_cer():
    assert (read_numbers("只要99元，5.08，1,299元，50%")
            == "只要九十九元，五点零八，一千二百九十九元，百分之五十")
    assert normalize_for_cer("充絨量200克, Buy NOW!") == "充绒量二百克buynow"
    # a right number written as digits, or 两 for 二, is no error; a wrong character is
    assert character_error_rate("只要九十九元", "只要99元。") == 0
    assert character_error_rate("两百克", "200克") == 0
    assert character_error_rate("库存不多", "互存不多") == 0.25


def test_per_second_text_follows_the_word_times():
    words = (Word(0.1, 0.5, "这款"), Word(0.6, 1.2, "面霜"), Word(1.3, 1.8, "质地"),
             Word(4.2, 4.6, " Buy"), Word(4.6, 4.9, " now"))
    transcript = Transcript((Segment(0.1, 1.8, "这款面霜质地", "zh", words[:3]),
                             Segment(4.2, 4.9, "Buy now", "en", words[3:])), 5.0, "m")
    # 面霜 spans 0.6-1.2 s: it belongs to second 0, the second holding its middle
    assert transcript.per_second() == {0: "这款面霜", 1: "质地", 4: "Buy now"}
    assert transcript.languages == ("zh", "en") and transcript.units == 8


def test_a_language_switch_is_cut_at_the_longest_pause_between_sure_chunks():
    def at(*seconds):
        return tuple(int(s * RATE) for s in seconds)

    # English 0-6 s, a 1.3 s pause, a short Mandarin phrase (too short to tell), a 0.3 s
    # pause, Mandarin 9.5-12.5 s: the switch belongs in the long pause.
    regions = [at(0, 6), at(7.3, 9.2), at(9.5, 12.5)]
    spans = language_spans(regions, [("en", 0.9), None, ("zh", 0.99)], at(13)[0])
    assert spans == [at(0, 6.65), at(6.65, 13)]
    # unsure guesses (p < 0.8) take their neighbours' language: no cut
    assert language_spans(regions, [("en", 0.9), ("fi", 0.7), ("en", 0.8)],
                          at(13)[0]) == [at(0, 13)]
    assert language_spans(regions, [None, None, None], at(13)[0]) == [at(0, 13)]


def test_model_names_resolve_without_loading_anything():
    assert resolve_model(None).source == "bundled" and resolve_model("base") == resolve_model(None)
    assert "multilingual" in resolve_model(None).label()
    tiny = resolve_model("tiny.en")
    assert tiny.source == "bundled" and tiny.english_only
    assert resolve_model("large-v3").where == "Systran/faster-whisper-large-v3"
    assert resolve_model("large-v3-turbo").source == "hub"
    assert resolve_model("/no/such/folder").source == "folder"
    with pytest.raises(BackendUnavailable, match="not a folder here nor a model name"):
        resolve_model("larg-v3")


def test_languages_are_checked_against_whisper_and_the_model():
    assert check_language(None) == "auto" and check_language("zh") == "zh"
    with pytest.raises(BackendUnavailable, match="not a Whisper language code"):
        check_language("cn")
    with pytest.raises(BackendUnavailable, match="tiny.en is English only"):
        check_language("zh", resolve_model("tiny.en"))
