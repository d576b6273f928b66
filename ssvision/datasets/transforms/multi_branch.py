"""MultiBranch: several views of one sample, each from its own pipeline."""

from __future__ import annotations

import copy
from typing import Any, Callable, Optional, Union

import numpy as np
from mmengine.dataset import Compose

from ssvision.registry import TRANSFORMS

from .augment import ConfigMixin, RandomTransformMixin

__all__ = ['MultiBranch', 'branch_seed']

_MASK64 = (1 << 64) - 1


def branch_seed(sample_seed: int, index: int) -> int:
    """The sample seed of branch ``index`` derived from the sample's seed (stable).

    SplitMix64's finaliser of ``sample_seed + (index + 1) * golden``: a bijective mix in
    which nearby seeds and indices land far apart, in about 2 µs (``SeedSequence`` took
    about 15 µs per branch).

    Args:
        sample_seed (int): The sample's seed (any integer; taken modulo 2**64).
        index (int): Position of the branch in ``branches``.

    Returns:
        int: A seed in ``[0, 2**32)``.
    """
    x = (int(sample_seed) + 0x9E3779B97F4A7C15 * (int(index) + 1)) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) >> 32


def _copy_results(results: dict) -> dict:
    """A copy of a results dict that no branch can change through another: arrays
    copied, containers deep-copied, immutable values shared (``copy.deepcopy`` of the
    whole dict costs several times more for the same result)."""
    out = {}
    for key, value in results.items():
        if isinstance(value, np.ndarray):
            out[key] = value.copy()
        elif isinstance(value, (int, float, str, bool, bytes, type(None))):
            out[key] = value
        else:
            out[key] = copy.deepcopy(value)
    return out


def _transform_cfg(transform: Union[dict, Callable]) -> Any:
    """Config of one transform for ``repr`` / ``to_cfg`` (built ones via their ``to_cfg``)."""
    if isinstance(transform, dict):
        return copy.deepcopy(transform)
    if hasattr(transform, 'to_cfg'):
        return transform.to_cfg()
    return transform  # an arbitrary callable: kept as is (not rebuildable from text)


@TRANSFORMS.register_module()
class MultiBranch(ConfigMixin, RandomTransformMixin):
    """Runs several pipelines ("branches") on copies of one sample.

    Branch ``i`` (in dict order) runs on a copy of the results (arrays and containers
    copied, so no branch sees another's changes) whose ``sample_seed``
    is :func:`branch_seed` ``(sample_seed, i)``. Without a ``sample_seed`` in the results a
    fresh one is drawn from this transform's generator first, so the branches still differ
    (even when their transforms were built with equal ``seed`` arguments). Each branch must
    end with a pack transform returning ``{'inputs': ..., 'data_samples': ...}``.

    Args:
        branches (dict[str, list[dict | Callable]]): Branch name -> list of transform
            configs (built with ``ssvision.registry.TRANSFORMS``) or callables.
        seed (int, optional): Seed of the generator used when the results carry no
            ``sample_seed``. Defaults to None.

    Returns from ``__call__``:
        ``{'inputs': {name: inputs}, 'data_samples': {name: data_samples}}``, or None when a
        branch's pipeline returns None.
    """

    def __init__(self, branches: dict[str, list[Union[dict, Callable]]],
                 seed: Optional[int] = None) -> None:
        if not isinstance(branches, dict) or not branches:
            raise ValueError('branches must be a non-empty dict of name -> transform list')
        self.branches: dict[str, Compose] = {}
        cfg_branches: dict[str, list[Any]] = {}
        for name, transforms in branches.items():
            built = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in transforms]
            self.branches[name] = Compose(built)
            cfg_branches[name] = [_transform_cfg(t) for t in transforms]
        self._set_cfg_args(branches=cfg_branches, seed=seed)
        self._init_random(seed)

    def __call__(self, results: dict) -> Optional[dict]:
        seed = results.get('sample_seed')
        if seed is None:
            seed = int(self._internal_rng().integers(2**63))
        inputs: dict[str, Any] = {}
        data_samples: dict[str, Any] = {}
        for index, (name, pipeline) in enumerate(self.branches.items()):
            branch_results = _copy_results(results)
            branch_results['sample_seed'] = branch_seed(seed, index)
            packed = pipeline(branch_results)
            if packed is None:
                return None
            if 'inputs' not in packed or 'data_samples' not in packed:
                raise KeyError(
                    f'branch {name!r} must end with a pack transform returning '
                    f"'inputs' and 'data_samples'; got keys {sorted(packed)}")
            inputs[name] = packed['inputs']
            data_samples[name] = packed['data_samples']
        return {'inputs': inputs, 'data_samples': data_samples}
