"""``python -m benchmarks.seg_scenes --variant``: a variant name stands for one set of options."""

import argparse
import json
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
seg_scenes = pytest.importorskip('benchmarks.seg_scenes')


def test_a_variant_name_reused_with_other_options_is_refused(tmp_path):
    # catches: a rerun of `--variant x A=2` silently reusing the finished `--variant x A=1`
    # runs (work dirs are named by the variant name only) and recording them as A=2
    parser = argparse.ArgumentParser()
    work_dir = str(tmp_path / 'fixmatch_balanced_1-16_seed0_600it_v-x')
    seg_scenes.check_variant(parser, work_dir, ['a=1'])
    with open(osp.join(work_dir, 'variant_options.json')) as f:
        assert json.load(f) == ['a=1']
    seg_scenes.check_variant(parser, work_dir, ['a=1'])  # the same options: reused
    with pytest.raises(SystemExit):
        seg_scenes.check_variant(parser, work_dir, ['a=2'])
