"""The ``rnnlm`` command: use any model file (score, tokenize, sample, info, novelty, export), and the CI gates.

    rnnlm score --model models/names/mixture.json names.txt [--format jsonl|csv] [--device cpu]
    rnnlm score --model models/shakespeare/neural/lstm.pt --cache [SIZE] [--cache-theta T] [--cache-lambda L] text.txt
    rnnlm score --model models/shakespeare/neural/lstm.pt --dyneval [--dyneval-lr LR] [--dyneval-decay D] text.txt
    rnnlm tokenize --model models/news/ngram.arpa.gz data/splits/news/test.txt
    rnnlm sample --model models/names/ngram.arpa.gz -n 10 --prompt Em --temperature 0.8 --top-k 5
    rnnlm info models/news/neural/lstm.pt
    rnnlm novelty --model models/names/neural/lstm.pt --train-split data/splits/names/train.txt
    rnnlm export --model models/names/neural/lstm.pt --onnx lstm.onnx
    rnnlm compare [REV] [--rtol R]
    rnnlm check-metrics [--rev HEAD] [--rtol R] [--atol 1e-6] [--sample-k 3]
    rnnlm check-lock [--rev HEAD]

Every subcommand's ``--help`` ends with examples that run on the pipeline's models (tests/test_examples.py
runs each one).
"""

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path

import torch

from . import __version__, gates
from .cache import DEFAULT_LAMBDA, DEFAULT_SIZE, DEFAULT_THETA, CachedLM
from .devices import DEVICES, resolve_device
from .dyneval import DEFAULT_DECAY, DEFAULT_LR, DEFAULT_SEGMENT, DynevalLM
from .errors import UserError, exit_on_user_error
from .export import export_onnx
from .ingest import decode_lines
from .io import pipeline_hint, read_lines, require_file, require_output_path, write_json
from .schema.base import Positive, check_value
from .schema.generate import Temperature, TopK
from .lm import (MODEL_FILES, MODEL_HINT, PIPELINE_MODELS, NeuralLM, load_model, load_vocabulary, model_file,
                 recorded_metrics)
from .novelty import novelty_grid
from .sampling import join_text, prompt_ids, sample_ids
from .scoring import printable_tokens, read_items, score_lines, score_stream
from .textstream import decode_stream_lines
from .tolerances import rtol_of


CHECK_METRICS_RULES = """\
  timing    keys ending in seconds, _per_s, _ms: never compared (machine, load)
  count     integers (tokens, n, params, samples, seed, ...): exactly
  effect    the chosen epoch (best_epoch, epochs_done): another one passes when every other
            value of its file passes (its dev loss and test metrics); else it fails too
  spread    std beside a mean (spread over seeds): |new-old| <= atol + rtol*|mean|
  sample    statistics in an object with an integer `samples` count n (metrics/<corpus>/samples/):
              *_share p:             |new-old| <= k*sqrt(q(1-q)/n), q = (p*n+1)/(n+2)
              mean_X beside std_X s: |new-old| <= k*s/sqrt(n)
              std_X s:               |new-old| <= k*s/sqrt(2(n-1))
            (another machine may draw other samples: a last-digit difference can flip a draw)
  relative  every other number (losses, accuracies, means, single-seed values):
              |new-old| <= atol + rtol*|old|, rtol each metric's own (rnnlm.tolerances,
              measured between CPUs: losses and bits/char 1e-3); a perplexity through its
              log: |ln new - ln old| <= rtol(loss)*|ln old|
  exact     strings and booleans; a NaN passes only where the committed value was NaN
A file or key that is missing on one side fails. Exit status 1 and a table (file, metric,
committed, workspace, problem) when any value fails its rule.
"""


def _check_sampling(args):
    """The flags checked with the generate section's own types (params.yaml's generate.*)."""
    check_value(Positive, args.n, "-n")
    check_value(Temperature, args.temperature, "--temperature")
    check_value(TopK, args.top_k, "--top-k")


def _model(args):
    path = args.model or getattr(args, "checkpoint", None)
    if path is None:
        raise UserError(f"name a model file: --model FILE ({MODEL_FILES})")
    return load_model(path, resolve_device(getattr(args, "device", "cpu")), hint=pipeline_hint(path, MODEL_HINT))


