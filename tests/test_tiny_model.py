"""The offline tiny model runs through the real model and processor classes, marked random."""

import numpy as np
import pytest
from transformers import AutoModelForImageTextToText, AutoProcessor

from evads_tasks.sample.tiny_model import NOTICE_FILE, ensure_tiny_vlm, is_tiny_random


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_tiny_model_generates_from_video_frames(tmp_path, family):
    path = ensure_tiny_vlm(family, root=tmp_path)
    assert is_tiny_random(path)
    assert "gibberish" in (path / NOTICE_FILE).read_text()
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    frames = (np.random.default_rng(0).random((4, 96, 160, 3)) * 255).astype("uint8")
    messages = [{"role": "user", "content": [{"type": "video"},
                                             {"type": "text", "text": "视频中商品的价格是多少？"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], videos=[frames], return_tensors="pt")
    assert inputs["pixel_values_videos"].shape[0] > 0
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_tiny_model_is_built_once(tmp_path):
    first = ensure_tiny_vlm("qwen2_vl", root=tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_vlm("qwen2_vl", root=tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
