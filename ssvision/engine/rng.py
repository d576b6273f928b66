"""Capture and restore every random number generator a run uses."""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch


def get_rng_states() -> dict:
    """RNG states of python, numpy and torch (CPU and CUDA), as plain data.

    Everything is a tensor, int, str or tuple of ints so a checkpoint holding it loads
    with ``torch.load(weights_only=True)``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        'python': random.getstate(),
        'numpy': {'name': name, 'keys': torch.from_numpy(keys.astype(np.int64)),
                  'pos': int(pos), 'has_gauss': int(has_gauss), 'cached': float(cached)},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore states captured by :func:`get_rng_states`."""
    py = states['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = states['numpy']
    np.random.set_state((n['name'], n['keys'].cpu().numpy().astype(np.uint32), n['pos'],
                         n['has_gauss'], n['cached']))
    torch.set_rng_state(states['torch'].cpu())
    if 'cuda' in states and torch.cuda.is_available():
        cuda_states = states['cuda']
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


@contextmanager
def preserved_rng():
    """Run a block without changing any global RNG state (e.g. validation)."""
    states = get_rng_states()
    try:
        yield
    finally:
        set_rng_states(states)