def _model_loader(args):
    """The checks of --model's file alone (missing, a folder, no model suffix, empty), made before anything
    slow or waiting (reading stdin, loading); returns the class that loads it."""
    return model_file(args.model, hint=pipeline_hint(args.model, MODEL_HINT))[1]


def input_bytes(path):
    """The user's input, a file or stdin (``-``), as bytes; an empty one is an error."""
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(require_file(path, what="input file", hint=pipeline_hint(path)), "rb") as f:
            data = f.read()
    if not data:
        raise UserError(f"{'stdin' if path == '-' else f'input file {path}'} is empty: nothing to read")
    return data


def input_lines(path, data=None):
    """The lines of the user's input (``data``: its bytes, if already read): texts, and bytes for a line
    that is not valid UTF-8 (``rnnlm.scoring.read_items`` rejects it as the ingest stage would)."""
    data = input_bytes(path) if data is None else data
    return [raw if text is None else text for _, text, raw in decode_lines(io.BytesIO(data))]


def input_stream(data):
    """The input's bytes read as one stream, as the ingest stage reads a stream corpus: its lines, each with
    its newline, and the bytes of a line that is not valid UTF-8 (rejected)."""
    return [raw if text is None else text for _, text, raw in decode_stream_lines(io.BytesIO(data))]


def _source(path):
    return "stdin" if path == "-" else path


def cmd_sample(args):
    _check_sampling(args)
    lm = _model(args)
    ids, text = prompt_ids(lm.vocab, args.prompt, lambda line: print(line, file=sys.stderr))
    generator = torch.Generator().manual_seed(args.seed)
    rows = sample_ids(lm.stepper(), lm.vocab, args.n, ids, temperature=args.temperature, top_k=args.top_k,
                      max_tokens=args.max_tokens, greedy=args.greedy, generator=generator)
    print("\n".join(join_text(lm.vocab, ids, rows, prefix=text if args.prompt else None)))
    return 0


class ExamplesFormatter(argparse.HelpFormatter):
    """Wraps a description as argparse does, and keeps an epilog of examples (see ``examples``) line by line."""

    def _fill_text(self, text, width, indent):
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

CSV_COLUMNS = ["line", "text", "tokens", "logprob_nats", "logprob_bits", "perplexity", "bits_per_char", "oov",
               "rejected", "detail", "loss"]


