"""ssvision inside mmdetection: real iterations through mmdetection's Runner.

Needs mmdet 3.x and a full mmcv (ops compiled from source, see DEVELOPERS.md); marked
``mmdet`` (``pytest -m mmdet``); ``.ci/run`` installs both and runs them.
"""

import copy
import math
import os.path as osp

import pytest
import torch

pytestmark = pytest.mark.mmdet
mmdet = pytest.importorskip('mmdet')
pytest.importorskip('mmcv.ops')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/mmdet/ssv-retinanet_r18_fpn_2k_detscenes-10pc.py')


def _fcos(num_classes):
    return dict(
        type='FCOS',
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True,
                               pad_size_divisor=32),
        backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                      frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                      norm_eval=False, style='pytorch'),
        neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=64, start_level=1,
                  add_extra_convs='on_output', num_outs=5, relu_before_extra_convs=True),
        bbox_head=dict(type='FCOSHead', num_classes=num_classes, in_channels=64,
                       stacked_convs=2, feat_channels=64, strides=[8, 16, 32, 64, 128],
                       loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                                     loss_weight=1.0),
                       loss_bbox=dict(type='IoULoss', loss_weight=1.0),
                       loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True,
                                            loss_weight=1.0)),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.0,
                      nms=dict(type='nms', iou_threshold=0.5), max_per_img=50))


def _faster_rcnn(num_classes):
    pre = dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
               std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32)
    return dict(
        type='FasterRCNN', data_preprocessor=pre,
        backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
                      frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True),
                      norm_eval=False, style='pytorch'),
        neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=64, num_outs=5),
        rpn_head=dict(
            type='RPNHead', in_channels=64, feat_channels=64,
            anchor_generator=dict(type='AnchorGenerator', scales=[4], ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                            target_stds=[1.0] * 4),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(type='SingleRoIExtractor',
                                    roi_layer=dict(type='RoIAlign', output_size=7,
                                                   sampling_ratio=0),
                                    out_channels=64, featmap_strides=[4, 8, 16, 32]),
            bbox_head=dict(type='Shared2FCBBoxHead', in_channels=64, fc_out_channels=128,
                           roi_feat_size=7, num_classes=num_classes,
                           bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                                           target_stds=[0.1, 0.1, 0.2, 0.2]),
                           reg_class_agnostic=False,
                           loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                         loss_weight=1.0),
                           loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
        train_cfg=dict(
            rpn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3,
                                   min_pos_iou=0.3, match_low_quality=True, ignore_iof_thr=-1),
                     sampler=dict(type='RandomSampler', num=64, pos_fraction=0.5,
                                  neg_pos_ub=-1, add_gt_as_proposals=False),
                     allowed_border=-1, pos_weight=-1, debug=False),
            rpn_proposal=dict(nms_pre=500, max_per_img=200, nms=dict(type='nms', iou_threshold=0.7),
                              min_bbox_size=0),
            rcnn=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                                    min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1),
                      sampler=dict(type='RandomSampler', num=128, pos_fraction=0.25,
                                   neg_pos_ub=-1, add_gt_as_proposals=True),
                      pos_weight=-1, debug=False)),
        test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200,
                               nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
                      rcnn=dict(score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                                max_per_img=50)))


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    from ssvision.datasets import write_coco_scenes, write_coco_split
    root = tmp_path_factory.mktemp('mmdet_scenes')
    ann = write_coco_scenes(str(root / 'train'), 8, seed=0, items='mnist5k', size=64)
    val = write_coco_scenes(str(root / 'val'), 2, seed=1, items='mnist5k', size=64)
    lab, unl = write_coco_split(ann, str(root / 'splits'), percents=(50,), seeds=(1,))
    return dict(root=root, lab=lab, unl=unl, val=val)


