"""The README and the manual in docs/ cannot go stale silently.

- every ``dvc exp run ... -S key=value`` in README.md and docs/*.md names keys that exist in
  params.yaml, with values the params schema (rnnlm.schema) accepts, and targets stages dvc.yaml has;
- the defaults table of docs/models.md matches params.yaml;
- README's results tables are the tables of reports/summary.md, and the numbers docs/models.md
  quotes are metrics/'s, both as committed at HEAD (a rerun on another CPU rewrites the workspace's
  copies; the gate, `rnnlm check-metrics`, judges those); README's claims: tests/test_claims.py;
- README's links point at files and headings that exist (GitHub's heading anchors);
- the manual builds with ``mkdocs build --strict`` (a broken link or anchor fails).
"""

import copy
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnnlm.errors import UserError
from rnnlm.schema.evaluate import EvaluateConfig
from rnnlm.schema.generate import GenerateConfig
from rnnlm.schema.ingest import IngestConfig
from rnnlm.schema.mixture import MixtureConfig, mixture_name
from rnnlm.schema.ngram import NgramConfig
from rnnlm.schema.pipeline import Pipeline
from rnnlm.schema.split import SplitConfig
from rnnlm.schema.tokenization import TokenizationConfig
from rnnlm.schema.train import TrainConfig
from rnnlm.schema.vocab import VocabConfig
from tests.pipeline_outputs import committed_json, committed_text, metrics_file

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))

# Which config class reads which params.yaml section (as stages/*.py call _params.section), and
# whether the section has one entry per corpus.
SECTIONS = {
    "ingest": (IngestConfig, True),
    "split": (SplitConfig, True),
    "vocab": (VocabConfig, True),
    "tokenization": (TokenizationConfig, True),
    "train": (TrainConfig, True),
    "evaluate": (EvaluateConfig, False),
    "generate": (GenerateConfig, True),
    "ngram": (NgramConfig, True),
    "mixture": (MixtureConfig, True),
}


def rel(path):
    return path.relative_to(ROOT).as_posix()


# --- dvc exp run -S ------------------------------------------------------------------------------

def _code_snippets(text):
    """Fenced code blocks, and inline code spans that run dvc exp run."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    inline = [span for span in re.findall(r"`([^`\n]+)`", prose) if "dvc exp run" in span]
    return blocks + inline


def exp_run_commands(text):
    """Each ``dvc exp run`` in ``text``: (command line, [(key, value string)], [targets])."""
    commands = []
    for snippet in _code_snippets(text):
        snippet = snippet.replace("\\\n", " ")
        loop_values = {var: values.split()[0] for var, values in re.findall(r"for (\w+) in ([^;]+);", snippet)}
        for line in snippet.splitlines():
            if "dvc exp run" not in line:
                continue  # quoted text (a sample, an output) need not lex as shell
            lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
            lex.whitespace_split = True
            lex.commenters = "#"
            tokens = list(lex)
            for i in range(len(tokens) - 2):
                if tokens[i:i + 3] != ["dvc", "exp", "run"]:
                    continue
                sets, targets, j = [], [], i + 3
                while j < len(tokens) and tokens[j] not in (";", "&&", "||", "|", "&", ")", "("):
                    tok = tokens[j]
                    if tok in ("-S", "--set-param"):
                        sets.extend(tokens[j + 1:j + 2])  # prose may name the option alone
                        j += 2
                        continue
                    if tok.startswith("--set-param="):
                        sets.append(tok.split("=", 1)[1])
                    elif tok.startswith("-S") and len(tok) > 2:
                        sets.append(tok[2:])
                    elif tok in ("-n", "--name", "-j", "--jobs"):
                        j += 1
                    elif not tok.startswith("-"):
                        targets.append(tok)
                    j += 1
                pairs = []
                for item in sets:
                    key, _, value = item.partition("=")
                    for var, first in loop_values.items():
                        value = value.replace(f"${var}", first)
                    pairs.append((key, value))
                commands.append((line.strip(), pairs, targets))
    return commands


def apply_overrides(params, pairs):
    """params.yaml with each ``key=value`` applied as DVC does (value parsed as YAML). A key with
    ``+`` (or ``++``) in front may be new, as in Hydra's syntax that DVC uses: under a mapping such
    as ``train.names.overrides``, which starts empty; the validation then judges it."""
    params = copy.deepcopy(params)
    for key, value in pairs:
        new = key.startswith("+")
        *parents, leaf = key.lstrip("+").split(".")
        node = params
        for part in parents:
            if new and isinstance(node, dict) and part not in node:
                node[part] = {}
            if not isinstance(node, dict) or part not in node:
                raise UserError(f"-S {key}: no section {part!r} in params.yaml")
            node = node[part]
        if not isinstance(node, dict) or (leaf not in node and not new):
            raise UserError(f"-S {key}: no key {leaf!r} in params.yaml")
        node[leaf] = yaml.safe_load(value)
    return params


def validate_params(params):
    """Every section through the config class its stage uses (UserError on a bad key or value)."""
    built = Pipeline.from_params({key: params[key] for key in Pipeline.model_fields}, "")
    for name, (cls, per_corpus) in SECTIONS.items():
        if not per_corpus:
            cls.from_params(params[name], name)
            continue
        for corpus, data in params[name].items():
            cfg = cls.from_params(data, f"{name}.{corpus}")
            if cls is TrainConfig:
                for kind in built.kinds:
                    cfg.for_kind(kind, f"train.{corpus}")


def stage_names():
    """Every stage name of dvc.yaml, foreach and matrix stages expanded (``train@names``), and the name
    of a foreach or matrix stage itself (``evaluate``: DVC takes it for all of its stages)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    names = set()
    for name, stage in stages.items():
        names.add(name)
        if "foreach" in stage:
            items = stage["foreach"]
            if isinstance(items, str):  # ${section}: the keys of that params section
                items = PARAMS[items.strip("${}")]
            names.update(f"{name}@{item}" for item in items)
        elif "matrix" in stage:
            combos = [""]
            for values in stage["matrix"].values():
                if isinstance(values, str):
                    values = PARAMS[values.strip("${}")]
                combos = [f"{c}-{v}" if c else str(v) for c in combos for v in values]
            names.update(f"{name}@{combo}" for combo in combos)
    return names


