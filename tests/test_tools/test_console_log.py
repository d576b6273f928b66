"""Per-class scalars stay off the console line and reach the visualizer backends."""

import glob
import json
import os.path as osp

import pytest

from ssvision.engine.log_processor import PER_CLASS, summarize_console

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_summary_drops_per_class_items_and_names_the_starved_class():
    line = ('Iter(train) [ 6/6]  lr: 7.6e-03  eta: 0:00:00  time: 0.0419  loss: 2.3864  '
            'sel_frac: 0.5000  sel_n_0: 3.0000  sel_frac_0: 0.7500  sel_n_1: 0.0000  '
            'sel_frac_1: 0.2500  sel_frac_10: 0.9000  thr_0: 0.9500  box_thr_3: 0.4000  '
            'pb_n_2: 5.0000  pl_acc_all: 0.1250')
    out = summarize_console(line)
    # Catches a filter that also drops the overall figures (sel_frac, pl_acc_all) or keeps
    # two-digit classes (sel_frac_10), and a minimum taken over the wrong items.
    assert out.startswith('Iter(train) [ 6/6]  lr: 7.6e-03')
    assert 'sel_frac: 0.5000  sel_frac_min: 0.2500 (class 1)' in out
    assert 'pl_acc_all: 0.1250' in out and 'loss: 2.3864' in out
    for gone in ('sel_n_', 'sel_frac_0', 'sel_frac_10', 'thr_0', 'box_thr_3', 'pb_n_2'):
        assert gone not in out
    val = ('Iter(val) [1/1]    student/top1: 10.0000  student/mean_recall: 10.0000  '
           'student/recall_0: 100.0000  student/recall_T-shirt: 0.0000  '
           'teacher/mIoU: 12.0000  teacher/IoU_bg: 90.0000  teacher/AP_bag: 1.0000  '
           'teacher/AP50: 3.0000')
    out = summarize_console(val)
    assert 'student/top1: 10.0000' in out and 'student/mean_recall' in out
    assert 'teacher/mIoU' in out and 'teacher/AP50: 3.0000' in out
    assert 'recall_0' not in out and 'recall_T-shirt' not in out and 'IoU_bg' not in out
    assert 'AP_bag' not in out
    assert not PER_CLASS.search('sel_frac') and not PER_CLASS.search('teacher/mean_recall')


def test_training_console_log_is_short_and_scalars_keep_every_class(split_file, tmp_path):
    pytest.importorskip('sklearn')
    from ssvision.tools import train as train_tool
    work = str(tmp_path / 'run')
    train_tool.main([
        'ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py', '--work-dir', work,
        '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'param_scheduler.0.end=2', 'param_scheduler.0.T_max=2', 'labeled_batch_size=4',
        'train_dataloader.batch_size=12', 'train_dataloader.sampler.labeled_batch_size=4',
        'train_dataloader.sampler.unlabeled_ratio=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.labeled.split_file={split_file}',
        f'train_dataloader.dataset.unlabeled.split_file={split_file}',
        f'val_dataloader.dataset.split_file={split_file}',
        f'test_dataloader.dataset.split_file={split_file}',
        'default_hooks.logger.interval=1', 'model.model.width=8'])
    log = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    lines = [ln for ln in log.splitlines() if 'Iter(train) [2/2]' in ln]
    assert lines and 'sel_frac_min' in lines[0] and 'sel_n_0' not in lines[0]
    val = [ln for ln in log.splitlines() if 'teacher/top1' in ln]
    assert val and 'recall_0' not in val[0] and 'teacher/mean_recall' in val[0]
    scalars = [json.loads(ln) for ln in
               open(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))[0])]
    keys = set().union(*scalars)
    # every class's figures are still recorded for the backends
    assert {f'sel_n_{c}' for c in range(10)} <= keys
    assert {f'teacher/recall_{c}' for c in range(10)} <= keys


def test_console_shows_the_run_and_the_log_file_holds_the_rest(split_file, tmp_path):
    # catches: the environment, config and hook tables (300+ lines) on the console before
    # the first iteration, and a console filter that also strips them from the log file
    import subprocess
    import sys
    work = tmp_path / 'run'
    opts = ['max_iters=2', 'train_cfg.val_interval=2', 'labeled_batch_size=4',
            'train_dataloader.batch_size=12', 'train_dataloader.sampler.labeled_batch_size=4',
            'train_dataloader.sampler.unlabeled_ratio=2', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'default_hooks.logger.interval=1',
            f'train_dataloader.dataset.labeled.split_file={split_file}',
            f'train_dataloader.dataset.unlabeled.split_file={split_file}',
            f'val_dataloader.dataset.split_file={split_file}', 'model.model.width=8']
    proc = subprocess.run(
        [sys.executable, '-m', 'ssvision.cli', 'train',
         'ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py', '--work-dir', str(work),
         '--cfg-options', *opts], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = proc.stdout.splitlines()
    first = next(i for i, ln in enumerate(console) if 'Iter(train)' in ln)
    assert first <= 15, '\n'.join(console[:first])
    assert any('environment, config and hooks:' in ln for ln in console)
    log = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    assert 'System environment:' in log and 'Config:' in log
    assert 'Hooks will be executed in the following order' in log


def test_a_user_error_is_a_few_lines_and_an_exit_code(tmp_path, capsys):
    # catches: a raw traceback on the console for a typo'd key or a missing file
    from ssvision.cli import main as cli
    code = cli(['train', 'ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py',
                '--work-dir', str(tmp_path), '--cfg-options', 'optim_wraper.optimizer.lr=0.5'])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) <= 4, err
    assert 'optim_wraper' in err[0] and 'did you mean optim_wrapper' in err[0]
    assert 'Traceback' not in '\n'.join(err)
    trace = err[-1].split('traceback: ')[1].split(';')[0]
    assert 'KnobError' in open(trace).read()
    code = cli(['train', str(tmp_path / 'missing.py')])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) <= 4 and 'missing.py' in err[0], err
