"""Every knob of a generation run in one place: the CLI's defaults are these defaults.

The settings that change what is asked of the LLM or what is kept are saved in
``DIR/settings.json``; a resumed run must use the same ones (the CLI refuses others unless
``--fresh``), so that the replies it finds in the cache answer the questions it would ask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from evads_tasks.core.without_video import THRESHOLD as WITHOUT_VIDEO_THRESHOLD

CHECK_MODES = ("lazy", "all")
RESPONSE_FORMATS = ("json_schema", "json_object", "none")


@dataclass(frozen=True)
class GeneratorSettings:
    """What the run asks for and what it accepts.

    - ``language``: the language of the questions and answers (an ISO code: zh, en, ja...).
    - ``asr_language``: the speech language passed to ASR (None: the same as ``language``;
      ``auto``: let Whisper detect it).
    - ``grounding_window_s``: a quote must occur within this many seconds of its timestamp.
    - ``answerable_threshold``: the judge's score of the metadata-only answer must reach it.
    - ``blind_threshold``: a question whose blind answer (no video, no metadata) scores this
      much or more is rejected as answerable without the video (the shared definition and
      default of ``evads_tasks.core.without_video``).
    - ``duplicate_threshold``: two questions of one video at or above this combined
      similarity (see ``checks.dedup``) are near-duplicates; the later one is rejected.
    - ``max_answer_units``: the reference answer's length limit in text units (CJK
      characters, Latin words, numbers): the benchmark asks for answers within ~50 words.
    - ``candidates_per_task``: candidates each role proposes for each task in a round.
    - ``rounds``: proposal rounds; a later round asks only for the tasks still unfilled.
    - ``check_mode``: ``lazy`` runs the LLM checks on candidates in preference order until
      a task is filled (fewest calls); ``all`` checks every candidate that passed grounding.
    - ``frames``: sampled video frames sent as images to the proposers (a VLM endpoint).
    - ``allow_partial``: keep videos with fewer than five accepted questions in the output.
    """

    language: str = "zh"
    asr_language: str | None = None
    grounding_window_s: float = 2.0
    answerable_threshold: float = 0.75
    blind_threshold: float = WITHOUT_VIDEO_THRESHOLD
    duplicate_threshold: float = 0.6
    max_answer_units: int = 100
    candidates_per_task: int = 1
    rounds: int = 2
    check_mode: str = "lazy"
    propose_temperature: float = 0.7
    propose_max_tokens: int = 4096
    answer_max_tokens: int = 512
    response_format: str = "json_schema"
    frames: int = 0
    allow_partial: bool = False

    def __post_init__(self) -> None:
        checks = {
            "language": bool(self.language.strip()),
            "grounding_window_s": self.grounding_window_s >= 0,
            "answerable_threshold": 0 <= self.answerable_threshold <= 1,
            "blind_threshold": 0 <= self.blind_threshold <= 1,
            "duplicate_threshold": 0 < self.duplicate_threshold <= 1,
            "max_answer_units": self.max_answer_units >= 1,
            "candidates_per_task": self.candidates_per_task >= 1,
            "rounds": self.rounds >= 1,
            "check_mode": self.check_mode in CHECK_MODES,
            "propose_max_tokens": self.propose_max_tokens >= 1,
            "answer_max_tokens": self.answer_max_tokens >= 1,
            "response_format": self.response_format in RESPONSE_FORMATS,
            "frames": self.frames >= 0,
        }
        bad = [f"{name}={getattr(self, name)!r}" for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid generator settings: {', '.join(bad)}")

    @property
    def speech_language(self) -> str | None:
        """The language handed to ASR: None lets Whisper detect it."""
        chosen = self.asr_language or self.language
        return None if chosen == "auto" else chosen

    def to_dict(self) -> dict:
        return asdict(self)
