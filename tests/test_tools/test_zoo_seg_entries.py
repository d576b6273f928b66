"""The zoo's segmentation-scene entries record what ``benchmarks/seg_scenes.py`` runs:
the ``build`` options of each entry are the options the entry's own command passes to
``tools/train.py`` (so ``tools/zoo.py build NAME`` retrains the measured recipe)."""

import os.path as osp
import shlex
import sys

import pytest

from ssvision import zoo

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'benchmarks'))
seg_scenes = pytest.importorskip('seg_scenes')
SCRIPT = 'python benchmarks/seg_scenes.py'


def _seg_entries():
    return [e for e in zoo.entries() if e['command'].startswith(SCRIPT)]


def test_there_are_segmentation_scene_entries():
    names = {e['name'] for e in _seg_entries()}
    assert 'dssn_deeplabv3plus-r18_scenes-1-16_items-on-photos' in names
    assert 'dssn_deeplabv3plus-r18_scenes-1-16_items-on-photos_1500it' in names


@pytest.mark.parametrize('entry', _seg_entries(), ids=lambda e: e['name'])
def test_entry_builds_what_its_command_ran(entry):
    # catches: an entry whose build leaves the schedule to the config's default (the
    # 1,500-iteration DSSN entry built with the config's 2,000 iterations and its cosine
    # over 2,000 would be another recipe than the one measured), a wrong split seed, a
    # missing backbone start, or a config of another method
    args = seg_scenes.parser().parse_args(shlex.split(entry['command'][len(SCRIPT):]))
    assert len(args.methods) == 1 and len(args.fractions) == 1 and len(args.scenes) == 1
    assert args.variant is None  # a zoo entry is a plain recipe
    method, fraction = args.methods[0], args.fractions[0]
    assert entry['config'] == seg_scenes.METHODS[method]
    assert entry['name'].startswith(f'{method}_deeplabv3plus-r18_scenes-{fraction}')
    assert (args.init is None) == ('items-on-photos' not in entry['name'])
    opts = seg_scenes.train_options(args.scenes[0], fraction, args.seed, args.iters,
                                    args.workers, args.init)
    # the loader's worker count is the builder's machine's business: samples carry their
    # own seeds (SemiSampler), so it changes no augmentation
    assert entry['build']['cfg_options'] == [
        o for o in opts if not o.startswith('train_dataloader.num_workers')]
