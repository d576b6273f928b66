"""A segmentation export used exactly as its manifest says, against ssvision's own
predictions.

The test reads ``NAME.plain.json`` / ``NAME.onnx.json``, decodes an image file of
another size than the training crop (96 px) as ``input`` says (channel order, resize
and its interpolation, value range, normalisation, layout), runs the ``.pt2`` program
and the ONNX model built by the manifest's ``python``, maps the outputs back as
``postprocess`` says, and compares with ``ssvision infer`` and ``inference`` on the
same file.
"""

import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssvision.apis import inference, init_model

pytestmark = pytest.mark.usefixtures('one_thread')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_CFG = osp.join(REPO, 'configs/supervised/supervised_deeplabv3plus-r18_2k_scenes-1-16.py')
SEG_OPTS = ['model.model.aspp_channels=16', 'model.model.decoder_channels=16']
#: cv2 interpolation of each name a manifest may use.
CV2_INTERPOLATION = {'area': cv2.INTER_AREA, 'bilinear': cv2.INTER_LINEAR,
                     'nearest': cv2.INTER_NEAREST, 'bicubic': cv2.INTER_CUBIC}


def _config(tmp_path, resize):
    """The scenes segmentation config; with ``resize``, its test pipeline first
    stretches images to that size."""
    if resize is None:
        return SEG_CFG
    path = tmp_path / 'resized.py'
    path.write_text(
        f'_base_ = [{SEG_CFG!r}]\n'
        'test_dataloader = dict(dataset=dict(pipeline=[\n'
        f"    dict(type='ResizeImage', size={resize!r}, fit='stretch'),\n"
        "    dict(type='PackSegInputs')]))\n")
    return str(path)


def _checkpoint(config, path):
    """A run-style checkpoint whose teacher has a strong random classifier (masks that
    vary across the image) and differs from the student."""
    opts = dict(o.split('=') for o in SEG_OPTS)
    model = init_model(config, None, cfg_options={k: int(v) for k, v in opts.items()})
    with torch.random.fork_rng(), torch.no_grad():  # leaves the global generator alone
        torch.manual_seed(0)
        model.algorithm.teacher.classifier.weight.normal_(0.0, 1.0)
        for p in model.algorithm.teacher.parameters():
            p.mul_(1 + 0.1 * torch.randn_like(p))
    torch.save({'state_dict': model.algorithm.state_dict(),
                'meta': {'dataset_meta': {'classes': model.classes}}}, path)
    return str(path), model.classes


def _follow_input(spec, path):
    """An image file -> the exported model's input, by the manifest's ``input`` alone."""
    gray = spec['channel_order'] == 'gray'
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    assert spec['decode'].startswith('OpenCV')
    if spec['channel_order'] == 'RGB':
        img = img[..., ::-1]  # OpenCV decodes BGR
    img = img.reshape(*img.shape[:2], -1)
    height, width = img.shape[:2]
    resize = spec['resize']
    if resize is not None:
        assert resize['fit'] == 'stretch'
        h, w = resize['size']
        shrink = h * w < height * width
        interpolation = resize['interpolation']['shrink' if shrink else 'enlarge']
        img = cv2.resize(np.ascontiguousarray(img), (w, h),
                         interpolation=CV2_INTERPOLATION[interpolation])
        img = img.reshape(h, w, -1)
    if spec['size_policy'] == 'fixed':
        assert list(img.shape[:2]) == spec['size']
    else:
        assert spec['size_policy'] == 'any' and spec['multiple_of'] == 1
        assert min(img.shape[:2]) >= max(spec['min_input_size'] or [1])
    assert spec['dtype'] == 'float32' and spec['value_range'] == [0, 255]
    x = img.astype(np.float32).transpose(2, 0, 1)[None]  # (1, C, h, w), 0..255
    if spec['normalize'] == 'by the caller':
        mean = np.float32(spec['mean'])[:, None, None]
        std = np.float32(spec['std'])[:, None, None]
        x = (x - mean) / std
    else:
        assert spec['normalize'] == 'inside the model'
    return np.ascontiguousarray(x), (height, width)


