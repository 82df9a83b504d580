"""Every module a stage runs is one of its `dvc.yaml` deps: a change to it reruns the stage.

A module missing from deps lets `dvc status` call a stage up to date while its code changed, and
`dvc.lock` then records outputs that the committed code no longer makes.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rnnlm"
# Modules that cannot change an output's bytes: how long a process lives, and error messages.
NO_EFFECT_ON_OUTPUTS = {"src/rnnlm/lifecycle.py", "src/rnnlm/errors.py"}


def local_imports(path):
    """The project modules that the file at ``path`` imports: the package's (absolute or relative
    imports) and the stage scripts' own helpers beside them (``from _params import ...``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # inside the package: `from .x import y`, `from . import x`
                base = "rnnlm" + (f".{base}" if base else "")
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "rnnlm" and len(parts) > 1 and (PACKAGE / f"{parts[1]}.py").is_file():
                found.add(f"src/rnnlm/{parts[1]}.py")
            elif parts[0] == "rnnlm" and len(parts) > 1 and (PACKAGE / parts[1] / "__init__.py").is_file():
                found.add(f"src/rnnlm/{parts[1]}")  # a subpackage is one dependency: its folder
            elif (ROOT / "stages" / f"{parts[0]}.py").is_file():
                found.add(f"stages/{parts[0]}.py")
    return found


def _sources(module):
    """The files of a dependency: a module, or every module of a subpackage's folder."""
    path = ROOT / module
    return sorted(path.glob("*.py")) if path.is_dir() else [path]


def import_closure(script):
    seen, todo = set(), [ROOT / script]
    while todo:
        path = todo.pop()
        imports = set()
        for source in _sources(path.relative_to(ROOT)):
            imports |= local_imports(source)
        for module in imports - seen:
            seen.add(module)
            todo.append(ROOT / module)
    return seen


def stages():
    """(name, script, deps) of every stage in dvc.yaml."""
    found = []
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        stage = stage.get("do", stage)
        found.append((name, re.search(r"stages/\w+\.py", stage["cmd"]).group(0), set(stage["deps"])))
    return found


STAGES = stages()


@pytest.mark.parametrize("name, script, deps", STAGES, ids=[name for name, _, _ in STAGES])
def test_a_stage_depends_on_every_module_it_runs(name, script, deps):
    assert script in deps
    missing = import_closure(script) - NO_EFFECT_ON_OUTPUTS - deps
    assert not missing, f"stage {name}: add to its deps in dvc.yaml: {sorted(missing)}"


def test_the_import_scan_follows_relative_imports():
    closure = import_closure("stages/train.py")
    assert {"src/rnnlm/training.py", "src/rnnlm/models", "src/rnnlm/checkpoint.py"} <= closure
    assert "src/rnnlm/kinds.py" in closure  # imported by the models package's own modules
    assert "stages/_params.py" in closure  # the stage scripts' params reader, beside them
