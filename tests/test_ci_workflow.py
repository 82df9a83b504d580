"""CI is README's path: `.ci/run` runs README's set-up and test commands in README's order, then the
gates; the GitHub Actions workflow is valid (actionlint), runs `.ci/run` and compares every pull
request with its base branch."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
CI_RUN = ROOT / ".ci" / "run"
GATES = ("rnnlm check-lock", "dvc status", "rnnlm check-metrics --rev HEAD")


def readme_commands():
    """The commands of README's two blocks ("Two commands"): (set-up, tests), each split at ``&&``."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, flags=re.S | re.M)
    assert len(blocks) == 2, "README's Two commands section should hold two bash blocks: set-up, then tests"
    return [[part.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")
             for part in line.split("&&")] for block in blocks]


def ci_commands():
    """`.ci/run`'s commands in order (its lines, split at ``&&``), comments left out."""
    lines = [line.strip() for line in CI_RUN.read_text(encoding="utf-8").splitlines()]
    return [part.strip() for line in lines if line and not line.startswith("#") for part in line.split("&&")]


def place(commands, wanted, after=-1, match=str.__eq__):
    """Where ``commands`` holds each of ``wanted`` in order, after index ``after``; fails naming a missing one."""
    found = []
    for command in wanted:
        hits = [i for i, line in enumerate(commands) if i > max([after, *found]) and match(line, command)]
        assert hits, f".ci/run does not run {command!r} after the commands before it (README's order)"
        found.append(hits[0])
    return found


def test_ci_runs_readme_set_up_then_readme_tests_then_the_gates():
    setup, tests = readme_commands()
    assert setup[-1] == "dvc repro" and "dvc pull data/raw/*.dvc" in setup and tests[-1] == "python -m pytest"
    commands = ci_commands()
    done = place(commands, setup)
    done = place(commands, tests, after=done[-1])
    place(commands, GATES, after=done[-1], match=lambda line, gate: gate in line)


def test_the_order_check_catches_a_script_that_tests_before_dvc_repro():
    setup, tests = readme_commands()
    with pytest.raises(AssertionError, match="README's order"):
        place(tests + setup, setup + tests)


def test_workflow_runs_ci_run_on_push_and_pull_request():
    flow = yaml.safe_load(WORKFLOW.read_text())
    events = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads a bare `on` as true
    assert set(events) == {"push", "pull_request"}
    steps = flow["jobs"]["ci"]["steps"]
    ci = next(i for i, step in enumerate(steps) if step.get("run") == ".ci/run")
    # on a pull request, after .ci/run: the comparison with the base branch, and its curves
    after = steps[ci + 1:]
    assert after and all(step.get("if") == "github.event_name == 'pull_request'" for step in after)
    script = "\n".join(step.get("run", "") for step in after)
    assert 'rnnlm compare "origin/$BASE_REF" >> "$GITHUB_STEP_SUMMARY"' in script
    assert 'dvc plots diff "origin/$BASE_REF"' in script and "git fetch" in script
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in after)
    setup = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python"))
    # the pip cache is keyed on what the set-up installs: pyproject.toml and the lock (tests/test_lock.py)
    assert setup["with"]["cache"] == "pip"
    assert setup["with"]["cache-dependency-path"].split() == ["pyproject.toml", "requirements.lock"]
    assert "secrets.DVC_REMOTE_URL" in WORKFLOW.read_text()


def test_actionlint_finds_no_problem():
    # installed with the dev extras; look beside this Python too, in case the venv is not on PATH
    binary = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert binary, "actionlint not installed: pip install -e '.[dev]'"
    done = subprocess.run([binary, str(WORKFLOW)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
