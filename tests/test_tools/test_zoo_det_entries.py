"""The zoo's detection-scene entries record what ``benchmarks/det_scenes.py`` runs: the
``build`` options of each entry are the options the entry's own command passes to
``tools/train.py`` (so ``tools/zoo.py build NAME`` retrains the measured recipe)."""

import os.path as osp
import shlex
import sys

import pytest

from ssvision import zoo

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'benchmarks'))
det_scenes = pytest.importorskip('det_scenes')
SCRIPT = 'python benchmarks/det_scenes.py'


def _det_entries():
    return [e for e in zoo.entries() if e['command'].startswith(SCRIPT)]


def test_there_are_detection_scene_entries():
    names = {e['name'] for e in _det_entries()}
    assert 'classaware_retinanet-r18_detscenes-5pc_items-on-photos' in names
    assert 'classaware_fasterrcnn-r18_detscenes-5pc_items-on-photos' in names


@pytest.mark.parametrize('entry', _det_entries(), ids=lambda e: e['name'])
def test_entry_builds_what_its_command_ran(entry):
    # catches: an entry written by hand that drops an option of the run it quotes (the
    # Faster R-CNN entries without the scene RoI budget would build a detector with
    # torchvision's COCO budget, a different recipe from the one measured), a wrong
    # split fold or schedule, or a config of another method / detector
    args = det_scenes.parser().parse_args(shlex.split(entry['command'][len(SCRIPT):]))
    assert len(args.methods) == 1 and len(args.percents) == 1 and len(args.scenes) == 1
    assert args.init_iters == 0  # a shared burn-in run is not part of a zoo build
    method = args.methods[0]
    assert entry['config'] == det_scenes.config(method, args.detector)
    assert entry['name'].startswith(f'{method}_{args.detector}-r18_')
    opts = det_scenes.train_options(method, args.scenes[0], args.percents[0], args.seed,
                                    args.iters, args.workers, args.init, args.rois)
    assert entry['build']['cfg_options'] == [
        o for o in opts if not o.startswith('train_dataloader.num_workers')]
