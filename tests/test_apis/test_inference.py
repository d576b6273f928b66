"""init_model / inference and tools/infer.py on small real models.

Checkpoints are written by hand (an algorithm's state dict whose teacher and student are
made to differ), except in the end-to-end test, which trains two iterations through the
real Runner first.
"""

import csv
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from ssvision.apis import inference, init_model
from ssvision.apis.inference import load_image

# small networks: one intra-op thread is faster, and immune to a busy machine's
# oversubscribed OpenMP threads
pytestmark = pytest.mark.usefixtures('one_thread')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CFG = osp.join(REPO, 'configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py')
SEG_CFG = osp.join(REPO, 'configs/dssn/dssn_deeplabv3plus-r18_2k_scenes-1-16.py')
DET_CFG = osp.join(REPO, 'configs/semi_det/classaware_retinanet-r18_2k_detscenes-10pc.py')
MMDET_CFG = osp.join(REPO, 'configs/mmdet/ssv-retinanet_r18_fpn_2k_detscenes-10pc.py')
CLS_OPTS = {'model.model.width': 8}
SEG_OPTS = {'model.model.aspp_channels': 16, 'model.model.decoder_channels': 16}
DET_OPTS = {'model.detector.min_size': 64, 'model.detector.max_size': 64,
            'model.detector.score_thresh': 0.0}


def _save(model, path, teacher_bias=None, student_bias=None, student_only=False):
    """A run-style checkpoint of ``model.algorithm``; a bias on one class of a
    classifier's head makes that network predict it."""
    algo = model.algorithm
    with torch.no_grad():
        for net, cls in ((algo.teacher, teacher_bias), (algo.student, student_bias)):
            if cls is not None:
                net.head.bias[cls] += 100.0
    state = algo.state_dict()
    if student_only:
        state = {k: v for k, v in state.items() if not k.startswith('teacher.')}
    torch.save({'state_dict': state, 'meta': {'dataset_meta': {'classes': model.classes}}},
               path)
    return str(path)


def _digits(n):
    from ssvision.datasets import MNIST5k
    ds = MNIST5k()
    return [ds.load_image(i) for i in range(n)]  # uint8 (28, 28, 1)


def test_classification_matches_the_evaluation_path(tmp_path):
    """Scores are softmax(teacher((x - 127.5) / 127.5)) of the gray image, whether it
    comes as a gray array, an RGB array or a PNG file, alone or batched. Catches a
    missing normalisation, a colour image fed to a 1-channel network, and batches that
    mix up the order of images."""
    model = init_model(CLS_CFG, None, cfg_options=CLS_OPTS)
    ckpt = _save(model, tmp_path / 'c.pth')
    model = init_model(CLS_CFG, ckpt, cfg_options=CLS_OPTS)
    assert model.task == 'classification' and model.color_type == 'grayscale'
    imgs = _digits(5)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
    expected = model.algorithm.teacher((x - 127.5) / 127.5).softmax(1).detach().numpy()

    path = str(tmp_path / 'd.png')
    cv2.imwrite(path, imgs[2])
    rgb = np.repeat(imgs[3], 3, axis=2)
    inputs = [imgs[0], imgs[1][..., 0], path, rgb, imgs[4]]
    for batch_size in (1, 2, 16):
        results = inference(model, inputs, batch_size=batch_size)
        got = np.stack([r['scores'] for r in results])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert [r['label'] for r in results] == expected.argmax(1).tolist()
        assert results[0]['score'] == pytest.approx(float(expected[0].max()), abs=1e-6)


