"""`rnnlm check-lock` on a tiny git + DVC project: the committed dvc.lock is judged by `dvc status`, so an
edit inside a folder dependency, a param, a command, raw data and a dvc.yaml change fail, a stage the lock
still holds after dvc.yaml dropped it fails, and outputs not built yet pass; the verdict does not change
when `dvc repro` rewrites the workspace's dvc.lock.

The project is built and run once (module fixture); each test works on its own copy."""

import shutil
import subprocess

import pytest
import yaml

from rnnlm.cli import main

DVC_YAML = """\
stages:
  step:
    foreach: [a, b]
    do:
      cmd: python step.py ${item} > out-${item}.txt
      deps: [step.py, pkg, raw.txt]
      params: [step]
      outs: ["out-${item}.txt"]
  total:
    cmd: cat out-a.txt out-b.txt > total.txt
    deps: [out-a.txt, out-b.txt]
    outs: [total.txt]
"""
COMMIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm"]


def sh(*args, cwd):
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A project whose stage `step` (foreach a, b) depends on a script, a package folder, a raw file that
    a .dvc file tracks and a params key; `total` on step's outputs. Run with `dvc repro` and committed."""
    root = tmp_path_factory.mktemp("dvcproject")
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "core.py").write_text("WIDTH = 3\n")
    (root / "step.py").write_text("import sys\nprint('step', sys.argv[1])\n")
    (root / "raw.txt").write_text("raw data\n")
    (root / "params.yaml").write_text("step: {n: 1}\n")
    (root / "dvc.yaml").write_text(DVC_YAML)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "add", "-q", "raw.txt"], ["dvc", "repro", "-q"],
                ["git", "add", "-A"], [*COMMIT, "run"]):
        sh(*cmd, cwd=root)
    return root


@pytest.fixture
def project(built, tmp_path, monkeypatch):
    root = tmp_path / "project"
    shutil.copytree(built, root, symlinks=True)
    monkeypatch.chdir(root)
    return root


def check_lock(capsys, *args):
    with pytest.raises(SystemExit) as done:
        main(["check-lock", *args])
    captured = capsys.readouterr()
    return done.value.code, captured.out + captured.err


def test_a_clean_lock_passes_before_and_after_dvc_repro(project, capsys):
    code, out = check_lock(capsys)
    assert code == 0 and "dvc.lock at HEAD matches" in out and "(3 stages;" in out, out
    sh("dvc", "repro", "-q", cwd=project)
    assert check_lock(capsys)[0] == 0


def test_an_edit_inside_a_folder_dependency_fails_until_rerun_and_committed(project, capsys):
    (project / "pkg" / "core.py").write_text("WIDTH = 4\n")
    code, out = check_lock(capsys)
    assert code == 1 and "step@a: pkg modified" in out and "step@b: pkg modified" in out, out
    assert "total" not in out  # its deps are step's outputs: data, not code
    sh(*COMMIT, "code, but no dvc repro", "-a", cwd=project)
    assert check_lock(capsys)[0] == 1
    # CI runs the gate after README's `dvc repro`, which rewrites the workspace's dvc.lock: the committed
    # one is still stale, and the verdict stays
    sh("dvc", "repro", "-q", cwd=project)
    assert subprocess.run(["dvc", "status", "-q"], cwd=project).returncode == 0
    code, out = check_lock(capsys)
    assert code == 1 and "step@a: pkg modified" in out
    sh(*COMMIT, "dvc repro", "-a", cwd=project)
    assert check_lock(capsys)[0] == 0
    # a new file in the folder counts too, committed or not (DVC hashes the folder as it is)
    (project / "pkg" / "extra.py").write_text("")
    code, out = check_lock(capsys)
    assert code == 1 and "step@a: pkg modified" in out


def test_a_changed_param_command_or_stage_definition_fails(project, capsys):
    (project / "params.yaml").write_text("step: {n: 2}\n")
    code, out = check_lock(capsys)
    assert code == 1 and "step@a: param step modified" in out and "step@b: param step modified" in out, out
    (project / "params.yaml").write_text("step: {n: 1}\n")
    (project / "notes.py").write_text("")
    (project / "dvc.yaml").write_text(
        DVC_YAML.replace("cat out-a.txt", "cat -n out-a.txt").replace("[step.py, pkg,", "[step.py, notes.py, pkg,")
        .replace("outs: [total.txt]", "outs: [total.txt, count.txt]")
        + "  late:\n    cmd: echo late > late.txt\n    outs: [late.txt]\n")
    code, out = check_lock(capsys)
    assert code == 1
    assert "step@a: notes.py new (not in dvc.lock)" in out
    assert "total: command changed; output count.txt new (not in dvc.lock)" in out
    assert "late: not in dvc.lock (never run)" in out


def test_changed_raw_data_fails_and_raw_data_not_pulled_names_the_fetch_command(project, capsys):
    (project / "raw.txt").write_text("other raw data\n")
    code, out = check_lock(capsys)
    assert code == 1 and "step@a: raw.txt modified" in out, out
    (project / "raw.txt").unlink()
    code, out = check_lock(capsys)
    assert code == 2 and "dvc pull raw.txt.dvc" in out and "Traceback" not in out, out


def test_stages_the_committed_lock_holds_but_dvc_yaml_no_longer_defines_fail(project, capsys):
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    lock["stages"]["step@c"] = lock["stages"]["old"] = lock["stages"]["step@a"]
    (project / "dvc.lock").write_text(yaml.safe_dump(lock))
    assert check_lock(capsys)[0] == 0  # the workspace's dvc.lock is not the one judged
    sh(*COMMIT, "a lock with entries of stages dvc.yaml dropped", "-a", cwd=project)
    code, out = check_lock(capsys)
    assert code == 1 and "holds 2 stage(s) that dvc.yaml no longer defines" in out and "  old, step@c\n" in out, out
    assert "out of date" not in out  # the stages dvc.yaml defines are fine
    assert check_lock(capsys, "--rev", "HEAD~1")[0] == 0


def test_outputs_not_built_pass(project, capsys):
    for name in ("out-a.txt", "out-b.txt", "total.txt"):
        (project / name).unlink()
    shutil.rmtree(project / ".dvc" / "cache")
    code, out = check_lock(capsys)
    assert code == 0, out


def test_check_lock_without_a_committed_lock_or_revision_is_one_line(project):
    for rev, message in (("nosuch", "unknown revision 'nosuch'"), ("HEAD", "no dvc.lock at HEAD")):
        if rev == "HEAD":
            sh("git", "rm", "-q", "--cached", "dvc.lock", cwd=project)
            sh(*COMMIT, "no lock", cwd=project)
        result = subprocess.run(["rnnlm", "check-lock", "--rev", rev], cwd=project, capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
