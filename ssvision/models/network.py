"""The networks' contract: what recipes and auxiliary heads may call on a student.

A classifier or segmentor is a :class:`StudentNetwork`, a detector a
:class:`DetectorNetwork`. Each class lists the members it implements in ``provides``;
heads and recipes check what they need once, when they are built (:func:`require`),
instead of probing the network when a loss runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class StudentNetwork(nn.Module):
    """A classifier or segmentor split into an encoder and a head.

    ``forward(x) = forward_head(extract_feat(x), x.shape[-2:])`` is written here once,
    so a recipe or head that takes the features on the way (a feature perturbation, an
    auxiliary classifier on them) computes exactly the network's own forward.
    Subclasses set ``num_classes``, ``in_channels`` and ``feat_dim`` (channels of
    ``extract_feat``'s output) and add the optional members they implement to
    ``provides``: ``forward_stages`` (intermediate maps, for deep supervision),
    ``extract_levels`` / ``decode_levels`` (DSSN's two-level perturbation).
    """

    provides: frozenset[str] = frozenset({'extract_feat', 'forward_head', 'feat_dim'})
    num_classes: int
    in_channels: int
    feat_dim: int
    #: Input pixels per pixel of the deepest feature map (segmentors that change it say so).
    output_stride: int = 32

    def extract_feat(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` -> ``(N, feat_dim)`` or ``(N, feat_dim, h, w)``."""
        raise NotImplementedError

    def forward_head(self, feat: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        """Logits from :meth:`extract_feat`'s output; dense heads upsample to ``size``."""
        raise NotImplementedError

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after each stage, shallow to deep (when ``provides`` says so)."""
        raise NotImplementedError(f'{type(self).__name__} does not provide forward_stages')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` images -> logits ``(N, num_classes, *)``."""
        return self.forward_head(self.extract_feat(x), x.shape[-2:])


class DetectorNetwork(nn.Module):
    """A detector as the detection recipe drives it, on lists of ``(3, H, W)`` images.

    ``loss(images, instances, ignore=None)`` returns the detector's loss dict,
    ``predict(images)`` one :class:`~ssvision.structures.DetInstances` per image.
    Optional members, listed in ``provides``: ``instance_features`` (one vector of
    ``feature_channels`` per box, for box-level heads), ``refine_boxes`` (a second stage
    that regresses given boxes) and ``ignore_regions`` (``loss`` takes ``ignore``).
    Subclasses implement ``loss`` and ``predict``, set ``arch``, ``num_classes`` and
    ``one_stage``, and keep their weight loads in ``load_reports``.
    """

    provides: frozenset[str] = frozenset()
    arch: str
    num_classes: int
    one_stage: bool
    load_reports: dict

    def forward(self, images, instances=None):
        """``loss(images, instances)`` when given instances, else ``predict(images)``."""
        if instances is not None:
            return self.loss(images, instances)
        return self.predict(images)


def provides(net: nn.Module, member: str) -> bool:
    """Whether ``net`` implements ``member`` of the contract."""
    return isinstance(net, (StudentNetwork, DetectorNetwork)) and member in net.provides


def require(net: nn.Module, member: str, who: str) -> None:
    """Raise a ``TypeError`` naming ``who``, ``member`` and the network's class unless
    ``net`` provides ``member``; heads and recipes call it when they are built."""
    if not provides(net, member):
        raise TypeError(f'{who} needs a network that provides {member} (see '
                        f'ssvision.models.network); {type(net).__name__} does not')


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


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block BatchNorm layers in training mode still normalise with batch
    statistics (and pass gradients through them) but leave their running mean / var
    as they are: their momentum is 0 (``running = (1 - 0) * running + 0 * batch``).
    Momenta are restored on exit."""
    saved = [(m, m.momentum) for m in model.modules() if isinstance(m, _BatchNorm)]
    try:
        for m, _ in saved:
            m.momentum = 0.0
        yield model
    finally:
        for m, momentum in saved:
            m.momentum = momentum