def test_teacher_predicts_by_default_and_student_on_request(tmp_path):
    """Teacher and student are made to predict different classes (7 and 3). Catches
    inference with the student, or a checkpoint mapping that fills the teacher with the
    student's weights; a student-only checkpoint fills both networks."""
    model = init_model(CLS_CFG, None, cfg_options=CLS_OPTS)
    ckpt = _save(model, tmp_path / 'c.pth', teacher_bias=7, student_bias=3)
    imgs = _digits(3)
    teacher = init_model(CLS_CFG, ckpt, cfg_options=CLS_OPTS)
    student = init_model(CLS_CFG, ckpt, network='student', cfg_options=CLS_OPTS)
    assert [r['label'] for r in inference(teacher, imgs)] == [7, 7, 7]
    assert [r['label'] for r in inference(student, imgs)] == [3, 3, 3]
    only = _save(init_model(CLS_CFG, None, cfg_options=CLS_OPTS), tmp_path / 's.pth',
                 student_bias=5, student_only=True)
    assert [r['label'] for r in inference(init_model(CLS_CFG, only, cfg_options=CLS_OPTS),
                                          imgs)] == [5, 5, 5]
    with pytest.raises(ValueError, match='network'):
        init_model(CLS_CFG, ckpt, network='ema', cfg_options=CLS_OPTS)


def test_segmentation_masks_follow_the_test_mode_at_the_original_size(tmp_path):
    """Masks are the argmax of the config's test mode (here sliding windows) at the
    image's own, odd size. Catches running the whole image instead, and masks of
    another size."""
    opts = {**SEG_OPTS, 'model.task.test_cfg': dict(mode='slide', window=(32, 32),
                                                     stride=(24, 24))}
    model = init_model(SEG_CFG, None, cfg_options=opts)
    torch.manual_seed(0)  # the same weights whatever ran before
    with torch.no_grad():  # a classifier strong enough for masks that vary in space
        model.algorithm.teacher.classifier.weight.normal_(0.0, 1.0)
    ckpt = _save(model, tmp_path / 's.pth')
    model = init_model(SEG_CFG, ckpt, cfg_options=opts)
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (45, 67, 3), dtype=np.uint8),
            rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)]
    results = inference(model, imgs)
    algo = model.algorithm
    for img, res in zip(imgs, results):
        assert res['mask'].shape == img.shape[:2] and res['mask'].dtype == np.int64
        x = algo.data_preprocessor({'inputs': torch.from_numpy(img).permute(2, 0, 1)[None]})
        slide = algo.task.sliding_window_predict(algo.teacher, x['inputs'], 32, 24)
        np.testing.assert_array_equal(res['mask'], slide[0].argmax(0).numpy())
        whole = algo.task.predict(algo.teacher, x['inputs'])[0].argmax(0).numpy()
        assert (whole != res['mask']).any()  # the two modes differ on this image


def test_segmentation_refuses_a_test_pipeline_that_crops():
    """A ResizeImage(fit='crop') in a segmentation test pipeline is refused with the fix.
    Catches masks whose centre-crop probabilities are stretched over the whole image."""
    from mmengine.config import Config
    cfg = Config.fromfile(SEG_CFG)
    cfg.merge_from_dict(SEG_OPTS)
    cfg.test_dataloader.dataset.pipeline = [dict(type='ResizeImage', size=32),
                                            dict(type='PackSegInputs')]
    with pytest.raises(ValueError, match="fit='stretch'"):
        init_model(cfg, None)
    cfg.test_dataloader.dataset.pipeline[0]['fit'] = 'stretch'
    assert init_model(cfg, None).task == 'segmentation'


def test_detection_boxes_are_mapped_back_to_the_original_image(tmp_path):
    """A test pipeline that shrinks and flips the image: boxes come back in the
    original image's pixels, computed here by hand from the view's scale and flip.
    Catches boxes left in the view's coordinates."""
    from mmengine.config import Config
    cfg = Config.fromfile(DET_CFG)
    cfg.merge_from_dict(DET_OPTS)
    cfg.test_dataloader.dataset.pipeline = [
        dict(type='DetWeakAugment', short_side=(32, 32), flip_prob=1.0),
        dict(type='PackDetInputs')]
    model = init_model(cfg, None)
    ckpt = _save(model, tmp_path / 'd.pth')
    model = init_model(cfg, ckpt)
    assert model.task == 'detection' and len(model.classes) == 10
    img = np.random.default_rng(1).integers(0, 256, (48, 72, 3), dtype=np.uint8)
    (res,) = inference(model, [img])
    view = model.pipeline({'img': img})['inputs']
    sy, sx = view.shape[1] / 48, view.shape[2] / 72
    assert view.shape[1:] == (32, 48)
    (d,) = model.algorithm.teacher.predict([view.float() / 255.0])
    expected = d.bboxes.numpy().copy()
    expected[:, [0, 2]] = (view.shape[2] - d.bboxes[:, [2, 0]].numpy()) / sx
    expected[:, [1, 3]] = expected[:, [1, 3]] / sy
    assert len(res['boxes']) == len(d) > 0
    np.testing.assert_allclose(res['boxes'], expected, atol=1e-3)
    np.testing.assert_allclose(res['scores'], d.scores.numpy(), atol=1e-6)
    np.testing.assert_array_equal(res['labels'], d.labels.numpy())


