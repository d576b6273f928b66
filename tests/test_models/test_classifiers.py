"""Shape contracts and weight loading of the classifiers (CPU, offline)."""

import pytest
import timm
import torch
import torch.nn.functional as F

from ssvision.models.classifiers import TimmClassifier, TinyCNN, WideResNet
from ssvision.registry import MODELS


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')


def _check_contract(model, x, num_classes):
    model.eval()
    with torch.no_grad():
        feat = model.extract_feat(x)
        logits = model.forward_head(feat)
        assert feat.shape == (x.shape[0], model.feat_dim)
        assert logits.shape == (x.shape[0], num_classes)
        assert model.num_classes == num_classes
        torch.testing.assert_close(model(x), logits)


def test_tiny_cnn_shapes():
    model = MODELS.build(dict(type='TinyCNN', num_classes=10, width=8))
    assert isinstance(model, TinyCNN)
    x = torch.randn(4, 1, 28, 28)
    _check_contract(model, x, 10)
    assert model.feat_dim == 32
    stages = model.forward_stages(x)
    assert [tuple(s.shape) for s in stages] == [(4, 8, 14, 14), (4, 16, 7, 7), (4, 32, 7, 7)]
    torch.testing.assert_close(stages[-1].mean((2, 3)), model.extract_feat(x))


def test_tiny_cnn_sgd_reduces_loss():
    torch.manual_seed(0)
    model = TinyCNN(num_classes=4, width=16)
    x = torch.randn(16, 1, 28, 28)
    y = torch.randint(0, 4, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5


def test_wide_resnet_28_2():
    model = MODELS.build(dict(type='WideResNet', num_classes=10, depth=28, widen_factor=2))
    assert isinstance(model, WideResNet)
    n_params = sum(p.numel() for p in model.parameters())
    assert 1.4e6 <= n_params <= 1.6e6
    assert model.feat_dim == 128
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.001 for m in bns)
    x = torch.randn(2, 3, 32, 32)
    _check_contract(model, x, 10)
    stages = model.forward_stages(x)
    assert [tuple(s.shape) for s in stages] == [(2, 32, 32, 32), (2, 64, 16, 16),
                                               (2, 128, 8, 8)]
    torch.testing.assert_close(stages[-1].mean((2, 3)), model.extract_feat(x))


def test_wide_resnet_bad_depth():
    with pytest.raises(ValueError, match='depth'):
        WideResNet(depth=27)


@pytest.mark.parametrize('in_channels', [1, 3])
def test_timm_classifier_shapes(in_channels):
    model = MODELS.build(dict(type='TimmClassifier', model_name='resnet18', num_classes=7,
                              in_channels=in_channels))
    assert isinstance(model, TimmClassifier)
    assert model.feat_dim == 512
    x = torch.randn(2, in_channels, 32, 32)
    _check_contract(model, x, 7)
    stages = model.forward_stages(x)
    assert [tuple(s.shape) for s in stages] == [(2, 64, 16, 16), (2, 64, 8, 8),
                                               (2, 128, 4, 4), (2, 256, 2, 2),
                                               (2, 512, 1, 1)]


def test_timm_classifier_checkpoint(tmp_path):
    torch.manual_seed(1)
    src = timm.create_model('resnet18', pretrained=False, num_classes=1000)
    with torch.no_grad():  # non-default BN statistics, to be sure they are loaded
        for m in src.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    state = src.state_dict()
    path = tmp_path / 'resnet18.pth'
    torch.save(state, path)

    model = TimmClassifier('resnet18', num_classes=10, checkpoint=str(path))
    loaded = model.backbone.state_dict()
    assert 'fc.weight' not in loaded
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], msg=key)
    assert model.head.weight.shape == (10, 512)

    # The head is loaded too when num_classes fits; a gray model adapts conv1.
    same = TimmClassifier('resnet18', num_classes=1000, checkpoint=str(path))
    torch.testing.assert_close(same.head.weight, state['fc.weight'])
    gray = TimmClassifier('resnet18', num_classes=10, in_channels=1, checkpoint=str(path))
    assert gray.backbone.conv1.weight.shape == (64, 1, 7, 7)
    torch.testing.assert_close(gray.backbone.layer1[0].conv1.weight,
                               state['layer1.0.conv1.weight'])


def test_timm_classifier_checkpoint_reports(tmp_path):
    src = timm.create_model('resnet18', pretrained=False, num_classes=1000)
    state = src.state_dict()
    state.pop('layer4.1.bn2.bias')
    state['extra.weight'] = torch.zeros(3)
    path = tmp_path / 'partial.pth'
    torch.save({'state_dict': state}, path)
    model = TimmClassifier('resnet18', num_classes=10, pretrained=False)
    report = model.load_backbone_weights(str(path))
    assert report.missing == ['layer4.1.bn2.bias']
    assert report.unexpected == ['extra.weight']
    assert sorted(report.reinitialized) == ['fc.bias', 'fc.weight']
    assert len(report.loaded) == len(model.backbone.state_dict()) - 1
    table = report.table(names=True)
    assert '| loaded | re-initialised (shape changed) | missing | unexpected |' in table
    assert 'missing: layer4.1.bn2.bias' in table
    # a checkpoint that matches nothing is an error, not a warning
    torch.save({'other.weight': torch.zeros(2)}, tmp_path / 'other.pth')
    with pytest.raises(RuntimeError, match='no tensor matches'):
        model.load_backbone_weights(str(tmp_path / 'other.pth'))


def test_timm_classifier_pretrained_offline_without_cache(monkeypatch, tmp_path):
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf'))
    monkeypatch.delenv('HF_HUB_CACHE', raising=False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')  # online, it would download as timm does
    with pytest.raises(FileNotFoundError, match='offline.*timm/resnet18'):
        TimmClassifier('resnet18', num_classes=10, pretrained=True)


def test_timm_classifier_pretrained_from_local_cache(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    snapshot = tmp_path / 'hf' / 'hub' / 'models--timm--resnet18.a1_in1k'
    (snapshot / 'refs').mkdir(parents=True)
    (snapshot / 'refs' / 'main').write_text('0' * 40)
    (snapshot / 'snapshots' / ('0' * 40)).mkdir(parents=True)
    state = timm.create_model('resnet18', pretrained=False, num_classes=1000).state_dict()
    save_file(state, str(snapshot / 'snapshots' / ('0' * 40) / 'model.safetensors'))
    monkeypatch.setenv('HF_HOME', str(tmp_path / 'hf'))
    monkeypatch.delenv('HF_HUB_CACHE', raising=False)
    model = TimmClassifier('resnet18', num_classes=10, pretrained=True)
    torch.testing.assert_close(model.backbone.conv1.weight, state['conv1.weight'])