def _cfg(scenes, tmp_path, detector=None, selector=None, iters=2):
    from mmengine.config import Config, ConfigDict
    cfg = Config.fromfile(CONFIG)
    classes = tuple(str(d) for d in range(10))
    for i, ann in enumerate((scenes['lab'], scenes['unl'])):
        ds = cfg.train_dataloader.dataset.datasets[i]
        ds.ann_file, ds.metainfo = ann, dict(classes=classes)
        ds.data_prefix = dict(img=str(scenes['root'] / 'train' / 'images') + '/')
    cfg.val_dataloader.dataset.update(ann_file=scenes['val'], metainfo=dict(classes=classes),
                                      data_prefix=dict(img=str(scenes['root'] / 'val' /
                                                               'images') + '/'))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = scenes['val']
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.num_workers, loader.persistent_workers = 0, False
    cfg.train_dataloader.batch_size = cfg.train_dataloader.sampler.batch_size = 4
    if detector is not None:
        cfg.model.detector = ConfigDict(detector)
        cfg.model.data_preprocessor.data_preprocessor = ConfigDict(
            detector['data_preprocessor'])
    else:
        cfg.model.detector.test_cfg.score_thr = 0.0
    cfg.model.semi_train_cfg.selector = ConfigDict(selector or dict(
        type='ClassAwareBoxSelector', num_classes=10, ratio=0.5, floor=0.0, min_score=0.0))
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = iters
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = iters
    cfg.param_scheduler = []
    cfg.work_dir = str(tmp_path)
    return cfg


def _train(cfg):
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.parametrize('name', ['retinanet', 'fcos', 'faster_rcnn'])
def test_wrapped_mmdet_detectors_train_with_class_aware_pseudo_boxes(scenes, tmp_path, name):
    detector = {'retinanet': None, 'fcos': _fcos(10), 'faster_rcnn': _faster_rcnn(10)}[name]
    runner = _train(_cfg(scenes, tmp_path, detector))
    hub = runner.message_hub
    assert hub.get_scalar('train/pb_per_img').current() > 0  # the teacher yields boxes
    unsup = [k for k in hub.log_scalars if k.startswith('train/unsup_loss')]
    assert unsup and all(math.isfinite(hub.get_scalar(k).current()) for k in unsup)
    assert sum(hub.get_scalar(k).current() for k in unsup) > 0
    assert any(k.startswith('val/teacher/coco/bbox_mAP') for k in hub.log_scalars)
    assert any(k.startswith('val/student/coco/bbox_mAP') for k in hub.log_scalars)
    assert hasattr(runner.model, 'selector') and 'box_thr_0' in ''.join(hub.log_scalars)


def test_nothing_selected_gives_exactly_zero_unsup_loss(scenes, tmp_path):
    cfg = _cfg(scenes, tmp_path, selector=dict(type='FixedScoreBoxSelector', threshold=1.01))
    cfg.val_cfg = dict(type='TeacherStudentValLoop')
    runner = _train(cfg)
    hub = runner.message_hub
    assert hub.get_scalar('train/pb_per_img').current() == 0
    assert hub.get_scalar('train/unsup_loss').current() == 0.0
    assert math.isfinite(hub.get_scalar('train/loss').current())


def test_plain_mmdet_checkpoint_loads_into_teacher_and_student(scenes, tmp_path, hub,
                                                              server):
    """A plain mmdetection checkpoint, from a file and from an OpenMMLab-style URL
    (``<name>-<sha256 prefix>.pth``, served on 127.0.0.1), fills teacher and student;
    a URL whose file does not match its name's hash is refused (mmengine's own URL
    loader would load it)."""
    import hashlib
    import os

    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import ssvision.integrations.mmdet  # noqa: F401
    from ssvision.checkpoints import ChecksumError
    init_default_scope('mmdet')
    cfg = _cfg(scenes, tmp_path)
    plain = MODELS.build(copy.deepcopy(cfg.model.detector))
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_()
    path = str(tmp_path / 'plain.pth')
    torch.save({'state_dict': plain.state_dict()}, path)
    with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    root, url = server
    os.link(path, root / f'retinanet_r18-{digest[:8]}.pth')
    os.link(path, root / 'retinanet_r18-00000000.pth')
    for source in (path, f'{url}/retinanet_r18-{digest[:8]}.pth'):
        semi = MODELS.build(cfg.model)
        load_checkpoint(semi, source, map_location='cpu')
        for name, value in plain.state_dict().items():
            torch.testing.assert_close(semi.teacher.state_dict()[name], value)
            torch.testing.assert_close(semi.student.state_dict()[name], value)
    with pytest.raises(ChecksumError):
        load_checkpoint(MODELS.build(cfg.model), f'{url}/retinanet_r18-00000000.pth')


