"""The bundled sample: twelve synthetic product ads with E-VAds annotations (test, SFT and RL
splits, disjoint by video), from a seed, and the tiny random Qwen2-VL / Qwen2.5-VL built
offline for smoke runs (``tiny_model``).

May import ``evads_tasks.core`` only.
"""

from .generate import DONE, build_script, generate_sample, script_records

__all__ = ["DONE", "build_script", "generate_sample", "script_records"]