def test_image_inputs_are_checked_and_converted():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert load_image(gray, 'color').shape == (3, 4, 3)
    rgba = np.zeros((3, 4, 4), np.uint8)
    assert load_image(rgba, 'grayscale').shape == (3, 4, 1)
    with pytest.raises(TypeError, match='uint8'):
        load_image(gray.astype(np.float32), 'color')
    with pytest.raises(FileNotFoundError, match='nope.png'):
        load_image('nope.png', 'color')


# ------------------------------------------------------------------------ the tool
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two FixMatch iterations on MNIST-5k through the real Runner: a run's checkpoint."""
    from ssvision.datasets import MNIST5k, make_split, save_split
    from ssvision.tools.train import main as train
    root = tmp_path_factory.mktemp('run')
    ds = MNIST5k()
    split = make_split(ds.labels, list(range(len(ds))), num_labels_per_class=4,
                       num_test_per_class=2, seed=0)
    split['unlabeled'] = split['unlabeled'][::50]
    split_file = str(root / 'split.json')
    save_split(split, split_file)
    loaders = ('train_dataloader', 'val_dataloader')
    train([CLS_CFG, '--work-dir', str(root / 'work'), '--cfg-options',
           'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
           'default_hooks.checkpoint.interval=2', 'model.model.width=8',
           f'train_dataloader.dataset.labeled.split_file={split_file}',
           f'train_dataloader.dataset.unlabeled.split_file={split_file}',
           f'val_dataloader.dataset.split_file={split_file}',
           *[f'{d}.num_workers=0' for d in loaders],
           *[f'{d}.persistent_workers=False' for d in loaders],
           'train_dataloader.batch_size=8', 'train_dataloader.sampler.labeled_batch_size=4',
           'train_dataloader.sampler.unlabeled_ratio=1'])
    return osp.join(root, 'work', 'iter_2.pth')


def test_trained_run_infers_on_new_images_and_exports(trained, tmp_path):
    """What a user does: train, predict on image files with tools/infer.py, export
    ONNX and plain weights with tools/export.py. The json and csv agree with
    inference() on the same files, teacher by default."""
    from ssvision.tools.export import main as export
    from ssvision.tools.infer import main as infer
    imgs = _digits(3)
    folder = tmp_path / 'images'
    (folder / 'sub').mkdir(parents=True)
    paths = [str(folder / 'a.png'), str(folder / 'sub' / 'a.png'), str(folder / 'b.jpg')]
    for p, img in zip(paths, imgs):
        cv2.imwrite(p, img)
    files = infer([CLS_CFG, trained, str(folder), '--out', str(tmp_path / 'out'),
                   '--cfg-options', 'model.model.width=8'])
    model = init_model(CLS_CFG, trained, cfg_options=CLS_OPTS)
    expected = inference(model, sorted(paths))
    with open(files['json']) as f:
        rows = json.load(f)
    assert [r['file'] for r in rows] == sorted(paths)
    assert [r['label'] for r in rows] == [e['label'] for e in expected]
    assert rows[0]['scores']['0'] == pytest.approx(float(expected[0]['scores'][0]), abs=1e-6)
    with open(files['csv']) as f:
        table = list(csv.reader(f))
    assert table[0] == ['file', 'label', 'class', 'score', *model.classes]
    assert [int(r[1]) for r in table[1:]] == [e['label'] for e in expected]

    out = str(tmp_path / 'export')
    for fmt in ('plain', 'onnx') if importlib.util.find_spec('onnx') else ('plain',):
        manifest = export([CLS_CFG, trained, '--format', fmt, '--out', out, '--name', 'digits',
                           '--cfg-options', 'model.model.width=8'])
        assert manifest['network'] == 'teacher' and manifest['input']['size'] == [28, 28]
        for name in manifest['files'].values():
            assert osp.isfile(osp.join(out, name))
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
    program = torch.export.load(osp.join(out, 'digits.pt2')).module()
    np.testing.assert_allclose(program((x - 127.5) / 127.5).softmax(1).detach().numpy(),
                               np.stack([e['scores'] for e in inference(model, imgs)]),
                               atol=1e-5)


