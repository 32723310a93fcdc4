"""ganlab: a Hydra-composed research lab for GANs."""

__version__ = "0.1.0"

from ganlab.sweep import register_resolvers as _register_resolvers

# the sweep/job directory resolvers must exist wherever a config is resolved: the launching
# process and every job process (Slurm, joblib), which all import ganlab before composing
_register_resolvers()
