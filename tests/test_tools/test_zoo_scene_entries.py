"""The zoo's scene entries record what ``benchmarks/det_scenes.py`` and
``benchmarks/seg_scenes.py`` run: the ``build`` options of each entry are the options the
entry's own command passes to ``tools/train.py`` (so ``tools/zoo.py build NAME`` retrains
the measured recipe). The loader's worker count is left out: it is the builder's
machine's business, and samples carry their own seeds (``SemiSampler``), so it changes no
augmentation."""

import os.path as osp
import shlex

import pytest

from ssvision import zoo

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
det_scenes = pytest.importorskip('benchmarks.det_scenes')
seg_scenes = pytest.importorskip('benchmarks.seg_scenes')
DET = 'python -m benchmarks.det_scenes'
SEG = 'python -m benchmarks.seg_scenes'


def _entries(script):
    return [e for e in zoo.entries() if e['command'].startswith(script)]


def _without_workers(opts):
    return [o for o in opts if not o.startswith('train_dataloader.num_workers')]


def test_there_are_detection_scene_entries():
    names = {e['name'] for e in _entries(DET)}
    assert 'classaware_retinanet-r18_detscenes-5pc_items-on-photos' in names
    assert 'classaware_fasterrcnn-r18_detscenes-5pc_items-on-photos' in names


@pytest.mark.parametrize('entry', _entries(DET), ids=lambda e: e['name'])
def test_detection_entry_builds_what_its_command_ran(entry):
    # catches: an entry written by hand that drops an option of the run it quotes (the
    # Faster R-CNN entries without the scene RoI budget would build a detector with
    # torchvision's COCO budget, a different recipe from the one measured), a wrong
    # split fold or schedule, or a config of another method / detector
    args = det_scenes.parser().parse_args(shlex.split(entry['command'][len(DET):]))
    assert len(args.methods) == 1 and len(args.percents) == 1 and len(args.scenes) == 1
    assert args.init_iters == 0  # a shared burn-in run is not part of a zoo build
    method = args.methods[0]
    assert entry['config'] == det_scenes.config(method, args.detector)
    assert entry['name'].startswith(f'{method}_{args.detector}-r18_')
    opts = det_scenes.train_options(method, args.scenes[0], args.percents[0], args.seed,
                                    args.iters, args.workers, args.init, args.rois)
    assert entry['build']['cfg_options'] == _without_workers(opts)


def test_there_are_segmentation_scene_entries():
    names = {e['name'] for e in _entries(SEG)}
    assert 'dssn-topk_deeplabv3plus-r18_scenes-1-16_items-on-photos' in names
    assert 'dssn-topk_deeplabv3plus-r18_scenes-1-16_items-on-photos_1500it' in names


@pytest.mark.parametrize('entry', _entries(SEG), ids=lambda e: e['name'])
def test_segmentation_entry_builds_what_its_command_ran(entry):
    # catches: an entry whose build leaves the schedule to the config's default (the
    # 1,500-iteration DSSN entry built with the config's 2,000 iterations and its cosine
    # over 2,000 would be another recipe than the one measured), a wrong split seed, a
    # missing backbone start, or a config of another method
    args = seg_scenes.parser().parse_args(shlex.split(entry['command'][len(SEG):]))
    assert len(args.methods) == 1 and len(args.fractions) == 1 and len(args.scenes) == 1
    assert args.variant is None  # a zoo entry is a plain recipe
    method, fraction = args.methods[0], args.fractions[0]
    assert entry['config'] == seg_scenes.METHODS[method]
    assert entry['name'].startswith(f'{method}_deeplabv3plus-r18_scenes-{fraction}')
    assert (args.init is None) == ('items-on-photos' not in entry['name'])
    opts = seg_scenes.train_options(args.scenes[0], fraction, args.seed, args.iters,
                                    args.workers, args.init, method=method)
    assert entry['build']['cfg_options'] == _without_workers(opts)
