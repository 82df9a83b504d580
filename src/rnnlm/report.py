"""The comparison report: a markdown table of every model's metrics, one of their timings (apart: a
timing changes with the machine) and a figure of the loss curves.

Every output is byte-deterministic: equal inputs give equal files (the PNG embeds no software
version or timestamp), so the report stage's outputs only change when the numbers do.
"""

import io
import math

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .errors import UserError
from .io import require_file, write_bytes
from .kinds import MODEL_KINDS
from .schema.mixture import mixture_name

BASELINES = ("ngram",)
MODEL_ORDER = MODEL_KINDS + BASELINES  # table ties and colours follow this order, then the mixtures
DASH = "—"

# One colour per model kind, the same in every subplot (matplotlib's tab10 palette).
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]

# (column title, split, metric, decimals) for the per-split metric columns.
_METRIC_COLUMNS = [
    ("dev loss", "dev", "loss", 4),
    ("test loss", "test", "loss", 4),
    ("test perplexity", "test", "perplexity", 2),
    ("test accuracy", "test", "accuracy", 4),
    ("test bits/char", "test", "bits_per_char", 4),
]
_COLUMNS = ["model", "parameters"] + [c[0] for c in _METRIC_COLUMNS] + ["novel samples", "chosen epoch"]
# A stream corpus (one long text) also reports dev and test read as one stream, and judges its samples by line.
_STREAM_COLUMN = ("dev ∪ test loss", "dev_test", "loss", 4)
_STREAM_COLUMNS = (["model", "parameters"] + [c[0] for c in _METRIC_COLUMNS[:2]] + [_STREAM_COLUMN[0]]
                   + [c[0] for c in _METRIC_COLUMNS[2:]] + ["copied lines", "chosen epoch"])


def markdown_table(rows, titles, names=1):
    """Rows of formatted cells -> a markdown table: the first ``names`` columns left-aligned, the
    numbers right-aligned.

    The cells are already formatted strings; ``disable_numparse`` keeps tabulate from reading them
    back as numbers (it would print "0.2000" as "0.2").
    """
    return pd.DataFrame(rows, columns=titles).to_markdown(
        index=False, tablefmt="pipe", colalign=["left"] * names + ["right"] * (len(titles) - names),
        disable_numparse=True)


def _order_key(model):
    return (MODEL_ORDER.index(model), "") if model in MODEL_ORDER else (len(MODEL_ORDER), model)


