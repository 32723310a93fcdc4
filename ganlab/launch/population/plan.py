"""Which jobs of a sweep can share one program, and which must run alone.

Jobs share a program when their configs are equal apart from what a member may have of its own:
its seed, its optimizers' hyperparameters (not their class), its loss (class and parameters),
its z_size, its latent distribution, its objective and its resume setting. Everything else (the
data set and batch size, the model family and widths, n_critic, the trainer's schedule, the
hardware, the evaluation, the logger) must match: the stacked step runs one schedule for all.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ganlab.run import Run

MEMBER_HYPERPARAMETERS = ("lr", "betas", "alpha", "momentum", "eps", "weight_decay", "dampening", "nesterov",
                          "centered")
MEMBER_KEYS = ("seed", "loss", "objective", "resume", "run")


def group_key(plain: dict[str, Any]) -> str:
    """What must be equal for two jobs to train in one population (a canonical JSON string)."""
    shared = copy.deepcopy(plain)
    for key in MEMBER_KEYS:
        shared.pop(key, None)
    optimizer = shared.get("optimizer", {})
    for node in (optimizer, optimizer.get("generator", {}), optimizer.get("discriminator", {})):
        for key in MEMBER_HYPERPARAMETERS:
            node.pop(key, None)
    model = shared.get("model", {})
    model.pop("z_size", None)
    model.get("generator", {}).pop("z_size", None)
    for key in ("latent_std", "latent_dist"):
        shared.get("data", {}).pop(key, None)
    return json.dumps(shared, sort_keys=True, default=str)


def alone_reason(plain: dict[str, Any], run: Run) -> str | None:
    """Why a job (its config, its built run) cannot be a population member (it then runs as an ordinary
    run), or None."""
    from ganlab.losses import GANLoss

    if plain.get("hardware", {}).get("ddp"):
        return "hardware=ddp is one run over several processes"
    loss = run.loss
    unbatched = [name for name, on in (  # read off the built run: what it will actually do
        ("trainer.g_ema", run.g_ema is not None),
        ("augment", run.augment is not None),
        ("model.conditional", run.classes is not None),
        ("model.pack", getattr(run.discriminator, "pack", 1) != 1),
        ("loss=acgan", loss.aux_classifier)) if on]
    if unbatched:  # the population's batched step does not have these yet
        return f"{', '.join(unbatched)} not batched in a population yet"
    overridden = [hook for hook in ("d_penalty", "after_d_step")
                  if getattr(type(loss), hook) is not getattr(GANLoss, hook)]
    if overridden:
        return f"its loss {type(loss).__name__} overrides {overridden} (a population needs penalty_points/weight_clip)"
    return None


def split(items: list[Any], size: int) -> list[list[Any]]:
    """``items`` in consecutive chunks of at most ``size`` (0: one chunk)."""
    if size <= 0 or len(items) <= size:
        return [items]
    return [items[i:i + size] for i in range(0, len(items), size)]