def test_infer_tool_writes_palette_masks_and_overlays(tmp_path):
    from PIL import Image

    from ssvision.tools.infer import main as infer
    model = init_model(SEG_CFG, None, cfg_options=SEG_OPTS)
    ckpt = _save(model, tmp_path / 's.pth')
    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(45, 67, 3), (32, 32, 3)]):
        paths.append(str(tmp_path / f'img{i}.png'))
        cv2.imwrite(paths[-1], rng.integers(0, 256, shape, dtype=np.uint8))
    out = tmp_path / 'out'
    files = infer([SEG_CFG, ckpt, *paths, '--out', str(out), '--cfg-options',
                   'model.model.aspp_channels=16', 'model.model.decoder_channels=16'])
    expected = inference(init_model(SEG_CFG, ckpt, cfg_options=SEG_OPTS), paths)
    for i, e in enumerate(expected):
        mask = Image.open(out / 'masks' / f'img{i}.png')
        assert mask.mode == 'P'  # class indices, with a palette for viewers
        np.testing.assert_array_equal(np.asarray(mask), e['mask'])
        overlay = Image.open(out / 'overlays' / f'img{i}.png')
        assert overlay.mode == 'RGB' and overlay.size == mask.size
    with open(files['json']) as f:
        meta = json.load(f)
    assert meta['classes'][0] == 'background' and len(meta['palette']) == 11


def test_infer_tool_writes_coco_results_and_drawings(tmp_path):
    from ssvision.tools.infer import main as infer
    opts = [f'{k}={v}' for k, v in DET_OPTS.items()]
    model = init_model(DET_CFG, None, cfg_options=DET_OPTS)
    ckpt = _save(model, tmp_path / 'd.pth')
    img = np.random.default_rng(2).integers(0, 256, (48, 72, 3), dtype=np.uint8)
    path = str(tmp_path / 'scene.png')
    cv2.imwrite(path, img[..., ::-1])
    out = tmp_path / 'out'
    files = infer([DET_CFG, ckpt, path, '--out', str(out), '--score-thr', '0.0',
                   '--cfg-options', *opts])
    (expected,) = inference(init_model(DET_CFG, ckpt, cfg_options=DET_OPTS), [img])
    with open(files['results']) as f:
        results = json.load(f)
    with open(files['images']) as f:
        images = json.load(f)
    assert images['images'] == [{'id': 0, 'file_name': path, 'height': 48, 'width': 72}]
    assert len(results) == len(expected['boxes']) > 0
    first = results[0]
    x1, y1, x2, y2 = expected['boxes'][0]
    assert first['bbox'] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=0.01)
    cat = {c['id']: c['name'] for c in images['categories']}
    assert cat[first['category_id']] == model.classes[expected['labels'][0]]
    assert osp.isfile(out / 'vis' / 'scene.png')


