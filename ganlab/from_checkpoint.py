"""A checkpoint's objects rebuilt through the build seam: its config (upgraded if older), G, D, z sampler.

Checkpoints carry their run's resolved config. Those written before the package layout of 2026-12
name their classes by the old flat module paths (``ganlab.dcgan.DCGANGenerator``,
``ganlab.data.load_digits``, ``ganlab.evaluation.Evaluator``, ...); ``upgrade_config`` maps them to
today's, so ``ganlab.sample``, ``ganlab.eval`` and ``resume=`` take old checkpoints unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganlab.build import build_latent, build_models
from ganlab.data.batches import LatentSampler
from ganlab.errors import ResumeError

# old _target_ -> today's; loaders became data-set builders with the same arguments
LEGACY_TARGETS = {
    "ganlab.models.MLPGenerator": "ganlab.models.mlp.MLPGenerator",
    "ganlab.models.MLPDiscriminator": "ganlab.models.mlp.MLPDiscriminator",
    "ganlab.dcgan.DCGANGenerator": "ganlab.models.dcgan.DCGANGenerator",
    "ganlab.dcgan.DCGANDiscriminator": "ganlab.models.dcgan.DCGANDiscriminator",
    "ganlab.data.load_digits": "ganlab.data.images.digits",
    "ganlab.data.load_idx": "ganlab.data.idx.idx",
    "ganlab.cifar.load_cifar10": "ganlab.data.cifar.cifar10",
    "ganlab.toy2d.ring8": "ganlab.data.toy2d.ring8",
    "ganlab.toy2d.grid25": "ganlab.data.toy2d.grid25",
    "ganlab.evaluation.Evaluator": "ganlab.metrics.evaluator.EvalSettings",
    "ganlab.hardware.setup": "ganlab.hardware.device.setup",
}
_BATCHING_ARGS = ("batch_size", "seed")  # 2D builders took them; batching is the data set's batches() now


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with pre-2026-12 targets and node shapes mapped to today's (a copy)."""
    config = copy.deepcopy(config)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            old = node.get("_target_")
            if old in LEGACY_TARGETS:
                node["_target_"] = LEGACY_TARGETS[old]
                if old.startswith("ganlab.toy2d."):
                    for key in _BATCHING_ARGS:
                        node.pop(key, None)
                if old == "ganlab.evaluation.Evaluator":
                    node.pop("_convert_", None)
                    node["classifier"] = {"_target_": "ganlab.metrics.classifier.ClassifierSettings",
                                          **node.get("classifier", {})}
            for value in node.values():
                walk(value)

    walk(config)
    return config


def checkpoint_config(state: dict[str, Any]) -> DictConfig:
    """The config stored in a checkpoint, upgraded, as a DictConfig the build seam takes."""
    if not isinstance(state.get("config"), dict):
        raise ResumeError("the checkpoint holds no config (was it written by ganlab?)")
    return OmegaConf.create(upgrade_config(state["config"]))


def chosen_generator(state: dict[str, Any], which: str = "auto") -> str:
    """"g" or "g_ema": the G a command uses; auto is the one the run sampled from (``trainer.sample_from``)."""
    has_ema = state.get("generator_ema") is not None
    if which == "auto":
        trainer = state.get("config", {}).get("trainer", {})
        return "g_ema" if has_ema and trainer.get("sample_from", "auto") != "g" else "g"
    if which == "g_ema" and not has_ema:
        raise ResumeError("the checkpoint has no EMA generator (its run had trainer.g_ema=null); use the G")
    if which not in ("g", "g_ema"):
        raise ResumeError(f"generator {which!r}: must be auto, g or g_ema")
    return which


def load_models(state: dict[str, Any], device: torch.device, generator_choice: str = "auto"
                ) -> tuple[nn.Module, nn.Module]:
    """(G, D) of a checkpoint with its weights, in eval mode on ``device``; G is the EMA G when the
    run sampled from it (or ``generator_choice`` says g_ema), see ``chosen_generator``."""
    which = chosen_generator(state, generator_choice)
    generator, discriminator = build_models(checkpoint_config(state), tuple(state["img_shape"]),
                                            state.get("n_classes"))
    try:
        generator.load_state_dict(state["generator_ema" if which == "g_ema" else "generator"])
        discriminator.load_state_dict(state["discriminator"])
    except (RuntimeError, KeyError) as err:
        raise ResumeError(f"the checkpoint's weights do not fit its own model config: {err}") from err
    return generator.to(device).eval(), discriminator.to(device).eval()


def latent_of(state: dict[str, Any], z_size: int, device: torch.device, seed: int) -> LatentSampler:
    """A z sampler of the checkpoint's latent distribution, seeded with ``seed``."""
    return build_latent(checkpoint_config(state), z_size, device, seed)
