"""ganlab: a Hydra-composed research lab for GANs."""

__version__ = "0.1.0"

from ganlab.launch.sweep import register_resolvers as _register_resolvers  # noqa: E402
from hydra_plugins.ganlab_plugins import register_sources as _register_sources  # noqa: E402

# wherever a config is composed or resolved (the launching process, every job process on Slurm or
# joblib, the commands, the tests) ganlab is imported first: its resolvers and the sweep group's
# config source must be known there
_register_resolvers()
_register_sources()