def cmd_score(args):
    _model_loader(args)
    data = input_bytes(args.input)  # a bad input is told before the model loads
    lm = _model(args)
    if args.cache is not None and args.dyneval:
        raise UserError("score with either --cache or --dyneval, not both")
    if args.cache is not None:  # a stream model of a recurrent kind with a neural cache (rnnlm.cache)
        check_value(Positive, args.cache, "--cache")
        lm = CachedLM(lm, args.cache, args.cache_theta, args.cache_lambda)
    if args.dyneval:  # ... or read with dynamic evaluation (rnnlm.dyneval)
        lm = DynevalLM(lm, args.dyneval_lr, args.dyneval_decay, args.dyneval_segment)
    # A stream model reads the whole input as one text (newlines are tokens), an item model line by line.
    records, summary = (score_stream(lm, input_stream(data)) if lm.vocab.stream
                        else score_lines(lm, input_lines(args.input, data)))
    if not summary["items"]:
        raise UserError(f"no line of {_source(args.input)} could be scored ({summary['rejected']} rejected)")
    if args.format == "jsonl":
        for record in records + [summary]:
            print(json.dumps(record, ensure_ascii=False))
        return 0
    writer = csv.DictWriter(sys.stdout, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(record | ({"oov": " ".join(record["oov"])} if "oov" in record else {}))
    writer.writerow({"line": "summary", "text": f"{summary['items']} items, {summary['rejected']} rejected",
                     "oov": summary["oov_tokens"]} | {k: summary[k] for k in CSV_COLUMNS if k in summary
                                                       and k not in ("line", "text", "oov")})
    return 0


def cmd_tokenize(args):
    _model_loader(args)
    data = input_bytes(args.input)
    vocab = load_vocabulary(args.model)  # the file's vocabulary alone: no weights, no n-grams
    if vocab.stream:  # one stream: the whole input is one line of tokens, its newlines among them
        return tokenize_stream(vocab, input_stream(data), _source(args.input))
    printed = 0
    for record in read_items(vocab, input_lines(args.input, data)):
        if "rejected" in record:
            print(f"{_source(args.input)}:{record['line']}: rejected ({record['rejected']}: {record['detail']}): "
                  f"{record['text']!r}", file=sys.stderr)
        else:
            print(printable_tokens(vocab, record["text"]))
            printed += 1
    if not printed:
        raise UserError(f"no line of {_source(args.input)} could be tokenized (every line was rejected)")
    return 0


def tokenize_stream(vocab, lines, source):
    """``rnnlm tokenize`` of a stream model: every kept line joined into one text, printed as one line of
    tokens (a newline as the ARPA file writes it, <U+000A>), so KenLM scores it as one sentence."""
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            print(f"{source}:{number}: rejected (invalid_utf8: the line is not valid UTF-8): "
                  f"{line.decode('utf-8', errors='replace')!r}", file=sys.stderr)
    text = "".join(line for line in lines if not isinstance(line, bytes))
    if not text:
        raise UserError(f"no line of {source} could be tokenized (every line was rejected)")
    print(printable_tokens(vocab, text))
    return 0


def cmd_export(args):
    out = require_output_path(args.onnx, what="--onnx")
    if out.suffix != ".onnx":
        raise UserError(f"--onnx {out}: name the graph file OUT.onnx (its description goes beside it, OUT.json)")
    if _model_loader(args) is not NeuralLM:
        raise UserError(f"{args.model}: rnnlm export writes a neural checkpoint (.pt) as ONNX; an n-gram is "
                        "already an ARPA file, and a mixture names its .pt and its ARPA file")
    lm = _model(args)
    description = export_onnx(lm.model, lm.vocab, out, source=args.model)

    def signature(values):
        return ", ".join(f"{v['name']} ({', '.join(map(str, v['shape']))}) {v['dtype']}" for v in values)

    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, ONNX opset {description['opset']}): "
          f"{description['kind']}, {lm.model.num_parameters():,} parameters")
    print(f"  inputs:  {signature(description['inputs'])}")
    print(f"  outputs: {signature(description['outputs'])}")
    print(f"wrote {out.with_suffix('.json')}: {'a stream model, ' if lm.vocab.stream else ''}"
          f"vocabulary ({lm.vocab.level} level, {len(lm.vocab):,} tokens, "
          f"normalization {lm.vocab.normalization.normalize if lm.vocab.normalization else None}), "
          "initial state, inputs and outputs")
    return 0


def cmd_info(args):
    lm = load_model(args.model, hint=pipeline_hint(args.model, MODEL_HINT))
    vocab = lm.vocab
    info = {"file": args.model, "kind": lm.kind, **lm.describe(),
            "vocabulary": {"level": vocab.level, "size": len(vocab), "stream": vocab.stream,
                           "normalization": vocab.normalization.to_dict() if vocab.normalization else None},
            "metrics": recorded_metrics(args.model)}
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0


def cmd_novelty(args):
    check_value(Positive, args.n, "-n")
    check_value(list[Temperature], args.temperatures, "--temperatures")
    check_value(list[TopK], [k or None for k in args.top_k], "--top-k (0: no cut)")
    json_path = require_output_path(args.json, what="--json") if args.json else None
    lm = _model(args)
    train = read_lines(args.train_split, what="training split", hint=pipeline_hint(args.train_split))
    rows = novelty_grid(lm, train, args.temperatures, [k or None for k in args.top_k], n=args.n,
                        max_tokens=args.max_tokens, seed=args.seed)
    print("temperature  top_k  novel_share  distinct_share  loglik/token  loglik/sample")
    for row in rows:
        print(f"{row['temperature']:>11g}  {row['top_k'] or '-':>5}  {row['novel_share']:>11.3f}  "
              f"{row['distinct_share']:>14.3f}  {row['mean_loglik_per_token']:>12.4f}  "
              f"{row['mean_loglik_per_sample']:>13.3f}")
    if json_path:
        write_json(json_path, rows)
    return 0


