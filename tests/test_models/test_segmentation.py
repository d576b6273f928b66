"""Segmentors and the segmentation task adapter on tiny inputs (CPU, offline)."""

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_large
from torchvision.models import segmentation as tv_seg

from ssvision.models.segmentors import DeepLabV3Plus, TorchvisionSegmentor
from ssvision.models.tasks.segmentation import IGNORE_INDEX, SegmentationTask
from ssvision.registry import MODELS

SIZE = 64
NUM_CLASSES = 3


@pytest.fixture(autouse=True)
def _offline_one_thread(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: extra threads only add contention
    yield
    torch.set_num_threads(threads)


def _images(n=2, channels=3, seed=0):
    return torch.randn(n, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize('cfg, feat_shape', [
    (dict(type='DeepLabV3Plus', backbone='resnet18'), (128, 16, 16)),
    (dict(type='DeepLabV3Plus', backbone='resnet18', output_stride=8, in_channels=1,
          aspp_channels=32, decoder_channels=64), (64, 16, 16)),
    (dict(type='TorchvisionSegmentor', arch='deeplabv3_mobilenet_v3_large'), (960, 4, 4)),
    (dict(type='TorchvisionSegmentor', arch='lraspp_mobilenet_v3_large'), (168, 8, 8)),
    (dict(type='TorchvisionSegmentor', arch='deeplabv3_resnet50'), (2048, 8, 8)),
])
def test_segmentor_contract(cfg, feat_shape):
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg, num_classes=NUM_CLASSES)).eval()
    x = _images(channels=model.in_channels)
    with torch.no_grad():
        feat = model.extract_feat(x)
        logits = model.forward_head(feat, x.shape[-2:])
        assert feat.shape == (2, model.feat_dim, *feat_shape[1:])
        assert model.feat_dim == feat_shape[0]
        assert logits.shape == (2, NUM_CLASSES, SIZE, SIZE)
        torch.testing.assert_close(model(x), logits)
    assert model.num_classes == NUM_CLASSES


def test_output_stride_from_timm():
    assert DeepLabV3Plus(num_classes=2, output_stride=16).output_stride == 16
    assert DeepLabV3Plus(num_classes=2, output_stride=32).output_stride == 32


def test_lraspp_matches_torchvision():
    torch.manual_seed(0)
    ref = tv_seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                           num_classes=NUM_CLASSES).eval()
    model = TorchvisionSegmentor('lraspp_mobilenet_v3_large', num_classes=NUM_CLASSES).eval()
    model.backbone.load_state_dict(ref.backbone.state_dict())
    model.classifier.load_state_dict(ref.classifier.state_dict())
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x)['out'])


def test_torchvision_aux_and_refusals():
    model = TorchvisionSegmentor(num_classes=NUM_CLASSES, aux_loss=True).eval()
    with torch.no_grad():
        out = model.forward_with_aux(_images())
    assert out['out'].shape == out['aux'].shape == (2, NUM_CLASSES, SIZE, SIZE)
    with pytest.raises(ValueError, match='never downloads'):
        TorchvisionSegmentor(weights='DEFAULT')
    with pytest.raises(ValueError, match='arch'):
        TorchvisionSegmentor(arch='fcn_resnet50')


def test_torchvision_backbone_checkpoint(tmp_path):
    torch.manual_seed(1)
    src = mobilenet_v3_large(weights=None)
    path = tmp_path / 'mbv3.pth'
    torch.save(src.state_dict(), path)  # keys 'features.*' and 'classifier.*'
    model = TorchvisionSegmentor(num_classes=NUM_CLASSES, backbone_checkpoint=str(path))
    own = model.backbone.state_dict()
    for key, value in src.state_dict().items():
        if key.startswith('features.'):
            torch.testing.assert_close(own[key[len('features.'):]], value)


def test_deeplabv3plus_checkpoint(tmp_path):
    torch.manual_seed(2)
    src = timm.create_model('resnet18', pretrained=False, num_classes=7)
    path = tmp_path / 'resnet18.pth'
    torch.save({'state_dict': src.state_dict()}, path)
    model = MODELS.build(dict(type='DeepLabV3Plus', num_classes=NUM_CLASSES,
                              checkpoint=str(path)))
    own, ref = model.backbone.state_dict(), src.state_dict()
    assert set(own) <= set(ref)
    for key, value in own.items():
        torch.testing.assert_close(value, ref[key])
    # a segmentor checkpoint (backbone.* keys) loads the same way
    seg_path = tmp_path / 'seg.pth'
    torch.save(model.state_dict(), seg_path)
    again = DeepLabV3Plus(num_classes=5, checkpoint=str(seg_path))
    torch.testing.assert_close(again.backbone.conv1.weight, src.conv1.weight)
    # 3-channel first conv adapted to a gray backbone
    gray = DeepLabV3Plus(num_classes=2, in_channels=1, checkpoint=str(path))
    assert gray.backbone.conv1.weight.shape == (64, 1, 7, 7)


def test_pretrained_not_cached_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')  # online, it would download as timm does
    with pytest.raises(FileNotFoundError, match='offline.*HF_HOME'):
        DeepLabV3Plus(num_classes=2, pretrained=True)


