import json
import os
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
from mmengine.logging import MessageHub

from ssvision.engine.hooks import selection_stats_hook as hook_mod  # registers the hook
from ssvision.engine.hooks.selection_stats_hook import (
    SelectionStatsHook,
    history_from_message_hub,
)
from ssvision.registry import HOOKS
from ssvision.visualization import (
    load_selection_history,
    moving_average,
    plot_selection,
    selection_figure,
    selection_rates,
)

NUM_CLASSES = 10
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
           'truck']


def train_record(step: int, run: int, with_thr: bool = True, burn_in: bool = False) -> dict:
    """One record as mmengine's LoggerHook writes it (keys without the train/ prefix)."""
    rec = {'lr': 0.03, 'data_time': 0.01, 'loss': 2.0 / step, 'sup_loss': 1.0 / step,
           'time': 0.1, 'iter': step, 'memory': 123, 'step': step}
    if burn_in:
        return rec
    counts = [run * step + c for c in range(NUM_CLASSES)]
    rec.update(sel_frac=0.5, sel_weight=0.5, teacher_conf=0.9, pl_acc=0.8, pl_acc_all=0.6,
               unsup_loss=0.3)
    rec.update({f'sel_n_{c}': float(n) for c, n in enumerate(counts)})
    if with_thr:
        rec.update({f'thr_{c}': 0.9 - 0.01 * c - 0.001 * run for c in range(NUM_CLASSES)})
    return rec


def write_run(log_dir: str, records: list, partial_tail: bool = False) -> None:
    vis = osp.join(log_dir, 'vis_data')
    os.makedirs(vis, exist_ok=True)
    lines = ''.join(json.dumps(r) + '\n' for r in records)
    with open(osp.join(vis, 'scalars.json'), 'w') as f:
        f.write(lines + ('{"lr": 0.03, "sel_fr' if partial_tail else ''))
    # mmengine also writes <timestamp>.json with the same records; it must not be read twice
    with open(osp.join(vis, osp.basename(log_dir) + '.json'), 'w') as f:
        f.write(lines)


@pytest.fixture
def resumed_work_dir(tmp_path):
    """Run 1 logs steps 10..50 (10 is burn-in) and a validation record, then dies mid-line;
    run 2 resumes from the iter-30 checkpoint and logs 40..70 (40, 50 logged twice)."""
    run1 = [train_record(10, 1, burn_in=True)] + [train_record(s, 1) for s in (20, 30, 40)]
    run1 += [train_record(50, 1), {'accuracy/top1': 42.0, 'data_time': 0.02, 'time': 0.2,
                                   'step': 50}]
    run2 = [train_record(s, 2) for s in (40, 50, 60, 70)]
    write_run(str(tmp_path / '20240101_120000'), run1, partial_tail=True)
    write_run(str(tmp_path / '20240101_130000'), run2)
    return tmp_path


def test_load_resumed_history_exact(resumed_work_dir):
    hist = load_selection_history(str(resumed_work_dir))
    np.testing.assert_array_equal(hist['step'], [10, 20, 30, 40, 50, 60, 70])
    # burn-in record has no selection keys -> NaN; 20, 30 from run 1; 40.. from run 2
    np.testing.assert_array_equal(hist['sel_n_3'], [np.nan, 23, 33, 83, 103, 123, 143])
    np.testing.assert_allclose(hist['thr_9'][1:], [0.809, 0.809, 0.808, 0.808, 0.808, 0.808])
    assert hist['step'].dtype == np.int64
    keys = [k for k in hist if k.startswith('sel_n_')]
    assert keys == [f'sel_n_{c}' for c in range(NUM_CLASSES)]  # numeric order, 10 classes
    # only health keys: no loss / lr / val metric
    assert not {'loss', 'lr', 'accuracy/top1', 'unsup_loss', 'iter'} & set(hist)
    assert {'sel_frac', 'sel_weight', 'teacher_conf', 'pl_acc', 'pl_acc_all'} <= set(hist)


