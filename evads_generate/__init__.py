"""The multi-agent Q&A generator: an E-VAds-style benchmark from raw ad videos.

Five role agents (Consumer, Expert, Skeptic, Pragmatist, Creative Director) propose
open-ended questions grounded in each video's time-aligned OCR/ASR metadata; deterministic
and LLM checks keep one question per task per video. Modules, in the order of a run:
``inputs`` -> ``perception`` -> ``agents`` (``roles``, ``prompts``, ``schema``) ->
``checks`` -> ``selection`` (``pipeline`` per video, ``run`` per collection, ``state`` for
resume, ``llm`` for every call) -> ``output`` and ``report``; ``estimate`` for --dry-run;
``cli`` is ``python -m evads_generate``.

May import ``evads_tasks.core`` and ``evads_density`` (perception); nothing imports it.
"""
