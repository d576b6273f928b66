"""What the recipe asks of a task adapter."""

from __future__ import annotations

from typing import Any

from torch import nn


class BaseTask:
    """A task adapter: how the recipe runs a network of one task and scores it.

    The recipe (:class:`~ssvision.models.algorithms.SemiBase`) calls:

    - ``predict(model, views)``: the teacher's targets (no gradients);
    - ``infer(model, images)``: validation outputs;
    - ``targets(data_samples)``: the labeled targets, for class-prior selectors;
    - ``pack_predictions(outputs, data_samples, inputs)``: per-image records for the
      task's metric;
    - with ``has_logits``: ``forward(model, images)`` (per-position outputs the student's
      losses and the auxiliary heads read) and ``sup_loss(logits, data_samples)``.

    Attributes:
        dense: outputs are per pixel (batch mixers such as CutMix apply).
        has_logits: the student gives per-position outputs (classification,
            segmentation); a detector computes its own losses instead.
    """

    dense: bool = False
    has_logits: bool = True

    def forward(self, model: nn.Module, inputs: Any) -> Any:
        raise NotImplementedError

    def predict(self, model: nn.Module, inputs: Any) -> Any:
        raise NotImplementedError

    def infer(self, model: nn.Module, inputs: Any) -> Any:
        return self.predict(model, inputs)

    @staticmethod
    def targets(data_samples: dict) -> Any:
        raise NotImplementedError

    def sup_loss(self, logits: Any, data_samples: dict) -> Any:
        raise NotImplementedError

    def pack_predictions(self, outputs: dict, data_samples: dict,
                         inputs: Any = None) -> list[dict]:
        raise NotImplementedError
