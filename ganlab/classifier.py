"""Train and cache a data set's evaluation classifier: ``python -m ganlab.classifier [overrides]``.

Takes the same overrides as a run (``data=fashion_mnist data.root=...``, ``eval.classifier.steps=...``)
and writes ``<eval.classifier.dir>/<data>.pt`` with ``<data>.json`` (its test accuracy) beside it.
The classifier itself lives in ``ganlab.metrics.classifier``.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str] | None = None) -> int:
    """Compose the run config from overrides (as ``python -m ganlab`` would) and train + cache the classifier."""
    from ganlab.build import build, build_data, build_hardware
    from ganlab.config import compose_config, validate
    from ganlab.errors import GanlabError
    from ganlab.metrics.classifier import save_classifier, train_classifier

    overrides = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = compose_config(overrides)
        validate(cfg)
        settings = build(cfg.eval.classifier, "eval.classifier")
        device = build_hardware(cfg).device
        data = build_data(cfg)
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
    sys.exit(main())
