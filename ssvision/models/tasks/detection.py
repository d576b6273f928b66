"""Detection task adapter: how the recipe runs a detector and packs its boxes."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from ssvision.registry import MODELS
from ssvision.structures import DetInstances, transfer_boxes

from .base import BaseTask


@MODELS.register_module()
class DetectionTask(BaseTask):
    """What the semi-supervised recipe needs to know about object detection.

    A detector here has ``loss(images, instances) -> dict`` of loss terms and
    ``predict(images) -> list[DetInstances]`` (eval mode, scores set), images as a list
    of float ``(3, H, W)`` tensors (:class:`~ssvision.models.TorchvisionDetector`).
    Predictions are lists of :class:`DetInstances` in the pixels of the view they were
    made on; :meth:`pack_predictions` maps them back to the original image.

    Detection has no per-position outputs, so there is no ``forward`` / ``sup_loss``
    split: the detector computes its own losses (:meth:`losses`).
    """

    #: Auxiliary heads and batch mixers read per-position outputs; detectors have none.
    dense = False
    has_logits = False

    @torch.no_grad()
    def predict(self, model: nn.Module, images: Sequence[torch.Tensor]) -> list[DetInstances]:
        """Detections of ``model`` (which the caller has put in eval mode)."""
        return model.predict(list(images))

    def infer(self, model: nn.Module, images: Sequence[torch.Tensor]) -> list[DetInstances]:
        """Validation / test detections: :meth:`predict`."""
        return self.predict(model, images)

    forward = infer

    @staticmethod
    def targets(data_samples: dict) -> list[torch.Tensor]:
        """Per labeled image, its box labels (the class-aware selectors' count prior)."""
        return [g.labels for g in data_samples['gt_instances']]

    @staticmethod
    def losses(model: nn.Module, images: Sequence[torch.Tensor],
               instances: Sequence[DetInstances],
               ignore: Sequence[torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The detector's loss terms on ``images`` with boxes ``instances`` (and, when
        given, per image ignore regions, :meth:`TorchvisionDetector.loss`)."""
        if ignore is None:
            return model.loss(list(images), list(instances))
        return model.loss(list(images), list(instances), ignore=list(ignore))

    @staticmethod
    def pack_predictions(preds: dict[str, list[DetInstances]], data_samples: dict,
                         inputs: Sequence[torch.Tensor] | None = None) -> list[dict]:
        """Per image ``{'img_id', 'ori_shape', 'gt_instances', 'pred': {name:
        DetInstances}}`` for ``CocoDetMetric``, boxes mapped back to the original image
        (inverse of the view's homography), on the CPU. Without ``ori_shape`` in the
        samples, the input image's size is used."""
        samples = data_samples or {}
        n = len(next(iter(preds.values())))
        h = samples.get('homography')
        gts = samples.get('gt_instances')
        out = []
        for i in range(n):
            ori = samples.get('ori_shape')
            ori = tuple(int(v) for v in (ori[i] if ori is not None else inputs[i].shape[-2:]))
            back = (lambda d: d) if h is None else partial(
                _to_original, h=h[i], shape=ori)
            item = {'img_id': int(samples.get('img_id', [-1] * n)[i]), 'ori_shape': ori,
                    'pred': {name: back(p[i]).to('cpu') for name, p in preds.items()}}
            if gts is not None:
                item['gt_instances'] = back(gts[i]).to('cpu')
            out.append(item)
        return out


def _to_original(d: DetInstances, h: torch.Tensor, shape) -> DetInstances:
    """Boxes of a view (homography ``h``: original -> view) in original-image pixels."""
    return transfer_boxes(d, h, torch.eye(3, device=h.device), shape, 0.0)[0]
