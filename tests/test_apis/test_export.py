"""Plain and ONNX exports, loaded the way a user without ssvision loads them.

Every model here gets a teacher that differs from its student (noise on the teacher's
weights), so exporting the wrong network fails. Plain exports are loaded in a fresh
Python process that runs the manifest's own snippet, importing only torch and the
library (timm, torchvision, mmdetection), and the test checks that ssvision was never
imported there.
"""

import errno
import io
import os
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmengine.config import Config

from ssvision.apis import export_model, init_model

# small networks: one intra-op thread is faster, and immune to a busy machine's
# oversubscribed OpenMP threads
pytestmark = pytest.mark.usefixtures('one_thread')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CFG = osp.join(REPO, 'configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py')
TIMM_CFG = osp.join(REPO, 'configs/fixmatch/fixmatch_resnet18_2k_fashionmnist-4pc.py')
SEG_CFG = osp.join(REPO, 'configs/supervised/supervised_deeplabv3plus-r18_2k_scenes-1-16.py')
DET_CFGS = {
    'retinanet': osp.join(REPO, 'configs/semi_det/classaware_retinanet-r18_2k_detscenes-10pc.py'),
    'fasterrcnn': osp.join(REPO,
                           'configs/semi_det/classaware_fasterrcnn-r18_2k_detscenes-10pc.py')}
MMDET_CFG = osp.join(REPO, 'configs/mmdet/ssv-retinanet_r18_fpn_2k_detscenes-10pc.py')
DET_OPTS = {'model.detector.min_size': 64, 'model.detector.max_size': 64,
            'model.detector.score_thresh': 0.0}
SEG_OPTS = {'model.model.aspp_channels': 16, 'model.model.decoder_channels': 16}
#: ONNX Runtime against PyTorch (float32, different kernels).
ONNX_ATOL = 1e-4


def _model(config, tmp_path, cfg_options=None):
    """init_model with a teacher that is the student plus noise (checkpoints are read
    as in test_inference.py; here the weights are changed in place)."""
    model = init_model(config, None, cfg_options=cfg_options)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.algorithm.teacher.parameters():
            p.mul_(1 + 0.1 * torch.randn_like(p))  # relative: scores keep their scale
    return model


