"""Collate function that groups the named views of a mixed batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ssvision.registry import FUNCTIONS


def _stack(values: list) -> Any:
    first = values[0]
    if isinstance(first, torch.Tensor):
        if any(v.shape != first.shape for v in values):
            return list(values)  # e.g. detection images of different sizes
        return torch.stack(values)
    if isinstance(first, (bool, np.bool_)):
        return torch.tensor(values, dtype=torch.bool)
    if isinstance(first, (int, np.integer)):
        return torch.tensor(np.asarray(values, dtype=np.int64))
    if isinstance(first, (float, np.floating)):
        return torch.tensor(np.asarray(values, dtype=np.float32))
    if isinstance(first, np.ndarray):
        if any(v.shape != first.shape for v in values):
            return [torch.from_numpy(v) for v in values]
        return torch.from_numpy(np.stack(values))
    return list(values)


def _collate(samples: list) -> Any:
    first = samples[0]
    if isinstance(first, dict):
        keys: list = []
        for s in samples:
            for k in s:
                if k not in keys:
                    keys.append(k)
        out = {}
        for k in keys:
            present = [s[k] for s in samples if k in s]
            out[k] = _collate(present)
        return out
    return _stack(samples)


@FUNCTIONS.register_module()
def semi_collate(samples: Sequence[dict]) -> dict:
    """Stack samples into a batch; a key present in some samples only collects those.

    Labeled samples carry the ``sup`` view and unlabeled ones the ``unsup_*`` views
    (see ``docs/data_flow.md``), so the batch holds ``B`` rows under ``sup`` and
    ``mu * B`` rows under each ``unsup_*`` name, in sampler order. Tensors are
    stacked, ints become ``long`` tensors, floats ``float32`` tensors, other values
    (e.g. :class:`~ssvision.structures.DetInstances`) lists. Tensors or arrays whose
    shapes differ within the batch (detection images of different sizes) stay a list.

    Args:
        samples: the dataset's outputs for one batch.

    Returns:
        dict: the nested batch.
    """
    if len(samples) == 0:
        raise ValueError('semi_collate got an empty batch')
    return _collate(list(samples))