ALL_COMMANDS = [(rel(page), cmd) for page in PAGES for cmd in exp_run_commands(page.read_text(encoding="utf-8"))]


def test_the_docs_have_exp_run_recipes():
    assert len(ALL_COMMANDS) >= 15, "the extraction of dvc exp run commands found too few"
    assert sum(len(pairs) for _, (_, pairs, _) in ALL_COMMANDS) >= 60


@pytest.mark.parametrize("page,command", ALL_COMMANDS, ids=[f"{p}:{c[0][:60]}" for p, c in ALL_COMMANDS])
def test_exp_run_overrides_and_targets_are_valid(page, command):
    line, pairs, targets = command
    try:
        validate_params(apply_overrides(PARAMS, pairs))
    except UserError as err:
        pytest.fail(f"{page}: {line}\n  {err}")
    unknown = [t for t in targets if t not in stage_names()]
    assert not unknown, f"{page}: {line}\n  names stages dvc.yaml does not have: {unknown}"


@pytest.mark.parametrize("snippet,problem", [
    ("dvc exp run -S train.names.hidden_sizes=128", "no key"),          # a renamed key
    ("dvc exp run -S train.names.scheduler=linear", "must be one of"),  # a removed value
    ("dvc exp run -S 'train.names.seeds=[0,0]'", "must not repeat"),
    ("dvc exp run -S split.names.train=0.5", "must sum to 1"),          # the overrides of a command count together
    ("dvc exp run -S nosuch.names.x=1", "no section"),
    ("dvc exp run -S '+train.names.overrides.gpt.hidden_size=8'", "unknown key 'gpt'"),  # a kind the code lacks
    ("dvc exp run -S '+train.names.overrides.gru.hidden=8'", "unknown key train.names.overrides.gru.hidden"),
])
def test_the_check_catches_stale_recipes(snippet, problem):
    [(_, pairs, _)] = exp_run_commands(f"```bash\n{snippet}\n```\n")
    with pytest.raises(UserError, match=problem):
        validate_params(apply_overrides(PARAMS, pairs))


def test_the_extraction_reads_loops_quotes_continuations_and_targets():
    text = ("```bash\nfor h in 64 128; do\n  dvc exp run --queue -n x -S train.names.hidden_size=$h \\\n"
            "    -S 'train.names.seeds=[0]' --set-param evaluate.batch_size=8 evaluate@names  # note\ndone\n```\n"
            "Prose with `dvc exp run -S mixture.news.model=gru` inline.\n")
    [(_, pairs, targets), (_, inline, _)] = exp_run_commands(text)
    assert pairs == [("train.names.hidden_size", "64"), ("train.names.seeds", "[0]"), ("evaluate.batch_size", "8")]
    assert targets == ["evaluate@names"]
    assert inline == [("mixture.news.model", "gru")]
    assert "evaluate@news" in stage_names() and "report" in stage_names()


