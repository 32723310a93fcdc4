"""The one seam between config and objects: ``instantiate`` with argument checks and clear errors.

``build`` turns any ``_target_`` node into its object; the ``build_*`` functions below are the
typed builders every entry point uses (the trainer, the population launcher, the commands), so an
object is built the same way wherever it is built.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from typing import TYPE_CHECKING, Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from ganlab.errors import ConfigError, GanlabError

if TYPE_CHECKING:
    from pathlib import Path

    from ganlab.augment import DiffAugment
    from ganlab.data.batches import DataSet, LatentSampler
    from ganlab.hardware.device import Hardware
    from ganlab.losses import GANLoss
    from ganlab.metrics.evaluator import Evaluator
    from ganlab.tracking import Tracker

_NO_HINTS: dict[str, Any] = {}


def build(node: DictConfig, where: str, **runtime: Any) -> Any:
    """Instantiate ``node`` (a ``_target_`` config) after checking its arguments' names and types.

    ``where`` is the node's dotted path, used in messages; ``runtime`` holds values only known at
    run time (image shape, run directory), passed at construction as the style guide asks.
    """
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{where}: expected a config node with a _target_, got {node!r}")
    _check_tree(OmegaConf.to_container(node, resolve=True), where)
    try:
        # runtime values are passed to the callable, not merged into the config (which would
        # copy them into OmegaConf and instantiate any _target_ found inside them)
        factory = instantiate(node, _partial_=True)
        return functools.partial(factory, **runtime) if node.get("_partial_") else factory(**runtime)
    except Exception as err:  # instantiate wraps the real cause; surface it with the node's path
        cause = err.__cause__ or err
        if isinstance(cause, GanlabError):  # already a user-facing error (missing data, no CUDA)
            raise cause from None
        raise ConfigError(f"{where}: could not build {node._target_}: {cause}") from err


def _check_tree(node: dict[str, Any], where: str) -> None:
    """Check a ``_target_`` node's arguments, and those of every ``_target_`` node nested in it."""
    target = _locate(node["_target_"], where)
    given = {k: v for k, v in node.items() if not k.startswith("_")}
    check_arguments(target, given, where)
    for key, value in given.items():
        if isinstance(value, dict) and "_target_" in value:
            _check_tree(value, f"{where}.{key}")


def _locate(path: str, where: str) -> Any:
    """The object a ``_target_`` names (ConfigError when it cannot be imported)."""
    from hydra._internal.utils import _locate as hydra_locate

    try:
        return hydra_locate(path)
    except Exception as err:
        raise ConfigError(f"{where}._target_: cannot import {path!r} ({err})") from err


def _hints(target: Any) -> dict[str, Any]:
    fn = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(fn)
    except Exception:  # third-party callables without resolvable annotations: check names only
        return _NO_HINTS


def check_arguments(target: Any, given: dict[str, Any], where: str) -> None:
    """Raise ConfigError for an argument ``target`` does not take or a value of the wrong type."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    hints = _hints(target)
    for key, value in given.items():
        if key not in params:
            if takes_any:
                continue
            known = ", ".join(k for k in params if k != "self")
            raise ConfigError(f"{where}.{key}: unknown option for {target.__name__} (it takes: {known})")
        if key in hints and not _matches(value, hints[key]):
            raise ConfigError(
                f"{where}.{key}: expected {_describe(hints[key])}, got {value!r} ({type(value).__name__})"
            )


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (list, tuple, ListConfig)):
            return False
        inner = [a for a in args if a is not Ellipsis]
        return all(_matches(v, inner[0]) for v in value) if inner else True
    return True  # types this seam does not model are left to the target


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


# --- the typed builders: config node -> object, the same for the trainer, the launchers and the commands


def build_hardware(cfg: DictConfig) -> "Hardware":
    """The run's Hardware (a bare torch.device from a custom node is wrapped as plain fp32 eager)."""
    from ganlab.hardware.device import Hardware

    hardware = build(cfg.hardware, "hardware")
    return hardware if isinstance(hardware, Hardware) else Hardware(hardware)


def build_data(cfg: DictConfig) -> "DataSet":
    """The data set ``data.dataset`` describes (every data set follows ``ganlab.data.batches.DataSet``)."""
    data = build(cfg.data.dataset, "data.dataset")
    if not callable(getattr(data, "batches", None)):
        raise ConfigError(f"data.dataset: {cfg.data.dataset._target_} built a {type(data).__name__}, not a data set "
                          "(see ganlab.data.batches.DataSet)")
    return data


def build_models(cfg: DictConfig, shape: tuple[int, ...], n_classes: int | None = None
                 ) -> tuple[nn.Module, nn.Module]:
    """(G, D) for samples of ``shape``, on the CPU (move them yourself).

    ``n_classes`` (the data's) reaches the networks only when they need it: a conditional model
    (``model.conditional``) or a loss with an auxiliary classifier (``loss=acgan``, D's class head).
    """
    conditional = cfg.model.get("conditional", "none")  # configs older than issue 12 have none
    aux = bool(getattr(_locate(cfg.loss._target_, "loss"), "aux_classifier", False)) if "loss" in cfg else False
    if aux and conditional == "none":
        raise ConfigError("loss=acgan needs a conditional G: set model.conditional=concat or projection")
    g_runtime: dict[str, Any] = {"img_shape": shape}
    d_runtime: dict[str, Any] = {"img_shape": shape}
    if conditional != "none" or aux:
        if len(shape) != 3 or n_classes is None:
            what = "2D points" if len(shape) == 1 else "a data set without class labels"
            raise ConfigError(f"model.conditional={conditional}: {what} cannot condition G and D; use a "
                              "labelled image set (digits, mnist, fashion_mnist, cifar10)")
        g_runtime["n_classes"] = d_runtime["n_classes"] = n_classes
    if aux:
        d_runtime["aux_classifier"] = True
    generator = build(cfg.model.generator, "model.generator", **g_runtime)
    discriminator = build(cfg.model.discriminator, "model.discriminator", **d_runtime)
    return generator, discriminator


