"""Train and cache a data set's evaluation classifier: ``python -m ganlab.classifier [overrides]``.

Takes the same overrides as a run (``data=fashion_mnist data.root=...``, ``eval.classifier.steps=...``)
and writes ``<eval.classifier.dir>/<data>.pt`` with ``<data>.json`` (its test accuracy) beside it.
Without overrides it trains the default data set's (digits, a few seconds), as a bare
``python -m ganlab`` trains the default GAN. The classifier itself lives in ``ganlab.metrics.classifier``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

DESCRIPTION = ("Train the evaluation classifier of a data set (whose features give fid_clf, kid_clf and "
               "classes_hit) and cache it, so runs on that data set evaluate without training it themselves. "
               "Takes the same overrides as python -m ganlab; without any, the default data set (digits).")
EXAMPLES = """examples:
  python -m ganlab.classifier                                   # digits: seconds on a CPU
  python -m ganlab.classifier data=fashion_mnist data.root=/usr/share/datasets/fashion-mnist
  python -m ganlab.classifier data=cifar10 data.root=data/cifar10 eval.classifier.steps=2000 hardware=gpu

The cache is ~/.cache/ganlab/classifiers (GANLAB_CACHE or eval.classifier.dir=DIR moves it); runs find
it there, and eval.if_no_classifier=train|skip|error says what a run does when it is missing.
"""


def parser() -> argparse.ArgumentParser:
    """The command's arguments (also read by the README test)."""
    p = argparse.ArgumentParser(
        prog="python -m ganlab.classifier", description=textwrap.fill(DESCRIPTION, 100), epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="overrides as for python -m ganlab (data=..., data.root=..., eval.classifier.steps=...)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Compose the run config from overrides (as ``python -m ganlab`` would) and train + cache the classifier."""
    overrides = parser().parse_args(sys.argv[1:] if argv is None else argv).overrides
    from ganlab.build import build, build_data, build_hardware
    from ganlab.config import compose_config, validate
    from ganlab.errors import GanlabError, make_folder
    from ganlab.metrics.classifier import save_classifier, train_classifier

    try:
        cfg = compose_config(overrides)
        validate(cfg)
        settings = build(cfg.eval.classifier, "eval.classifier")
        device = build_hardware(cfg).device
        data = build_data(cfg)
        data.labelled("test")  # points or images without labels fail here, before the banner (0.1 s for FMNIST)
        make_folder(Path(settings.dir))  # before the training: fail at once, not after it
        print(f"training the {getattr(data, 'name', 'data set')} classifier: {settings.steps} steps of "
              f"{settings.batch_size} images on {device}", flush=True)
        start = time.perf_counter()
        trained = train_classifier(data, settings.steps, settings.batch_size, settings.lr,
                                   settings.max_train, settings.seed, device)
        seconds = time.perf_counter() - start
        path = save_classifier(trained, settings.dir, {"steps": settings.steps, "max_train": settings.max_train,
                                                       "train_seconds": round(seconds, 1)})
    except GanlabError as err:
        print(f"ganlab.classifier: error: {err}", file=sys.stderr)
        return 2
    print(f"{trained.data}: test accuracy {trained.test_accuracy:.4f} ({seconds:.0f} s); wrote {path}")
    return 0


if __name__ == "__main__":
    from ganlab.errors import interruptible
    from ganlab.quick_exit import run_and_leave

    run_and_leave(lambda: interruptible("ganlab.classifier", main))
