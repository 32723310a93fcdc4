"""One training run, several EMAs of its G side by side: what each decay does to the evaluation.

    python benchmarks/ema_decays.py --eval-at 500,1000,2340 -- experiment=vanilla data=fashion_mnist \\
        data.root=/usr/share/datasets/fashion-mnist trainer.epochs=20

The run is the one ``python -m ganlab <overrides>`` trains (same build, same step, the loop's draws in
the loop's order: the raw G's numbers are those of that run's eval.jsonl, and each EMA's are those of
a run with ``trainer.g_ema=<decay>``, since an EMA never changes training). At each ``--eval-at`` step
it prints one JSON line: the raw G's ``fid_clf``, and per decay the EMA G's with the BatchNorm
statistics copied from G (ganlab's rule, StyleGAN2-ADA's) and recomputed for the averaged weights
("standing statistics", BigGAN's; ``_bn``), and the training seconds so far.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch
from torch import nn

from ganlab.build import build_evaluator
from ganlab.config import compose_config
from ganlab.ema import GeneratorEMA
from ganlab.step import build_step
from ganlab.train import build_run


def standing_statistics(generator: nn.Module, latent, n_classes: int | None, batch_size: int,
                        batches: int = 16) -> nn.Module:
    """A copy of ``generator`` whose BatchNorm statistics are re-estimated on ``batches`` of its own samples."""
    generator = copy.deepcopy(generator)
    for module in generator.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the batches
    generator.train()
    stream = torch.Generator(device=latent.device).manual_seed(5)
    with torch.no_grad():
        for _ in range(batches):
            z = latent(batch_size, stream)
            generator(z) if n_classes is None else generator(z, torch.arange(batch_size, device=z.device) % n_classes)
    return generator.eval()


def main(argv: list[str] | None = None) -> int:
    """Train once, keep the EMAs, print the evaluations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decays", default="0.9,0.95,0.98,0.99,0.995,0.999")
    parser.add_argument("--eval-at", default=None, help="steps to evaluate at (default: the last)")
    parser.add_argument("--start", type=int, default=0, help="trainer.g_ema_start of every EMA")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    cfg = compose_config(["trainer.progress=false", "logger=none", *args.overrides])
    run = build_run(cfg)
    tc, size = run.trainer, run.batches.batch_size
    emas = {float(d): GeneratorEMA(run.generator, float(d), args.start) for d in args.decays.split(",")}
    step_fn = build_step(run.g_train, run.d_train, run.loss, run.g_opt, run.d_opt, tc.detach_fake, run.hardware,
                         run.discriminator, run.augment, run.augment_gen)
    evaluator = build_evaluator(cfg, run.data, run.device)
    eval_at = {int(s) for s in args.eval_at.split(",")} if args.eval_at else {run.total_steps}
    n_classes = run.classes.n_classes if run.classes is not None else None
    train_s, start = 0.0, time.perf_counter()
    for step in range(1, run.total_steps + 1):
        index = (step - 1) * tc.n_critic
        reals = [run.batches.get(index + k) for k in range(tc.n_critic)]
        z_d = [run.latent(size) for _ in range(tc.n_critic)]
        z_g = run.latent(size)
        if run.classes is None:
            step_fn(reals, z_d, z_g)
        else:
            step_fn(reals, z_d, z_g, y_real=[run.batches.labels(index + k) for k in range(tc.n_critic)],
                    y_d=[run.classes(size) for _ in range(tc.n_critic)], y_g=run.classes(size))
        for ema in emas.values():
            ema.update(run.generator, step)
        if step in eval_at:
            train_s += time.perf_counter() - start
            D = run.discriminator
            row = {"step": step, "train_s": round(train_s, 1),
                   "g": round(evaluator(run.generator, D, run.latent, step)["eval/fid_clf"], 2)}
            for decay, ema in emas.items():
                row[str(decay)] = round(evaluator(ema.module, D, run.latent, step)["eval/fid_clf"], 2)
                standing = standing_statistics(ema.module, run.latent, n_classes, size)
                row[f"{decay}_bn"] = round(evaluator(standing, D, run.latent, step)["eval/fid_clf"], 2)
            print(json.dumps(row), flush=True)
            start = time.perf_counter()
    return 0


if __name__ == "__main__":
    sys.exit(main())
