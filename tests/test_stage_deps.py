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


def module_files(name):
    """The files importing the dotted module ``name`` runs: a module of the package, or a subpackage's
    ``__init__.py`` and, for ``rnnlm.sub.mod``, that module too; a stage helper beside the scripts."""
    parts = name.split(".")
    if parts[0] != "rnnlm" or len(parts) < 2:
        return {f"stages/{parts[0]}.py"} if (ROOT / "stages" / f"{parts[0]}.py").is_file() else set()
    if (PACKAGE / f"{parts[1]}.py").is_file():
        return {f"src/rnnlm/{parts[1]}.py"}
    if not (PACKAGE / parts[1] / "__init__.py").is_file():
        return set()
    found = {f"src/rnnlm/{parts[1]}/__init__.py"}
    if len(parts) > 2 and (PACKAGE / parts[1] / f"{parts[2]}.py").is_file():
        found.add(f"src/rnnlm/{parts[1]}/{parts[2]}.py")
    return found


def local_imports(path):
    """The project files that the file at ``path`` imports: the package's (absolute or relative
    imports) and the stage scripts' own helpers beside them (``from _params import ...``)."""
    found = set()
    package = ".".join(["rnnlm", *path.relative_to(PACKAGE).parent.parts]) if PACKAGE in path.parents else "rnnlm"
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # inside the package: `from .x import y`, `from ..x import y`, `from . import x`
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            found |= module_files(name)
    return found


def import_closure(script):
    seen, todo = set(), [ROOT / script]
    while todo:
        path = todo.pop()
        for module in local_imports(path) - seen:
            seen.add(module)
            todo.append(ROOT / module)
    return seen


def covered(path, deps):
    """Whether ``deps`` lists ``path`` or a folder holding it (a folder dep is hashed whole by DVC)."""
    return any(path == dep or path.startswith(f"{dep}/") for dep in deps)


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
    missing = {path for path in import_closure(script) - NO_EFFECT_ON_OUTPUTS if not covered(path, deps)}
    assert not missing, f"stage {name}: add to its deps in dvc.yaml: {sorted(missing)}"


@pytest.mark.parametrize("name, script, deps", STAGES, ids=[name for name, _, _ in STAGES])
def test_a_stage_depends_on_no_module_it_does_not_run(name, script, deps):
    """A code dep the stage never imports only reruns it (and what follows) when that module changes."""
    closure = import_closure(script) | {script}
    code = {dep for dep in deps if dep.startswith(("src/", "stages/"))}
    unused = {dep for dep in code if not any(covered(path, {dep}) for path in closure)}
    assert not unused, f"stage {name}: remove from its deps in dvc.yaml: {sorted(unused)}"


def test_the_import_scan_follows_relative_imports():
    closure = import_closure("stages/train.py")
    assert {"src/rnnlm/training.py", "src/rnnlm/models/recurrent.py", "src/rnnlm/checkpoint.py"} <= closure
    assert "src/rnnlm/kinds.py" in closure  # imported by the models package's own modules
    assert "stages/_params.py" in closure  # the stage scripts' params reader, beside them
    assert "src/rnnlm/schema/train.py" in closure and "src/rnnlm/schema/generate.py" not in closure
