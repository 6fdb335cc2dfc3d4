"""Parsing the authors' time-aligned OCR/ASR lines, including the awkward real ones."""

from __future__ import annotations

import pytest

from evads_tasks.core.annotations import AnnotationError, Event, parse_metadata, render_metadata
from evads_tasks.core.annotations.events import parse_event_line
from evads_tasks.core.annotations.io import parse_rows

# Lines copied from EVAds_RL.parquet (videos 2525, 3288 and 698).
NESTED = ("Time 11s: OCR Text: [IF YOU[Ethan Bootleg] | BIGBANG (49)/Dr.Ethan | 词: G-DRAGON "
          "| 曲: G-DRAGON/P.KDEEP | 宋朝] ; ASR Text: \"箱盖愁是先分\"")
SEGMENTS = 'Time 0s: OCR Text: [COS好物分享之 | 酷克儿双开门束胸] ; ASR Text: "大家都知道"'
RL_PROMPT = ('<video>Voiceover: Duration: 26s\n\n[Time-aligned Events]:\n'
             'Time 0s: Audio Speech: "是谁突然降温"\nTime 1s: Audio Speech: "没有衣服穿啊"\n\n'
             ' Question: 视频如何利用换季场景将基础款转化为高频刚需单品？\n')


def test_nested_brackets_stay_inside_their_ocr_segment():
    event = parse_event_line(NESTED)
    assert event.ocr == ("IF YOU[Ethan Bootleg]", "BIGBANG (49)/Dr.Ethan", "词: G-DRAGON",
                         "曲: G-DRAGON/P.KDEEP", "宋朝")
    assert event.asr == "箱盖愁是先分"
    assert (event.start, event.end) == (11, 11)


def test_ocr_segments_split_on_the_pipe():
    event = parse_event_line(SEGMENTS)
    assert event.ocr == ("COS好物分享之", "酷克儿双开门束胸")
    assert event.asr == "大家都知道"


def test_time_range_and_ocr_only_line():
    event = parse_event_line("Time 23-25s: OCR Text: [EXIT]")
    assert event == Event(start=23, end=25, ocr=("EXIT",), asr=None)


def test_asr_only_line():
    event = parse_event_line('Time 10s: ASR Text: "就是这个库克"')
    assert event == Event(10, 10, (), "就是这个库克")


def test_rl_prompt_spelling_voiceover_duration_and_audio_speech():
    meta = parse_metadata(RL_PROMPT)
    assert meta.duration == 26
    assert meta.category is None
    assert [e.asr for e in meta.events] == ["是谁突然降温", "没有衣服穿啊"]
    assert all(e.ocr == () for e in meta.events)


def test_header_lines_give_category_and_duration():
    header = "Category: 服饰鞋包\nDuration: 26s\n\n[Time-aligned Events]:\n"
    meta = parse_metadata(header + SEGMENTS)
    assert (meta.category, meta.duration, len(meta.events)) == ("服饰鞋包", 26, 1)


def test_render_then_parse_gives_the_same_events():
    events = (parse_event_line(NESTED), parse_event_line(SEGMENTS),
              Event(23, 25, ("EXIT",)), Event(4.5, 4.5, (), "半高领打底衫"))
    text = render_metadata("服饰鞋包", 26, events)
    assert parse_metadata(text).events == events
    speech = render_metadata(None, 26, events[3:], speech_label="Audio Speech")
    assert 'Time 4.5s: Audio Speech: "半高领打底衫"' in speech
    assert parse_metadata(speech).events == events[3:]


@pytest.mark.parametrize("line", ["Time 3s: 画面里的字", "Time 3s:", "Time xs: OCR Text: [a]"])
def test_malformed_time_line_is_an_error_naming_the_line(line):
    with pytest.raises(ValueError, match="Time"):
        parse_metadata(f"Duration: 5s\n{line}")


def test_malformed_event_in_a_file_names_row_and_field():
    row = {"question": "视频中的价格是多少？", "answer": "9.9元", "ques_categories": "BP",
           "video_id": "7", "ques_id": "q7", "asr_input": "Duration: 5s\nTime 3s: 乱码"}
    with pytest.raises(AnnotationError) as caught:
        parse_rows([row], "bad.jsonl")
    assert (caught.value.file, caught.value.row, caught.value.field) == ("bad.jsonl", 0,
                                                                        "asr_input")
    assert "Time 3s: 乱码" in str(caught.value)