# ------------------------------------------------------------------------ mmdetection
@pytest.mark.mmdet
def test_mmdet_plugin_inference_matches_mmdetection_own_path(tmp_path):
    """The plug-in's teacher through mmdetection's own inference_detector on the same
    image (BGR, as mmdetection reads files). Catches colour channels in the wrong
    order and boxes left at the resized scale."""
    pytest.importorskip('mmdet')
    pytest.importorskip('mmcv.ops')
    from mmdet.apis import inference_detector
    from mmengine.registry import DefaultScope
    model = init_model(MMDET_CFG, None,
                       cfg_options={'model.detector.test_cfg.score_thr': 0.0})
    img = np.random.default_rng(3).integers(0, 256, (90, 60, 3), dtype=np.uint8)
    (res,) = inference(model, [img])
    teacher = model.algorithm.teacher
    teacher.cfg = model.cfg
    with DefaultScope.overwrite_default_scope('mmdet'):
        ref = inference_detector(teacher, np.ascontiguousarray(img[..., ::-1])).pred_instances
    np.testing.assert_allclose(res['boxes'], ref.bboxes.numpy(), atol=1e-3)
    np.testing.assert_allclose(res['scores'], ref.scores.numpy(), atol=1e-5)
    assert res['boxes'][:, 2].max() <= 60 + 1e-3 and res['boxes'][:, 3].max() <= 90 + 1e-3