def test_load_single_file_and_log_dir(resumed_work_dir):
    log_dir = resumed_work_dir / '20240101_120000'
    from_dir = load_selection_history(str(log_dir))
    from_file = load_selection_history(str(log_dir / 'vis_data' / 'scalars.json'))
    for hist in (from_dir, from_file):
        np.testing.assert_array_equal(hist['step'], [10, 20, 30, 40, 50])


def test_duplicate_step_in_one_file_keeps_last(tmp_path):
    recs = [train_record(10, 1), train_record(20, 1), train_record(20, 3),
            train_record(30, 1)]
    write_run(str(tmp_path / '20240101_000000'), recs)
    hist = load_selection_history(str(tmp_path))
    np.testing.assert_array_equal(hist['step'], [10, 20, 30])
    np.testing.assert_array_equal(hist['sel_n_0'], [10, 60, 30])


def test_hierarchical_keys_and_missing(tmp_path):
    rec = {f'train/{k}': v for k, v in train_record(10, 1).items() if k != 'step'}
    rec['step'] = 10
    write_run(str(tmp_path / 'a'), [rec, {'val/accuracy/top1': 1.0, 'step': 10}])
    hist = load_selection_history(str(tmp_path))
    np.testing.assert_array_equal(hist['step'], [10])
    assert hist['sel_n_1'][0] == 11
    with pytest.raises(FileNotFoundError):
        load_selection_history(str(tmp_path / 'nothing'))


def test_moving_average_and_rates():
    x = np.array([1.0, 3.0, np.nan, 5.0])
    np.testing.assert_array_equal(moving_average(x, 1), x)
    np.testing.assert_allclose(moving_average(x, 2), [1.0, 2.0, 3.0, 5.0])
    np.testing.assert_allclose(moving_average(x, 3), [1.0, 2.0, 2.0, 4.0])
    hist = {'step': np.array([1, 2]), 'sel_frac': np.array([0.5, 0.0]),
            'sel_n_0': np.array([3.0, 0.0]), 'sel_n_1': np.array([1.0, 0.0])}
    rates, label = selection_rates(hist)
    np.testing.assert_allclose(rates[0], [0.375, 0.0])  # 0.5 * 3 / 4
    np.testing.assert_allclose(rates[1], [0.125, 0.0])
    assert 'sel_frac' in label
    rates, label = selection_rates(hist, num_unlabeled=8)
    np.testing.assert_allclose(rates[0], [0.375, 0.0])
    del hist['sel_frac']
    rates, label = selection_rates(hist)
    np.testing.assert_allclose(rates[0], [0.75, 0.0])
    assert label.startswith('share of selected')


def assert_png(path: str) -> None:
    assert osp.isfile(path)
    with open(path, 'rb') as f:
        assert f.read(8) == PNG_MAGIC
    assert osp.getsize(path) > 10_000


def test_plot_with_thresholds_and_names(resumed_work_dir, tmp_path):
    hist = load_selection_history(str(resumed_work_dir))
    out = str(tmp_path / 'plots' / 'sel.png')
    assert plot_selection(hist, out, class_names=CLASSES, title='run', window=3) == out
    assert_png(out)
    fig = selection_figure(hist, class_names=CLASSES)
    ax_rate, ax_thr, ax_acc = fig.axes[:3]  # the sel_frac twin axis is added last
    labels = [t.get_text() for t in ax_rate.get_legend().get_texts()]
    assert labels == [f'{c}: {n}' for c, n in enumerate(CLASSES)] + ['sel_frac (all, right axis)']
    colors = {tuple(line.get_color()) for line in ax_rate.get_lines()[:NUM_CLASSES]}
    assert len(colors) == NUM_CLASSES  # every class its own colour
    assert len(ax_thr.get_lines()) == NUM_CLASSES
    acc = [t.get_text() for t in ax_acc.get_legend().get_texts()]
    assert acc[:3] == ['pl_acc (selected)', 'pl_acc_all (all)', 'teacher_conf']