def build_augment(cfg: DictConfig, shape: tuple[int, ...]) -> "DiffAugment | None":
    """The run's augmentation (``augment``), None when it is the identity (``augment=none``, or no group)."""
    from ganlab.augment import DiffAugment

    if "augment" not in cfg:  # configs older than issue 12
        return None
    augment = build(cfg.augment, "augment")
    if not isinstance(augment, DiffAugment):
        raise ConfigError(f"augment: {cfg.augment._target_} is not a ganlab.augment.DiffAugment")
    if not augment.names:
        return None
    if len(shape) != 3:
        raise ConfigError(f"augment.policy={cfg.augment.policy}: DiffAugment needs images, the data are points "
                          f"of shape {tuple(shape)}; use augment=none")
    return augment


def build_loss(cfg: DictConfig, discriminator: nn.Module) -> "GANLoss":
    """The run's GANLoss, checked against what D outputs (logits, or probabilities after a sigmoid)."""
    from ganlab.losses import GANLoss

    loss = build(cfg.loss, "loss")
    if not isinstance(loss, GANLoss):
        raise ConfigError(f"loss: {cfg.loss._target_} is not a ganlab.losses.GANLoss")
    if discriminator.outputs_probability and not loss.accepts_probabilities:
        raise ConfigError(f"{type(loss).__name__} works on logits, but D ends in a sigmoid "
                          "(model.d_sigmoid=true); use loss=mse or set model.d_sigmoid=false")
    return loss


def build_optimizers(cfg: DictConfig, generator: nn.Module, discriminator: nn.Module
                     ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """G's and D's optimizers over their parameters."""
    g_opt = build(cfg.optimizer.generator, "optimizer.generator")(params=generator.parameters())
    d_opt = build(cfg.optimizer.discriminator, "optimizer.discriminator")(params=discriminator.parameters())
    return g_opt, d_opt


def build_latent(cfg: DictConfig, z_size: int, device: torch.device, seed: int) -> "LatentSampler":
    """The run's z sampler (``data.latent_dist``, ``data.latent_std``) with its own seeded generator."""
    from ganlab.data.batches import LatentSampler

    args = {"dist": cfg.data.latent_dist, "std": cfg.data.latent_std}
    check_arguments(LatentSampler, args, "data.latent")
    return LatentSampler(z_size=z_size, device=device, seed=seed, **args)


def build_evaluator(cfg: DictConfig, data: "DataSet", device: torch.device) -> "Evaluator | None":
    """The run's Evaluator over ``data`` (None when ``eval.every`` = 0)."""
    from ganlab.metrics.evaluator import Evaluator

    settings = build(cfg.eval, "eval")
    return Evaluator(settings, data, device) if settings.every > 0 else None


def build_tracker(cfg: DictConfig, run_dir: "Path | str", name: str = "default", group: str = "single",
                  run_config: dict[str, Any] | None = None, resume_step: int = 0) -> "Tracker":
    """The run's Tracker (its files) with one logger per entry of ``logger`` (``logger=[wandb,tensorboard]``).

    A logger's own ``group`` (``logger.wandb.group``) wins over ``group`` (the sweep's name). Each call
    opens loggers of its own, so one process can track several runs (a population's members).
    """
    from ganlab.tracking import Logger, Tracker

    node = cfg.get("logger")
    loggers = []
    for key in (node or {}):
        sub = node[key]
        if not isinstance(sub, DictConfig) or "_target_" not in sub:
            raise ConfigError(f"logger.{key}: not a logger (each entry of logger is a _target_ node, "
                              "e.g. logger=[wandb,tensorboard])")
        logger = build(sub, f"logger.{key}", run_dir=run_dir, name=name, group=sub.get("group") or group,
                       run_config=run_config, resume_step=resume_step)
        if not isinstance(logger, Logger):
            raise ConfigError(f"logger.{key}: {sub._target_} is not a ganlab.tracking.Logger")
        loggers.append(logger)
    return Tracker(run_dir, name, group, run_config, resume_step, loggers)


def build_profiler(cfg: DictConfig, run_dir: "Path | str", device: torch.device) -> contextlib.AbstractContextManager:
    """torch.profiler around the loop when ``profile`` is set (``debug=profile``), else a context that does nothing."""
    from pathlib import Path

    from ganlab.hardware.profile import profiled

    settings = cfg.get("profile")
    if not settings:
        return contextlib.nullcontext()
    options = OmegaConf.to_container(settings, resolve=True)
    check_arguments(profiled, options, "profile")
    return profiled(Path(run_dir) / "profile", device, **options)
