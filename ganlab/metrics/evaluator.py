"""In-training (and one-checkpoint) evaluation: sample G, compute the metrics, remember the best.

Evaluation never moves the training RNG stream: it runs inside ``torch.random.fork_rng``, draws z
from its own seeded generator (the same z at every evaluation, so steps compare), and runs G and D
in eval mode under no_grad (BatchNorm running statistics are not updated). A run with evaluation
and one without end with bit-identical weights (tested).

Issue 12: precision/recall/density/coverage on the classifier's features (the ones fid_clf uses);
a conditional G is asked for every class in turn (sample i gets class i mod K) and
``cond_accuracy`` is the share of samples the data set's classifier puts in the asked-for class;
``prefix`` lets the loop log a second G (the EMA's or the raw one) beside the one that counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ganlab.data.batches import LABELLED_RANGE, DataSet
from ganlab.errors import FeaturesUnavailableError
from ganlab.metrics.classifier import ClassifierSettings, TrainedClassifier, classifier_for
from ganlab.metrics.features import ClassifierFeatures, InceptionFeatures
from ganlab.metrics.images import FeatureDistances, class_coverage
from ganlab.metrics.names import PREFIX, lower_is_better
from ganlab.metrics.points import histogram_jsd, metrics_2d
from ganlab.metrics.prdc import PRDC
from ganlab.models.conditional import adversarial


@dataclass
class EvalSettings:
    """``eval.*``: how often and on how many samples to evaluate, with which features (conf/config.yaml)."""

    every: int  # steps between evaluations, and after the last one; 0: never during training
    n_samples: int  # generated samples per evaluation, and real samples in the reference set
    batch_size: int
    features: Literal["classifier", "inception", "none"]
    inception_weights: str | None
    if_no_classifier: Literal["train", "skip", "error"]
    kid_subsets: int
    seed: int  # z and the real reference set of every evaluation (independent of the run's seed)
    classifier: ClassifierSettings
    prdc_k: int = 5  # precision/recall/density/coverage: the k-th neighbour's distance is a sample's radius


class Evaluator:
    """Metrics of G (and D) every ``every`` steps and after the last one, on ``n_samples`` samples.

    Image data: ``fid_clf``/``kid_clf`` + class coverage with the data set's classifier (or
    ``fid_inception``/``kid_inception``), ``precision``/``recall``/``density``/``coverage`` on the
    classifier's features and, for a conditional G, ``cond_accuracy``. 2D data (the data set has ``modes``):
    the PacGAN/VEEGAN metrics and ``jsd_hist``. Always: ``d_real``/``d_fake``, mean D(x) on real and
    generated samples.
    The real reference set is ``data.reference(n_samples, seed)``: the same for every run on the data set.
    """

    def __init__(self, settings: EvalSettings, data: DataSet, device: torch.device) -> None:
        s = self.settings = settings
        if s.every < 0 or s.n_samples < 2 or s.batch_size < 1:
            raise ValueError(f"needs every >= 0, n_samples >= 2, batch_size >= 1 "
                             f"(got {s.every}, {s.n_samples}, {s.batch_size})")
        self.every, self.n_samples, self.batch_size, self.seed = s.every, s.n_samples, s.batch_size, s.seed
        self.pixel_range, self.device = data.pixel_range, device
        self.modes, self.mode_std = data.modes, data.mode_std
        if len(data.shape) == 1 and self.modes is None:
            raise FeaturesUnavailableError(f"eval: 2D data set {data.name} exposes no modes; "
                                           "set eval.every=0 to train without evaluation")
        self.record = EvalRecord()
        self.real = data.reference(s.n_samples, s.seed).to(device)
        labels_of = getattr(data, "reference_labels", None)  # the reals' classes, for a conditional D
        self.real_labels = labels_of(s.n_samples, s.seed) if labels_of is not None else None
        self.n_classes = data.n_classes
        self.distances: dict[str, FeatureDistances] = {}
        self.prdc: PRDC | None = None
        self.clf: TrainedClassifier | None = None
        if self.modes is not None or s.features == "none":
            return
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if s.features == "inception":
                extractor = InceptionFeatures(s.inception_weights).to(device)
                self.distances["inception"] = FeatureDistances(extractor, self.to_unit(self.real), s.batch_size,
                                                               s.kid_subsets)
            else:
                self.clf = classifier_for(data, s.classifier, s.if_no_classifier, device)
                if self.clf is not None:
                    self.clf.model.to(device)
                    extractor = ClassifierFeatures(self.clf.model)
                    self.distances["clf"] = FeatureDistances(extractor, self.to_unit(self.real), s.batch_size,
                                                             s.kid_subsets)
                    real_features = self.distances["clf"].real.features
                    if s.prdc_k < len(real_features):
                        self.prdc = PRDC(real_features, s.prdc_k)

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """Images from the run's pixel range to the classifier's [-1, 1]."""
        lo, hi = self.pixel_range
        out_lo, out_hi = LABELLED_RANGE
        return (images.float() - lo) / (hi - lo) * (out_hi - out_lo) + out_lo

    def due(self, step: int, total_steps: int) -> bool:
        """Evaluate at this step? Every ``every`` steps and after the last one; never when every=0."""
        return self.every > 0 and (step % self.every == 0 or step == total_steps)

    @torch.no_grad()
    def __call__(self, generator: nn.Module, discriminator: nn.Module, latent: Any, step: int,
                 prefix: str = PREFIX) -> dict[str, float]:
        """The metrics of G/D now, keyed ``<prefix><name>``; under the default ``eval/`` also the best values."""
        cuda = [self.device] if self.device.type == "cuda" else []
        modes_were = generator.training, discriminator.training
        generator.eval()  # BatchNorm: running statistics, and they stay as training left them
        discriminator.eval()
        n_classes = getattr(generator, "n_classes", None)  # a conditional G: asked for class i mod K
        labels = None if n_classes is None else torch.arange(self.n_samples, device=self.device) % n_classes
        try:
            with torch.random.fork_rng(devices=cuda):
                z = latent(self.n_samples, self.z_generator())  # all at once: the same z whatever eval.batch_size
                chunks = range(0, len(z), self.batch_size)
                fake = torch.cat([(generator(z[i:i + self.batch_size]) if labels is None else
                                   generator(z[i:i + self.batch_size], labels[i:i + self.batch_size])).float()
                                  for i in chunks])
                d_real = self.mean_d(discriminator, self.real, self.real_labels)
                d_fake = self.mean_d(discriminator, fake, labels)
            [values] = self.score(fake.unsqueeze(0), [d_real], [d_fake], labels)
        finally:
            generator.train(modes_were[0])
            discriminator.train(modes_were[1])
        if prefix != PREFIX:  # a second G (the raw one beside its EMA): logged, not a best value
            return self.record.remember_other(values, prefix)
        return self.record.remember(values, step)

    def z_generator(self) -> torch.Generator:
        """The z stream of an evaluation: the same at every evaluation and in every run (``eval.seed``)."""
        return torch.Generator(device=self.device).manual_seed(self.seed)

    @torch.no_grad()
    def score(self, fakes: torch.Tensor, d_real: list[float], d_fake: list[float],
              labels: torch.Tensor | None = None) -> list[dict[str, float]]:
        """The metrics of each of several sample sets (sets, n, ...) against the reference, scored together.

        ``d_real``/``d_fake``: each set's mean D(x) on the reference and on its samples. FID and KID
        are batched over the sets (one real-side kernel, KID's random subsets drawn once from
        ``eval.seed``): each set gets exactly what it would get alone. ``labels``: the classes a
        conditional G was asked for (the same for every set), for ``cond_accuracy``.
        """
        values = [{"d_real": r, "d_fake": f} for r, f in zip(d_real, d_fake)]
        if self.modes is not None:
            for v, fake in zip(values, fakes):
                v.update(metrics_2d(fake, self.modes, float(self.mode_std)))
                v["jsd_hist"] = histogram_jsd(self.real, fake)
            return values
        # each set through the networks in its own chunks of eval.batch_size, as it would be alone
        # (chunks that straddle two sets would change the batched kernels' summation order)
        units = [self.to_unit(fake) for fake in fakes]
        cuda = [self.device] if self.device.type == "cuda" else []
        features = {}
        for name, distances in self.distances.items():
            features[name] = torch.stack([distances.features(unit) for unit in units])
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(self.seed)  # KID's random subsets: the same at every evaluation
                fid_kid = distances.of_features(features[name])
            for k, v in enumerate(values):
                v.update({f"fid_{name}": float(fid_kid["fid"][k]), f"kid_{name}": float(fid_kid["kid"][k])})
                if name == "clf" and self.prdc is not None:
                    v.update(self.prdc(features[name][k]))
        if self.clf is not None:  # the classifier's head on the features FID just used: its body runs once
            head = self.clf.model.head
            for v, member in zip(values, features["clf"].float().to(self.device)):
                chunks = range(0, len(member), self.batch_size)
                logits = torch.cat([head(member[i:i + self.batch_size]) for i in chunks])
                v.update(class_coverage(logits.softmax(1), self.clf.class_hist))
                if labels is not None:
                    v["cond_accuracy"] = float((logits.argmax(1) == labels.to(logits.device)).double().mean())
        return values

    def mean_d(self, discriminator: nn.Module, x: torch.Tensor, labels: torch.Tensor | None = None) -> float:
        """Mean D(x) as a probability, in chunks of ``eval.batch_size`` (D in eval mode); a packed D
        (``pack`` m) gets chunks of a multiple of m (the last samples that fill no pack are left out),
        a conditional D the samples' labels."""
        pack = getattr(discriminator, "pack", 1)
        size = max(self.batch_size // pack, 1) * pack
        usable = len(x) // pack * pack
        takes_labels = getattr(discriminator, "takes_labels", False)
        if takes_labels and labels is None:
            return math.nan  # a conditional D on images of unknown class: no score to report
        out = torch.cat([adversarial(discriminator(x[i:min(i + size, usable)], labels[i:min(i + size, usable)])
                                     if takes_labels else discriminator(x[i:min(i + size, usable)])).float()
                         for i in range(0, usable, size)])  # adversarial: an aux classifier's score column
        probs = out if getattr(discriminator, "outputs_probability", False) else torch.sigmoid(out)
        return float(probs.mean())

    # one run's record of best values (a population keeps one EvalRecord per member)
    def state_dict(self) -> dict[str, Any]:
        """The best values so far (plain data for a checkpoint): a resumed run keeps its best."""
        return self.record.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` gave."""
        self.record.load_state_dict(state)

    def summary(self) -> dict[str, float]:
        """Final values plus the best of each metric and the step it was reached at."""
        return self.record.summary()


class EvalRecord:
    """A run's evaluations: the last values, and the best of each metric with the step it was reached at."""

    def __init__(self) -> None:
        self.best: dict[str, tuple[float, int]] = {}
        self.last: dict[str, float] = {}
        self.last_other: dict[str, float] = {}  # the last values logged under another prefix (a second G)

    def remember_other(self, values: dict[str, float], prefix: str) -> dict[str, float]:
        """A second G's values (``prefix``: e.g. ``eval_g/``): kept for the summary, no best values."""
        keyed = {prefix + k: v for k, v in values.items()}
        self.last_other.update(keyed)
        return keyed

    def remember(self, values: dict[str, float], step: int) -> dict[str, float]:
        """Take this evaluation's values; return them keyed ``eval/<name>`` (for the tracker)."""
        for name, value in values.items():
            lower = lower_is_better(name)
            if lower is None or math.isnan(value):
                continue
            old = self.best.get(name)
            if old is None or (value < old[0] if lower else value > old[0]):
                self.best[name] = (value, step)
        self.last = dict(values)
        return {PREFIX + k: v for k, v in values.items()}

    def state_dict(self) -> dict[str, Any]:
        """The best values so far (plain data for a checkpoint): a resumed run keeps its best, not restarts it."""
        return {"best": {name: [value, step] for name, (value, step) in self.best.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` gave; best values only, the last evaluation is redone."""
        self.best = {name: (float(value), int(step)) for name, (value, step) in state.get("best", {}).items()}

    def summary(self) -> dict[str, float]:
        """Final values plus the best of each metric and the step it was reached at (a second G's: final only)."""
        out = {**self.last_other, **{PREFIX + k: v for k, v in self.last.items()}}
        for name, (value, step) in self.best.items():
            out[f"{PREFIX}{name}_best"], out[f"{PREFIX}{name}_best_step"] = value, step
        return out
