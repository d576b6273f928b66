"""Every algorithm under AMP fp16 and bf16, with and without channels_last, on CUDA
(select with -m gpu)."""

import math

import pytest
import torch

pytestmark = pytest.mark.gpu

NET = dict(type='WideResNet', num_classes=10, depth=10, widen_factor=1, in_channels=3,
           bn_momentum=0.1)
#: algorithm configs (classification); selectors keep every sample so every loss is on
CLS = {
    'SupervisedOnly': dict(type='SupervisedOnly'),
    'MeanTeacher': dict(type='MeanTeacher'),
    'FixMatch': dict(type='FixMatch', selector=dict(type='FixedThresholdSelector',
                                                    threshold=0.0),
                     semi_train_cfg=dict(rest_weight=1.0)),
    'FlexMatch': dict(type='FixMatch', selector=dict(type='FlexMatchSelector', num_classes=10,
                                                     num_unlabeled=16, threshold=0.0)),
    'FreeMatch': dict(type='FreeMatch', selector=dict(type='FreeMatchSelector',
                                                      num_classes=10)),
    'SoftMatch': dict(type='FixMatch', selector=dict(type='SoftMatchSelector',
                                                     num_classes=10)),
    'UDA': dict(type='UDA', semi_train_cfg=dict(tsa='exp', tsa_iters=10)),
    'ShrinkMatch': dict(type='ShrinkMatch', shrink_head=dict(threshold=0.3)),
    'DSSN': dict(type='DSSN', selector=dict(type='ClassAwareTopKSelector', ratio=1.0,
                                            floor=0.0)),
    'FixMatch+LoRot': dict(type='FixMatch', aux_heads=[dict(type='LocalRotationHead')]),
    'FixMatch+look_ahead': dict(type='FixMatch', semi_train_cfg=dict(look_ahead=True)),
}


def _batch():
    g = torch.Generator().manual_seed(0)
    img = lambda n: torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)  # noqa: E731
    return {'inputs': {'sup': img(8), 'unsup_teacher': img(16), 'unsup_student': img(16),
                       'unsup_student2': img(16)},
            'data_samples': {'sup': {'gt_label': torch.arange(8) % 10},
                             'unsup_teacher': {'gt_label': torch.full((16,), -1),
                                               'true_label': torch.randint(0, 10, (16,)),
                                               'sample_idx': torch.arange(16)}}}


def _wrapper(params, dtype):
    from mmengine.optim import AmpOptimWrapper
    return AmpOptimWrapper(optimizer=torch.optim.SGD(params, lr=0.01, momentum=0.9),
                           dtype=dtype)


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
@pytest.mark.parametrize('name', sorted(CLS))
def test_classification_algorithms_under_amp(name, dtype, channels_last):
    # Catches a loss computed in half precision that overflows (softmax / exp / KL), a
    # selector or head buffer left on the CPU, and a channels_last network that breaks a
    # view or a concatenation in the recipe.
    import ssvision.models  # noqa: F401
    from ssvision.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(CLS[name], model=NET)).cuda()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    model.next_ema_momentum = 0.5  # as the EMA hook sets it (look-ahead reads it)
    if name == 'ShrinkMatch':
        model.aux_heads[0].certain_ratio.fill_(0.5)
    params = list(model.student.parameters()) + list(model.aux_heads.parameters())
    wrapper = _wrapper(params, dtype)
    for _ in range(2):
        log = model.train_step(_batch(), wrapper)
        for key, value in log.items():
            if 'loss' in key:
                assert math.isfinite(float(value)), (key, float(value))
    assert all(torch.isfinite(p).all() for p in model.student.parameters())


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_segmentation_and_detection_under_amp(dtype, top_half_selector):
    # DSSN on DeepLabV3+ (CutMix, the Siamese head, device-made strong views) and the
    # source-free RetinaNet with ignore regions, under both AMP dtypes, both networks in
    # channels_last.
    import ssvision.models  # noqa: F401
    from ssvision.models.algorithms import SemiDetector
    from ssvision.registry import MODELS
    torch.manual_seed(0)
    seg = MODELS.build(dict(
        type='DSSN', model=dict(type='DeepLabV3Plus', backbone='resnet18', num_classes=3),
        task=dict(type='SegmentationTask'),
        data_preprocessor=dict(type='SemiDataPreprocessor', mean=(123.7, 116.3, 103.5),
                               std=(58.4, 57.1, 57.4), batch_augments=dict(
                                   unsup_student=dict(type='BatchColorAugment',
                                                      source='unsup_teacher'),
                                   unsup_student2=dict(type='BatchColorAugment',
                                                       source='unsup_teacher'))),
        selector=dict(type='ClassAwareTopKSelector', ratio=1.0, floor=0.0),
        semi_train_cfg=dict(cutmix_prob=0.5))).cuda().to(memory_format=torch.channels_last)
    seg.train()
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (2, 3, 64, 64), generator=g, dtype=torch.uint8)
    batch = {'inputs': {'sup': img, 'unsup_teacher': img.flip(-1)},
             'data_samples': {'sup': {'gt_seg': torch.randint(0, 3, (2, 64, 64),
                                                              generator=g)}}}
    wrapper = _wrapper(seg.student.parameters(), dtype)
    for _ in range(2):
        log = seg.train_step(batch, wrapper)
        assert all(math.isfinite(float(v)) for k, v in log.items() if 'loss' in k)

    det = SemiDetector(
        detector=dict(type='TorchvisionDetector', arch='retinanet', backbone='resnet18',
                      num_classes=3, min_size=64, max_size=64,
                      anchor_sizes=(8, 16, 32, 64, 128), score_thresh=0.0,
                      detections_per_img=20),
        selector=dict(type='FixedScoreBoxSelector', threshold=0.0),
        semi_train_cfg=dict(source_free=True, reg_uncertainty=None, ignore_score=0.0)).cuda()
    det = det.to(memory_format=torch.channels_last)
    det._random_start = None
    det.policy.selector = top_half_selector
    det.train()
    imgs = [torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8)
            for _ in range(2)]
    eye = torch.eye(3).expand(2, 3, 3).clone()
    batch = {'inputs': {'unsup_teacher': imgs, 'unsup_student': [i.clone() for i in imgs]},
             'data_samples': {'unsup_teacher': {'homography': eye},
                              'unsup_student': {'homography': eye.clone()}}}
    wrapper = _wrapper(det.student.parameters(), dtype)
    for _ in range(2):
        log = det.train_step(batch, wrapper)
        assert math.isfinite(float(log['loss']))
        assert float(log['pb_ignore_per_img']) > 0  # ignore regions were built and used