def test_plot_without_thresholds_leaves_the_panel_out(tmp_path):
    # A fixed threshold logs no thresholds: the figure used to keep an empty panel for
    # them. Catches an empty panel kept, or the quality panel dropped with it.
    write_run(str(tmp_path / 'run' / '20240101_000000'),
              [train_record(s, 1, with_thr=False) for s in range(10, 110, 10)])
    hist = load_selection_history(str(tmp_path / 'run'))
    assert not [k for k in hist if k.startswith('thr')]
    fig = selection_figure(hist)
    titles = [ax.get_title(loc='left') for ax in fig.axes]
    assert '(a) selection per class' in titles and '(b) pseudo-label quality' in titles
    assert not any('threshold' in t for t in titles)
    assert all(ax.get_lines() for ax in fig.axes)  # every panel draws something
    assert 'not logged: thresholds (fixed threshold)' in fig._suptitle.get_text()
    out = plot_selection(hist, str(tmp_path / 'fixed.png'))
    assert_png(out)


def test_plot_many_classes_distinct_styles(tmp_path):
    steps = np.arange(1, 6)
    hist = {'step': steps, **{f'sel_n_{c}': steps * (c + 1.0) for c in range(25)}}
    fig = selection_figure(hist)
    styles = {(tuple(ln.get_color()), ln.get_linestyle()) for ln in fig.axes[0].get_lines()}
    assert len(styles) == 25
    assert 'share of selected' in fig.axes[0].get_ylabel()


def fake_runner(work_dir, hub_name: str, n_iters: int = 100):
    hub = MessageHub.get_instance(hub_name)
    for it in range(n_iters):
        for c in range(3):
            hub.update_scalar(f'train/sel_n_{c}', float(it + c))
        hub.update_scalar('train/sel_frac', 0.5)
        hub.update_scalar('train/thr_0', 0.95)
        hub.update_scalar('train/loss', 1.0)
    dataset = SimpleNamespace(metainfo={'classes': ('a', 'b', 'c')})
    return SimpleNamespace(work_dir=str(work_dir), log_dir=str(work_dir / '20240101_000000'),
                           message_hub=hub, iter=n_iters,
                           train_dataloader=SimpleNamespace(dataset=dataset))


def test_history_from_message_hub(tmp_path):
    runner = fake_runner(tmp_path, 'test_sel_hist_hub', n_iters=100)
    hist = history_from_message_hub(runner.message_hub, last_step=100, interval=50)
    np.testing.assert_array_equal(hist['step'], [50, 100])
    np.testing.assert_array_equal(hist['sel_n_2'], [51.0, 101.0])
    assert 'loss' not in hist


def test_hook_after_train_from_message_hub(tmp_path):
    hook = HOOKS.build(dict(type='SelectionStatsHook', interval=10, window=2))
    assert isinstance(hook, SelectionStatsHook)
    runner = fake_runner(tmp_path, 'test_sel_hook_hub')
    hook.after_train(runner)
    assert_png(str(tmp_path / 'selection_stats.png'))


def test_hook_prefers_scalars_json(resumed_work_dir, monkeypatch):
    runner = fake_runner(resumed_work_dir, 'test_sel_hook_json')
    seen = {}

    def fake_plot(history, out_png, class_names=None, **kwargs):
        seen.update(history=history, out=out_png, names=class_names)
        return out_png

    monkeypatch.setattr(hook_mod, 'plot_selection', fake_plot)
    SelectionStatsHook(out_file='sub/sel.png').after_train(runner)
    np.testing.assert_array_equal(seen['history']['step'], [10, 20, 30, 40, 50, 60, 70])
    assert seen['out'] == osp.join(str(resumed_work_dir), 'sub/sel.png')
    assert seen['names'] == ['a', 'b', 'c']


def test_hook_plot_on_val(tmp_path):
    runner = fake_runner(tmp_path, 'test_sel_hook_val', n_iters=20)
    SelectionStatsHook().after_val_epoch(runner)
    assert not osp.exists(tmp_path / 'selection_stats.png')
    SelectionStatsHook(plot_on_val=True).after_val_epoch(runner)
    assert_png(str(tmp_path / 'selection_stats.png'))