# --- defaults ------------------------------------------------------------------------------------

def _marked_block(text, name):
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", text, flags=re.S)
    assert match, f"no <!-- {name}:begin --> ... <!-- {name}:end --> block"
    return match.group(1)


def _table_rows(block):
    rows = [line for line in block.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows if not re.match(r"^\|[-:| ]+\|$", row)]


def test_the_defaults_table_matches_params_yaml():
    header, *rows = _table_rows(_marked_block((ROOT / "docs" / "models.md").read_text(encoding="utf-8"), "defaults"))
    corpora = header[1:]
    assert corpora == list(PARAMS["corpora"]) and len(rows) >= 10
    for key, *values in rows:
        key = key.strip("`")
        for corpus, stated in zip(corpora, values):
            actual = PARAMS["train"][corpus][key]
            assert yaml.safe_load(stated) == actual, f"docs/models.md says train.{corpus}.{key} is {stated}, params.yaml {actual!r}"


def test_stated_python_version_matches_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    required = re.search(r'^requires-python = ">=(3\.\d+)"', pyproject, flags=re.M).group(1)
    assert f"Python {required} or newer" in README.read_text(encoding="utf-8")
    assert f"python-version: '{required}'" in (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8") \
        or f'python-version: "{required}"' in (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")


# --- results -------------------------------------------------------------------------------------

