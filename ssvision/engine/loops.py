"""Iteration-based training loop that resumes the data stream exactly."""

from __future__ import annotations

import logging

from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from ssvision.registry import LOOPS

from .mmengine_compat import (
    built_loop,
    infinite_iterator,
    init_iter_train_loop,
    unwrap,
    update_val_interval,
)
from .rng import preserved_rng


def _num_classes_of(dataset) -> int | None:
    n = getattr(dataset, 'num_classes', None)
    if n is None:
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        n = len(classes) if classes else None
    return n


@LOOPS.register_module()
class SemiIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` that resumes by repositioning the sampler.

    mmengine's loop skips already-trained batches on resume by loading them. With a
    :class:`~ssvision.datasets.SemiSampler` this loop instead calls
    ``sampler.set_position(iter * batch_size)``, so a resumed run sees exactly the
    samples (and augmentations, which are seeded per sample) of an uninterrupted one.
    The dataloader iterator is created when training starts (after a resume), and
    validation runs with the global RNG states saved and restored, so evaluating
    does not change the training run. It also checks, before the first iteration,
    that the loader's batch size equals the sampler's ``B * (1 + mu)`` and that the
    datasets' ``num_classes`` agree with the model's.
    """

    def __init__(self, runner, dataloader, max_iters: int, val_begin: int = 1,
                 val_interval: int = 1000, dynamic_intervals=None) -> None:
        init_iter_train_loop(self, runner, dataloader, max_iters, val_begin, val_interval,
                             dynamic_intervals)
        # Size data-dependent model state (e.g. FlexMatch's per-sample buffer) before
        # a checkpoint is loaded into it.
        model = unwrap(self.runner.model)
        if hasattr(model, 'bind_data'):  # ssvision recipes; mmdetection models have none
            model.bind_data(self.dataloader.dataset)

    def _check(self) -> None:
        sampler = getattr(self.dataloader, 'sampler', None)
        if hasattr(sampler, 'batch_size') and hasattr(sampler, 'set_position'):
            if self.dataloader.batch_size != sampler.batch_size:
                raise ValueError(
                    f'train_dataloader.batch_size={self.dataloader.batch_size} but the '
                    f'SemiSampler yields {sampler.batch_size} items per batch (B * (1 + mu) '
                    f'with B = {sampler.labeled_batch_size}, mu = {sampler.unlabeled_ratio}; '
                    'unlabeled_batch_size when B = 0)')
        model = unwrap(self.runner.model)
        model_classes = getattr(model, 'num_classes', None)
        loaders = [('train_dataloader', self.dataloader.dataset)]
        val_loop = built_loop(self.runner, 'val')
        if val_loop is not None and hasattr(val_loop, 'dataloader'):
            loaders.append(('val_dataloader', val_loop.dataloader.dataset))
        for name, dataset in loaders:
            data_classes = _num_classes_of(dataset)
            if model_classes is not None and data_classes is not None \
                    and data_classes != model_classes:
                raise ValueError(
                    f'num_classes disagree: {name}.dataset ({type(dataset).__name__}) has '
                    f'{data_classes} classes but the model predicts {model_classes}')

    def _start_iterator(self) -> None:
        sampler = getattr(self.dataloader, 'sampler', None)
        if self.iter > 0:
            if hasattr(sampler, 'set_position'):
                sampler.set_position(self.iter * sampler.batch_size)
                print_log(f'Resumed the data stream at iteration {self.iter} '
                          f'(item {self.iter * sampler.batch_size})', logger='current')
            else:
                print_log(f'Advance dataloader {self.iter} steps (the sampler cannot '
                          'be repositioned)', logger='current', level=logging.WARNING)
        # Creating the iterator draws worker seeds from torch's global generator;
        # keep that draw out of the training RNG stream so resumed runs match.
        with preserved_rng():
            self.dataloader_iterator = infinite_iterator(self.dataloader)
        if self.iter > 0 and not hasattr(sampler, 'set_position'):
            for _ in range(self.iter):
                next(self.dataloader_iterator)

    def run(self):
        """Launch training."""
        self._check()
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        self._start_iterator()
        while self.iter < self.max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            update_val_interval(self)
            if (self.runner.val_loop is not None and self.iter >= self.val_begin
                    and (self.iter % self.val_interval == 0
                         or self.iter == self.max_iters)):
                with preserved_rng():
                    self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model
