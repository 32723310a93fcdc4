"""ganlab: a Hydra-composed research lab for GANs."""

__version__ = "0.1.0"
