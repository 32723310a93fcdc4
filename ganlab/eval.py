"""The metrics of one checkpoint: ``python -m ganlab.eval CKPT [--n-samples N] [--out FILE.json]``.

Rebuilds data, G and D from the config stored in the checkpoint and evaluates them exactly as
training does (same Evaluator, same eval.* settings unless overridden); prints the metrics as JSON
and writes them to ``--out`` (default: ``<checkpoint>.eval.json`` beside the checkpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from ganlab.build import build_data, build_evaluator
from ganlab.checkpoint import load_checkpoint
from ganlab.errors import GanlabError
from ganlab.from_checkpoint import checkpoint_config, chosen_generator, latent_of, load_models


def evaluate_checkpoint(path: Path, n_samples: int | None = None, features: str | None = None,
                        classifier_dir: str | None = None, data_root: str | None = None,
                        device: torch.device = torch.device("cpu"), generator: str = "auto") -> dict[str, Any]:
    """Metrics of the checkpoint at ``path`` (keys ``eval/...``) plus its step and which G was evaluated.

    ``generator``: auto (the G the run sampled from: its EMA G when it had one), g or g_ema.
    """
    state = load_checkpoint(path)
    config = checkpoint_config(state)
    if "eval" not in config:  # checkpoints written before evaluation existed: today's defaults
        from ganlab.config import compose_config

        config.eval = compose_config([]).eval
    config.eval.every = 1  # evaluate now; every=0 in the run only meant "not during training"
    for key, value in (("n_samples", n_samples), ("features", features), ("classifier.dir", classifier_dir)):
        if value is not None:
            OmegaConf.update(config.eval, key, value)
    if data_root is not None:
        config.data.dataset.root = data_root
    which = chosen_generator(state, generator)
    G, discriminator = load_models(state, device, which)
    evaluator = build_evaluator(config, build_data(config).to(device), device)
    latent = latent_of(state, G.z_size, device, 0)
    extra = {"generator": which} if state.get("generator_ema") is not None else {}  # old outputs stay as they were
    return {"checkpoint": str(path), "step": int(state["step"]), **extra,
            **evaluator(G, discriminator, latent, int(state["step"]))}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, evaluate, print and write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m ganlab.eval", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--n-samples", type=int, default=None, help="samples (default: the run's eval.n_samples)")
    parser.add_argument("--features", choices=["classifier", "inception", "none"], default=None)
    parser.add_argument("--classifier-dir", default=None,
                        help="classifier cache (default: the run's eval.classifier.dir)")
    parser.add_argument("--data-root", default=None, help="where the IDX data set lives now, if it moved")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: <checkpoint>.eval.json)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--generator", choices=["auto", "g", "g_ema"], default="auto",
                        help="auto: the G the run sampled from (its EMA G when trainer.g_ema was set)")
    args = parser.parse_args(argv)
    if args.n_samples is not None and args.n_samples < 2:
        parser.error("--n-samples must be >= 2")
    try:
        result = evaluate_checkpoint(args.checkpoint, args.n_samples, args.features, args.classifier_dir,
                                     args.data_root, torch.device(args.device), args.generator)
    except GanlabError as err:
        print(f"ganlab.eval: error: {err}", file=sys.stderr)
        return 2
    out = args.out or args.checkpoint.with_suffix(".eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2)
    out.write_text(text + "\n")
    print(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