def _tables(lines):
    """The markdown tables among ``lines``: a list of (header cells, [row cells])."""
    tables, current = [], None
    for line in lines + [""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if current is None:
                current = (cells, [])
            elif not re.match(r"^\|[-:| ]+\|$", line.strip()):
                current[1].append(cells)
        elif current is not None:
            tables.append(current)
            current = None
    return tables


def _row_name(cell):
    """``**lstm+ngram** (best)`` -> ``("lstm+ngram", True)``."""
    best = cell.endswith(" (best)")
    return cell.removesuffix(" (best)").strip("*"), best


def test_readme_results_are_the_report_tables():
    """README's results block holds the tables of reports/summary.md as committed (``git show HEAD:``), cell
    for cell: a `dvc repro` on another CPU rewrites the workspace's report, not the commit, and what such
    a rerun produces is the gate's to judge (`rnnlm check-metrics`). Paste the tables over after
    committing a rerun that changes a number."""
    readme = _tables(_marked_block(README.read_text(encoding="utf-8"), "results").splitlines())
    report = _tables(committed_text("reports/summary.md").splitlines())
    corpora = list(PARAMS["corpora"])
    assert len(readme) == len(report) == len(corpora), "README.md's results tables: one per corpus, as in the report"
    for corpus, (header, rows), (report_header, report_rows) in zip(corpora, readme, report):
        assert header == report_header, f"{corpus}: README's columns differ from reports/summary.md"
        ours, theirs = ({_row_name(r[0])[0]: r for r in table} for table in (rows, report_rows))
        assert set(ours) == set(theirs), f"{corpus}: README's models differ from reports/summary.md"
        for model, cells in ours.items():
            assert cells == theirs[model], (f"{corpus}/{model}: README has {cells}, the committed reports/summary.md "
                                            f"{theirs[model]}: copy the tables over")


def _metrics(corpus, model):
    """A report row's metrics file as committed (``model`` as in ``pipeline_outputs.metrics_file``)."""
    return committed_json(metrics_file(corpus, model))


def _stated_is(stated, committed):
    """Whether a number the manual states (a table cell, as written, perhaps bold or with thousands
    separators) is the committed value rounded to the cell's digits (half a unit of its last digit, and
    a hair for the decimal representation of the committed float)."""
    text = stated.strip("*").replace(",", "")
    value, decimals = float(text), len(text.partition(".")[2])
    return abs(committed - value) <= 0.5 * 10 ** -decimals + 1e-9


# The columns of the manual's tables that quote a metric: (split, metric) in the metrics file.
METRIC_COLUMNS = {"dev loss": ("dev", "loss"), "test loss": ("test", "loss"),
                  "test perplexity": ("test", "perplexity"), "dev ∪ test loss": ("dev_test", "loss")}


def _corpus_tables(block):
    """``{corpus: table text}`` of a block of tables, each under its bold ``**<corpus>**`` line."""
    parts = re.split(r"^\*\*(\w+)\*\*", block, flags=re.M)[1:]
    return dict(zip(parts[::2], parts[1::2]))


def test_the_comparison_of_kinds_in_the_manual_holds():
    """docs/models.md, "What does recurrence buy?": one table per corpus, listing exactly the kinds the
    corpus trains (params.yaml's `kinds.<corpus>`) and the n-gram, each number that quotes a metric
    the committed metrics/ value rounded to the cell's digits, the n-gram's stated order its
    chosen one, and a stream's table with its dev ∪ test column. The training seconds and tokens/s come
    from speed/summary.md and change with the machine: not checked. The page states no claim of its
    own about the gaps (README's claims, tested above, do)."""
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    tables = _corpus_tables(_marked_block(text, "recurrence"))
    assert list(tables) == list(PARAMS["corpora"]), "docs/models.md: one comparison table per corpus, in order"
    for corpus, table in tables.items():
        header, *rows = _table_rows(table)
        assert header[:6] == ["model", "what it reads", "parameters", "dev loss", "test loss", "test perplexity"]
        if PARAMS["ingest"][corpus]["format"] == "text":
            assert "dev ∪ test loss" in header, f"{corpus} is a stream: its table shows dev ∪ test"
        models = [row[0] for row in rows]
        assert sorted(models) == sorted({"ngram", *PARAMS["kinds"][corpus]}), (
            f"docs/models.md's {corpus} table lists {models}, params.yaml's kinds.{corpus} and the n-gram "
            f"are {sorted({'ngram', *PARAMS['kinds'][corpus]})}")
        for row in rows:
            cells = dict(zip(header, row))
            data = _metrics(corpus, cells["model"])
            assert int(cells["parameters"].replace(",", "")) == data["params"], (corpus, cells["model"])
            if cells["model"] == "ngram":
                assert f"order {data['order']}" in cells["what it reads"], (corpus, cells["what it reads"])
            for column, (split, metric) in METRIC_COLUMNS.items():
                if column in cells:
                    committed = data[split][metric]
                    assert _stated_is(cells[column], committed), (
                        f"docs/models.md, {corpus}/{cells['model']}, {column}: {cells[column]}, "
                        f"the committed metrics/ has {committed}")


def test_the_ngram_orders_and_the_mixtures_in_the_manual_are_the_metrics():
    """docs/models.md: the n-gram's dev loss at every order tried (and the order chosen), and each
    corpus's mixture (its components, weights and losses), as the committed metrics/ has them (rounded
    to the cell's digits)."""
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    header, *rows = _table_rows(_marked_block(text, "ngram-orders"))
    assert [row[0] for row in rows] == list(PARAMS["corpora"])
    for corpus, *cells, chosen in rows:
        data = _metrics(corpus, "ngram")
        assert int(chosen) == data["order"], corpus
        stated = {order: cell for order, cell in zip(header[1:-1], cells) if cell != "—"}
        assert set(stated) == set(data["dev_loss_by_order"]), (corpus, sorted(stated))
        for order, cell in stated.items():
            assert _stated_is(cell, data["dev_loss_by_order"][order]), (corpus, order)
            assert cell.startswith("**") == (int(order) == data["order"]), f"{corpus}: the chosen order is bold"
    header, *rows = _table_rows(_marked_block(text, "mixture"))
    assert [row[0] for row in rows] == list(PARAMS["corpora"])
    for row in rows:
        cells = dict(zip(header, row))
        data = _metrics(cells["corpus"], "mixture")
        assert cells["mixture"] == mixture_name(data["kinds"]), cells
        weights = dict(part.split() for part in cells["weights"].split(", "))
        assert set(weights) == set(data["weights"]), cells
        for name, cell in weights.items():
            assert _stated_is(cell, data["weights"][name]), (cells["corpus"], name)
        for column, (split, metric) in METRIC_COLUMNS.items():
            if column in cells:
                assert _stated_is(cells[column], data[split][metric]), (cells["corpus"], column)


# --- links and the site --------------------------------------------------------------------------

def github_slug(heading):
    """The anchor GitHub gives a heading (lowercase, punctuation dropped, spaces to hyphens)."""
    text = re.sub(r"[`*_]", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path):
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {github_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_links_point_at_files_and_headings_that_exist(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        assert dest.exists(), f"{rel(page)} links to {target}: no such file"
        if anchor:
            assert anchor in _anchors(dest), f"{rel(page)} links to {target}: no such heading on GitHub"


def test_every_manual_page_is_in_the_site_and_linked_from_readme():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    in_nav = {list(item.values())[0] for item in nav}
    assert in_nav == {p.name for p in DOCS}
    readme = README.read_text(encoding="utf-8")
    for page in DOCS:
        if page.name != "index.md":
            assert f"](docs/{page.name})" in readme, f"README does not link docs/{page.name}"


def test_readme_is_a_front_page():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


def test_mkdocs_build_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "benchmarks" / "index.html").exists()
