"""One epoch per setting on an accelerator: does the device path train, and how fast?

    PYTHONPATH=src python benchmarks/device_check.py [--device cuda] [--names FILE] [--news FILE]

Trains (1) the names GRU at the seed's settings on the CPU and on the device, fp32 and bf16,
and (2) the news GRU at the seed's size (embedding 64, 512 units, every word up to 50,000) with
adaptive softmax (fp32, bf16) and the full softmax (fp32), one epoch each, through the
project's own ``train_model``. Prints one line per run and last one JSON line with train tokens/s
and train/dev losses. Nothing here is faked: it fails on a machine without the device.
Each result names the device the trained model's weights are on (``ran_on``), and a setting whose
model is not where it asked to run is reported as failed, so a row cannot pass off CPU numbers as a
GPU's. ``CUBLAS_WORKSPACE_CONFIG`` is set (``rnnlm.seeding``) before anything touches CUDA.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import yaml

from rnnlm.data import encode_split
from rnnlm.ingest import ingest
from rnnlm.schema.ingest import IngestConfig
from rnnlm.schema.split import SplitConfig
from rnnlm.schema.train import TrainConfig
from rnnlm.seeding import CUBLAS_DETERMINISTIC, CUBLAS_VAR
from rnnlm.split import split_rows
from rnnlm.training import train_model
from rnnlm.vocab import Vocabulary

ROOT = Path(__file__).resolve().parents[1]


def corpus(path, ingest_cfg, split_cfg, level, max_size, min_freq):
    rows = split_rows(ingest(path, ingest_cfg).rows, split_cfg)
    texts = {name: [row["text"] for row in part] for name, part in rows.items()}
    vocab = Vocabulary.build(texts["train"], level, max_size, min_freq)
    return vocab, {name: encode_split(vocab, items) for name, items in texts.items()}


def one_epoch(label, kind, cfg, vocab, splits, folder):
    start = time.perf_counter()
    try:
        model, record = train_model(kind, cfg, vocab, splits, 0, Path(folder) / f"{label}.pt", log=lambda _: None,
                                    progress=False)
    except Exception as err:  # noqa: BLE001 - report every setting, even when one fails
        print(label, "FAILED:", repr(err)[:300], flush=True)
        return {"error": repr(err)[:300]}
    ran_on = next(model.parameters()).device.type
    if cfg.device != "auto" and ran_on != cfg.device:
        print(label, f"FAILED: asked for {cfg.device}, the model is on {ran_on}", flush=True)
        return {"error": f"model on {ran_on}, not {cfg.device}"}
    last = record["history"][-1]
    result = {"ran_on": ran_on, "tokens_per_s": round(record["tokens_per_s"]),
              "train_loss": round(last["train_loss"], 4),
              "dev_loss": round(last["dev_loss"], 4), "wall_s": round(time.perf_counter() - start, 1)}
    print(label, result, flush=True)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--names", type=Path, default=ROOT / "data" / "raw" / "names.txt")
    ap.add_argument("--news", type=Path, default=ROOT / "data" / "raw" / "News_Category_Dataset_v3.first10k.json")
    ap.add_argument("--skip-names", action="store_true", help="only the news runs")
    args = ap.parse_args()
    os.environ.setdefault(CUBLAS_VAR, CUBLAS_DETERMINISTIC[0])  # before the first CUDA call (rnnlm.seeding)
    results = {"torch": torch.__version__, "cublas_workspace_config": os.environ[CUBLAS_VAR],
               "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))  # the defaults' one source
    plain = dict(dropout=0.0, optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="none", max_len=256)

    def config(cls, section, corpus, **changes):
        return cls.from_params(params[section][corpus] | changes, f"{section}.{corpus}")

    names_vocab, names = corpus(args.names, config(IngestConfig, "ingest", "names", path=str(args.names)),
                                config(SplitConfig, "split", "names"), "char", None, 1)
    base = config(TrainConfig, "train", "names", **plain | dict(embedding_size=96, hidden_size=96, batch_size=16,
                                                                 epochs=1, max_len=64, workers=1))
    news_vocab, news = corpus(args.news, config(IngestConfig, "ingest", "news", path=str(args.news)),
                              config(SplitConfig, "split", "news"), "word", 50_000, 1)
    seed_size = config(TrainConfig, "train", "news", **plain | dict(
        embedding_size=64, hidden_size=512, optimizer="adamw", weight_decay=0.01, batch_size=16, epochs=1,
        bucket=True, workers=1, output="adaptive", adaptive_cutoffs=[2000, 10000]))
    with tempfile.TemporaryDirectory() as folder:
        torch.set_num_threads(2)  # the CPU baseline as on the 2-core development machine
        if not args.skip_names:
            results["names_gru_cpu_fp32"] = one_epoch("names_gru_cpu_fp32", "gru", base, names_vocab, names, folder)
        for precision in (() if args.skip_names else ("fp32", "bf16")):
            cfg = base.updated({"device": args.device, "precision": precision})
            for kind in ("gru", "rnn_scratch"):
                label = f"names_{kind}_{args.device}_{precision}"
                results[label] = one_epoch(label, kind, cfg, names_vocab, names, folder)
        for output, precision in (("adaptive", "fp32"), ("adaptive", "bf16"), ("full", "fp32")):
            cfg = seed_size.updated({"device": args.device, "precision": precision, "output": output})
            label = f"news_seed_size_{output}_{args.device}_{precision}"
            results[label] = one_epoch(label, "gru", cfg, news_vocab, news, folder)
    results["news_vocab"] = len(news_vocab)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
