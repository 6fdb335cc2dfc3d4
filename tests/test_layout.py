"""The package layout: lower layers never import higher ones (evads_tasks/__init__.py).

Imports are read from the source with ``ast`` (lazy imports inside functions included), so
the rule holds for every code path, not only for what a test happens to import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from paths import REPO

# package (dotted prefix) -> the dotted prefixes it must never import
FORBIDDEN = {
    "evads_tasks.core": ("lmms_eval", "evads_tasks.tasks", "evads_tasks.runs",
                         "evads_tasks.sample", "evads_tasks.models",
                         "evads_tasks.lmms_eval_cli", "evads_tasks.__main__",
                         "evads_generate", "evads_density", "evads_rl"),
    "evads_tasks.sample": ("lmms_eval", "evads_tasks.tasks", "evads_tasks.runs",
                           "evads_tasks.lmms_eval_cli", "evads_generate", "evads_density",
                           "evads_rl"),
    "evads_tasks.tasks": ("evads_tasks.runs", "evads_tasks.lmms_eval_cli", "evads_generate",
                          "evads_density", "evads_rl"),
    "evads_tasks.runs": ("evads_tasks.lmms_eval_cli", "evads_generate", "evads_density",
                         "evads_rl"),
    "evads_density": ("lmms_eval", "evads_tasks.tasks", "evads_tasks.runs", "evads_generate",
                      "evads_rl"),
    "evads_generate": ("lmms_eval", "evads_tasks.tasks", "evads_tasks.runs", "evads_rl"),
    "evads_rl": ("evads_generate",),
}
MAX_ROOT_MODULES = 5


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of ``module`` that break the layer rule, as readable lines."""
    rules = [banned for prefix, banned in FORBIDDEN.items()
             if module == prefix or module.startswith(prefix + ".")]
    bad = []
    for target in sorted(imported_modules(source, module, is_package)):
        for banned in (b for rule in rules for b in rule):
            if target == banned or target.startswith(banned + "."):
                bad.append(f"{module} imports {target} (a {banned.split('.')[-1]} layer "
                           "above it)")
                break
    return bad


def project_modules() -> list[Path]:
    return sorted(path for top in ("evads_tasks", "evads_density", "evads_rl", "evads_generate")
                  for path in (REPO / top).rglob("*.py"))


def test_no_package_imports_a_layer_above_it():
    found = [line for path in project_modules()
             for line in violations(path.read_text(encoding="utf-8"), module_name(path),
                                    path.name == "__init__.py")]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("statement", [
    "import lmms_eval",
    "from lmms_eval.api.registry import register_model",
    "from evads_tasks.runs.rescore import main",
    "from ...runs import rescore",
    "from evads_generate.pipeline import Generator",
    "import evads_rl.train",
    "from evads_density import analysis",
])
def test_the_rule_catches_a_core_module_importing_upward(statement):
    source = f"def late():\n    {statement}\n"
    assert violations(source, "evads_tasks.core.judge.cache"), statement


def test_the_rule_allows_core_to_import_core():
    source = "from ..annotations import EvadsRecord\nfrom evads_tasks.core.scoring import r3\n"
    assert violations(source, "evads_tasks.core.judge.cache") == []


def test_evads_tasks_root_holds_few_modules_and_no_generator():
    root = REPO / "evads_tasks"
    modules = sorted(p.name for p in root.glob("*.py"))
    assert len(modules) <= MAX_ROOT_MODULES, modules
    assert not (root / "qa_generator").exists()
    assert (REPO / "evads_generate" / "pipeline.py").is_file()
