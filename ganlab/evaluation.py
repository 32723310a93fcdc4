"""In-training (and one-checkpoint) evaluation: sample G, compute the metrics, remember the best.

Evaluation never moves the training RNG stream: it runs inside ``torch.random.fork_rng``, draws z
from its own seeded generator (the same z at every evaluation, so steps compare), and runs G and D
in eval mode under no_grad (BatchNorm running statistics are not updated). A run with evaluation
and one without end with bit-identical weights (tested).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganlab.build import build
from ganlab.classifier import TrainedClassifier, load_classifier, save_classifier, train_classifier
from ganlab.errors import DataNotFoundError, FeaturesUnavailableError
from ganlab.features import ClassifierFeatures, InceptionFeatures
from ganlab.labeled import CLASSIFIER_RANGE, data_key
from ganlab.metric_names import PREFIX, lower_is_better
from ganlab.metrics import FeatureDistances, class_coverage
from ganlab.metrics2d import histogram_jsd, metrics_2d

log = logging.getLogger(__name__)



class Evaluator:
    """Metrics of G (and D) every ``every`` steps and after the last one, on ``n_samples`` samples.

    Image data: ``fid_clf``/``kid_clf`` + class coverage with the data set's classifier (or
    ``fid_inception``/``kid_inception``). 2D data (``modes`` given): the PacGAN/VEEGAN metrics and
    ``jsd_hist``. Always: ``d_real``/``d_fake``, mean D(x) on real and generated samples.
    """

    def __init__(self, every: int, n_samples: int, batch_size: int = 500,
                 features: Literal["classifier", "inception", "none"] = "classifier",
                 if_no_classifier: Literal["train", "skip", "error"] = "train",
                 classifier: dict[str, Any] | None = None, inception_weights: str | None = None,
                 kid_subsets: int = 50, seed: int = 0, *, real: torch.Tensor,
                 pixel_range: tuple[float, float], dataset: dict[str, Any], device: torch.device,
                 modes: torch.Tensor | None = None, mode_std: float | None = None) -> None:
        if every < 0 or n_samples < 2 or batch_size < 1:
            raise ValueError(f"needs every >= 0, n_samples >= 2, batch_size >= 1 (got {every}, {n_samples}, {batch_size})")
        self.every, self.n_samples, self.batch_size, self.seed = every, n_samples, batch_size, seed
        self.pixel_range, self.device, self.modes, self.mode_std = tuple(pixel_range), device, modes, mode_std
        self.best: dict[str, tuple[float, int]] = {}
        self.last: dict[str, float] = {}
        # the real reference set: a fixed, seeded subset of the training data
        pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:n_samples]
        self.real = real[pick.to(real.device)].to(device)
        self.distances: dict[str, FeatureDistances] = {}
        self.clf: TrainedClassifier | None = None
        if modes is not None or features == "none":
            return
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if features == "inception":
                extractor = InceptionFeatures(inception_weights).to(device)
                self.distances["inception"] = FeatureDistances(extractor, self.to_unit(self.real), batch_size, kid_subsets)
            else:
                self.clf = self._classifier(dataset, if_no_classifier, classifier or {}, device)
                if self.clf is not None:
                    self.clf.model.to(device)
                    extractor = ClassifierFeatures(self.clf.model)
                    self.distances["clf"] = FeatureDistances(extractor, self.to_unit(self.real), batch_size, kid_subsets)

    @staticmethod
    def _classifier(dataset: dict[str, Any], policy: str, settings: dict[str, Any],
                    device: torch.device) -> TrainedClassifier | None:
        """The cached classifier of the data set; when missing, train it, skip, or fail, as ``policy`` says."""
        key, cache_dir = data_key(dataset), settings.get("dir", "~/.cache/ganlab/classifiers")
        cached = load_classifier(cache_dir, key)
        if cached is not None:
            return cached
        how = f"python -m ganlab.classifier data={key} (data.root=... for IDX data sets)"
        if policy == "error":
            raise FeaturesUnavailableError(f"no classifier for {key} in {cache_dir}: train it with {how}, "
                                           "or set eval.if_no_classifier=train|skip")
        if policy == "skip":
            log.warning("eval: no classifier for %s in %s; fid_clf/kid_clf/coverage skipped (train it: %s)",
                        key, cache_dir, how)
            return None
        args = {k: settings[k] for k in ("steps", "batch_size", "lr", "max_train", "seed") if k in settings}
        try:
            log.info("eval: no classifier for %s in %s; training one (%s)", key, cache_dir, args)
            trained = train_classifier(dataset, device=device, **args)
        except DataNotFoundError as err:  # e.g. IDX images without their label files
            log.warning("eval: cannot train a classifier for %s (%s); classifier metrics skipped", key, err)
            return None
        path = save_classifier(trained, cache_dir, {k: args.get(k) for k in ("steps", "max_train")})
        log.info("eval: classifier for %s: test accuracy %.4f, cached at %s", key, trained.test_accuracy, path)
        return trained

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """Images from the run's pixel range to the classifier's [-1, 1]."""
        lo, hi = self.pixel_range
        out_lo, out_hi = CLASSIFIER_RANGE
        return (images.float() - lo) / (hi - lo) * (out_hi - out_lo) + out_lo

    def due(self, step: int, total_steps: int) -> bool:
        """Evaluate at this step? Every ``every`` steps and after the last one; never when every=0."""
        return self.every > 0 and (step % self.every == 0 or step == total_steps)

    @torch.no_grad()
    def __call__(self, generator: nn.Module, discriminator: nn.Module, latent: Any, step: int) -> dict[str, float]:
        """The metrics of G/D now, keyed ``eval/<name>``; also updates the best values."""
        cuda = [self.device] if self.device.type == "cuda" else []
        modes_were = generator.training, discriminator.training
        generator.eval()  # BatchNorm: running statistics, and they stay as training left them
        discriminator.eval()
        try:
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(self.seed)  # KID's random subsets: the same at every evaluation
                z_gen = torch.Generator(device=self.device).manual_seed(self.seed)
                z = latent(self.n_samples, z_gen)  # all at once: the same z whatever eval.batch_size
                fake = torch.cat([generator(z[i:i + self.batch_size]).float() for i in range(0, len(z), self.batch_size)])
                values = self._metrics(fake, discriminator)
        finally:
            generator.train(modes_were[0])
            discriminator.train(modes_were[1])
        for name, value in values.items():
            self._remember(name, value, step)
        self.last = values
        return {PREFIX + k: v for k, v in values.items()}

    def _metrics(self, fake: torch.Tensor, discriminator: nn.Module) -> dict[str, float]:
        values = {"d_real": self._mean_d(discriminator, self.real), "d_fake": self._mean_d(discriminator, fake)}
        if self.modes is not None:
            values.update(metrics_2d(fake, self.modes, float(self.mode_std)))
            values["jsd_hist"] = histogram_jsd(self.real, fake)
            return values
        for name, distances in self.distances.items():
            fid_kid = distances(self.to_unit(fake))
            values.update({f"fid_{name}": fid_kid["fid"], f"kid_{name}": fid_kid["kid"]})
        if self.clf is not None:
            unit = self.to_unit(fake)
            probs = torch.cat([self.clf.model(unit[i:i + self.batch_size]).softmax(1)
                               for i in range(0, len(unit), self.batch_size)])
            values.update(class_coverage(probs, self.clf.class_hist))
        return values

    def _mean_d(self, discriminator: nn.Module, x: torch.Tensor) -> float:
        out = torch.cat([discriminator(x[i:i + self.batch_size]).float() for i in range(0, len(x), self.batch_size)])
        probs = out if getattr(discriminator, "outputs_probability", False) else torch.sigmoid(out)
        return float(probs.mean())

    def _remember(self, name: str, value: float, step: int) -> None:
        lower = lower_is_better(name)
        if lower is None or math.isnan(value):
            return
        old = self.best.get(name)
        if old is None or (value < old[0] if lower else value > old[0]):
            self.best[name] = (value, step)

    def state_dict(self) -> dict[str, Any]:
        """The best values so far (plain data for a checkpoint): a resumed run keeps its best, not restarts it."""
        return {"best": {name: [value, step] for name, (value, step) in self.best.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` gave; best values only, the last evaluation is redone."""
        self.best = {name: (float(value), int(step)) for name, (value, step) in state.get("best", {}).items()}

    def summary(self) -> dict[str, float]:
        """Final values plus the best of each metric and the step it was reached at."""
        out = {PREFIX + k: v for k, v in self.last.items()}
        for name, (value, step) in self.best.items():
            out[f"{PREFIX}{name}_best"], out[f"{PREFIX}{name}_best_step"] = value, step
        return out


def build_evaluator(eval_cfg: DictConfig, dataset_cfg: DictConfig, real: torch.Tensor,
                    pixel_range: tuple[float, float], device: torch.device) -> Evaluator | None:
    """The run's Evaluator from the ``eval`` and ``data.dataset`` config nodes (None when eval.every=0)."""
    if eval_cfg.every == 0:
        return None
    modes, mode_std = None, None
    if real.dim() == 2:  # 2D point data: its builder's object carries the mixture's modes and std
        data_object = build(dataset_cfg, "data.dataset")
        modes, mode_std = getattr(data_object, "modes", None), getattr(data_object, "std", None)
        if modes is None:
            raise FeaturesUnavailableError(f"eval: 2D data set {dataset_cfg._target_} exposes no .modes/.std; "
                                           "set eval.every=0 to train without evaluation")
        modes = torch.as_tensor(modes, dtype=torch.float32)
    return build(eval_cfg, "eval", real=real, pixel_range=pixel_range, device=device, modes=modes,
                 mode_std=None if mode_std is None else float(mode_std),
                 dataset=OmegaConf.to_container(dataset_cfg, resolve=True))
