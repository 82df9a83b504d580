"""The locked environment: requirements.lock pins every package README's set-up installs, and it agrees with
pyproject.toml and with the environment the tests run in. No network: the checks read the two files and the
installed packages' metadata (importlib.metadata).

README's set-up installs the lock as constraints (`pip install -e '.[dev]' -c requirements.lock`), so
pyproject.toml keeps the project's own pins and the lock adds every package they pull in; `.ci/lock`
writes it with pip-compile. Three ways they can disagree, one check each:

- pins: a dependency of pyproject.toml (with the extras README installs) missing from the lock, or locked at
  a version the dependency excludes (someone bumped a pin and did not run `.ci/lock`);
- closure: a package the set-up installs requires one the lock does not hold, or holds at a version it
  excludes; or the lock holds a package nothing requires any more (a dependency was dropped);
- installed: a locked package not installed here, or installed at another version (a set-up without `-c
  requirements.lock`, or an old environment).

torch is locked as a version, not a build: `torch==2.13.0` admits this machine's CPU wheel (`2.13.0+cpu`) and
PyPI's CUDA wheel (`2.13.0`), as pip reads a pin (PEP 440: a local label the pin does not name is ignored).
The CUDA wheel's own requirements (cuda-*, nvidia-* CUDA libraries, triton) are not locked: torch pins them
exactly itself, and a CPU machine must not install them (docs/scale.md, GPU section).
"""

import re
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
EXTRAS = ("dev",)   # README's set-up: pip install -e '.[dev]' -c requirements.lock
# What only torch's CUDA build requires. nvidia-ml-py is not one: dvclive reads GPUs through it on any machine.
CUDA_ONLY = re.compile(r"nvidia-(?!ml-py$).+|cuda-.+|triton")


def read_lock(path):
    """``{name: Version}`` of a pip-compile output: one ``name==version`` a line, comments and options left out."""
    lock = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        assert sep and re.fullmatch(r"[A-Za-z0-9._-]+", name.strip()), \
            f"{path}:{number}: {line!r} is not an exact pin (name==version)"
        lock[canonicalize_name(name)] = Version(version.strip())
    return lock


def project_requirements(path, extras):
    """The requirements of the project in ``path`` (a pyproject.toml) installed with ``extras``; an extra that
    names the project itself (``rnnlm[export]``) adds that extra's requirements."""
    project = tomllib.loads(Path(path).read_text(encoding="utf-8"))["project"]
    name, optional = canonicalize_name(project["name"]), project.get("optional-dependencies", {})
    requirements, todo, seen = [Requirement(r) for r in project.get("dependencies", [])], list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in map(Requirement, optional[extra]):
            if canonicalize_name(req.name) == name:
                todo += req.extras
            else:
                requirements.append(req)
    return requirements


