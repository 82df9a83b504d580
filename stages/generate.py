"""Stage generate: samples from the headline checkpoint (unconditional and from prompts) + novelty."""

import argparse

import torch

from _params import load_params, section
from rnnlm.checkpoint import load_checkpoint
from rnnlm.config import GenerateConfig
from rnnlm.devices import resolve_device
from rnnlm.errors import exit_on_user_error
from rnnlm.evaluation import rounded
from rnnlm.io import read_lines, write_json, write_text
from rnnlm.lifecycle import exit_with_parent
from rnnlm.sampling import generate, sample_statistics
from rnnlm.seeding import seed_everything


@exit_on_user_error
def main():
    exit_with_parent()  # end with `dvc repro`, even when it is killed with SIGKILL
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--checkpoint", required=True, help="input: model checkpoint")
    ap.add_argument("--train-split", required=True, help="input: training items, to judge novelty")
    ap.add_argument("--samples", required=True, help="output: samples (text)")
    ap.add_argument("--metrics", required=True, help="output: sample statistics (JSON)")
    args = ap.parse_args()
    cfg = section(load_params(), GenerateConfig, "generate", args.corpus)

    seed_everything(cfg.seed)
    model, vocab, _ = load_checkpoint(args.checkpoint)
    model.to(resolve_device(cfg.device))
    generator = torch.Generator().manual_seed(cfg.seed)
    sample = dict(temperature=cfg.temperature, top_k=cfg.top_k, max_tokens=cfg.max_tokens, generator=generator)
    free = generate(model, vocab, cfg.num_samples, **sample)
    lines = [f"# {args.checkpoint}: {cfg.num_samples} samples, temperature {cfg.temperature}, top-k {cfg.top_k}"]
    lines += free
    for prompt in cfg.prompts:
        lines.append(f"\n# prompt {prompt!r}: greedy, then sampled")
        lines += generate(model, vocab, 1, prompt, max_tokens=cfg.max_tokens, greedy=True)
        lines += generate(model, vocab, cfg.samples_per_prompt, prompt, **sample)
    write_text(args.samples, "\n".join(lines) + "\n")

    train_items = set(read_lines(args.train_split, what="training split"))
    stats = sample_statistics(free, train_items)
    write_json(args.metrics, rounded(stats))
    print(f"generate {args.corpus}: {stats['novel_share']:.0%} of {len(free)} samples are not in the training split")


if __name__ == "__main__":
    main()
