"""How the teacher's BatchNorm layers normalise while it makes pseudo-labels."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: ``semi_train_cfg.teacher_bn`` values.
TEACHER_BN_MODES = ('batch', 'running')


@contextlib.contextmanager
def batch_stats_bn(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block every BatchNorm layer of ``model`` normalises with the
    statistics of the current batch and leaves its running buffers untouched.

    PyTorch's BatchNorm uses batch statistics when ``training`` is set, and writes
    nothing back when ``track_running_stats`` is off. Both flags are set on the BN
    layers only (dropout and every other layer keep their mode) and restored on exit,
    also after an exception. This is how FixMatch's and Mean Teacher's reference code
    take pseudo-labels (a train-mode forward), without the side effect on the running
    mean / var and ``num_batches_tracked``.

    Args:
        model: any module; layers other than ``_BatchNorm`` subclasses are untouched.

    Yields:
        ``model``.
    """
    saved = [(m, m.training, m.track_running_stats) for m in model.modules()
             if isinstance(m, _BatchNorm)]
    try:
        for m, _, _ in saved:
            m.training = True
            m.track_running_stats = False
        yield model
    finally:
        for m, training, track in saved:
            m.training = training
            m.track_running_stats = track


def teacher_bn_context(model: nn.Module, mode: str):
    """Context for a pseudo-label forward of ``model``: ``'batch'`` uses
    :func:`batch_stats_bn`, ``'running'`` leaves the (eval-mode) model as it is."""
    if mode == 'batch':
        return batch_stats_bn(model)
    if mode == 'running':
        return contextlib.nullcontext(model)
    raise ValueError(f'teacher_bn must be one of {TEACHER_BN_MODES}, got {mode!r}')
