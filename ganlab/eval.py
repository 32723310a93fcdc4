"""The metrics of one checkpoint: ``python -m ganlab.eval CKPT [--n-samples N] [--out FILE.json]``.

Rebuilds data, G and D from the config stored in the checkpoint and evaluates them exactly as
training does (same Evaluator, same eval.* settings unless overridden): the numbers match the run's
own last row of eval.jsonl. Prints the metrics as JSON and writes them to ``--out`` (default:
``<checkpoint>.eval.json`` beside the checkpoint). torch is imported after the arguments are parsed.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DESCRIPTION = ("Evaluate one checkpoint exactly as training does (same z, same real reference set, same "
               "classifier) and write its metrics as JSON.")
EXAMPLES = """examples:
  python -m ganlab.eval outputs/2026-12-01/10-00-00/checkpoints/step_00008400.pt
  python -m ganlab.eval CKPT --n-samples 10000 --out final.json       # more samples than during training
  python -m ganlab.eval CKPT --generator g     # the raw G of a run with trainer.g_ema (default: the G it sampled from)
"""


def evaluate_checkpoint(path: Path, n_samples: int | None = None, features: str | None = None,
                        classifier_dir: str | None = None, data_root: str | None = None,
                        device: "torch.device | None" = None, generator: str = "auto") -> dict[str, Any]:
    """Metrics of the checkpoint at ``path`` (keys ``eval/...``) plus its step and which G was evaluated.

    ``generator``: auto (the G the run sampled from: its EMA G when it had one), g or g_ema.
    """
    import torch
    from omegaconf import OmegaConf

    from ganlab.build import build_data, build_evaluator
    from ganlab.checkpoint import load_checkpoint
    from ganlab.errors import ConfigError
    from ganlab.from_checkpoint import checkpoint_config, chosen_generator, latent_of, load_models

    device = device or torch.device("cpu")
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
        if "root" not in config.data.dataset:  # digits, the 2D sets: made in memory, read from no folder
            made_by = str(config.data.dataset.get("_target_", "")).rsplit(".", 1)[-1]
            raise ConfigError(f"--data-root: the run's data set ({made_by}) is not read from a folder")
        config.data.dataset.root = data_root
    which = chosen_generator(state, generator)
    G, discriminator = load_models(state, device, which)
    evaluator = build_evaluator(config, build_data(config).to(device), device)
    latent = latent_of(state, G.z_size, device, 0)
    extra = {"generator": which} if state.get("generator_ema") is not None else {}  # old outputs stay as they were
    return {"checkpoint": str(path), "step": int(state["step"]), **extra,
            **evaluator(G, discriminator, latent, int(state["step"]))}


def parser() -> argparse.ArgumentParser:
    """The command's arguments (also read by the README test)."""
    p = argparse.ArgumentParser(
        prog="python -m ganlab.eval", description=textwrap.fill(DESCRIPTION, 100), epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint (<run dir>/checkpoints/step_XXXXXXXX.pt) or "
                                                 "its run dir (the newest)")
    p.add_argument("--n-samples", type=int, default=None, help="samples (default: the run's eval.n_samples)")
    p.add_argument("--features", choices=["classifier", "inception", "none"], default=None,
                   help="FID/KID features (default: the run's eval.features)")
    p.add_argument("--classifier-dir", default=None, help="classifier cache (default: the run's eval.classifier.dir)")
    p.add_argument("--data-root", default=None, help="where the IDX/CIFAR data set lives now, if it moved")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: <checkpoint>.eval.json)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, ... (default auto)")
    p.add_argument("--generator", choices=["auto", "g", "g_ema"], default="auto",
                   help="auto: the G the run sampled from (its EMA G when trainer.g_ema was set)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, evaluate, print and write the JSON."""
    p = parser()
    args = p.parse_args(argv)
    if args.n_samples is not None and args.n_samples < 2:
        p.error("--n-samples must be >= 2")
    from ganlab.checkpoint import checkpoint_file
    from ganlab.errors import GanlabError, make_folder
    from ganlab.hardware.device import command_device

    try:
        path = checkpoint_file(args.checkpoint)  # a run dir: its newest checkpoint
        out = args.out or path.with_suffix(".eval.json")  # by default beside the checkpoint
        device = command_device(args.device)
        if args.out is not None:
            make_folder(out.parent)  # before the evaluation: fail at once, not after it
        result = evaluate_checkpoint(path, args.n_samples, args.features, args.classifier_dir,
                                     args.data_root, device, args.generator)
    except GanlabError as err:
        print(f"ganlab.eval: error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    out.write_text(text + "\n")
    print(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from ganlab.errors import interruptible
    from ganlab.quick_exit import run_and_leave

    run_and_leave(lambda: interruptible("ganlab.eval", main))
