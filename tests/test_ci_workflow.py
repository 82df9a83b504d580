"""The GitHub Actions workflow is valid (actionlint) and runs the same gate as `.ci/run`."""

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_workflow_runs_ci_run_on_push_and_pull_request():
    flow = yaml.safe_load(WORKFLOW.read_text())
    events = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads a bare `on` as true
    assert set(events) == {"push", "pull_request"}
    steps = flow["jobs"]["ci"]["steps"]
    assert steps[-1]["run"] == ".ci/run"
    setup = next(step for step in steps if step.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip" and setup["with"]["cache-dependency-path"] == "pyproject.toml"
    assert "secrets.DVC_REMOTE_URL" in WORKFLOW.read_text()


def test_actionlint_finds_no_problem():
    # installed with the dev extras; look beside this Python too, in case the venv is not on PATH
    binary = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert binary, "actionlint not installed: pip install -e '.[dev]'"
    done = subprocess.run([binary, str(WORKFLOW)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