def _outside(folder, manifest, body, timeout=120):
    """Run the manifest's snippet, then ``body``, in a fresh process in ``folder``."""
    code = textwrap.dedent("""
        import json, sys
        import torch
        manifest = json.load(open(sys.argv[1]))
        scope = {}
        exec(manifest['python'], scope)
        model = scope.get('model')
    """) + textwrap.dedent(body) + textwrap.dedent("""
        leaked = sorted(m for m in sys.modules if m.split('.')[0] == 'ssvision')
        assert not leaked, leaked
    """)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.run([sys.executable, '-c', code, manifest['files']['manifest']],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _normalised(model, x):
    pre = model.algorithm.data_preprocessor
    return (x - pre.mean) / pre.std


# ------------------------------------------------------------------------ plain
def test_plain_timm_classifier_loads_into_timm_alone(tmp_path):
    """timm.create_model(..., in_chans=1) from the manifest loads the weights strictly
    and gives the teacher's logits. Catches the student exported, the own head not
    renamed to timm's classifier (strict load), and a wrong in_chans."""
    model = _model(TIMM_CFG, tmp_path)
    manifest = export_model(model, 'plain', str(tmp_path / 'out'))
    assert manifest['library'] == 'timm' and manifest['input']['color_type'] == 'grayscale'
    x = torch.rand(2, 1, 28, 28) * 255
    with torch.no_grad():
        teacher = model.algorithm.teacher(_normalised(model, x))
        student = model.algorithm.student(_normalised(model, x))
    assert not torch.allclose(teacher, student, atol=1e-3)
    torch.save({'x': _normalised(model, x), 'y': teacher}, tmp_path / 'out' / 'io.pt')
    _outside(tmp_path / 'out', manifest, """
        io = torch.load('io.pt')
        assert type(model).__module__.startswith('timm.')
        torch.testing.assert_close(model(io['x']), io['y'], atol=1e-5, rtol=1e-5)
    """)


def test_plain_torchvision_segmentor_loads_into_torchvision_alone(tmp_path):
    """torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, ...) from
    the manifest gives the teacher's logits in ['out']. Catches the student exported
    and key names that only ssvision's wrapper knows."""
    cfg = Config.fromfile(SEG_CFG)
    cfg.model.model = dict(type='TorchvisionSegmentor', arch='lraspp_mobilenet_v3_large',
                           num_classes=11)
    model = _model(cfg, tmp_path)
    manifest = export_model(model, 'plain', str(tmp_path / 'out'), name='seg')
    assert manifest['build']['builder'].endswith('lraspp_mobilenet_v3_large')
    x = _normalised(model, torch.rand(2, 3, 64, 48) * 255)
    with torch.no_grad():
        teacher, student = model.algorithm.teacher(x), model.algorithm.student(x)
    assert not torch.allclose(teacher, student, atol=1e-3)
    torch.save({'x': x, 'y': teacher}, tmp_path / 'out' / 'io.pt')
    _outside(tmp_path / 'out', manifest, """
        io = torch.load('io.pt')
        assert type(model).__module__.startswith('torchvision.')
        torch.testing.assert_close(model(io['x'])['out'], io['y'], atol=1e-5, rtol=1e-5)
    """)


@pytest.mark.parametrize('arch', ['retinanet', 'fasterrcnn'])
def test_plain_torchvision_detector_loads_into_torchvision_alone(tmp_path, arch):
    """torchvision's RetinaNet / Faster R-CNN over resnet_fpn_backbone, built by the
    manifest's snippet with the run's anchors and sizes, detects what the teacher
    detects (Faster R-CNN: labels shifted by the background). Catches the student
    exported, anchors or sizes lost (other boxes), and a wrong label offset."""
    model = _model(DET_CFGS[arch], tmp_path, DET_OPTS)
    manifest = export_model(model, 'plain', str(tmp_path / 'out'), name='det')
    assert manifest['build']['label_offset'] == (1 if arch == 'fasterrcnn' else 0)
    img = torch.rand(3, 48, 72)
    (teacher,) = model.algorithm.teacher.predict([img])
    (student,) = model.algorithm.student.predict([img])
    assert len(teacher) > 0
    assert len(teacher) != len(student) or not torch.allclose(teacher.scores, student.scores)
    torch.save({'img': img, 'boxes': teacher.bboxes, 'scores': teacher.scores,
                'labels': teacher.labels + manifest['build']['label_offset']},
               tmp_path / 'out' / 'io.pt')
    _outside(tmp_path / 'out', manifest, """
        io = torch.load('io.pt')
        with torch.no_grad():
            (out,) = model([io['img']])
        torch.testing.assert_close(out['boxes'], io['boxes'], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out['scores'], io['scores'], atol=1e-5, rtol=1e-5)
        assert torch.equal(out['labels'], io['labels'])
    """)


def test_plain_own_network_runs_as_a_torch_export_program(tmp_path):
    """TinyCNN has no outside library: NAME.pt2 runs with torch alone, for batches of
    1 and 3 (dynamic batch), with the teacher's logits; NAME.pth is its state dict.
    Catches the student exported and a program fixed to the traced batch size."""
    model = _model(CLS_CFG, tmp_path, {'model.model.width': 8})
    manifest = export_model(model, 'plain', str(tmp_path / 'out'), name='tiny')
    assert manifest['library'] == 'torch' and manifest['input']['size'] == [28, 28]
    state = torch.load(tmp_path / 'out' / 'tiny.pth', weights_only=True)
    x = _normalised(model, torch.rand(3, 1, 28, 28) * 255)
    with torch.no_grad():
        teacher = model.algorithm.teacher(x)
        assert not torch.allclose(model.algorithm.student(x), teacher, atol=1e-3)
        model.algorithm.student.load_state_dict(state)  # strictly
        torch.testing.assert_close(model.algorithm.student(x), teacher)
    torch.save({'x': x, 'y': teacher}, tmp_path / 'out' / 'io.pt')
    _outside(tmp_path / 'out', manifest, """
        io = torch.load('io.pt')
        for n in (1, 3):
            torch.testing.assert_close(model(io['x'][:n]), io['y'][:n], atol=1e-5, rtol=1e-5)
    """)


def test_failed_export_write_keeps_the_previous_export(tmp_path, monkeypatch):
    """A second export into the same folder whose weights write fails half-way (a full
    disk): the error reaches the caller and the folder holds exactly the first export,
    byte for byte, with no temporary file left. Catches weights written straight into
    NAME.pth (a truncated file under the real name) and a manifest rewritten for files
    that were not."""
    model = _model(CLS_CFG, tmp_path, {'model.model.width': 8})
    out = tmp_path / 'out'
    export_model(model, 'plain', str(out), name='tiny')
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with torch.no_grad():  # the second export would write other weights
        for p in model.algorithm.teacher.parameters():
            p.add_(1.0)
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        with open(f, 'wb') as fh:
            fh.write(buf.getvalue()[:len(buf.getvalue()) // 2])
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OSError, match='No space left'):
        export_model(model, 'plain', str(out), name='tiny')
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(after) == sorted(before)
    assert after == before


# ------------------------------------------------------------------------ onnx
@pytest.mark.parametrize('task', ['classification', 'segmentation'])
def test_onnx_takes_pixels_with_a_dynamic_batch(tmp_path, task):
    """ONNX Runtime on batches of 1 and 3 of raw pixel values gives the teacher's
    logits on the normalised images (segmentors also at another image size). Catches
    the student exported, a normalisation missing from the graph, and a batch (or
    size) axis fixed at export."""
    ort = pytest.importorskip('onnxruntime')
    config, opts, channels = ((CLS_CFG, {'model.model.width': 8}, 1)
                              if task == 'classification' else (SEG_CFG, SEG_OPTS, 3))
    model = _model(config, tmp_path, opts)
    manifest = export_model(model, 'onnx', str(tmp_path), name='net')
    session = ort.InferenceSession(str(tmp_path / 'net.onnx'))
    sizes = [(28, 28)] if task == 'classification' else [(64, 64), (40, 56)]
    for h, w in sizes:
        for n in (1, 3):
            pixels = torch.randint(0, 256, (n, channels, h, w)).float()
            (logits,) = session.run(None, {'input': pixels.numpy()})
            with torch.no_grad():
                x = _normalised(model, pixels)
                teacher = model.algorithm.teacher(x).numpy()
                student = model.algorithm.student(x).numpy()
            np.testing.assert_allclose(logits, teacher, atol=ONNX_ATOL, rtol=ONNX_ATOL)
            assert np.abs(logits - student).max() > 100 * ONNX_ATOL
    assert manifest['input']['layout'].startswith('float32 (N,')


def _match(got, expected, atol=1e-3):
    """Every detection of ``got`` has one in ``expected`` with the same label, score
    and box (detections with equal scores may come in another order)."""
    boxes, scores, labels = expected
    for b, s, lab in zip(*got):
        same = (np.abs(scores - s) < 1e-5) & (labels == lab) & \
            (np.abs(boxes - b).max(axis=1) < atol)
        assert same.any(), (b, s, lab)


def test_onnx_torchvision_detector_takes_one_image_of_any_size(tmp_path):
    """ONNX Runtime on two image sizes detects what the teacher detects, labels in
    [0, K). Catches the student exported, a fixed input size, and the 0..255 input
    not scaled to torchvision's [0, 1]."""
    ort = pytest.importorskip('onnxruntime')
    model = _model(DET_CFGS['retinanet'], tmp_path, DET_OPTS)
    export_model(model, 'onnx', str(tmp_path), name='det')
    session = ort.InferenceSession(str(tmp_path / 'det.onnx'))
    for h, w in ((64, 64), (48, 80)):
        pixels = torch.randint(0, 256, (1, 3, h, w)).float()
        got = session.run(None, {'input': pixels.numpy()})
        (d,) = model.algorithm.teacher.predict([pixels[0] / 255.0])
        assert len(got[0]) == len(d) > 0
        _match(got, (d.bboxes.numpy(), d.scores.numpy(), d.labels.numpy()))
        (s,) = model.algorithm.student.predict([pixels[0] / 255.0])
        assert len(s) != len(d) or np.abs(np.sort(s.scores.numpy())
                                          - np.sort(got[1])).max() > 1e-4


def test_classifier_onnx_needs_a_known_input_size(tmp_path):
    """A classifier config that shows no input size (its own image folder) is refused
    with the option to give, not traced at a guessed size."""
    cfg = Config.fromfile(CLS_CFG)
    cfg.test_dataloader.dataset = dict(type='ImageFolder', root='photos',
                                       pipeline=[dict(type='PackClsInputs')])
    model = init_model(cfg, None, cfg_options={'model.model.width': 8})
    with pytest.raises(ValueError, match='--input-size'):
        export_model(model, 'onnx', str(tmp_path))
    manifest = export_model(model, 'onnx', str(tmp_path), size=20)
    assert manifest['build']['traced_size'] == [20, 20]
    with pytest.raises(ValueError, match='format'):
        export_model(model, 'torchscript', str(tmp_path))


# ------------------------------------------------------------------------ mmdetection
@pytest.mark.mmdet
def test_plain_mmdet_detector_loads_with_mmdetection_alone(tmp_path):
    """mmdet.apis.init_detector(NAME_config.py, NAME.pth) gives the teacher's head
    outputs and the class names, and ONNX is refused with a pointer to mmdeploy.
    Catches the student exported and a config that still needs ssvision."""
    pytest.importorskip('mmdet')
    pytest.importorskip('mmcv.ops')
    model = _model(MMDET_CFG, tmp_path)
    manifest = export_model(model, 'plain', str(tmp_path / 'out'), name='mm')
    assert manifest['library'] == 'mmdet'
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        teacher = model.algorithm.teacher(x, mode='tensor')
        student = model.algorithm.student(x, mode='tensor')
    assert not torch.allclose(teacher[0][0], student[0][0], atol=1e-3)
    torch.save({'x': x, 'y': [t for level in teacher for t in level]},
               tmp_path / 'out' / 'io.pt')
    _outside(tmp_path / 'out', manifest, """
        io = torch.load('io.pt')
        with torch.no_grad():
            out = [t for level in model(io['x'], mode='tensor') for t in level]
        for a, b in zip(out, io['y']):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert model.dataset_meta['classes'][0] == 'T-shirt/top'
    """)
    with pytest.raises(NotImplementedError, match='mmdeploy'):
        export_model(model, 'onnx', str(tmp_path))
