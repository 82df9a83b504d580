"""Two metric sets side by side, as Markdown: what a pull request changes in every model.

``rnnlm compare REV`` puts the metrics committed at a git revision beside the workspace's: for
each corpus, every model's dev and test loss and perplexity on both sides, the change, and a mark
where the change goes beyond the tolerance of ``rnnlm check-metrics`` (the same rule,
``gates.judge``); then the best model (lowest dev loss) of each side. A model is any metrics file
with a dev and a test loss (``metrics/<corpus>/neural/<kind>.json``, ``ngram.json``,
``mixture.json``, named ``<kind>+ngram`` after the kind it mixes); a model on one side only is
shown as added or removed. A stream corpus's models also have a ``dev_test`` row (dev ∪ test read as
one stream), where their files hold it.
"""

from pathlib import Path, PurePosixPath

from . import gates
from .errors import UserError
from .report import DASH, markdown_table
from .schema.mixture import mixture_name
from .tolerances import rtol_of

SPLITS = ("dev", "test")
STREAM_SPLIT = "dev_test"  # a stream corpus's dev ∪ test, one stream (docs/streams.md)
# (metric, decimals of its values and changes)
METRICS = (("loss", 4), ("perplexity", 2))
MARK = "⚠"


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def models_by_corpus(metrics, metrics_dir):
    """``{path: parsed JSON}`` -> ``{corpus: {model name: metrics}}``, the files that hold a model's
    dev and test results (sample statistics, training progress and the tokenization comparison do not)."""
    found = {}
    for path, data in metrics.items():
        parts = PurePosixPath(Path(path).as_posix()).relative_to(PurePosixPath(Path(metrics_dir).as_posix())).parts
        if len(parts) < 2 or not isinstance(data, dict):
            continue
        if not all(isinstance(data.get(split), dict) and _number(data[split].get("loss")) for split in SPLITS):
            continue
        name = _model_name(data, parts[-1])
        found.setdefault(parts[0], {})[name] = data
    return found


def _model_name(data, file_name):
    """A mixture by its kinds (``lstm+transformer+ngram``; older files name one kind as ``rnn``),
    every other model by its file."""
    mixed = data.get("kinds") if isinstance(data.get("kinds"), list) else data.get("rnn")
    return mixture_name(mixed) if isinstance(mixed, (str, list)) and mixed else PurePosixPath(file_name).stem


def _change(old, new, decimals):
    if old == new:
        return "="
    relative = f" ({(new - old) / old:+.2%})" if old else ""
    return f"{new - old:+.{decimals}f}{relative}"


def _metrics_path(corpus, model, metrics_dir):
    """Where the pipeline writes ``model``'s metrics (its tolerances may be its file's own)."""
    name = "mixture" if "+" in model else model if model == "ngram" else f"neural/{model}"
    return f"{PurePosixPath(Path(metrics_dir).as_posix())}/{corpus}/{name}.json"


def _rows(old_models, new_models, rtol, atol, corpus="", metrics_dir="metrics"):
    """The table rows of one corpus, and how many changes went beyond the tolerance."""
    rows, beyond = [], 0
    for model in sorted(set(old_models) | set(new_models)):
        old, new = old_models.get(model), new_models.get(model)
        joined = any(isinstance(side, dict) and isinstance(side.get(STREAM_SPLIT), dict) for side in (old, new))
        for split in SPLITS + ((STREAM_SPLIT,) if joined else ()):
            cells = [model, split]
            before, after = ((side or {}).get(split) if isinstance((side or {}).get(split), dict) else None
                             for side in (old, new))
            for metric, decimals in METRICS:
                a = before.get(metric) if before is not None else None
                b = after.get(metric) if after is not None else None
                cells += [DASH if a is None else f"{a:.{decimals}f}", DASH if b is None else f"{b:.{decimals}f}"]
                if before is None or after is None:
                    cells.append("added" if before is None else "removed")
                    continue
                _, problem = gates.judge(metric, a, b, before, rtol, atol,
                                         path=_metrics_path(corpus, model, metrics_dir))
                beyond += problem is not None
                cells.append(_change(a, b, decimals) + (f" {MARK}" if problem else ""))
            rows.append(cells)
    return rows, beyond


def _best(models):
    """``"name (dev loss)"`` of the model with the lowest dev loss, or a dash without models."""
    if not models:
        return DASH
    name = min(models, key=lambda m: (models[m]["dev"]["loss"], m))
    return f"{name} ({models[name]['dev']['loss']:.4f})"


def compare_markdown(old, new, rev, rtol=None, atol=1e-6, metrics_dir="metrics"):
    """``old`` (at ``rev``) and ``new`` (the workspace): ``{path: parsed JSON}`` -> the comparison."""
    before, after = models_by_corpus(old, metrics_dir), models_by_corpus(new, metrics_dir)
    titles = ["model", "split"]
    for metric, _ in METRICS:
        titles += [f"{metric} at {rev}", f"{metric} now", "change"]
    parts, beyond = [], 0
    for corpus in sorted(set(before) | set(after)):
        rows, count = _rows(before.get(corpus, {}), after.get(corpus, {}), rtol, atol, corpus, metrics_dir)
        beyond += count
        parts += [f"## {corpus}", "", markdown_table(rows, titles, names=2), "",
                  f"Best model (lowest dev loss): at {rev} {_best(before.get(corpus))}, "
                  f"now {_best(after.get(corpus))}.", ""]
    verdict = (f"{beyond} value(s) changed beyond the tolerance, marked {MARK}" if beyond
               else "No value changed beyond the tolerance")
    head = [f"# Metrics: the workspace against {rev}", "",
            f"{verdict} ({_rule_text(rtol, atol, rev)}, the rule of `rnnlm check-metrics`). "
            f"Loss in nats per token, lower is better; the curves: `dvc plots diff {rev}`.", ""]
    return "\n".join(head + parts)


def _rule_text(rtol, atol, rev):
    if rtol is None:
        return (f"|change| > {atol:g} + rtol × |value at {rev}|, rtol each metric's own: loss {rtol_of('loss'):g}, "
                f"perplexity through its log, accuracy {rtol_of('accuracy'):g}")
    return f"|change| > {atol:g} + {rtol:g} × |value at {rev}|"


def compare(rev="HEAD", rtol=None, atol=1e-6, metrics_dir="metrics"):
    """The comparison of the metrics at git revision ``rev`` with the workspace's, as Markdown."""
    if (rtol is not None and rtol < 0) or atol < 0:
        raise UserError("--rtol and --atol must be >= 0")
    old = gates.committed_metrics(rev, metrics_dir)
    if not models_by_corpus(old, metrics_dir):
        raise UserError(f"no model metrics under {metrics_dir}/ at revision {rev}")
    if not Path(metrics_dir).is_dir():
        raise UserError(f"no {metrics_dir}/ in the workspace: run `dvc repro` (or `dvc exp apply`) first")
    return compare_markdown(old, gates.workspace_metrics(metrics_dir), rev, rtol, atol, metrics_dir)
