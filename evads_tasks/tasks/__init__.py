"""The lmms-eval include path of E-VAds: task YAMLs, the task table and their functions."""

from pathlib import Path

INCLUDE_PATH = Path(__file__).resolve().parent