def test_deeplabv3plus_sgd_reduces_loss():
    torch.manual_seed(0)
    model = DeepLabV3Plus('resnet18', num_classes=2, dropout=0.0)
    task = SegmentationTask()
    x = _images(2)
    gt = (torch.arange(SIZE).view(1, 1, SIZE) >= SIZE // 2).long().expand(2, SIZE, SIZE)
    gt = gt.clone()
    gt[:, :4] = IGNORE_INDEX
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        loss = task.sup_loss(task.forward(model, x), {'gt_seg': gt})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7, losses


def _logits(seed=0, n=2, k=NUM_CLASSES, size=8):
    return torch.randn(n, k, size, size, generator=torch.Generator().manual_seed(seed))


def test_sup_loss_ignore_index():
    task = MODELS.build(dict(type='SegmentationTask'))
    logits = _logits().requires_grad_()
    gt = torch.full((2, 8, 8), IGNORE_INDEX, dtype=torch.long)
    loss = task.sup_loss(logits, {'gt_seg': gt})
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    gt[0, :3] = 1
    gt[1, 5:] = 2
    expected = F.cross_entropy(logits, gt, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(task.sup_loss(logits, {'gt_seg': gt.to(torch.uint8)}), expected)
    with pytest.raises(ValueError, match='labels'):
        task.sup_loss(logits, {'gt_seg': gt[:, :4]})


def test_hard_and_soft_losses():
    task = SegmentationTask()
    logits = _logits(1)
    labels = _logits(2).argmax(dim=1)
    zeros, ones = torch.zeros(2, 8, 8), torch.ones(2, 8, 8)
    assert task.hard_loss(logits, labels, zeros).item() == 0.0
    full = task.hard_loss(logits, labels, ones)
    torch.testing.assert_close(full, F.cross_entropy(logits, labels))
    half = ones.clone()
    half[:, :4] = 0  # half the pixels: same normaliser N*H*W, so about half the loss
    expected = F.cross_entropy(logits, labels, reduction='none')[:, 4:].sum() / labels.numel()
    torch.testing.assert_close(task.hard_loss(logits, labels, half), expected)
    target = _logits(3).softmax(dim=1)
    for kind in ('mse', 'kl'):
        assert task.soft_loss(logits, target, zeros, kind).item() == 0.0
        assert task.soft_loss(logits, target, ones, kind).item() > 0.0
        same = task.soft_loss(logits, logits.softmax(dim=1), ones, kind)
        assert same.abs().item() < 1e-6
    with pytest.raises(ValueError):
        task.soft_loss(logits, target, ones, 'l1')


class _ConvSeg(nn.Module):
    """A one-layer segmentor (``k x k`` conv, padded): pointwise when ``k = 1``."""

    def __init__(self, kernel=1):
        super().__init__()
        self.num_classes = NUM_CLASSES
        self.conv = nn.Conv2d(3, NUM_CLASSES, kernel, padding=kernel // 2)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize('window, stride', [(24, 16), ((32, 20), (11, 20)), (80, 80),
                                            ((16, 96), (16, 1))])
def test_sliding_window_pointwise_equals_full(window, stride):
    torch.manual_seed(0)
    model, task, x = _ConvSeg(1), SegmentationTask(), _images()
    out = task.sliding_window_predict(model, x, window, stride)
    torch.testing.assert_close(out, task.predict(model, x))


def test_sliding_window_non_overlapping_is_exact():
    torch.manual_seed(0)
    model, task, x = _ConvSeg(3), SegmentationTask(), _images()
    out = task.sliding_window_predict(model, x, window=32, stride=32)
    for y0 in (0, 32):
        for x0 in (0, 32):
            crop = x[:, :, y0:y0 + 32, x0:x0 + 32]
            torch.testing.assert_close(out[:, :, y0:y0 + 32, x0:x0 + 32],
                                       task.predict(model, crop))
    # with overlap, windows disagree at their borders, so the average differs
    overlap = task.sliding_window_predict(model, x, window=32, stride=16)
    assert not torch.allclose(overlap, out)
    torch.testing.assert_close(overlap.sum(dim=1), torch.ones(2, SIZE, SIZE))


def test_test_cfg_slide_drives_validation_predictions():
    from ssvision.models.algorithms import SupervisedOnly
    torch.manual_seed(0)
    x = _images()
    net = dict(type='DeepLabV3Plus', backbone='resnet18', num_classes=NUM_CLASSES,
               aspp_channels=8, low_level_channels=8, decoder_channels=8, dropout=0.0)
    model = SupervisedOnly(model=net, task=dict(type='SegmentationTask', test_cfg=dict(
        mode='slide', window=32, stride=16)))
    slide = model.task
    model.eval()
    out = model.predict(x)
    expect = slide.sliding_window_predict(model.teacher, x, 32, 16).argmax(dim=1)
    torch.testing.assert_close(out[0]['pred']['teacher'], expect[0])
    whole = SegmentationTask().predict(model.teacher, x).argmax(dim=1)
    assert not torch.equal(expect, whole)  # windows see less context at their borders
    for bad, match in ((dict(mode='slide', window=32), 'window= and stride='),
                       (dict(mode='slide', window=8, stride=9), 'stride'),
                       (dict(mode='tiles'), 'whole'), (dict(mode='whole', window=3), 'no options')):
        with pytest.raises(ValueError, match=match):
            SegmentationTask(test_cfg=bad)


def test_pack_predictions():
    task = SegmentationTask()
    scores = {'teacher': _logits(4).softmax(dim=1), 'student': _logits(5)}
    gt = torch.randint(0, NUM_CLASSES, (2, 8, 8))
    packed = task.pack_predictions(scores, {'gt_seg': gt})
    assert len(packed) == 2
    for i, item in enumerate(packed):
        assert item['gt_seg'].dtype == torch.long and item['gt_seg'].shape == (8, 8)
        assert set(item['pred']) == {'teacher', 'student'}
        for name, pred in item['pred'].items():
            assert pred.dtype == torch.long and pred.device.type == 'cpu'
            torch.testing.assert_close(pred, scores[name][i].argmax(dim=0))
    no_gt = task.pack_predictions(scores, None)
    assert (no_gt[0]['gt_seg'] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match='differ'):
        task.pack_predictions(scores, {'gt_seg': gt[:, :4]})