def cmd_check_metrics(args):
    old = gates.committed_metrics(args.rev, args.metrics_dir)
    if not old:
        raise UserError(f"no metrics under {args.metrics_dir}/ at revision {args.rev}")
    if (args.rtol is not None and args.rtol < 0) or args.atol < 0 or args.sample_k <= 0:
        raise UserError("--rtol and --atol must be >= 0 and --sample-k > 0")
    new = gates.workspace_metrics(args.metrics_dir)
    tally, drift = {}, {}
    rows = gates.compare_metrics(old, new, args.rtol, args.atol, ignore=tuple(args.ignore), k=args.sample_k,
                                 tally=tally, drift=drift)
    rtol = "each metric's measured rtol (rnnlm.tolerances)" if args.rtol is None else f"rtol={args.rtol}"
    tolerances = f"{rtol}, atol={args.atol}, sample bands of {args.sample_k:g} standard errors"
    moved = ", ".join(f"{name} {change:.2g} (rtol {rtol_of(name) if args.rtol is None else args.rtol:g})"
                      for name, change in sorted(drift.items()) if change > 0)
    if rows:
        print(f"{len(rows)} metric(s) differ from {args.rev} beyond their tolerance ({tolerances}):")
        print(gates.format_rows(rows))
        return 1
    judged = ", ".join(f"{tally[rule]} {rule}" for rule in sorted(tally))
    print(f"metrics match {args.rev}: {len(old)} files within tolerance ({tolerances}); values by rule: {judged}")
    print(f"largest relative change by metric: {moved or 'none (every value reproduced exactly)'}")
    return 0


def cmd_compare(args):
    from .compare import compare  # imports the report's plotting: only this command needs it (0.6 s)

    print(compare(args.rev, args.rtol, args.atol, args.metrics_dir))
    return 0


def cmd_check_lock(args):
    stale, extra, defined = gates.check_lock(args.rev)
    if stale:
        print(f"dvc.lock at {args.rev} is out of date: these stages changed since it was written; "
              "run `dvc repro` and commit dvc.lock with the outputs git keeps (metrics/, speed/, reports/, ...):")
        for stage, reasons in stale.items():
            print(f"  {stage}: {'; '.join(reasons)}")
    if extra:
        print(f"dvc.lock at {args.rev} holds {len(extra)} stage(s) that dvc.yaml no longer defines; DVC ignores "
              "and keeps them: delete their entries from dvc.lock and commit it:")
        print(f"  {', '.join(extra)}")
    if stale or extra:
        return 1
    print(f"dvc.lock at {args.rev} matches the command, params, code and raw data of every stage of dvc.yaml "
          f"({len(defined)} stages; outputs not built yet are not judged)")
    return 0


def cmd_add_corpus(args):
    from .new_corpus import add_corpus  # ruamel.yaml: only this command needs it

    sections = add_corpus(args.params, args.name, args.path, args.like, args.set)
    print(f"{args.params}: added corpus {args.name} ({args.path}), its {', '.join(sections)} copied from "
          f"{args.like}'s{' with ' + ', '.join(args.set) if args.set else ''}")
    tracked = Path(f"{str(args.path).rstrip('/')}.dvc").is_file()
    print("next:" + ("" if tracked else f" dvc add {args.path} (then commit its .dvc file);")
          + f" dvc repro evaluate@{args.name} ngram@{args.name} (or dvc repro: every corpus and the report)")
    return 0


def examples(*commands):
    """A help epilog listing example commands; tests/test_examples.py runs each on the pipeline's models."""
    return "examples:\n" + "".join(f"  {command}\n" for command in commands)


def add_model_and_input(parser, model_help):
    """--model and the text input (a file, or stdin) of a command that reads text with a model."""
    parser.add_argument("--model", required=True, help=model_help)
    parser.add_argument("input", nargs="?", default="-", help="a text file, one item per line (default: stdin)")


