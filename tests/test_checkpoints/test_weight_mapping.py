"""ImageNet and COCO state dicts with torchvision's real key names (random values) map
into every backbone and detector, with a load report that names what did not fit."""

import pytest
import torch
import torchvision

from ssvision.models.classifiers import TimmClassifier
from ssvision.models.detectors import TorchvisionDetector
from ssvision.models.segmentors import DeepLabV3Plus, TorchvisionSegmentor


def _save(tmp_path, model, name):
    torch.manual_seed(0)
    for p in model.state_dict().values():  # values unlike any fresh initialisation
        if p.is_floating_point():
            p.normal_()
    path = tmp_path / name
    torch.save(model.state_dict(), path)
    return str(path), model.state_dict()


@pytest.mark.parametrize('build', [
    lambda p: TimmClassifier('resnet18', num_classes=10, checkpoint=p),
    lambda p: DeepLabV3Plus(backbone='resnet18', num_classes=3, checkpoint=p),
    lambda p: TorchvisionDetector('fasterrcnn', num_classes=3, backbone='resnet18',
                                  backbone_checkpoint=p),
], ids=['timm-classifier', 'deeplabv3plus', 'detector-body'])
def test_torchvision_resnet18_fills_every_backbone(tmp_path, build):
    """No backbone key may stay at its initialisation. Catches a key mapping that
    matches nothing of a layout (torchvision vs timm) and stays silent, and one that
    loads only some stages."""
    path, state = _save(tmp_path, torchvision.models.resnet18(), 'resnet18.pth')
    model = build(path)
    report = (model.load_reports['backbone'] if isinstance(model, TorchvisionDetector)
              else model.load_report if hasattr(model, 'load_report')
              else model.backbone_load_report)
    assert report.missing == [] or all(k.endswith('num_batches_tracked')
                                       for k in report.missing)
    assert len(report.loaded) >= 60
    assert report.unexpected == []


def test_torchvision_mobilenet_and_resnet50_fill_the_torchvision_segmentors(tmp_path):
    for arch, net in (('lraspp_mobilenet_v3_large', torchvision.models.mobilenet_v3_large),
                      ('deeplabv3_resnet50', torchvision.models.resnet50)):
        path, _ = _save(tmp_path, net(), f'{arch}.pth')
        model = TorchvisionSegmentor(arch=arch, num_classes=3, backbone_checkpoint=path)
        report = model.backbone_load_report
        assert report.missing == [] and report.unexpected == [], arch


@pytest.mark.parametrize('arch', ['fasterrcnn', 'retinanet'])
def test_coco_detector_loads_with_another_num_classes(tmp_path, arch):
    """A COCO-trained torchvision detector (91 classes) into a 10-class detector: every
    tensor loads except the class-dependent predictor, which is re-initialised and
    reported. Catches a loader that drops the whole checkpoint on the first shape
    mismatch, or one that loads nothing without an error."""
    make = (torchvision.models.detection.fasterrcnn_resnet50_fpn if arch == 'fasterrcnn'
            else torchvision.models.detection.retinanet_resnet50_fpn)
    path, state = _save(tmp_path, make(weights=None, weights_backbone=None, num_classes=91),
                        'coco.pth')
    # torchvision's COCO files were saved with FrozenBatchNorm2d: no num_batches_tracked
    state = {k: v for k, v in state.items() if not k.endswith('num_batches_tracked')}
    torch.save(state, path)
    det = TorchvisionDetector(arch, num_classes=10, backbone='resnet50', norm='frozen_bn',
                              checkpoint=path)
    report = det.load_reports['detector']
    expected = ({'roi_heads.box_predictor.cls_score.weight',
                 'roi_heads.box_predictor.cls_score.bias',
                 'roi_heads.box_predictor.bbox_pred.weight',
                 'roi_heads.box_predictor.bbox_pred.bias'} if arch == 'fasterrcnn' else
                {'head.classification_head.cls_logits.weight',
                 'head.classification_head.cls_logits.bias'})
    assert set(report.reinitialized) == expected
    assert report.missing == [] and report.unexpected == []
    own = det.net.state_dict()
    for key in report.loaded:
        assert torch.equal(own[key], state[key]), key
    with pytest.raises(RuntimeError, match='no tensor matches'):
        torch.save({'x.weight': torch.zeros(1)}, tmp_path / 'junk.pth')
        TorchvisionDetector(arch, num_classes=10, backbone='resnet18',
                            checkpoint=str(tmp_path / 'junk.pth'))


def test_gray_backbone_fills_an_rgb_detector_body(tmp_path):
    """A 1-channel backbone (the zoo's Fashion-MNIST ResNet-18) into an RGB detector:
    conv1 is adapted, not dropped. Catches a loader that re-initialises conv1 (the
    report would list it)."""
    net = torchvision.models.resnet18()
    net.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    path, state = _save(tmp_path, net, 'gray.pth')
    det = TorchvisionDetector('retinanet', num_classes=3, backbone='resnet18',
                              backbone_checkpoint=path)
    report = det.load_reports['backbone']
    assert 'conv1.weight' in report.loaded and report.reinitialized == []
    w = det.net.backbone.body.conv1.weight
    assert w.shape == (64, 3, 7, 7)
    # the gray filter repeated over RGB and divided by 3: the sum is the gray filter
    torch.testing.assert_close(w.sum(dim=1, keepdim=True), state["conv1.weight"])
