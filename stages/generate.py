"""Stage generate: samples from every kind's headline checkpoint (unconditional and from prompts) + novelty.

Prompts are normalized as `rnnlm sample` normalizes them (rnnlm.sampling.prompt_ids). A stream model writes a
few long samples, newlines kept, judged by how many of their long lines copy the training text."""

import argparse
from pathlib import Path

import torch

from _params import load_params, section
from rnnlm.checkpoint import load_checkpoint
from rnnlm.devices import resolve_device
from rnnlm.errors import exit_on_user_error
from rnnlm.io import write_json, write_text
from rnnlm.lifecycle import exit_with_parent
from rnnlm.results import rounded
from rnnlm.sampling import generate, sample_statistics, stream_sample_statistics
from rnnlm.schema.generate import GenerateConfig
from rnnlm.schema.pipeline import Pipeline
from rnnlm.seeding import seed_everything
from rnnlm.textstream import file_blocks, read_stream_text


def samples_of(checkpoint, cfg):
    """``(lines of the samples file, the unconditional samples, whether it is a stream model)`` of one model,
    seeded by ``cfg.seed``."""
    seed_everything(cfg.seed)  # every model draws from the same seed, whichever kinds come before it
    model, vocab, _ = load_checkpoint(checkpoint)
    model.to(resolve_device(cfg.device))
    generator = torch.Generator().manual_seed(cfg.seed)
    sample = dict(temperature=cfg.temperature, top_k=cfg.top_k, max_tokens=cfg.max_tokens, generator=generator)
    free = generate(model, vocab, cfg.num_samples, **sample)
    # a stream's samples are many lines long: each gets a header line of its own
    framed = (lambda texts: [f"# --- sample\n{text}" for text in texts]) if vocab.stream else list
    lines = [f"# {checkpoint}: {cfg.num_samples} samples, temperature {cfg.temperature}, top-k {cfg.top_k}"]
    lines += framed(free)
    for prompt in cfg.prompts:
        lines.append(f"\n# prompt {prompt!r}: greedy, then sampled")
        lines += framed(generate(model, vocab, 1, prompt, max_tokens=cfg.max_tokens, greedy=True, warn=print))
        lines += framed(generate(model, vocab, cfg.samples_per_prompt, prompt, **sample))
    return lines, free, vocab.stream


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--models-dir", required=True, help="input: <kind>.pt per kind")
    ap.add_argument("--train-split", required=True, help="input: training items, to judge novelty")
    ap.add_argument("--samples-dir", required=True, help="output: <kind>.txt, samples per kind")
    ap.add_argument("--metrics-dir", required=True, help="output: <kind>.json, sample statistics per kind")
    args = ap.parse_args()
    params = load_params()
    kinds = Pipeline.of(params).kinds_of(args.corpus)
    cfg = section(params, GenerateConfig, "generate", args.corpus)

    train_items = None   # an item corpus's training items, read once; a stream's text is only ever read in blocks
    stream_samples = {}  # a stream's kinds are judged together: its training text is read once for all
    for kind in kinds:
        lines, free, stream = samples_of(Path(args.models_dir) / f"{kind}.pt", cfg)
        write_text(Path(args.samples_dir) / f"{kind}.txt", "\n".join(lines) + "\n")
        if stream:
            stream_samples[kind] = free
            continue
        if train_items is None:
            train_items = set(read_stream_text(args.train_split, what="training split").splitlines())
        stats = sample_statistics(free, train_items)
        print(f"generate {args.corpus}/{kind}: {stats['novel_share']:.0%} of {len(free)} samples "
              "are not in the training split")
        write_json(Path(args.metrics_dir) / f"{kind}.json", rounded(stats))
    if stream_samples:
        # blocks end at line ends ("char": any line end), which is all that finding a copied line needs
        judged = stream_sample_statistics(stream_samples, file_blocks(args.train_split, "char", what="training split"))
        for kind, stats in judged.items():
            print(f"generate {args.corpus}/{kind}: {stats['samples']} samples, {stats['copied_line_share']:.0%} of "
                  f"their {stats['long_lines']} long lines copy the training text")
            write_json(Path(args.metrics_dir) / f"{kind}.json", rounded(stats))


if __name__ == "__main__":
    main()