def test_pseudo_boxes_are_the_unflipped_teacher_detections(scenes, tmp_path):
    """The flipped teacher pass (regression gate) must not replace the detections, and
    each image is flipped inside its own extent of the padded batch."""
    import numpy as np
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.registry import init_default_scope

    import ssvision.integrations.mmdet  # noqa: F401
    init_default_scope('mmdet')
    cfg = _cfg(scenes, tmp_path)
    cfg.model.semi_train_cfg.reg_uncertainty = 0.1
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    x = torch.randn(2, 3, 64, 96)
    samples = []
    for w in (96, 64):  # the second image is padded from 64 to 96 wide
        s = DetDataSample(metainfo=dict(img_shape=(64, w), ori_shape=(64, w),
                                        pad_shape=(64, 96), scale_factor=(1.0, 1.0),
                                        homography_matrix=np.eye(3, dtype=np.float32)))
        samples.append(s)
    x[1, :, :, 64:] = 0
    expect = model.teacher.predict(x, [s.clone() for s in samples], rescale=False)
    pseudo = model.pseudo_boxes(x, [s.clone() for s in samples], [s.clone() for s in samples])
    for e, cls, reg in zip(expect, pseudo.cls, pseudo.reg):
        assert len(cls) > 0
        # every pseudo-box is one of the unflipped detections (up to the clip to the
        # student's image that the move applies); the reliable ones are a subset
        d = torch.cdist(cls.bboxes, e.pred_instances.bboxes).min(dim=1).values
        assert float(d.max()) < 0.5
        assert len(reg) <= len(cls)
        assert (reg.bboxes[:, None] == cls.bboxes[None]).all(-1).any(1).all()


