"""``python -m benchmarks.summarize --scenes``: gains over supervised are paired by seed."""

import json
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
summarize = pytest.importorskip('benchmarks.summarize')


def _write(folder, rows):
    folder.mkdir()
    with open(folder / 'results.jsonl', 'w') as f:
        for r in rows:
            row = dict(phase='train', scenes='balanced', fraction='1-16', iters=600,
                       init='zoo://start')
            f.write(json.dumps({**row, **r}) + '\n')
    return str(folder)


def test_gains_pair_seeds_across_folders_and_apply_the_bar(tmp_path):
    # Supervised in one folder, the semi-supervised method in another, its seeds written
    # in another order and one seed without a supervised partner. Catches: pairing by
    # position instead of by seed (gains 0.5 - 30 ...), counting the unpaired seed, a
    # gain taken against another budget's supervised row, and a verdict that compares
    # the gain with one spread instead of twice it.
    sup = _write(tmp_path / 'sup', [
        dict(method='supervised', seed=0, teacher_mIoU=30.0),
        dict(method='supervised', seed=1, teacher_mIoU=34.0),
        dict(method='supervised', seed=2, teacher_mIoU=32.0),
        dict(method='supervised', seed=0, teacher_mIoU=99.0, iters=1500)])
    semi = _write(tmp_path / 'semi', [
        dict(method='fixmatch', seed=2, teacher_mIoU=35.0),
        dict(method='fixmatch', seed=0, teacher_mIoU=33.5),
        dict(method='fixmatch', seed=1, teacher_mIoU=37.5),
        dict(method='fixmatch', seed=3, teacher_mIoU=50.0),
        dict(method='dssn', seed=0, teacher_mIoU=31.0, variant='nc', variant_options=[])])
    table = summarize.gains_table([sup, semi])
    rows = {line.split(' | ')[3]: line.rstrip(' |') for line in table.splitlines()[2:]}
    assert set(rows) == {'fixmatch', 'dssn (nc)'}
    fm = rows['fixmatch'].split(' | ')
    assert fm[5] == '0: +3.5 / 1: +3.5 / 2: +3.0'
    assert fm[6] == '3.3 +- 0.3 (3)'
    assert fm[7] == '2.0'                       # supervised std over seeds 0-2 (600 it)
    assert fm[8] == 'no' and fm[9] == 'yes'     # 3.3 < 2 x 2.0; 3.3 > 2 x 0.3
    assert rows['dssn (nc)'].split(' | ')[5] == '0: +1.0'
    assert summarize.gains_table([semi]) == ''  # no supervised rows, nothing to pair


def test_detection_rows_of_another_roi_budget_are_never_paired(tmp_path):
    # Faster R-CNN with torchvision's RoI budget and with the scenes' one (det_scenes.py
    # --rois scenes; only the run-name tag says which) in one folder. Catches: grouping
    # by detector and iterations alone, which pairs a class-aware run of one recipe with
    # the supervised run of the other (or lets the later row replace the earlier).
    def det(method, seed, value, tag):
        return dict(method=method, seed=seed, teacher_mAP=value, teacher_AP50=0.0,
                    detector='fasterrcnn', percent='5', tag=tag, iters=500)
    rois = '_start_rois-scenes'
    folder = _write(tmp_path / 'det', [
        det('supervised', 0, 4.0, '_start'), det('classaware', 0, 4.5, '_start'),
        det('supervised', 0, 5.0, rois), det('classaware', 0, 8.0, rois)])
    table = summarize.gains_table([folder])
    rows = {line.split(' | ')[4]: line.split(' | ') for line in table.splitlines()[2:]}
    assert set(rows) == {'fasterrcnn 500 it', 'fasterrcnn (scenes RoIs) 500 it'}
    assert rows['fasterrcnn 500 it'][5] == '0: +0.5'
    assert rows['fasterrcnn (scenes RoIs) 500 it'][5] == '0: +3.0'