def _follow_output(post, logits, image_size):
    """Logits -> class probabilities at the image's size, by ``postprocess`` alone."""
    assert post['probabilities'].startswith('softmax over K (dim 1)')
    out = torch.as_tensor(logits).float()
    back = post['to_image_size']
    if back['on'] == 'probabilities':
        out = out.softmax(dim=1)
    if tuple(out.shape[-2:]) != tuple(image_size):
        kwargs = {'align_corners': back['align_corners']} \
            if back['interpolation'] in ('bilinear', 'bicubic') else {}
        out = F.interpolate(out, size=tuple(image_size), mode=back['interpolation'], **kwargs)
    if back['on'] == 'logits':
        out = out.softmax(dim=1)
    return out[0].numpy()


def _run_snippet(folder, manifest, monkeypatch):
    """What the manifest's ``python`` builds, run in the export folder."""
    monkeypatch.chdir(folder)
    scope: dict = {}
    exec(manifest['python'], scope)  # noqa: S102  (the export's own snippet)
    return scope


@pytest.mark.parametrize('resize', [None, (40, 56)], ids=['own-size', 'resized'])
def test_export_followed_by_its_manifest_gives_ssvision_predictions(tmp_path, monkeypatch,
                                                                    resize):
    """Images of other sizes than the 96 px crop (and, with a resizing test pipeline,
    one that shrinks and one that grows). Catches a .pt2 program fixed to the traced
    size, a manifest that omits or misstates the channel order, the resize
    interpolation (area / bilinear), the normalisation or the way back to the image
    size (nearest instead of bilinear, or the logits resized instead of the
    probabilities)."""
    from PIL import Image

    from ssvision.cli import main as cli
    pytest.importorskip('onnxruntime')  # the manifest's python imports it
    config = _config(tmp_path, resize)
    ckpt, classes = _checkpoint(config, tmp_path / 'seg.pth')
    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(45, 67, 3), (30, 38, 3)]):
        paths.append(str(tmp_path / f'photo{i}.png'))
        cv2.imwrite(paths[-1], rng.integers(0, 256, shape, dtype=np.uint8))
    out = tmp_path / 'export'
    opts = ['--cfg-options', *SEG_OPTS]
    for fmt in ('plain', 'onnx'):
        assert cli(['export', config, ckpt, '--format', fmt, '--out', str(out), '--name',
                    'seg', *opts]) == 0
    assert cli(['infer', config, ckpt, *paths, '--out', str(tmp_path / 'pred'), *opts]) == 0
    model = init_model(config, ckpt, cfg_options={o.split('=')[0]: 16 for o in SEG_OPTS})
    expected = inference(model, paths, with_scores=True)

    plain = json.loads((out / 'seg.plain.json').read_text())
    onnx = json.loads((out / 'seg.onnx.json').read_text())
    assert plain['input']['size_policy'] == onnx['input']['size_policy'] == 'any'
    assert plain['input']['min_input_size'] == [17, 17]  # DeepLabV3+ at output stride 16
    assert (plain['input']['resize'] is None) == (resize is None)
    assert plain['postprocess']['to_image_size']['interpolation'] == 'bilinear'
    program = _run_snippet(out, plain, monkeypatch)['model']
    session = _run_snippet(out, onnx, monkeypatch)['session']
    for path, exp in zip(paths, expected):
        x, size = _follow_input(plain['input'], path)
        with torch.no_grad():
            got = _follow_output(plain['postprocess'], program(torch.from_numpy(x)), size)
        np.testing.assert_allclose(got, exp['scores'], atol=1e-5)
        name = osp.splitext(osp.basename(path))[0]
        mask = np.asarray(Image.open(tmp_path / 'pred' / 'masks' / f'{name}.png'))
        np.testing.assert_array_equal(got.argmax(0), mask)

        pixels, size = _follow_input(onnx['input'], path)
        (logits,) = session.run(None, {'input': pixels})
        got = _follow_output(onnx['postprocess'], logits, size)
        np.testing.assert_allclose(got, exp['scores'], atol=1e-4)
    assert plain['classes'] == list(classes)
