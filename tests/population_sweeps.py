"""What the population tests share: a tiny sweep's settings and the entry point run in this process."""

from __future__ import annotations

import sys

import pytest

TINY = ["model.middle_size=16", "trainer.max_steps=20", "trainer.log_every=5", "trainer.ckpt_every=10",
        "eval.every=10", "eval.n_samples=128", "eval.kid_subsets=3"]
ZOO = "loss=bce,minimax,mse,hinge,wgan,wgan_gp,bce_r1"
ONE = "hydra.launcher.processes=1"  # every program in the launching process: what a test of grouping counts


def run_main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """The real entry point in this process (so a test can poison the step); its exit code."""
    from ganlab.__main__ import main

    monkeypatch.setattr(sys, "argv", ["ganlab", *argv])
    try:
        main()
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0