def test_plugin_and_native_detector_share_one_pseudo_box_policy():
    """From the same teacher output (detections, flipped detections, view matrices,
    true boxes), ssvision's SemiDetector and the mmdetection plug-in must produce the
    same pseudo-boxes, regression subsets and health figures. Catches a policy copy
    that drifts in one of them: per-class counts taken before the move in one and after
    it in the other, a health figure (pb_recall, teacher_conf) missing in one, a second
    size filter."""
    import numpy as np
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope, init_default_scope
    from mmengine.structures import InstanceData

    import ssvision.integrations.mmdet  # noqa: F401
    from ssvision.models.algorithms import SemiDetector
    from ssvision.structures import DetInstances
    init_default_scope('mmdet')
    selector = dict(type='ClassAwareBoxSelector', num_classes=3, ratio=0.5, floor=0.2,
                    ceil=0.9, min_score=0.05)
    plugin = MODELS.build(ConfigDict(
        type='SsvSemiDetector', detector=_fcos(3),
        data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                               data_preprocessor=_fcos(3)['data_preprocessor']),
        semi_train_cfg=dict(min_pseudo_bbox_wh=(3.0, 3.0), reg_uncertainty=0.1,
                            selector=selector)))
    with DefaultScope.overwrite_default_scope('ssvision'):
        native = SemiDetector(
            detector=dict(type='TorchvisionDetector', arch='retinanet', backbone='resnet18',
                          num_classes=3, min_size=64, max_size=96),
            selector=selector, semi_train_cfg=dict(min_box_size=3.0, reg_uncertainty=0.1))
    plugin.train()
    native.train()
    g = torch.Generator().manual_seed(0)

    def boxes(n):
        xy = torch.rand(n, 2, generator=g) * torch.tensor([80.0, 50.0])
        wh = 4 + torch.rand(n, 2, generator=g) * 30
        return torch.cat([xy, xy + wh], dim=1)

    # plus, per image, a confident box at the right edge that the move into the student
    # view clips to about 2 px (image 0) or leaves whole (image 1, mirrored): the size
    # filter must drop the first in both detectors
    edge = torch.tensor([[92.0, 10, 96, 30]])
    dets = [DetInstances(torch.cat([boxes(12), edge]),
                         torch.cat([torch.randint(0, 3, (12,), generator=g), torch.tensor([0])]),
                         torch.cat([torch.rand(12, generator=g), torch.tensor([0.99])]))
            for _ in range(2)]
    # flipped-view detections: the same boxes mirrored in a 96-wide view, a few nudged
    flipped = []
    for d in dets:
        b = d.bboxes.clone()
        b[:, 0], b[:, 2] = 96 - d.bboxes[:, 2], 96 - d.bboxes[:, 0]
        b[::3] += 6.0
        flipped.append(DetInstances(b, d.labels, d.scores))
    true = [DetInstances(d.bboxes[:4] + 1.0, d.labels[:4]) for d in dets]
    h_student = [torch.tensor([[0.9, 0, 5], [0, 0.9, -3], [0, 0, 1]]),
                 torch.tensor([[-1.0, 0, 96], [0, 1, 0], [0, 0, 1]])]  # a flip
    # the views (their pixels are never looked at: the teachers are replaced)
    weak = torch.zeros(2, 3, 64, 96)
    strong = torch.zeros(2, 3, 60, 90)
    for sel in (native.selector, plugin.selector):  # the same labeled count prior
        sel.observe([torch.tensor([0, 1, 1]), torch.tensor([2])])

    calls = []

    def teacher_output(*args):
        calls.append(len(calls))
        return [d for d in (dets if len(calls) % 2 else flipped)]

    native.teacher_predict = teacher_output
    inputs = {'unsup_teacher': list(weak), 'unsup_student': list(strong)}
    samples = {'unsup_teacher': {'homography': torch.eye(3).expand(2, 3, 3),
                                 'true_instances': true},
               'unsup_student': {'homography': torch.stack(h_student)}}
    ours = native.project_pseudo_labels(native.get_pseudo_labels(inputs, samples, 0),
                                        samples).boxes
    plugin._detect = teacher_output
    t_samples, s_samples = [], []
    for i in range(2):
        t = DetDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96),
                                        homography_matrix=np.eye(3, dtype=np.float32)))
        t.gt_instances = InstanceData(bboxes=true[i].bboxes, labels=true[i].labels)
        t_samples.append(t)
        s_samples.append(DetDataSample(metainfo=dict(
            img_shape=(60, 90), ori_shape=(64, 96),
            homography_matrix=h_student[i].numpy().astype(np.float32))))
    theirs = plugin.pseudo_boxes(weak, t_samples, s_samples)
    assert len(calls) == 4  # detections and flipped detections, once per detector
    assert sum(len(p) for p in ours.cls) > 0 and sum(len(p) for p in ours.reg) > 0
    assert sum(len(p) for p in ours.reg) < sum(len(p) for p in ours.cls)  # the gate acts
    for part in ('cls', 'reg'):
        for a, b in zip(getattr(ours, part), getattr(theirs, part)):
            torch.testing.assert_close(a.bboxes, b.bboxes)
            assert torch.equal(a.labels, b.labels)
    assert set(ours.health) == set(theirs.health)
    assert {'pb_recall', 'pb_prec', 'teacher_conf', 'pb_reg_frac'} <= set(ours.health)
    for key in ours.health:
        torch.testing.assert_close(ours.health[key].float(), theirs.health[key].float())


def test_resumed_plugin_run_continues_from_the_checkpoint(scenes, tmp_path):
    """With the example config's ResumeStateHook, mmdetection's Runner resumes a plug-in
    run under torch's weights_only loading: model (teacher, student, selector thresholds)
    and log history come from the checkpoint, and training continues from its iteration."""
    from mmengine.hooks import Hook

    cfg = _cfg(scenes, tmp_path / 'first', iters=2)
    assert any(h['type'] == 'ssvision.ResumeStateHook' for h in cfg.custom_hooks)
    first = _train(cfg)
    ckpt = osp.join(tmp_path / 'first', 'iter_2.pth')
    saved = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert bool(saved['state_dict']['selector.seen'].any())

    seen = {}

    class Probe(Hook):
        def before_train(self, runner):
            seen['iter'] = runner.iter
            seen['state'] = {k: v.detach().clone()
                             for k, v in runner.model.state_dict().items()}

    cfg = _cfg(scenes, tmp_path / 'second', iters=3)
    cfg.resume, cfg.load_from = True, ckpt
    cfg.randomness = dict(seed=1)  # the first two losses must still be the saved ones
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    runner.register_hook(Probe())
    runner.train()
    assert seen['iter'] == 2 and runner.iter == 3
    for key, value in saved['state_dict'].items():
        assert torch.equal(seen['state'][key], value), key
    first_loss = first.message_hub.get_scalar('train/loss').data[0]
    loss = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(loss) == 3 and list(loss[:2]) == list(first_loss)
