"""Parameters a model has but cannot use: a bias that the BatchNorm right after it cancels."""

from __future__ import annotations

from torch import nn

_AFFINE = (nn.Linear, nn.modules.conv._ConvNd)


def biases_before_batchnorm(module: nn.Module) -> list[str]:
    """Names (as ``named_parameters`` gives them) of the biases of Linear/conv layers followed directly
    by a BatchNorm in an ``nn.Sequential`` (the blog's G: ``net.0.bias``; its D's last Linear).

    In training mode the BatchNorm subtracts each channel's batch mean, so such a bias changes nothing
    downstream: its true gradient is 0, the computed one is rounding noise, and Adam scales that noise
    up to full-size steps. Two runs that round differently (CUDA-graph replay and eager kernels, a
    batched and a single GEMM) move it differently while computing the same function, so comparisons
    of two runs' weights leave these out (and their optimizer state).
    """
    names = []
    for prefix, seq in module.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for (name, layer), (_, after) in zip(children, children[1:]):
            if isinstance(layer, _AFFINE) and layer.bias is not None and \
                    isinstance(after, nn.modules.batchnorm._BatchNorm):
                names.append(f"{prefix}.{name}.bias" if prefix else f"{name}.bias")
    return names
