"""UDA, ShrinkMatch, LoRot, FST-D / FST-W and source-free detection (WSCoL, ignore regions)
under CUDA AMP (select with -m gpu)."""

import math

import pytest
import torch

pytestmark = pytest.mark.gpu

NET = dict(type='TinyCNN', num_classes=10, in_channels=1, width=8)
MODELS_UNDER_TEST = {
    'UDA': dict(type='UDA', semi_train_cfg=dict(tsa='exp', tsa_iters=10)),
    'ShrinkMatch': dict(type='ShrinkMatch', shrink_head=dict(threshold=0.3)),
    'FixMatch+LoRot-E': dict(type='FixMatch', aux_heads=[
        dict(type='LocalRotationHead', views=('sup', 'unsup_teacher'))]),
    'FixMatch+LoRot-I': dict(type='FixMatch', aux_heads=[
        dict(type='LocalRotationHead', variant='I')]),
    'FixMatch+FST-D': dict(type='FixMatch', semi_train_cfg=dict(look_ahead=True,
                                                                look_ahead_steps=3)),
    'FixMatch+FST-W': dict(type='FixMatch', semi_train_cfg=dict(look_ahead=True,
                                                                look_ahead_width=3)),
}
#: the scalar each method adds to the log
KEYS = {'UDA': 'sup_tsa_frac', 'ShrinkMatch': 'aux_shrink_loss',
        'FixMatch+LoRot-E': 'aux_lorot_loss', 'FixMatch+LoRot-I': 'aux_lorot_loss',
        'FixMatch+FST-D': 'unsup_loss', 'FixMatch+FST-W': 'unsup_loss'}


def _batch():
    g = torch.Generator().manual_seed(0)
    img = lambda n: torch.randint(0, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8)  # noqa: E731
    return {'inputs': {'sup': img(4), 'unsup_teacher': img(9), 'unsup_student': img(9)},
            'data_samples': {'sup': {'gt_label': torch.randint(0, 10, (4,), generator=g)},
                             'unsup_teacher': {'gt_label': torch.full((9,), -1),
                                               'true_label': torch.randint(0, 10, (9,)),
                                               'sample_idx': torch.arange(9)}}}


def _f(value):
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


@pytest.mark.parametrize('name', sorted(MODELS_UNDER_TEST))
def test_method_trains_finite_under_amp(name):
    from mmengine.optim import AmpOptimWrapper

    import ssvision.models  # noqa: F401
    from ssvision.registry import MODELS
    cfg = dict(MODELS_UNDER_TEST[name], model=NET,
               selector=dict(type='FixedThresholdSelector', threshold=0.5))
    model = MODELS.build(cfg).cuda()
    model.train()
    model.next_ema_momentum = 0.5  # as the EMA hook sets it (look-ahead reads it)
    if name == 'ShrinkMatch':  # some certainty seen: the shrink loss is on
        model.aux_heads[0].certain_ratio.fill_(0.5)
    params = list(model.student.parameters()) + list(model.aux_heads.parameters())
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(params, lr=0.01))
    for _ in range(2):
        log = model.train_step(_batch(), wrapper)
        assert math.isfinite(_f(log['loss'])) and math.isfinite(_f(log[KEYS[name]]))
    assert all(torch.isfinite(p).all() for p in model.student.parameters())


def test_source_free_detector_with_wscol_and_ignore_regions_under_amp(top_half_selector):
    # Source-free mean teacher + WSCoL's box contrast + ignore regions on CUDA with fp16
    # autocast: catches a half-precision contrast (exp overflow) or ignore regions built
    # on the CPU while the anchors are on the GPU.
    from mmengine.optim import AmpOptimWrapper

    from ssvision.models.algorithms import SemiDetector
    size = 64
    torch.manual_seed(0)
    model = SemiDetector(
        detector=dict(type='TorchvisionDetector', arch='retinanet', backbone='resnet18',
                      num_classes=3, min_size=size, max_size=size,
                      anchor_sizes=(8, 16, 32, 64, 128), score_thresh=0.0,
                      detections_per_img=20),
        selector=dict(type='FixedScoreBoxSelector', threshold=0.0),
        semi_train_cfg=dict(source_free=True, reg_uncertainty=None, ignore_score=0.0),
        aux_heads=[dict(type='WeakStrongContrastHead', num_background=3)]).cuda()
    with torch.no_grad():  # stands for load_from: a start that differs from the build
        for p in model.teacher.parameters():
            p.add_(1e-3 * torch.randn_like(p))
        model.student.load_state_dict(model.teacher.state_dict())
    model._random_start = None
    model.policy.selector = top_half_selector
    model.train()
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
            for _ in range(2)]
    eye = torch.eye(3).expand(2, 3, 3).clone()
    batch = {'inputs': {'unsup_teacher': imgs, 'unsup_student': [i.clone() for i in imgs]},
             'data_samples': {'unsup_teacher': {'homography': eye},
                              'unsup_student': {'homography': eye.clone()}}}
    params = list(model.student.parameters()) + list(model.aux_heads.parameters())
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(params, lr=0.001))
    for _ in range(2):
        log = model.train_step(batch, wrapper)
        for key in ('loss', 'unsup_loss_cls', 'aux_wscol_loss'):
            assert math.isfinite(_f(log[key])), key
        assert _f(log['pb_ignore_per_img']) > 0  # ignore regions were built and used
    assert all(torch.isfinite(p).all() for p in model.student.parameters())