def build_parser():
    ap = argparse.ArgumentParser(
        prog="rnnlm", formatter_class=ExamplesFormatter,
        description="Recurrent language models in a DVC pipeline. The pipeline itself runs with `dvc repro`; "
                    "these are the tools around it. Model files: " + PIPELINE_MODELS + ".",
        epilog=examples("rnnlm info models/names/neural/lstm.pt", "rnnlm score --help"))
    ap.add_argument("--version", action="version", version=f"rnnlm {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    model_help = f"{MODEL_FILES} (e.g. models/names/mixture.json)"
    sp = sub.add_parser("sample", help="generate text from any model file", formatter_class=ExamplesFormatter,
                        epilog=examples("rnnlm sample --model models/names/neural/lstm.pt -n 5 --prompt Em",
                                        'rnnlm sample --model models/news/mixture.json -n 3 --prompt "he was expected" '
                                        "--top-k 20"))
    source = sp.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help=model_help)
    source.add_argument("--checkpoint", help="the same as --model (kept for older commands)")
    sp.add_argument("-n", type=int, default=10, help="how many samples (default 10)")
    sp.add_argument("--prompt", default="", help="text to continue (normalized like the corpus)")
    sp.add_argument("--temperature", type=float, default=1.0, help="> 0; lower is more conservative")
    sp.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest tokens")
    sp.add_argument("--max-tokens", type=int, default=30, help="stop after this many new tokens")
    sp.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--device", default="cpu", choices=DEVICES, help="where a recurrent model runs (default cpu)")
    sp.set_defaults(func=cmd_sample)

    sc = sub.add_parser(
        "score", help="log-probability, perplexity and bits/char of text, one line per item",
        formatter_class=ExamplesFormatter,
        description="Score each line of INPUT as one item, normalized as the corpus was (the model file carries "
                    "the rules). A line the ingest stage would reject (not UTF-8, empty, characters outside the "
                    "alphabet) is a record with its line number and reason instead of a score.",
        epilog=examples('echo "Emma" | rnnlm score --model models/names/neural/lstm.pt',
                        "rnnlm score --model models/names/mixture.json data/splits/names/test.txt | tail -1",
                        "rnnlm score --model models/news/ngram.arpa.gz my_texts.txt --format csv"))
    add_model_and_input(sc, model_help)
    sc.add_argument("--format", choices=("jsonl", "csv"), default="jsonl",
                    help="one JSON object per line, or CSV rows; the summary comes last (default jsonl)")
    sc.add_argument("--device", default="cpu", choices=DEVICES, help="where a recurrent model runs (default cpu)")
    sc.add_argument("--cache", type=int, nargs="?", const=DEFAULT_SIZE, default=None, metavar="SIZE",
                    help="a stream model of a recurrent kind: mix in a neural cache over its last SIZE states "
                         f"(Grave et al. 2017; default size {DEFAULT_SIZE}); a target enters it only once scored")
    sc.add_argument("--cache-theta", type=float, default=DEFAULT_THETA, metavar="T",
                    help=f"the cache's flatness θ on the dot products of states (default {DEFAULT_THETA}; the "
                         "evaluate stage's <kind>+cache.json holds the value fit on dev)")
    sc.add_argument("--cache-lambda", type=float, default=DEFAULT_LAMBDA, metavar="L",
                    help=f"the cache's weight λ in [0, 1) (default {DEFAULT_LAMBDA}; fit on dev there too)")
    sc.add_argument("--dyneval", action="store_true",
                    help="a stream model of a recurrent kind: dynamic evaluation (Krause et al. 2018), an SGD step "
                         "on each segment once it is scored")
    sc.add_argument("--dyneval-lr", type=float, default=DEFAULT_LR, metavar="LR",
                    help=f"its learning rate (default {DEFAULT_LR}; the evaluate stage's <kind>+dyneval.json holds "
                         "the value fit on dev)")
    sc.add_argument("--dyneval-decay", type=float, default=DEFAULT_DECAY, metavar="D",
                    help=f"its pull back towards the trained weights per segment, in [0, 1) (default {DEFAULT_DECAY})")
    sc.add_argument("--dyneval-segment", type=int, default=DEFAULT_SEGMENT, metavar="N",
                    help=f"targets scored before each step (default {DEFAULT_SEGMENT})")
    sc.set_defaults(func=cmd_score)

    inf = sub.add_parser("info", help="what a model file is: kind, sizes, vocabulary, training params, metrics",
                         formatter_class=ExamplesFormatter,
                         epilog=examples("rnnlm info models/news/neural/lstm.pt", "rnnlm info models/names/mixture.json"))
    inf.add_argument("model", help=model_help)
    inf.set_defaults(func=cmd_info)

    nv = sub.add_parser("novelty", help="novel share and log-likelihood of samples over temperatures and top-k",
                        formatter_class=ExamplesFormatter,
                        epilog=examples("rnnlm novelty --model models/names/neural/lstm.pt "
                                        "--train-split data/splits/names/train.txt --temperatures 1.0 --top-k 0 -n 50"))
    nv.add_argument("--model", required=True, help=model_help)
    nv.add_argument("--train-split", required=True, help="the training items, e.g. data/splits/names/train.txt")
    nv.add_argument("--temperatures", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.2])
    nv.add_argument("--top-k", type=int, nargs="+", default=[0, 5, 10], help="0: no cut (default 0 5 10)")
    nv.add_argument("-n", type=int, default=500, help="samples per setting (default 500)")
    nv.add_argument("--max-tokens", type=int, default=30)
    nv.add_argument("--seed", type=int, default=0)
    nv.add_argument("--device", default="cpu", choices=DEVICES)
    nv.add_argument("--json", help="also write the rows to this JSON file")
    nv.set_defaults(func=cmd_novelty)

    tk = sub.add_parser(
        "tokenize", help="each item as the model reads it: its tokens, separated by spaces (for KenLM, SRILM)",
        formatter_class=ExamplesFormatter,
        description="Print each line of INPUT as the model reads it: normalized as `rnnlm score` normalizes it, "
                    "then its tokens separated by single spaces (characters at char level, words at word level, "
                    "BPE pieces at bpe level), each written as the model's ARPA file writes it (whitespace inside "
                    "a token, such as a char-level space, as <U+0020>). A token the vocabulary lacks is printed "
                    "as written; KenLM and SRILM read it as <unk>, as the model does. A rejected line is not "
                    "printed: stdout has one line per kept item, and stderr names each rejected line with its "
                    "number and reason. A stream model (one long text) reads the whole input as one text and prints "
                    "it as one line of tokens, each newline among them (score it in KenLM without an end token).",
        epilog=examples("rnnlm tokenize --model models/news/ngram.arpa.gz data/splits/news/test.txt > test.tok",
                        "echo \"Don't stop-believing!\" | rnnlm tokenize --model models/news/neural/lstm.pt",
                        "echo Zoë | rnnlm tokenize --model models/names/mixture.json"))
    add_model_and_input(tk, model_help)
    tk.set_defaults(func=cmd_tokenize)

    ex = sub.add_parser(
        "export", help="write a neural checkpoint (any kind) as an ONNX graph, with a JSON describing it",
        formatter_class=ExamplesFormatter,
        description="Write the checkpoint as OUT.onnx: inputs ids (batch, time) and the model's state tensors, "
                    "outputs log_probs (batch, time, vocab) and the new state (docs/other-tools.md). OUT.json "
                    "beside it holds the vocabulary with its normalization, the kind, the input and output names "
                    "and shapes, and how to build the initial state.",
        epilog=examples("rnnlm export --model models/names/neural/lstm.pt --onnx lstm.onnx"))
    ex.add_argument("--model", required=True, help="a neural checkpoint, models/<corpus>/neural/<kind>.pt")
    ex.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the graph file to write (its folder must exist)")
    ex.set_defaults(func=cmd_export)

    cm = sub.add_parser(
        "check-metrics", help="compare workspace metrics with committed ones, each with the tolerance that fits it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare every value in metrics/**/*.json with the same file at --rev. The rule for a value "
                    "follows from its key and shape (so new metrics files need no configuration):",
        epilog=CHECK_METRICS_RULES)
    cm.add_argument("--rev", default="HEAD", help="git revision holding the reference metrics (default HEAD)")
    cm.add_argument("--rtol", type=float, default=None,
                    help="one relative tolerance for every value instead of each metric's own, measured between "
                         "CPUs (rnnlm.tolerances: losses 1e-3; perplexity through its log, the loss)")
    cm.add_argument("--atol", type=float, default=1e-6, help="absolute slack added to every band (default 1e-6)")
    cm.add_argument("--sample-k", type=float, default=3.0,
                    help="width of the bands of sample statistics, in standard errors (default 3)")
    cm.add_argument("--metrics-dir", default="metrics")
    cm.add_argument("--ignore", action="append", default=[], metavar="KEY",
                    help="also ignore this metric name (timings are always ignored)")
    cm.set_defaults(func=cmd_check_metrics)

    cp = sub.add_parser(
        "compare", help="Markdown: every model's dev and test loss and perplexity at REV beside the workspace's",
        description="Compare the metrics committed at REV with the workspace's: for each corpus and model, dev and "
                    "test loss and perplexity on both sides, the change, and a mark where it goes beyond the "
                    "tolerance of check-metrics; then the best model (lowest dev loss) of each side.")
    cp.add_argument("rev", nargs="?", default="HEAD", help="git revision to compare with (default HEAD), e.g. main")
    cp.add_argument("--rtol", type=float, default=None,
                    help="one relative tolerance instead of each metric's own, as check-metrics")
    cp.add_argument("--atol", type=float, default=1e-6, help="absolute slack, as check-metrics (default 1e-6)")
    cp.add_argument("--metrics-dir", default="metrics")
    cp.set_defaults(func=cmd_compare)

    ac = sub.add_parser(
        "add-corpus", help="add a corpus to params.yaml, every section of it copied from a corpus it is like",
        formatter_class=ExamplesFormatter,
        description="Write corpus NAME into params.yaml: `corpora: NAME: PATH`, and under kinds and every "
                    "per-corpus section (ingest, split, vocab, train, tokenization, ngram, mixture, generate) a "
                    "copy of the entry of the corpus given by --like, with each --set applied; a folder of "
                    "predefined split files (WikiText's, PTB's) gets no split fractions. The result is "
                    "validated as the stages validate it before anything is written; the rest of params.yaml "
                    "keeps its comments. The entries are copies, not references: DVC tracks each stage's "
                    "params by key, and `dvc exp run -S` changes them like any other's (docs/streams.md).",
        epilog=examples("rnnlm add-corpus shakespeare_words data/raw/tinyshakespeare.txt --like shakespeare "
                        "--set vocab.level=word --set ngram.max_order=5   # the play read at word level"))
    ac.add_argument("name", help="the new corpus's name (letters, digits, _ and -): its stages are <stage>@NAME")
    ac.add_argument("path", help="its raw file, or a folder of split files, relative to the repository root")
    ac.add_argument("--like", required=True, help="the corpus whose entries it starts from (e.g. shakespeare)")
    ac.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="change one setting of the copy, the value read as YAML (repeatable), e.g. "
                         "train.adaptive_cutoffs=[2000,10000]")
    ac.add_argument("--params", default="params.yaml", help="the params file (default params.yaml)")
    ac.set_defaults(func=cmd_add_corpus)

    cl = sub.add_parser(
        "check-lock", help="fail if a stage's command, params, code or raw data changed since the committed dvc.lock",
        description="Judge dvc.lock as committed at --rev against dvc.yaml, params.yaml, the code and the raw data "
                    "in the workspace, with `dvc status` run on a copy of the workspace that holds that dvc.lock. "
                    "Fails on a changed command or param, a changed, new or deleted dependency that is code or "
                    "raw data (a folder's files included), a dependency or output the lock lacks, a stage never "
                    "run, and a stage the lock holds that dvc.yaml no longer defines. Outputs not built and data "
                    "one stage hands another are not judged (dvc status and check-metrics do that after `dvc "
                    "repro`), so the verdict is the same before and after `dvc repro`. The raw data must be "
                    "pulled (dvc pull data/raw/*.dvc).")
    cl.add_argument("--rev", default="HEAD", help="git revision whose dvc.lock is judged (default HEAD)")
    cl.set_defaults(func=cmd_check_lock)
    return ap


@exit_on_user_error
def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of stdout left (`rnnlm score ... | head -1`): stop quietly, as Unix tools do. Python
        # would otherwise print a traceback, and another at exit while flushing: point stdout at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it
    sys.exit(code)


if __name__ == "__main__":
    main()
