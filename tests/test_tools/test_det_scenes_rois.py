"""``python -m benchmarks.det_scenes --rois scenes``: the RoI budget reaches every Faster R-CNN
the runs build (student and teacher), with and without the shared burn-in run."""

import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
det_scenes = pytest.importorskip('benchmarks.det_scenes')


def _jobs(monkeypatch, tmp_path, *extra):
    """The (name, config, options, row) jobs ``main`` would run; nothing is trained."""
    seen = []

    def fake_run_jobs(jobs, out_dir, parallel, metrics, val_key):
        seen.extend(jobs)
        return []

    monkeypatch.setattr(det_scenes, 'run_jobs', fake_run_jobs)
    monkeypatch.setattr(det_scenes, 'scene_parts',
                        lambda specs, scenes, parts, flags, split_file=None:
                        [('balanced', p) for p in parts])
    det_scenes.main(['--percents', '5', '--methods', 'supervised', 'classaware',
                     '--out-dir', str(tmp_path), *extra])
    return seen


def _options(opts):
    from mmengine.config import DictAction
    out = {}
    for o in opts:
        key, _, value = o.partition('=')
        out[key] = DictAction._parse_iterable(value)
    return out


@pytest.mark.parametrize('init_iters', ['0', '20'])
def test_scene_roi_budget_reaches_every_run(monkeypatch, tmp_path, init_iters):
    # catches: the budget added only where no shared burn-in run exists (the load_from
    # branch of main dropped the backbone options, and the RoI options with them), or
    # to the burn-in run but not to the runs that load it
    jobs = _jobs(monkeypatch, tmp_path, '--rois', 'scenes', '--init-iters', init_iters)
    assert len(jobs) == (3 if init_iters == '20' else 2)
    for name, _, opts, _ in jobs:
        assert 'rois-scenes' in name  # never mixed with default-budget runs of a folder
        got = {k: v for k, v in _options(opts).items() if k.startswith('model.detector.')}
        for key, value in det_scenes.ROI_BUDGETS['scenes'].items():
            assert got[f'model.detector.{key}'] == value, (name, key)


def test_default_budget_adds_nothing(monkeypatch, tmp_path):
    # catches: the scenes budget leaking into runs that quote torchvision's recipe
    for name, _, opts, _ in _jobs(monkeypatch, tmp_path):
        assert 'rois' not in name
        assert not any(k in o for o in opts for k in det_scenes.ROI_BUDGETS['scenes'])


def test_rois_is_refused_for_retinanet(monkeypatch, tmp_path):
    # catches: RetinaNet runs named "_rois-scenes" whose detector ignored the options
    with pytest.raises(SystemExit):
        _jobs(monkeypatch, tmp_path, '--detector', 'retinanet', '--rois', 'scenes')


def test_scene_budget_is_what_the_student_and_teacher_run(monkeypatch, tmp_path):
    # catches: an option name that sets nothing (torchvision's FasterRCNN hands unknown
    # keyword arguments on to its transform, which swallows them without an error), or
    # a teacher built without the budget
    from mmengine.config import Config

    import ssvision  # noqa: F401  (registers the modules)
    from ssvision.registry import MODELS
    name, config, opts, _ = [j for j in _jobs(monkeypatch, tmp_path, '--rois', 'scenes')
                             if j[0].startswith('classaware')][0]
    cfg = Config.fromfile(osp.join(REPO, config))
    cfg.merge_from_dict({k: v for k, v in _options(opts).items() if k.startswith('model.')})
    model = MODELS.build(cfg.model)
    budget = det_scenes.ROI_BUDGETS['scenes']
    for net in (model.student.net, model.teacher.net):
        assert net.roi_heads.fg_bg_sampler.batch_size_per_image == \
            budget['box_batch_size_per_image']
        assert net.rpn._post_nms_top_n == dict(training=budget['rpn_post_nms_top_n_train'],
                                               testing=budget['rpn_post_nms_top_n_test'])
        assert net.rpn._pre_nms_top_n == dict(training=budget['rpn_pre_nms_top_n_train'],
                                              testing=budget['rpn_pre_nms_top_n_test'])


def test_variant_names_the_runs_and_keeps_the_recipe_grouping(monkeypatch, tmp_path):
    # catches: a variant whose options never reach the runs, a run name that reuses the
    # plain runs' work dirs, and a name suffix that breaks summarize.py's reading of the
    # RoI budget from the tag (a variant row grouped with another recipe)
    from benchmarks import summarize
    jobs = _jobs(monkeypatch, tmp_path, '--rois', 'scenes', '--variant', 'ignore02',
                 'model.semi_train_cfg.ignore_score=0.2')
    for name, _, opts, row in jobs:
        assert name.endswith('_rois-scenes_v-ignore02')
        assert opts[-1] == 'model.semi_train_cfg.ignore_score=0.2'
        assert row['variant'] == 'ignore02'
        assert summarize._budget(row)[1] == 'scenes'
    with pytest.raises(SystemExit):  # the same name with other options is refused
        _jobs(monkeypatch, tmp_path, '--rois', 'scenes', '--variant', 'ignore02',
              'model.semi_train_cfg.ignore_score=0.3')