def test_hook_broken_input_warns(tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr(hook_mod, 'print_log',
                        lambda msg, logger=None, level=None: messages.append((msg, level)))
    runner = SimpleNamespace(work_dir=str(tmp_path), log_dir=None, message_hub=None, iter=3)
    SelectionStatsHook().after_train(runner)  # must not raise
    assert messages and 'could not plot' in messages[0][0]
    assert not osp.exists(tmp_path / 'selection_stats.png')
    # a corrupt history value (not numeric) in the hub is caught the same way
    messages.clear()
    bad = SimpleNamespace(log_scalars={'train/sel_n_0': object()})
    runner = SimpleNamespace(work_dir=str(tmp_path), log_dir=None, message_hub=bad, iter=3)
    SelectionStatsHook().after_train(runner)
    assert messages and 'could not plot' in messages[0][0]


def test_hook_nothing_logged_warns(tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr(hook_mod, 'print_log',
                        lambda msg, logger=None, level=None: messages.append(msg))
    runner = SimpleNamespace(work_dir=str(tmp_path), log_dir=None, iter=0,
                             message_hub=MessageHub.get_instance('test_sel_hook_empty'))
    SelectionStatsHook().after_train(runner)
    assert messages and 'no selection statistics' in messages[0]


def test_hook_rejects_bad_args():
    with pytest.raises(ValueError):
        SelectionStatsHook(window=0)
    with pytest.raises(ValueError):
        SelectionStatsHook(interval=0)


def test_cli(resumed_work_dir):
    import importlib.util
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'plot_selection_tool', osp.join(root, 'tools', 'plot_selection.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tool.main([str(resumed_work_dir), '--window', '2', '--classes', *CLASSES])
    assert out == osp.join(str(resumed_work_dir), 'selection_stats.png')
    assert_png(out)


@pytest.mark.slow
def test_hook_through_real_runner(tmp_path):
    """Fixmatch on a few MNIST-5k digits: the hook plots the real scalars.json."""
    pytest.importorskip('sklearn')
    from mmengine.runner import Runner

    from ssvision.datasets import MNIST5k, make_split, save_split
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    from ssvision.tools import train as train_tool

    ds = MNIST5k()
    split = make_split(ds.labels, list(range(len(ds))), num_labels_per_class=4,
                       num_test_per_class=5, seed=0)
    split['unlabeled'] = split['unlabeled'][::24]
    split_file = str(tmp_path / 'split.json')
    save_split(split, split_file)
    work_dir = str(tmp_path / 'run')
    config = osp.join(root, 'configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py')
    opts = ['train_cfg.max_iters=6', 'train_cfg.val_interval=6',
            'param_scheduler.0.end=6', 'param_scheduler.0.T_max=6',
            'labeled_batch_size=4', 'train_dataloader.batch_size=12',
            'train_dataloader.sampler.labeled_batch_size=4',
            'train_dataloader.sampler.unlabeled_ratio=2', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            f'train_dataloader.dataset.labeled.split_file={split_file}',
            f'train_dataloader.dataset.unlabeled.split_file={split_file}',
            f'val_dataloader.dataset.split_file={split_file}',
            f'test_dataloader.dataset.split_file={split_file}',
            'default_hooks.checkpoint.interval=6', 'default_hooks.logger.interval=2',
            'model.model.width=8', 'model.selector.threshold=0.0']
    cfg = train_tool.build_config(train_tool.parse_args(
        [config, '--work-dir', work_dir, '--cfg-options', *opts]))
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type='SelectionStatsHook', window=1)]
    Runner.from_cfg(cfg).train()
    assert_png(osp.join(work_dir, 'selection_stats.png'))
    hist = load_selection_history(work_dir)
    np.testing.assert_array_equal(hist['step'], [2, 4, 6])
    assert 'sel_n_9' in hist and 'sel_frac' in hist and 'teacher_conf' in hist