# ------------------------------------------------------------------------ unreadable files
def _unreadable_files(folder):
    """Files that are no readable image, named to sort between the good ones
    (a_good.png < b_* < c_good.png < d_* < e_good.png), and their expected reasons."""
    noise = np.random.default_rng(5).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    png, jpg = (cv2.imencode(ext, noise)[1].tobytes() for ext in ('.png', '.jpg'))
    garbled = bytearray(png)
    garbled[len(png) // 2:len(png) // 2 + 64] = bytes(64)  # inside the pixel data
    files = {'b_empty.jpg': (b'', 'empty file'),
             'b_notes.png': (b'<html>not found</html>', 'not an image'),
             'd_cut.png': (png[:len(png) // 2], 'PNG file whose pixels do not decode'),
             'd_cut.jpg': (jpg[:len(jpg) // 2], 'JPEG file whose pixels do not decode'),
             'd_garbled.png': (bytes(garbled), 'PNG file whose pixels do not decode')}
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {str(folder / n): reason for n, (_, reason) in files.items()}


def _read_skipped(out):
    lines = (out / 'skipped.txt').read_text().splitlines()
    assert lines[0] == 'file\treason'
    return dict(line.rsplit('\t', 1) for line in lines[1:])


@pytest.mark.parametrize('task', ['classification', 'segmentation', 'detection'])
def test_infer_tool_skips_unreadable_files_and_writes_every_good_result(tmp_path, capsys,
                                                                        task):
    """Good images among an empty file, a text file, truncated PNG / JPEG copies and a
    PNG with damaged pixel data: every good image's result is written, against the
    right file name, the others are listed with their reason, status 0. Catches a run
    that ends at the first bad file, results matched to the wrong files once one was
    skipped (each writer), and a missing or wrong skipped.txt."""
    from PIL import Image

    from ssvision.cli import main as cli
    config, opts = {'classification': (CLS_CFG, CLS_OPTS), 'segmentation': (SEG_CFG, SEG_OPTS),
                    'detection': (DET_CFG, DET_OPTS)}[task]
    model = init_model(config, None, cfg_options=opts)
    ckpt = _save(model, tmp_path / 'm.pth')
    model = init_model(config, ckpt, cfg_options=opts)
    folder = tmp_path / 'photos'
    folder.mkdir()
    rng = np.random.default_rng(6)
    good = [str(folder / f'{c}_good.png') for c in 'ace']
    for i, path in enumerate(good):  # different sizes: each result belongs to one image
        cv2.imwrite(path, rng.integers(0, 256, (28 + 4 * i, 36 + 8 * i, 3), dtype=np.uint8))
    bad = _unreadable_files(folder)
    out = tmp_path / 'out'
    status = cli(['infer', config, ckpt, str(folder), '--out', str(out), '--device', 'cpu',
                  '--score-thr', '0', '--cfg-options', *[f'{k}={v}' for k, v in opts.items()]])
    assert status == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f'wrote 3 predictions to {out} ({task}, teacher, cpu), skipped 5 '
                    f'unreadable files: see {out / "skipped.txt"}')
    skipped = _read_skipped(out)
    assert sorted(skipped) == sorted(bad)
    for path, reason in bad.items():
        assert skipped[path].startswith(reason), (path, skipped[path])
    expected = inference(model, good)
    if task == 'classification':
        rows = json.loads((out / 'predictions.json').read_text())
        assert [r['file'] for r in rows] == good
        for r, e in zip(rows, expected):
            assert r['scores'] == pytest.approx(dict(zip(model.classes,
                                                         e['scores'].tolist())), abs=1e-6)
    elif task == 'segmentation':
        meta = json.loads((out / 'masks.json').read_text())
        assert [m['file'] for m in meta['images']] == good
        for path, e in zip(good, expected):
            name = osp.splitext(osp.basename(path))[0]
            np.testing.assert_array_equal(np.asarray(Image.open(out / 'masks' / f'{name}.png')),
                                          e['mask'])
            assert Image.open(out / 'overlays' / f'{name}.png').size == e['mask'].shape[::-1]
    else:
        images = json.loads((out / 'images.json').read_text())['images']
        assert [(i['file_name'], i['height'], i['width']) for i in images] == \
            [(p, 28 + 4 * i, 36 + 8 * i) for i, p in enumerate(good)]
        results = json.loads((out / 'results.json').read_text())
        for image_id, e in enumerate(expected):
            mine = [r for r in results if r['image_id'] == image_id]
            assert len(mine) == len(e['boxes']) > 0
            assert [r['score'] for r in mine] == pytest.approx(e['scores'].tolist(), abs=1e-5)
        assert sorted(os.listdir(out / 'vis')) == ['a_good.png', 'c_good.png', 'e_good.png']


def test_infer_tool_exit_status_when_nothing_or_something_was_skipped(tmp_path, capsys):
    """Only unreadable files: status 1, with skipped.txt and the empty results written;
    --strict: status 3 when any file was skipped, the good results written all the same;
    a later clean run empties skipped.txt. Catches a run that reports success with no
    prediction at all, --strict ignored, and a stale skipped.txt left from a run before."""
    from ssvision.cli import main as cli
    model = init_model(CLS_CFG, None, cfg_options=CLS_OPTS)
    ckpt = _save(model, tmp_path / 'c.pth')
    opts = ['--cfg-options', 'model.model.width=8']
    bad_dir, mixed = tmp_path / 'bad', tmp_path / 'mixed'
    bad_dir.mkdir()
    mixed.mkdir()
    bad = _unreadable_files(bad_dir)
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as exc:
        cli(['infer', CLS_CFG, ckpt, str(bad_dir), '--out', str(out), *opts])
    assert exc.value.code == 1
    assert 'none of the 5 input files could be read' in capsys.readouterr().err
    assert sorted(_read_skipped(out)) == sorted(bad)
    assert json.loads((out / 'predictions.json').read_text()) == []

    digit = str(mixed / 'digit.png')
    cv2.imwrite(digit, _digits(1)[0])
    (mixed / 'zero.png').write_bytes(b'')
    with pytest.raises(SystemExit) as exc:
        cli(['infer', CLS_CFG, ckpt, str(mixed), '--out', str(out), '--strict', *opts])
    assert exc.value.code == 3
    assert [r['file'] for r in json.loads((out / 'predictions.json').read_text())] == [digit]
    assert _read_skipped(out) == {str(mixed / 'zero.png'): 'empty file (0 bytes)'}

    assert cli(['infer', CLS_CFG, ckpt, digit, '--out', str(out), '--strict', *opts]) == 0
    assert _read_skipped(out) == {}
    assert capsys.readouterr().out.strip().endswith('(classification, teacher, cpu)')


def test_inference_api_names_the_unreadable_file_and_why(tmp_path):
    """inference() on a truncated file raises UnreadableImageError naming the file and
    the reason. Catches a truncated file decoded into a half-grey image (a prediction
    for pixels that are not there) and an error that does not say which file."""
    from ssvision.apis.inference import UnreadableImageError
    model = init_model(CLS_CFG, None, cfg_options=CLS_OPTS)
    bad = _unreadable_files(tmp_path)
    cut = str(tmp_path / 'd_cut.jpg')
    with pytest.raises(UnreadableImageError, match='d_cut.jpg: JPEG file whose pixels') as exc:
        inference(model, [_digits(1)[0], cut])
    assert exc.value.path == cut and exc.value.reason.startswith(bad[cut])
