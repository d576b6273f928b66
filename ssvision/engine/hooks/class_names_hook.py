"""Checks, before training and testing, that every dataset names the model's classes."""

from __future__ import annotations

from mmengine.hooks import Hook

from ssvision.datasets.class_names import check_classes
from ssvision.engine.mmengine_compat import built_loop, unwrap
from ssvision.registry import HOOKS


@HOOKS.register_module()
class ClassNamesHook(Hook):
    """Runs :func:`~ssvision.datasets.class_names.check_classes` on the run's datasets.

    Before training: the training and validation data against each other (and, on
    resume, against the class names the checkpoint recorded). Before testing: the test
    data against the checkpoint's class names. Different names, a missing or an extra
    class stop the run with both lists; the same names in another order are mapped by
    name where the dataset can (class folders, COCO categories), and the evaluator and
    visualizer get the mapped metadata. ``tools/train.py`` and ``tools/test.py``
    register it for every run.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._checkpoint_classes = None

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        meta = checkpoint.get('meta') or {}
        self._checkpoint_classes = (meta.get('dataset_meta') or {}).get('classes')

    def _check(self, runner, loops: dict, model_classes) -> None:
        splits = {name: loop.dataloader.dataset for name, loop in loops.items()}
        num_classes = getattr(unwrap(runner.model), 'num_classes', None)
        for name in check_classes(splits, model_classes=model_classes,
                                  num_classes=num_classes):
            # labels were mapped by name: the metric must read the mapped metadata
            meta = loops[name].dataloader.dataset.metainfo
            evaluator = getattr(loops[name], 'evaluator', None)
            if evaluator is not None:
                evaluator.dataset_meta = meta
            runner.visualizer.dataset_meta = meta

    def before_train(self, runner) -> None:
        loops = {'train_dataloader.dataset': runner.train_loop}
        val = built_loop(runner, 'val')
        if val is not None and hasattr(val, 'dataloader'):
            loops['val_dataloader.dataset'] = val
        self._check(runner, loops, self._checkpoint_classes if runner.iter > 0 else None)

    def before_test(self, runner) -> None:
        self._check(runner, {'test_dataloader.dataset': runner.test_loop},
                    self._checkpoint_classes)
