"""Infinite, seeded, resumable sampler mixing labeled and unlabeled samples."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from mmengine.dist import get_dist_info

from ssvision.registry import DATA_SAMPLERS

#: Salts that keep the labeled order, unlabeled order and sample seeds independent.
_LABELED_SALT, _UNLABELED_SALT, _SAMPLE_SEED_SALT = 1, 2, 3


def _stable_seed(*words: int) -> int:
    """A 32-bit seed that depends only on ``words`` (same in every process)."""
    return int(np.random.SeedSequence([int(w) & 0xFFFFFFFF for w in words]).generate_state(1)[0])


@DATA_SAMPLERS.register_module()
class SemiSampler:
    """Yields ``B`` labeled then ``mu * B`` unlabeled items per batch, forever.

    The dataset must be a :class:`~ssvision.datasets.SemiDataset` (labeled indices
    first). The dataloader's ``batch_size`` must equal ``B * (1 + mu)``; the train
    loop checks this.

    Every item is ``(dataset_index, sample_seed)``. Both depend only on ``seed``,
    the rank and the item's position ``p`` in this rank's stream:

    - the ``n``-th labeled item is ``perm_e[n % L]`` with ``e = n // L`` and
      ``perm_e`` a permutation of ``range(L)`` seeded by ``(seed, rank, 1, e)`` (epochs over
      the labeled set reshuffle); the unlabeled part works the same way with salt 2;
    - ``sample_seed = SeedSequence([seed, 3, rank, p])``.

    So :meth:`set_position` resumes exactly mid-epoch without loading skipped data,
    and the augmentations of an item are the same whatever the number of workers.
    Under ``torch.distributed`` each rank draws its own stream (the rank is part of
    every seed); ranks do not partition the data, so a global batch may repeat an
    image (harmless for infinite sampling, and it keeps resume exact per rank).

    ``labeled_batch_size=0`` gives unlabeled-only batches of ``unlabeled_batch_size``
    items (source-free adaptation: no labeled data at all).

    Args:
        dataset: a ``SemiDataset``.
        labeled_batch_size (int): ``B``, labeled items per batch (>= 0).
        unlabeled_ratio (int): ``mu``; ``mu * B`` unlabeled items per batch (>= 0).
            ``0`` gives supervised-only batches.
        seed (int | None): base seed; ``None`` takes mmengine's run seed
            (``sync_random_seed``).
        unlabeled_batch_size (int | None): unlabeled items per batch when
            ``labeled_batch_size`` is 0 (required then, ignored otherwise).
    """

    def __init__(self, dataset, labeled_batch_size: int, unlabeled_ratio: int = 7,
                 seed: int | None = None, unlabeled_batch_size: int | None = None) -> None:
        if labeled_batch_size < 0:
            raise ValueError(f'labeled_batch_size must be >= 0, got {labeled_batch_size}')
        if labeled_batch_size == 0 and not (unlabeled_batch_size or 0) > 0:
            raise ValueError('labeled_batch_size=0 (unlabeled-only batches) needs '
                             f'unlabeled_batch_size > 0, got {unlabeled_batch_size}')
        if unlabeled_ratio < 0 or int(unlabeled_ratio) != unlabeled_ratio:
            raise ValueError(f'unlabeled_ratio must be an integer >= 0, got {unlabeled_ratio}')
        if not hasattr(dataset, 'num_labeled'):
            raise TypeError('SemiSampler needs a SemiDataset (labeled + unlabeled parts), '
                            f'got {type(dataset).__name__}')
        if (unlabeled_ratio > 0 or labeled_batch_size == 0) and dataset.num_unlabeled == 0:
            raise ValueError('unlabeled items are asked for but the unlabeled dataset is '
                             'empty')
        if labeled_batch_size > 0 and dataset.num_labeled == 0:
            raise ValueError(f'labeled_batch_size={labeled_batch_size} but the labeled '
                             'dataset is empty')
        if seed is None:
            from mmengine.dist import sync_random_seed
            seed = sync_random_seed()
        self.dataset = dataset
        self.labeled_batch_size = int(labeled_batch_size)
        self.unlabeled_ratio = int(unlabeled_ratio)
        self.unlabeled_batch_size = int(unlabeled_batch_size or 0)
        self.seed = int(seed)
        self.rank, self.world_size = get_dist_info()
        self.num_labeled = dataset.num_labeled
        self.num_unlabeled = dataset.num_unlabeled
        self._position = 0
        self._perm_cache: dict[tuple[int, int], np.ndarray] = {}

    @property
    def batch_size(self) -> int:
        """Items per batch, ``B * (1 + mu)`` (or ``unlabeled_batch_size`` when B = 0)."""
        if self.labeled_batch_size == 0:
            return self.unlabeled_batch_size
        return self.labeled_batch_size * (1 + self.unlabeled_ratio)

    def set_position(self, position: int) -> None:
        """Start the next iteration at item ``position`` of this rank's stream."""
        if position < 0:
            raise ValueError(f'position must be >= 0, got {position}')
        self._position = int(position)

    def set_seed(self, seed: int) -> None:
        """Use another base seed (e.g. the one a resumed checkpoint was trained with)."""
        self.seed = int(seed)
        self._perm_cache.clear()

    def set_epoch(self, epoch: int) -> None:  # noqa: D102 - infinite: nothing to do
        pass

    def _perm(self, salt: int, size: int, epoch: int) -> np.ndarray:
        key = (salt, epoch)
        perm = self._perm_cache.get(key)
        if perm is None:
            rng = np.random.default_rng(_stable_seed(self.seed, self.rank, salt, epoch))
            perm = rng.permutation(size)
            if len(self._perm_cache) > 8:
                self._perm_cache.clear()
            self._perm_cache[key] = perm
        return perm

    def item(self, position: int) -> tuple[int, int]:
        """The ``(dataset_index, sample_seed)`` at ``position`` of this rank's stream."""
        per_batch = self.batch_size
        batch, offset = divmod(position, per_batch)
        if 0 < self.labeled_batch_size and offset < self.labeled_batch_size:
            n = batch * self.labeled_batch_size + offset
            epoch, k = divmod(n, self.num_labeled)
            index = int(self._perm(_LABELED_SALT, self.num_labeled, epoch)[k])
        else:
            mu_b = per_batch - self.labeled_batch_size
            n = batch * mu_b + offset - self.labeled_batch_size
            epoch, k = divmod(n, self.num_unlabeled)
            index = self.num_labeled + int(self._perm(_UNLABELED_SALT, self.num_unlabeled,
                                                      epoch)[k])
        return index, _stable_seed(self.seed, _SAMPLE_SEED_SALT, self.rank, position)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self._position
        while True:
            yield self.item(position)
            position += 1

    def __len__(self) -> int:
        # Infinite; a length is reported so DataLoader machinery that asks works.
        return 2**62
