"""A tiny, randomly initialised Qwen2-VL / Qwen2.5-VL built offline, for smoke runs.

No model hub is reachable on CI machines, yet the evaluation and training paths
must run end to end through the real model classes. This module builds the
real architecture from a small config, trains a byte-level BPE tokenizer on a
few sentences, and saves model, tokenizer, image and video processors and the
chat template to a folder. The model answers gibberish; every output made
with it must say so (the folder's ``TINY_RANDOM_MODEL.md`` does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evads_tasks.core.annotations.categories import CATEGORIES
from evads_tasks.core.annotations.task_labels import TASKS

FAMILIES = ("qwen2_vl", "qwen2_5_vl")
DEFAULT_ROOT = Path("runs/models")
NOTICE_FILE = "TINY_RANDOM_MODEL.md"
FOLDER_PREFIX = "tiny-random-"
NOTICE = ("tiny random {family} (offline smoke-test model, random weights: "
          "its answers are gibberish and its scores mean nothing)")

_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                   "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
# The structure of Qwen2-VL's chat template: images and videos become pad tokens
# between vision markers; the processor expands each pad to the patch count.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus() -> list[str]:
    """Sentences in the benchmark's languages, so the tokenizer has useful merges."""
    lines = [f"{t.code} {t.name} {t.chinese} {t.dimension}" for t in TASKS.values()]
    lines += [f"{en} {zh}" for en, zh in CATEGORIES.items()]
    lines += [
        "<think>视频先展示价格再强调卖点</think> <answer>价格是29.9元，主打买一送一。</answer>",
        "Time 3s: OCR Text: [限时特价 ¥59.9] ; ASR Text: \"今天只要五十九块九\"",
        "The video shows the product price and the main selling point. Answer: 1.0",
        "视频宣称最好的是否合规？违反广告法的绝对化用语。目标人群是年轻妈妈。",
    ]
    return lines * 4


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = Qwen2TokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token=None)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _config(family: str, tokenizer):
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in [
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                 "mrope_section": [2, 3, 3]},
                bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                      out_hidden_size=64, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    from transformers import Qwen2VLConfig

    vision = dict(depth=2, embed_dim=32, hidden_size=64, mlp_ratio=2, num_heads=2,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision, **ids)


def _processor(family: str, tokenizer):
    from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    # Small pixel budgets keep a CPU forward pass fast: at most 8x8 patches per frame.
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}
    cls = Qwen2_5_VLProcessor if family == "qwen2_5_vl" else Qwen2VLProcessor
    return cls(image_processor=Qwen2VLImageProcessor(size=size),
               video_processor=Qwen2VLVideoProcessor(size=size, cap_pixels_per_frame=True),
               tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def build_tiny_vlm(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Build and save a tiny random model of ``family`` into ``out_dir``."""
    import torch
    from transformers import AutoModelForImageTextToText

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    model = AutoModelForImageTextToText.from_config(_config(family, tokenizer))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    _processor(family, tokenizer).save_pretrained(out_dir)
    (out_dir / NOTICE_FILE).write_text(
        f"# {NOTICE.format(family=family)}\n\nBuilt offline by "
        f"`evads_tasks.sample.tiny_model` from a small config (seed {seed}); "
        f"{sum(p.numel() for p in model.parameters()):,} "
        "parameters. It exercises every real code path of the model class, processor and "
        "engines, and nothing else.\n", encoding="utf-8")
    return out_dir


def ensure_tiny_vlm(family: str = "qwen2_5_vl", root: Path | None = None, seed: int = 0) -> Path:
    """The folder of the tiny model of ``family``, built on first use."""
    out_dir = Path(root or DEFAULT_ROOT) / f"{FOLDER_PREFIX}{family.replace('_', '-')}"
    if not (out_dir / NOTICE_FILE).is_file():
        build_tiny_vlm(family, out_dir, seed)
    return out_dir


def is_tiny_random(path: str | Path) -> bool:
    """Whether a model folder is one of these tiny random models."""
    return (Path(path) / NOTICE_FILE).is_file()


def looks_tiny_random(path: str | Path) -> bool:
    """Whether a model path is named like these models' folders, wherever it lies
    (for reports read away from the folder: a stand-in must never pass for a model)."""
    return Path(str(path).rstrip("/")).name.startswith(FOLDER_PREFIX)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evads_tasks.sample.tiny_model",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=FAMILIES, default="qwen2_5_vl")
    parser.add_argument("--out", type=Path, help="folder (default runs/models/tiny-random-...)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = (build_tiny_vlm(args.family, args.out, args.seed) if args.out
            else ensure_tiny_vlm(args.family, seed=args.seed))
    print(f"{path}: {NOTICE.format(family=args.family)}")


if __name__ == "__main__":
    main()