def _number(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _field(metrics, where, *keys):
    """``metrics[k1][k2]...`` as a float, or a UserError naming the missing key."""
    value = metrics
    for i, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise UserError(f"{where}: missing {'.'.join(keys[:i + 1])} (rerun `dvc repro`)")
        value = value[key]
    return _number(value, f"{where}: {'.'.join(keys)}")


def _seed_values(metrics, name, where):
    """(mean, (min, max) or None, n) of ``metrics["seeds"][name]``."""
    entry = f"seeds.{name}"
    n = int(_field(metrics, where, "seeds", name, "n"))
    span = metrics["seeds"][name]
    if n > 1 and not ("min" in span and "max" in span):
        raise UserError(f"{where}: missing {entry}.min/max (rerun `dvc repro`)")
    low_high = (_field(metrics, where, "seeds", name, "min"), _field(metrics, where, "seeds", name, "max")) \
        if n > 1 else None
    return _field(metrics, where, "seeds", name, "mean"), low_high, n


def _spread(metrics, split, key, where):
    """(mean, (min, max) or None, n) of ``split``'s ``key``: over the seeds when the file has them, else the one run."""
    if metrics.get("seeds") is None:
        return _field(metrics, where, split, key), None, 1
    return _seed_values(metrics, f"{split}_{key}", where)


def _fmt_spread(mean, low_high, n, decimals):
    """The mean, and with a few seeds their range: a standard deviation of two values says little."""
    if low_high is None or n < 2:
        return f"{mean:.{decimals}f}"
    low, high = low_high
    return f"{mean:.{decimals}f} ({low:.{decimals}f}–{high:.{decimals}f})"


def _optional(metrics, key, where, fmt):
    if key not in metrics or metrics[key] is None:
        return DASH
    return fmt(_number(metrics[key], f"{where}: {key}"))


def _spread_or_none(metrics, key, where):
    """(mean, (min, max) or None, n) of a top-level ``key`` over the seeds (``seeds.<key>``), or None if absent."""
    if key not in metrics:
        return None
    seeds = metrics.get("seeds")
    if isinstance(seeds, dict) and key in seeds:
        return _seed_values(metrics, key, where)
    return _number(metrics[key], f"{where}: {key}"), None, 1


def _chosen_epoch(metrics, where):
    """"7 of 10": the epoch whose weights the model keeps (lowest dev loss), of the epochs trained."""
    best = _optional(metrics, "best_epoch", where, lambda v: f"{v:.0f}")
    if best == DASH or metrics.get("epochs_done") is None:
        return best
    return f"{best} of {_number(metrics['epochs_done'], f'{where}: epochs_done'):.0f}"


def _novelty(samples, model, where, stream=False):
    """The share of the generate stage's samples not in the training split (for a stream: the share of the
    samples' long lines found in the training text), or a dash without samples."""
    if not samples or model not in samples:
        return DASH
    return f"{_field(samples[model], f'{where} (samples)', 'copied_line_share' if stream else 'novel_share'):.2f}"


_OOV_COLUMN = "test OOV"


def _has_oov(rows):
    """Whether a table gets the OOV column: some row read test tokens unseen in train (every word-level
    corpus does; a char-level one only where a character of test never occurs in train), or the corpus
    ships its own <unk> (WikiText, PTB: word level, whose 0.00% OOV is worth stating)."""
    return any(isinstance(r["oov"], (int, float)) and r["oov"] > 0 or isinstance(r["own_unk"], (int, float))
               for r in rows)


def _is_stream(models):
    """A stream corpus's metrics hold dev ∪ test (``dev_test``) beside dev and test."""
    return any(isinstance(metrics, dict) and "dev_test" in metrics for metrics in models.values())


def _seeds_trained(metrics, n):
    """How many training seeds a row's numbers come from: ``n`` with a ``seeds`` spread, 1 for a
    trained model's single run (a ``seed`` and no spread), None for a deterministic fit (the n-gram)."""
    if metrics.get("seeds") is not None:
        return n
    return 1 if "seed" in metrics else None


def _table(corpus, models, samples=None):
    rows = []
    stream = _is_stream(models)
    columns = (_METRIC_COLUMNS[:2] + [_STREAM_COLUMN] + _METRIC_COLUMNS[2:]) if stream else _METRIC_COLUMNS
    for model, metrics in models.items():
        where = f"metrics for {corpus}/{model}"
        if not isinstance(metrics, dict):
            raise UserError(f"{where}: expected a JSON object")
        cells = {title: _spread(metrics, split, key, where) if split in metrics or split != "dev_test" else None
                 for title, split, key, _ in columns}
        rows.append({
            "model": model,
            "sort": cells["dev loss"][0],   # chosen on dev: the test split never picks anything
            "n": _seeds_trained(metrics, cells["test loss"][2]),
            "cells": [_optional(metrics, "params", where, lambda v: f"{v:,.0f}")]
            + [DASH if cells[title] is None else _fmt_spread(*cells[title], decimals)
               for title, _, _, decimals in columns]
            + [_novelty(samples, model, where, stream), _chosen_epoch(metrics, where)],
            "oov": metrics["test"].get("oov_rate") if isinstance(metrics.get("test"), dict) else None,
            "oov_chars": metrics["test"].get("oov_char_share") if isinstance(metrics.get("test"), dict) else None,
            "own_unk": metrics["test"].get("own_unk_rate") if isinstance(metrics.get("test"), dict) else None,
            "order": metrics.get("order"),
            "weights": metrics.get("weights") if isinstance(metrics.get("weights"), dict) else None,
            "cache": {key: metrics[key] for key in ("size", "theta", "lambda")} if "lambda" in metrics else None,
            "dyneval": {key: metrics[key] for key in ("segment", "lr", "decay")} if "decay" in metrics else None,
        })
    rows.sort(key=lambda r: (r["sort"], _order_key(r["model"])))
    best = rows[0]["sort"] if rows else None

    titles = _STREAM_COLUMNS if stream else _COLUMNS
    if _has_oov(rows):  # a word-level corpus (or text with characters unseen in train): the OOV rate beside the
        at = titles.index("test bits/char") + 1   # numbers it qualifies, for every row (n-gram and mixture too)
        titles = titles[:at] + [_OOV_COLUMN] + titles[at:]
        for row in rows:
            cell = DASH if not isinstance(row["oov"], (int, float)) else f"{100 * row['oov']:.2f}%"
            row["cells"] = row["cells"][:at - 1] + [cell] + row["cells"][at - 1:]
    table = markdown_table([[f"**{row['model']}** (best)" if row["sort"] == best else row["model"], *row["cells"]]
                            for row in rows], titles)
    return "\n".join([f"## {corpus}", "", table, "", *_notes(rows, samples, stream)])


def _notes(rows, samples=None, stream=False):
    notes = ["Sorted by dev loss (nats/token, lower is better; the mean over seeds where there are several), and "
             "\"best\" is the lowest dev loss: the test split chooses nothing, it only reports. Bits/char divides "
             "the total negative log-likelihood in bits by the characters covered, so it compares char- and "
             "word-level models."]
    if stream:
        notes.append("One stream: the corpus is one long text, read from its start with the state carried along "
                     "(newlines are tokens, no item ends), dev and test are its last contiguous stretches, and "
                     "dev ∪ test scores the two as one stream from a zero state (nanoGPT's val). Stream and item "
                     "numbers differ in kind: an item corpus's loss is per token of short items each read from a "
                     "fresh start and closed by an end token, so the two never compare directly (docs/streams.md).")
    if samples and stream:
        notes.append("Copied lines: of the lines of at least 20 characters in the generate stage's unprompted "
                     "samples (headline seed, generate params), the share found verbatim in the training text.")
    elif samples:
        notes.append("Novel samples: the share of the generate stage's unprompted samples (headline seed, "
                     "generate params) that are not in the training split; "
                     f"{DASH} for models the generate stage does not sample.")
    seeded = [r for r in rows if r["n"] is not None]
    chosen = ("Chosen epoch: the epoch with the lowest dev loss, whose weights are kept, of the epochs trained. "
              "Training times: speed/summary.md.")
    if seeded and max(r["n"] for r in seeded) == 1:
        notes.append(f"Neural models: one training run each (one seed), so single values. {chosen}")
    elif seeded:
        counts = sorted({r["n"] for r in seeded})
        if len(counts) == 1:
            n = f"n = {counts[0]} training seeds per neural model"
        else:
            n = "n training seeds per model: " + ", ".join(f"{r['model']} {r['n']}" for r in seeded)
        notes.append(f"Neural models: mean (lowest–highest) over {n}; parameters and the chosen epoch are those "
                     f"of the headline (first) seed. {chosen}")
    for row in rows:
        if row["weights"] is not None:
            weights = ", ".join(f"{name} {_number(w, row['model']):.3f}" for name, w in row["weights"].items())
            notes.append(f"{row['model']}: Σ λ_k·P_k(w | h) token by token over its components, the weights λ fit "
                         f"on dev only (headline seed: {weights}); its parameters add its components'.")
    for row in rows:
        if row["cache"] is not None:
            cache = row["cache"]
            notes.append(f"{row['model']}: the model with a neural cache (Grave et al. 2017) over its last "
                         f"{_number(cache['size'], row['model']):.0f} states, each target added only once scored; θ "
                         f"{_number(cache['theta'], row['model']):g} and λ {_number(cache['lambda'], row['model']):g} "
                         "fit on dev only (docs/streams.md).")
        if row["dyneval"] is not None:
            adapt = row["dyneval"]
            notes.append(f"{row['model']}: dynamic evaluation (Krause et al. 2018), the stream read in segments of "
                         f"{_number(adapt['segment'], row['model']):.0f} targets, each scored and then learnt by one "
                         f"SGD step; learning rate {_number(adapt['lr'], row['model']):g} and decay "
                         f"{_number(adapt['decay'], row['model']):g} fit on dev only (docs/streams.md).")
    for row in rows:
        if row["n"] is None:
            order = f" (order {row['order']})" if isinstance(row["order"], int) else ""
            notes.append(f"{row['model']}{order}: a single deterministic fit, so single values; its parameters "
                         f"are the stored n-gram counts; {DASH} where a column does not apply.")
    oov_chars = sorted({r["oov_chars"] for r in rows if isinstance(r["oov_chars"], (int, float))})
    if _has_oov(rows):
        covering = f"; they cover {100 * oov_chars[0]:.2f}% of test characters" if len(oov_chars) == 1 else ""
        notes.append(f"Test OOV: the share of test tokens unseen in train, read as <unk>{covering}. The losses "
                     "count <unk>'s probability for each of them.")
    own = sorted({r["own_unk"] for r in rows if isinstance(r["own_unk"], (int, float))})
    if len(own) == 1:  # a corpus that ships its own <unk> (WikiText, PTB): read as <unk>, but not unseen in train
        notes.append(f"Test tokens that are the corpus's own <unk> (not out of vocabulary): {100 * own[0]:.2f}%.")
    return [f"- {note}" for note in notes]


# (column title, key in a level's result or its test metrics, format)
_TOKENIZATION_COLUMNS = [
    ("vocabulary", "vocab_size", "{:,.0f}"),
    ("parameters", "params", "{:,.0f}"),
    ("test bits/char", "bits_per_char", "{:.4f}"),
    ("test loss (nats/token)", "loss", "{:.4f}"),
    ("tokens/char", "tokens_per_char", "{:.3f}"),
    ("OOV tokens", "oov_rate", "{:.2%}"),
    ("OOV characters", "oov_char_share", "{:.2%}"),
]


def tokenization_table(corpus, comparison):
    """A tokenization stage's result -> a markdown table by bits/char; "" when it compared no levels."""
    where = f"metrics for {corpus}/tokenization"
    if not isinstance(comparison, dict) or not isinstance(comparison.get("levels"), dict):
        raise UserError(f"{where}: expected an object with 'levels' (rerun `dvc repro`)")
    if not comparison["levels"]:
        return ""
    rows = []
    for level, result in comparison["levels"].items():
        cells = []
        for _, key, fmt in _TOKENIZATION_COLUMNS:
            keys = (key,) if key in ("vocab_size", "params") else ("test", key)
            cells.append(fmt.format(_field(result, f"{where}.{level}", *keys)))
        rows.append((_field(result, f"{where}.{level}", "test", "bits_per_char"), level, cells))
    rows.sort()
    table = markdown_table([[f"**{level}** (best)" if i == 0 else level, *cells]
                            for i, (_, level, cells) in enumerate(rows)],
                           ["level"] + [c[0] for c in _TOKENIZATION_COLUMNS])
    lines = [f"## {corpus}: tokenization", "", table, "",
             f"- One {comparison.get('kind', 'model')} per level, the same settings "
             f"({comparison.get('epochs', '?')} epoch(s), seed {comparison.get('seed', '?')}), each vocabulary fit "
             "on the training split; sorted by test bits/char, the measure that compares levels."]
    if "word" in comparison["levels"]:
        lines.append("- At word level an OOV word costs only the probability of `<unk>`, not its spelling: its "
                     "bits/char looks better than the text's true cost, the more so the more characters are OOV.")
    return "\n".join(lines)


def summary_markdown(results, tokenization=None, samples=None):
    """``results``: {corpus: {model: metrics dict}} -> markdown with one table per corpus.

    ``tokenization`` (optional): {corpus: tokenization stage result}, one more table per corpus.
    ``samples`` (optional): {corpus: {model: generate stage statistics}}, the novelty column.
    """
    tokenization, samples = tokenization or {}, samples or {}
    parts = ["# Model comparison", ""]
    for corpus, models in results.items():
        parts += [_table(corpus, models, samples.get(corpus)), ""]
        table = tokenization_table(corpus, tokenization[corpus]) if corpus in tokenization else ""
        if table:
            parts += [table, ""]
    return "\n".join(parts)


def _speed_cell(record, key, where, fmt):
    """A speed value formatted, or a dash where the record has none (``None``: e.g. no epoch trained)."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object (rerun `dvc repro`)")
    return DASH if record.get(key) is None else fmt(_number(record[key], f"{where}: {key}"))


_SPEED_COLUMNS = ["model", "seed", "training seconds", "epochs", "seconds/epoch", "tokens/s"]


def speed_table(corpus, speed):
    """One corpus's timings -> a markdown table: every training run, the n-gram fit, the mixture.

    ``speed``: {stage: the stage's speed file} (``train``, ``ngram``, ``mixture``, ``tokenization``).
    The mixture's training time is its headline run's plus the mixture stage's own n-gram fit.
    """
    where = f"speed of {corpus}"
    train = speed.get("train", {})
    rows, notes = [], []
    for kind in sorted(train, key=_order_key):
        for seed, run in train[kind].items():
            at = f"{where}/train.{kind}.{seed}"
            rows.append([kind, seed.removeprefix("seed"), _speed_cell(run, "train_seconds", at, "{:,.1f}".format),
                         _speed_cell(run, "epochs", at, "{:.0f}".format),
                         _speed_cell(run, "epoch_seconds", at, "{:,.2f}".format),
                         _speed_cell(run, "tokens_per_s", at, "{:,.0f}".format)])
    if "ngram" in speed:
        rows.append(["ngram", DASH, _speed_cell(speed["ngram"], "fit_seconds", f"{where}/ngram", "{:,.1f}".format),
                     DASH, DASH, DASH])
    mixture = speed.get("mixture")
    mixed = mixture.get("kinds") if isinstance(mixture, dict) else None
    if isinstance(mixed, list) and mixed and all(kind in train for kind in mixed):
        seed = mixture.get("seed")
        parts = [(train[kind].get(f"seed{seed}") or {}).get("train_seconds") for kind in mixed]
        parts.append(mixture.get("ngram_fit_seconds"))
        total = DASH if None in parts else f"{sum(_number(p, f'{where}/mixture') for p in parts):,.1f}"
        rows.append([mixture_name(mixed), str(seed), total, DASH, DASH, DASH])
        notes.append(f"{mixture_name(mixed)}: the training seconds of {', '.join(mixed)} seed {seed} plus the "
                     "mixture stage's own n-gram fit.")
    lines = [f"## {corpus}", "", markdown_table(rows, _SPEED_COLUMNS)]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    levels = speed.get("tokenization", {}).get("levels") or {}
    if levels:
        level_rows = [[level, _speed_cell(t, "seconds", f"{where}/tokenization.{level}", "{:,.0f}".format),
                       _speed_cell(t, "train_seconds", f"{where}/tokenization.{level}", "{:,.0f}".format)]
                      for level, t in levels.items()]
        lines += ["", f"### {corpus}: tokenization", "",
                  markdown_table(level_rows, ["level", "seconds (fit, encode, train, test)", "training seconds"])]
    return "\n".join(lines)


def speed_markdown(speed):
    """``speed``: {corpus: {stage: its speed file}} -> speed/summary.md, one table per corpus."""
    parts = ["# Speed", "",
             "Seconds of the run that wrote `speed/`: they change with the machine and its load, so they stay "
             "out of `metrics/` and the results (`reports/summary.md`); this table is the only output they "
             "reach. Each stage's own: `dvc metrics show --targets speed/stages -R`; another revision's: "
             "`git diff REV -- speed/summary.md`. The runs of a corpus train side by side in "
             "`train.<corpus>.workers` processes; tokens/s counts one run's training tokens.", ""]
    for corpus, stages in speed.items():
        parts += [speed_table(corpus, stages), ""]
    return "\n".join(parts)


# Distinct hollow markers per model, so curves that coincide (rnn_scratch and rnn often do) stay visible.
_MARKERS = ["o", "x", "s", "^", "D", "v", "P", "*"]


def _style_index(model, others):
    """A stable index per model: its place in MODEL_ORDER, then unknown models alphabetically."""
    return MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER) + sorted(others).index(model)


def _colour(model, others):
    return _COLOURS[_style_index(model, others) % len(_COLOURS)]


def _marker(model, others):
    return _MARKERS[_style_index(model, others) % len(_MARKERS)]


def plot_curves(curves, path, baselines=None):
    """Draw train (dashed) and dev (solid) loss per epoch, one subplot per corpus, and save a PNG.

    ``curves``: {corpus: {model: [(epoch, train_loss, dev_loss), ...]}}. ``baselines`` (optional):
    {corpus: {model: dev_loss}}, drawn as dotted horizontal lines (e.g. an n-gram model).
    """
    baselines = baselines or {}
    corpora = list(curves) + [c for c in baselines if c not in curves]
    if not corpora:
        raise UserError("no loss curves to plot")
    fig = Figure(figsize=(6 * max(len(corpora), 2), 4.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(corpora), squeeze=False)[0]
    others = {m for c in corpora for m in (*curves.get(c, {}), *baselines.get(c, {})) if m not in MODEL_ORDER}
    drawn = []
    for ax, corpus in zip(axes, corpora):
        models = sorted(curves.get(corpus, {}), key=_order_key)
        for model in models:
            points = sorted(curves[corpus][model])
            if not points:
                continue
            epochs = [p[0] for p in points]
            style = dict(color=_colour(model, others), marker=_marker(model, others), markersize=5,
                         markerfacecolor="none", linewidth=1.5)
            ax.plot(epochs, [p[1] for p in points], linestyle="--", **style)
            ax.plot(epochs, [p[2] for p in points], linestyle="-", **style)
            drawn.append(model)
        for model, dev_loss in sorted(baselines.get(corpus, {}).items(), key=lambda kv: _order_key(kv[0])):
            ax.axhline(dev_loss, linestyle=":", linewidth=1.5, color=_colour(model, others))
            drawn.append(model)
        ax.set_title(f"{corpus}: loss per epoch (first seed)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (nats/token)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)

    # One legend for the whole figure, outside the axes so that it never hides a curve:
    # colour = model, line style = split.
    handles = [Line2D([], [], color=_colour(m, others), linewidth=2, label=m, markerfacecolor="none",
                      marker=None if m in BASELINES else _marker(m, others))
               for m in sorted(set(drawn), key=_order_key)]
    handles += [Line2D([], [], color="#444444", linestyle="--", label="train"),
                Line2D([], [], color="#444444", linestyle="-", label="dev")]
    if any(baselines.values()):
        handles.append(Line2D([], [], color="#444444", linestyle=":", label="dev (baseline)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle("Train (dashed) and dev (solid) loss per epoch")

    buf = io.BytesIO()
    # No Software/date metadata: equal curves give an identical PNG.
    fig.savefig(buf, format="png", metadata={"Software": None})
    write_bytes(path, buf.getvalue())