def applies(req, extras=()):
    """Whether ``req``'s marker holds in this environment for a package installed with ``extras``."""
    return req.marker is None or any(req.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def installed_packages():
    """``{name: (version, [requirement])}`` of this environment, the distribution Python imports first."""
    found = {}
    for dist in distributions():
        found.setdefault(canonicalize_name(dist.metadata["Name"]), (dist.version, dist.requires or []))
    return found


def pin_problems(requirements, lock):
    """Each requirement of the project that the lock does not satisfy."""
    problems = []
    for req in requirements:
        locked = lock.get(canonicalize_name(req.name))
        if locked is None:
            problems.append(f"{req} (pyproject.toml) is not in the lock")
        elif not req.specifier.contains(locked, prereleases=True):
            problems.append(f"{req} (pyproject.toml), but the lock has {req.name}=={locked}")
    return problems


def closure_problems(requirements, lock, installed):
    """The lock against the requirements reached from the project's, through the metadata of the installed
    packages: each one reached must be locked at a version it admits (CUDA-only ones excepted), and each
    locked package must be reached."""
    problems, reached = [], {}
    todo = [("pyproject.toml", req, ()) for req in requirements]
    while todo:
        parent, req, parent_extras = todo.pop()
        name = canonicalize_name(req.name)
        if not applies(req, parent_extras):
            continue
        if name not in lock:
            if not CUDA_ONLY.fullmatch(name):
                problems.append(f"{parent} requires {req}, which is not in the lock")
            continue
        if not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{parent} requires {req}, but the lock has {name}=={lock[name]}")
        extras = reached.setdefault(name, set())
        new = {"", *req.extras} - extras
        if name in installed and new:
            extras |= new
            todo += [(name, Requirement(r), tuple(new)) for r in installed[name][1]]
    problems += [f"{name}=={lock[name]} is locked, but nothing the set-up installs requires it"
                 for name in sorted(set(lock) - set(reached))]
    return problems


def installed_problems(lock, installed):
    """Each locked package that is not installed, or installed at another version than the lock's
    (a build label such as torch's ``+cpu`` is allowed, as pip allows it)."""
    problems = []
    for name, version in sorted(lock.items()):
        if name not in installed:
            problems.append(f"{name}=={version} is locked but not installed")
        elif not Requirement(f"{name}=={version}").specifier.contains(installed[name][0], prereleases=True):
            problems.append(f"{name}=={version} is locked, {installed[name][0]} is installed")
    return problems


def report(problems, fix):
    return "\n".join([*problems, fix])


REFRESH = "refresh the lock: `.ci/lock` (docs/reproducibility.md), then reinstall with README's set-up line"


def test_every_dependency_of_pyproject_is_locked_at_its_version():
    problems = pin_problems(project_requirements(PYPROJECT, EXTRAS), read_lock(LOCK))
    assert not problems, report(problems, REFRESH)


def test_the_lock_is_closed_and_holds_nothing_else():
    problems = closure_problems(project_requirements(PYPROJECT, EXTRAS), read_lock(LOCK), installed_packages())
    assert not problems, report(problems, REFRESH)


def test_this_environment_is_the_locked_one():
    problems = installed_problems(read_lock(LOCK), installed_packages())
    assert not problems, report(problems, "install with README's set-up line: pip install -e '.[dev]' -c requirements.lock")


def test_the_lock_pins_torch_as_a_version_that_every_build_satisfies_and_no_cuda_package():
    lock = read_lock(LOCK)
    project_torch = next(r for r in project_requirements(PYPROJECT, ()) if r.name == "torch")
    assert str(project_torch.specifier) == f"=={lock['torch']}" and not lock["torch"].local
    assert [name for name in lock if CUDA_ONLY.fullmatch(name)] == []
    assert "nvidia-ml-py" in lock  # dvclive's, on every machine: not CUDA-only
    header = LOCK.read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert "#    .ci/lock\n" in header  # how it was made, for the next refresh


# The checks themselves, on a fabricated project: each one fails where it should.

def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def fabricated(tmp_path):
    pyproject = write(tmp_path / "pyproject.toml", """\
[project]
name = "proj"
dependencies = ["torch==2.13.0", "alpha==1.0"]
[project.optional-dependencies]
export = ["gamma==3.0"]
dev = ["proj[export]", "beta==2.0"]
""")
    return project_requirements(pyproject, ["dev"])


def test_project_requirements_follow_an_extra_that_names_the_project(tmp_path):
    assert sorted(str(r) for r in fabricated(tmp_path)) == ["alpha==1.0", "beta==2.0", "gamma==3.0", "torch==2.13.0"]


def test_read_lock_refuses_a_line_that_is_not_an_exact_pin(tmp_path):
    assert read_lock(write(tmp_path / "ok.lock", "# header\nAlpha_Pkg==1.0\n    # via x\n--no-binary x\n")) == {
        "alpha-pkg": Version("1.0")}
    with pytest.raises(AssertionError, match=r"bad.lock:2: .* is not an exact pin"):
        read_lock(write(tmp_path / "bad.lock", "alpha==1.0\nproj @ file:///somewhere\n"))


def test_pin_check_fails_on_a_missing_or_moved_pin(tmp_path):
    requirements = fabricated(tmp_path)
    lock = {"torch": Version("2.13.0"), "alpha": Version("1.0"), "beta": Version("2.0"), "gamma": Version("3.0")}
    assert pin_problems(requirements, lock) == []
    moved = lock | {"beta": Version("2.1")}
    del moved["gamma"]
    assert pin_problems(requirements, moved) == [
        "beta==2.0 (pyproject.toml), but the lock has beta==2.1", "gamma==3.0 (pyproject.toml) is not in the lock"]


def test_closure_check_fails_on_an_unlocked_or_excluded_requirement_and_on_a_stray_pin(tmp_path):
    requirements = fabricated(tmp_path)
    installed = {  # name: (version, requirements), as importlib.metadata gives them
        "torch": ("2.13.0+cpu", ["filelock", "nvidia-cudnn-cu13==9.20.0.48; platform_system == 'Linux'",
                                 "triton==3.7.1", "opt-einsum>=3.3; extra == 'opt-einsum'"]),
        "alpha": ("1.0", ["delta>=2", "epsilon[fast]; python_version >= '3'", "zeta; python_version < '3'"]),
        "beta": ("2.0", []), "gamma": ("3.0", []), "filelock": ("3.0", []), "delta": ("2.5", []),
        "epsilon": ("1.0", ["fastlib; extra == 'fast'", "slowlib; extra == 'slow'"]), "fastlib": ("1.0", []),
    }
    lock = {name: Version(version.split("+")[0]) for name, (version, _) in installed.items()}
    # CUDA-only requirements, unused extras and markers that do not hold here need no pin
    assert closure_problems(requirements, lock, installed) == []
    assert closure_problems(requirements, lock | {"delta": Version("1.9"), "stray": Version("1.0")},
                            installed) == ["alpha requires delta>=2, but the lock has delta==1.9",
                                           "stray==1.0 is locked, but nothing the set-up installs requires it"]
    unlocked = dict(lock)
    del unlocked["fastlib"]
    assert closure_problems(requirements, unlocked, installed) == [
        "epsilon requires fastlib; extra == \"fast\", which is not in the lock"]


def test_installed_check_fails_on_a_missing_package_or_another_version_but_allows_a_build_label():
    lock = {"torch": Version("2.13.0"), "alpha": Version("1.0"), "beta": Version("2.0")}
    assert installed_problems(lock, {"torch": ("2.13.0+cpu", []), "alpha": ("1.0", []), "beta": ("2.0", [])}) == []
    assert installed_problems(lock, {"torch": ("2.13.1+cpu", []), "alpha": ("1.0.1", [])}) == [
        "alpha==1.0 is locked, 1.0.1 is installed", "beta==2.0 is locked but not installed",
        "torch==2.13.0 is locked, 2.13.1+cpu is installed"]
