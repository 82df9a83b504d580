"""The GitHub Actions workflow is valid (actionlint) and runs the same gate as `.ci/run`."""

import shutil
import subprocess
from pathlib import Path

import pytest
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


@pytest.mark.skipif(shutil.which("actionlint") is None,
                    reason="actionlint not installed: pip install -e '.[lint]' (its build downloads the binary)")
def test_actionlint_finds_no_problem():
    done = subprocess.run(["actionlint", str(WORKFLOW)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
