"""The one seam between config and objects: ``instantiate`` with argument checks and clear errors."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from ganlab.errors import ConfigError, GanlabError

_NO_HINTS: dict[str, Any] = {}


def build(node: DictConfig, where: str, **runtime: Any) -> Any:
    """Instantiate ``node`` (a ``_target_`` config) after checking its arguments' names and types.

    ``where`` is the node's dotted path, used in messages; ``runtime`` holds values only known at
    run time (image shape, run directory), passed at construction as the style guide asks.
    """
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(f"{where}: expected a config node with a _target_, got {node!r}")
    target = _locate(node._target_, where)
    given = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if not k.startswith("_")}
    check_arguments(target, given, where)
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


def _locate(path: str, where: str) -> Any:
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
