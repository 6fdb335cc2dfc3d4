"""The bundled sample: eight synthetic product ads with E-VAds annotations, from a seed."""

from .generate import DONE, build_script, generate_sample, script_records

__all__ = ["DONE", "build_script", "generate_sample", "script_records"]
