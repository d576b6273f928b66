"""Cross-process reductions for selector statistics.

Every helper is a no-op (returns its input, or a one-element list) without an
initialised process group, so single-process training and tests need nothing.
"""

from __future__ import annotations

import torch
from mmengine import dist


def sum_across_ranks(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all processes (in place) and return it."""
    dist.all_reduce(t, op='sum')
    return t


def cat_across_ranks(t: torch.Tensor) -> torch.Tensor:
    """Concatenate the rows of ``t`` from every process, in rank order.

    The first dimension may differ between processes: each rank pads to the
    largest length, gathers, then drops the padding.
    """
    if dist.get_world_size() == 1:
        return t
    length = torch.tensor([t.shape[0]], device=t.device, dtype=torch.long)
    lengths = [int(n.item()) for n in dist.all_gather(length)]
    padded = t.new_zeros((max(lengths),) + tuple(t.shape[1:]))
    padded[:t.shape[0]] = t
    parts = dist.all_gather(padded)
    return torch.cat([p[:n] for p, n in zip(parts, lengths)], dim=0)
