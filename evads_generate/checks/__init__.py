"""The checks a candidate goes through, cheapest first: form (task, language, length, CM
modalities), grounding, near-duplicates, then the two LLM checks (answerability, blind)."""

from .answerability import answerability
from .blind import blind
from .dedup import Deduplicator
from .form import form_check
from .grounding import ground
from .language import language_check, word_count

__all__ = ["Deduplicator", "answerability", "blind", "form_check", "ground",
           "language_check", "word_count"]
