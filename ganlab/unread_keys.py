"""Keys added to the model, optimizer and data groups that no part of a run reads: one line, not a no-op.

These groups hold shared values (``optimizer.lr``, ``model.z_size``, ``data.epochs``) that reach the
objects they configure only through interpolations (``lr: ${..lr}``). A key added there with ``+``
that nothing interpolates was dropped without a word: ``+optimizer.weight_decay=1e-4`` trained without
weight decay (Adam takes it as ``optimizer.generator.weight_decay``). The loss, trainer, eval and
hardware groups already refuse unknown keys (their objects' signatures, their schemas); this is the
same rule for the three groups whose top keys are read by reference. Keys inside a node with a
``_target_`` are left to ``ganlab.build``, which checks them against what the node builds.

Only added keys are checked: a key of the group's own file may go unread on purpose (``optimizer.lr``
when both optimizers' ``lr`` are set, ``data.mlp`` under ``model=dcgan``). ``interpolations`` (every
interpolation of a config) also tells ``ganlab.config``'s range check which keys are copies.
"""

from __future__ import annotations

import difflib
import re

from omegaconf import DictConfig, ListConfig, OmegaConf

from ganlab.errors import ConfigError

GROUPS = ("model", "optimizer", "data")
# read by ganlab itself (build_run, build_latent), not through an interpolation
READ_BY_CODE = frozenset({"data.batch_size", "data.latent_dist", "data.latent_std"})
# ${a.b}, ${..b}, ${oc.select:a.b,default}: the key an interpolation reads (a resolver's name is followed by ':')
_REFERENCE = re.compile(r"\$\{(?:oc\.select:)?\s*([\w.]+)\s*(?=[},])")


def check_unread_keys(cfg: DictConfig, overrides: list[str]) -> None:
    """A ConfigError naming the first key that ``overrides`` add (``+key=``, ``++key=``) under ``GROUPS`` and
    nothing reads, with the keys of its group that a run does read."""
    added = [o.lstrip("+").split("=", 1)[0] for o in overrides if o.startswith("+")]
    added = [key for key in added if key.split(".", 1)[0] in GROUPS and "." in key and not built_by_target(cfg, key)]
    if not added:
        return
    read = referenced_keys(cfg)
    unread = next((key for key in added if not is_read(key, read)), None)
    if unread is not None:
        raise ConfigError(unread_line(cfg, unread, read))


def unread_line(cfg: DictConfig, key: str, read: set[str]) -> str:
    """The error's line: the key, a near miss among its group's read keys, those keys, the built nodes."""
    group = key.split(".", 1)[0]
    known = {k.removeprefix(f"{group}."): k for k in group_leaves(cfg[group], group) if k != key and is_read(k, read)}
    # compared without the group's name, which every key shares
    close = difflib.get_close_matches(key.removeprefix(f"{group}."), list(known), n=1, cutoff=0.75)
    guess = f"did you mean {known[close[0]]}? " if close else ""
    built = [f"{group}.{k}" for k in cfg[group] if is_built(cfg[group]._get_node(k))]
    return (f"{key}: nothing reads this key ({guess}the {group} keys a run reads: {', '.join(known)}; "
            f"{' and '.join(built)} {'take their' if len(built) > 1 else 'takes its'} own options)")


def is_built(node: object) -> bool:
    """Whether ``node`` builds an object (a node with a ``_target_``: ganlab.build checks its keys)."""
    return isinstance(node, DictConfig) and "_target_" in node


def built_by_target(cfg: DictConfig, key: str) -> bool:
    """Whether ``key`` lies inside a node with a ``_target_``."""
    parts = key.split(".")
    return any(is_built(OmegaConf.select(cfg, ".".join(parts[:n]), default=None, throw_on_resolution_failure=False))
               for n in range(1, len(parts)))


def is_read(key: str, read: set[str]) -> bool:
    """Whether ``key`` (a value or a node) is read by ganlab's code or by an interpolation of it, of a node
    above it or of a key inside it."""
    return key in READ_BY_CODE or any(key == ref or key.startswith(ref + ".") or ref.startswith(key + ".")
                                      for ref in read)


def group_leaves(node: DictConfig, path: str) -> list[str]:
    """The dotted keys of ``node``'s values, nodes with a ``_target_`` left out."""
    keys: list[str] = []
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not OmegaConf.is_interpolation(node, key):
            if not is_built(child):
                keys += group_leaves(child, f"{path}.{key}")
        else:
            keys.append(f"{path}.{key}")
    return keys


def interpolations(node: DictConfig | ListConfig, path: tuple[str, ...] = ()) -> dict[str, str]:
    """Every interpolation in ``node`` as its dotted key and its text (Hydra's node and the run context aside)."""
    found: dict[str, str] = {}
    keys = list(node.keys()) if isinstance(node, DictConfig) else range(len(node))
    for key in keys:
        if not path and key in ("hydra", "run"):
            continue
        child = node._get_node(key)
        if OmegaConf.is_interpolation(node, key):
            found[".".join((*path, str(key)))] = str(child._value())
        elif isinstance(child, (DictConfig, ListConfig)):
            found.update(interpolations(child, (*path, str(key))))
    return found


def referenced_keys(cfg: DictConfig) -> set[str]:
    """The absolute dotted keys every interpolation in ``cfg`` reads."""
    return {absolute(ref, tuple(key.split(".")[:-1])) for key, text in interpolations(cfg).items()
            for ref in _REFERENCE.findall(text)}


def absolute(ref: str, container: tuple[str, ...]) -> str:
    """``ref`` as read from a value in ``container``: ``.x`` is a sibling, each further dot one level up."""
    name = ref.lstrip(".")
    dots = len(ref) - len(name)
    if dots == 0:
        return name
    return ".".join([*container[:len(container) - (dots - 1)], name])
