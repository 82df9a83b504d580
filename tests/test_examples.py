"""Every example runs: the examples of every `rnnlm ... --help`, and every `rnnlm` command and Python
snippet in the fenced code blocks of README.md and docs/*.md, on the pipeline's models (README's set-up
first), each exiting 0. Help texts name only files that exist.

Each page's examples run in order in a folder of their own, which sees the repository's models/, data/
and metrics/ and holds any input file an example names (such as my_texts.txt) and whatever the
examples write (`--onnx lstm.onnx`, then the snippet that reads it)."""

import argparse
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm.cli import build_parser, main

from .pipeline_outputs import ROOT, require_all

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# These compare the repository with a git revision, not a model with text: CI runs them as its own steps
# (.ci/run) and tests/test_cli_gates.py covers them; their --help runs here like every other.
GATES = {"check-metrics", "check-lock", "compare"}
# This one edits params.yaml: tests/test_new_corpus.py runs docs/streams.md's on a copy of the file.
EDITS = {"add-corpus"}
SAMPLE_INPUT = "Emma\nthe stock market fell\nOlivia\n"   # a name, a news sentence: every model keeps one line


def help_texts():
    """``{"rnnlm score": its --help, ...}`` for the main parser and every subcommand."""
    parser = build_parser()
    texts = {"rnnlm": parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts |= {f"rnnlm {name}": sub.format_help() for name, sub in action.choices.items()}
    return texts


def help_examples():
    """Each example line of each help text's ``examples:`` epilog, in order."""
    found = []
    for name, text in help_texts().items():
        block = text.partition("\nexamples:\n")[2]
        found += [(name, line.strip()) for line in block.splitlines()
                  if line.startswith("  ") and name.removeprefix("rnnlm ") not in EDITS]
    return found


def page_examples(page):
    """The page's `rnnlm` commands (``("sh", line)``) and Python snippets (``("python", code)``), in order."""
    text = page.read_text(encoding="utf-8")
    found = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if lang == "python":
            found.append(("python", body))
            continue
        if lang not in ("bash", "console", "sh", ""):
            continue
        body = body.replace("\\\n", " ")
        for line in body.splitlines():
            if lang == "console" or line.startswith("$ "):
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            words = shlex.split(line, comments=True) if line.strip() else []
            if "rnnlm" in words and not gate(words):
                found.append(("sh", line.strip()))
    return found


def gate(words):
    at = words.index("rnnlm")
    return len(words) > at + 1 and words[at + 1] in GATES | EDITS and "--help" not in words


def workdir(tmp_path):
    """A folder that sees the pipeline's outputs where the examples name them (relative paths)."""
    for name in ("models", "data", "metrics"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def create_inputs(line, folder):
    """The input files an example names that do not exist yet (the user's own, like my_texts.txt)."""
    for word in shlex.split(line, comments=True):
        if word.endswith(".txt") and "/" not in word and not (folder / word).exists():
            (folder / word).write_text(SAMPLE_INPUT, encoding="utf-8")


def bash(code, folder, stdin=None):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "-o", "pipefail", "-c", code], cwd=folder, env=env, input=stdin,
                          capture_output=True)


def run_example(kind, code, folder, capsys, monkeypatch):
    """``(exit status, output)`` of one example. A Python snippet runs in a subprocess. A shell line runs
    its `rnnlm` in this process (a torch start-up per example would cost more than the examples): what
    comes before it in the pipeline (``echo ... |``) runs in bash and becomes its stdin, and what comes
    after (``| tail -1``, ``> file``) runs in bash on its stdout. (The installed console script itself:
    tests/test_bad_input.py.)"""
    if kind == "python":
        done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True)
        return done.returncode, done.stdout + done.stderr
    create_inputs(code, folder)
    stages = [stage.strip() for stage in re.split(r"\s\|\s", code.split(" #")[0])]
    at = next(i for i, stage in enumerate(stages) if stage.startswith("rnnlm "))
    command, _, redirect = stages[at].partition(" > ")
    stdin = None
    if at:
        before = bash(" | ".join(stages[:at]), folder)
        if before.returncode:
            return before.returncode, before.stderr.decode()
        stdin = before.stdout
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin or b"")))
    with pytest.raises(SystemExit) as done:
        main(shlex.split(command)[1:])
    out = capsys.readouterr()
    if done.value.code:
        return done.value.code, out.out + out.err
    after = " | ".join(stages[at + 1:]) or "cat"
    rest = bash(f"{after} > {redirect}" if redirect else after, folder, stdin=out.out.encode())
    return rest.returncode, rest.stdout.decode() + rest.stderr.decode() + out.err


def test_help_texts_have_examples_and_name_files_that_exist():
    require_all()
    texts = help_texts()
    examples = help_examples()
    commands = {name for name, _ in examples}
    assert {"rnnlm", "rnnlm score", "rnnlm sample", "rnnlm info", "rnnlm novelty", "rnnlm tokenize",
            "rnnlm export"} <= commands
    for name, text in texts.items():
        for path in re.findall(r"\b(?:models|data|metrics)/[\w./+-]*[\w]", text):
            if "<" not in path:
                assert (ROOT / path).exists(), f"`{name} --help` names {path}, which does not exist"


@pytest.mark.parametrize("command, line", help_examples(), ids=[line for _, line in help_examples()])
def test_help_example_runs(command, line, tmp_path, capsys, monkeypatch):
    require_all()
    code, out = run_example("sh", line, workdir(tmp_path), capsys, monkeypatch)
    assert code == 0, f"`{command} --help` example failed: {line}\n{out}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_examples_run(page, tmp_path, capsys, monkeypatch):
    examples = page_examples(page)
    if not examples:
        return
    require_all()
    folder = workdir(tmp_path)
    for kind, code in examples:
        status, out = run_example(kind, code, folder, capsys, monkeypatch)
        assert status == 0, f"{page.relative_to(ROOT)}: this example failed:\n{code}\n{out}"


def test_the_pages_have_examples():
    found = {page.name: page_examples(page) for page in PAGES}
    assert len(found["README.md"]) >= 8 and len(found["models.md"]) >= 4
    assert any(kind == "python" for examples in found.values() for kind, _ in examples)
