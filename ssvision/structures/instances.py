"""Per-image variable-length data that the collate function keeps as a list."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ['DetInstances']


@dataclass
class DetInstances:
    """Boxes of one image: ``bboxes`` ``(n, 4)`` float32 ``x1, y1, x2, y2`` in the pixels
    of the view they belong to, ``labels`` ``(n,)`` int64 in ``[0, num_classes)``;
    ``scores`` ``(n,)`` float32 for predictions (None for ground truth).

    ``semi_collate`` never stacks these (a batch holds a list, one per image), so images
    with different numbers of boxes batch together.

    Why not mmengine's ``InstanceData``: it holds any fields of equal length but checks
    neither dtype nor shape (a ``(4,)`` box or int boxes pass), and cannot hold an absent
    field as ``None`` (ground truth has no scores), so every reader would test for the
    field instead. The native detection pipeline (augmentations, collate, policy,
    metric) reads exactly these three typed fields; the mmdetection plug-in converts at
    its border, in one place.
    """

    bboxes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4))
    labels: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    scores: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.bboxes = torch.as_tensor(self.bboxes, dtype=torch.float32).reshape(-1, 4)
        self.labels = torch.as_tensor(self.labels, dtype=torch.long).reshape(-1)
        if self.scores is not None:
            self.scores = torch.as_tensor(self.scores, dtype=torch.float32).reshape(-1)
        n = len(self.bboxes)
        if len(self.labels) != n or (self.scores is not None and len(self.scores) != n):
            raise ValueError(f'DetInstances: {n} boxes, {len(self.labels)} labels'
                             + ('' if self.scores is None else f', {len(self.scores)} scores'))

    def __len__(self) -> int:
        return len(self.bboxes)

    def to(self, device) -> DetInstances:
        return DetInstances(self.bboxes.to(device), self.labels.to(device),
                            None if self.scores is None else self.scores.to(device))

    def __getitem__(self, keep) -> DetInstances:
        return DetInstances(self.bboxes[keep], self.labels[keep],
                            None if self.scores is None else self.scores[keep])
