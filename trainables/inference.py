"""Inference-only transforms of a trained model: BatchNorm folded into the convolution before it.

In eval mode ``bn(conv(x))`` is one affine map per channel after a linear one, so it equals a
single convolution with rescaled weights and a shifted bias: the folded model computes the same
function (to float rounding) with one pass over each activation fewer. ``bench/predict.py``
measures what it buys on the CPU together with channels_last.

Example::

    model = fold_batchnorm(create_model(decoder="Unet", encoder="resnet18", num_classes=3).eval())
"""

from __future__ import annotations

import warnings
from collections import Counter

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``BatchNorm2d`` that only follows a ``Conv2d`` into it, in place; eval only.

    The data flow comes from tracing each module with ``torch.fx``; a module that does not
    trace (Python control flow on tensor shapes, as smp's input-shape check) is searched child
    by child instead. Folded BatchNorms become ``nn.Identity``, so the model keeps its own
    classes, attributes and ``forward`` (only its ``state_dict`` keys change). Returns ``model``.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (running statistics)")
    _fold(model)
    return model


def _fold(module: nn.Module) -> None:
    if not any(type(m) is nn.BatchNorm2d for m in module.modules()):
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = fx.symbolic_trace(module).graph
    except Exception:  # tracing runs arbitrary model code: on any failure, go deeper
        for child in module.children():
            _fold(child)
        return
    for conv_name, bn_name in _conv_bn_pairs(module, graph):
        conv, bn = module.get_submodule(conv_name), module.get_submodule(bn_name)
        # in place (no copy of the conv): Parameters assigned to a module replace its own
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        _replace(module, bn_name, nn.Identity())


def _conv_bn_pairs(module: nn.Module, graph: fx.Graph) -> list[tuple[str, str]]:
    """(conv, bn) names where the BN's only input is the conv and the conv feeds only the BN."""
    calls = [n for n in graph.nodes if n.op == "call_module"]
    uses = Counter(n.target for n in calls)  # a module called twice is shared: leave it
    pairs = []
    for node in calls:
        src = node.args[0] if node.args else None
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1):
            continue
        if uses[node.target] != 1 or uses[src.target] != 1 or len(node.args) != 1 or node.kwargs:
            continue
        conv, bn = module.get_submodule(src.target), module.get_submodule(node.target)
        if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats:
            pairs.append((src.target, node.target))
    return pairs


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)
