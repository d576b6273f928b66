"""Users' own images: class folders plus a flat unlabeled folder, a COCO json plus an
unlabeled folder, masks plus an unlabeled folder; bad files and bad annotations."""

from __future__ import annotations

import json
import os
import os.path as osp
import pickle
import re

import cv2
import numpy as np
import pytest
import torch

from ssvision.datasets import (
    CocoDetDataset,
    ImageFolder,
    SemiDataset,
    UnlabeledDetFolder,
    UnlabeledImageFolder,
    UnlabeledSegFolder,
    UnreadableLog,
    VOCSegDataset,
    semi_collate,
    write_coco_scenes,
)
from ssvision.datasets.transforms import ResizeImage

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CUSTOM = osp.join(REPO, 'configs', 'custom')


@pytest.fixture
def log(tmp_path):
    """``log()`` returns what mmengine's current logger wrote since the test began (a file
    handler: DataLoader workers forked in the test write to it too)."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    path = tmp_path / 'test.log'
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter('%(levelname)s %(message)s'))
    logger.addHandler(handler)
    yield lambda: path.read_text()
    logger.removeHandler(handler)
    handler.close()


# ------------------------------------------------------------------------ test images
@pytest.fixture(scope='module')
def photos():
    """scikit-learn's two bundled photos, RGB uint8 (427, 640, 3)."""
    from sklearn.datasets import load_sample_images
    return list(load_sample_images().images)


def _crop(photo: np.ndarray, rng: np.random.Generator, lo: int = 24, hi: int = 72):
    h, w = int(rng.integers(lo, hi)), int(rng.integers(lo, hi))
    y, x = int(rng.integers(photo.shape[0] - h)), int(rng.integers(photo.shape[1] - w))
    return np.ascontiguousarray(photo[y:y + h, x:x + w])


def _write(path, rgb: np.ndarray) -> str:
    """Write an RGB (or 1- / 4-channel) image with OpenCV; returns the path."""
    path = str(path)
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = rgb
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        img = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(path, img), path
    return path


def _truncate(path: str, keep: float = 0.3) -> None:
    """Cut a file short: its header stays readable, its pixels do not decode."""
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


def _unlabeled_folder(root, photos, n: int = 10, seed: int = 0) -> dict[str, str]:
    """Crops of different sizes at three depths, a gray PNG, an RGBA PNG, a 16-bit PNG,
    an upper-case extension and a text file. Returns the special files by kind."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = ('', 'a', 'a/b')[i % 3]
        _write(osp.join(root, sub, f'{i:03d}.jpg'), _crop(photos[i % 2], rng))
    gray = cv2.cvtColor(_crop(photos[0], rng), cv2.COLOR_RGB2GRAY)
    rgba = _crop(photos[1], rng)
    rgba = np.concatenate([rgba, np.full(rgba.shape[:2] + (1,), 200, np.uint8)], axis=2)
    deep = (_crop(photos[0], rng).astype(np.uint16) * 257)
    files = {'gray': _write(osp.join(root, 'gray.png'), gray),
             'rgba': _write(osp.join(root, 'a', 'rgba.png'), rgba),
             'deep': _write(osp.join(root, 'deep16.png'), deep),
             'upper': _write(osp.join(root, 'UPPER.JPG'), _crop(photos[1], rng))}
    with open(osp.join(root, 'notes.txt'), 'w') as f:
        f.write('not an image')
    files['rgba_pixels'] = rgba
    files['gray_pixels'] = gray
    return files


def _class_folders(root, photos, per_class: int = 3, seed: int = 1) -> None:
    """Two classes, one per photo: crops of different sizes."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(('china', 'flower')):
        for i in range(per_class):
            _write(osp.join(root, name, f'{i}.png' if i % 2 else f'{i}.jpg'),
                   _crop(photos[c], rng))


# ------------------------------------------------------------ reading unlabeled folders
def test_unlabeled_folder_any_depth_any_channels_any_size(tmp_path, photos):
    files = _unlabeled_folder(tmp_path, photos)
    ds = UnlabeledImageFolder(str(tmp_path))
    assert len(ds) == 14 and ds.skipped == []  # 10 crops + gray, rgba, 16-bit, upper case
    assert 'a/b/002.jpg' in ds.names and 'UPPER.JPG' in ds.names
    assert not any(n.endswith('.txt') for n in ds.names)
    sizes = set()
    for i in range(len(ds)):
        out = ds[i]
        assert out['img'].dtype == np.uint8 and out['img'].ndim == 3
        assert out['img'].shape[2] == 3
        assert out['gt_label'] == -1 and out['true_label'] == -1 and out['sample_idx'] == i
        sizes.add(out['img'].shape[:2])
    assert len(sizes) > 5
    gray = ds[ds.names.index('gray.png')]['img']
    np.testing.assert_array_equal(gray, np.repeat(files['gray_pixels'][..., None], 3, 2))
    rgba = ds[ds.names.index('a/rgba.png')]['img']
    np.testing.assert_array_equal(rgba, files['rgba_pixels'][..., :3])  # alpha dropped
    assert ds[ds.names.index('deep16.png')]['img'].max() > 100  # 16-bit scaled to 8-bit
    one = UnlabeledImageFolder(str(tmp_path), color_type='grayscale')
    assert all(one[i]['img'].shape[2] == 1 for i in range(len(one)))
    for cls in (UnlabeledSegFolder, UnlabeledDetFolder):
        assert cls(str(tmp_path)).prepare_results(3)['img'].shape[2] == 3


def test_unreadable_unlabeled_files_are_skipped_counted_and_named_once(tmp_path, photos, log):
    _unlabeled_folder(tmp_path, photos, n=6)
    bad = []
    for i in range(7):
        path = tmp_path / 'bad' / f'broken{i}.jpg'
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b'' if i == 0 else b'<html>404 not found</html>' * i)
        bad.append(str(path))
    ds = UnlabeledImageFolder(str(tmp_path))
    assert len(ds) == 10 and [p for p, _ in ds.skipped] == bad
    out = log()
    warnings = [line for line in out.splitlines() if 'cannot be read' in line]
    assert len(warnings) == 1 and 'WARNING' in warnings[0]
    assert 'skipped 7 of 17 image files' in warnings[0]
    assert all(p in warnings[0] for p in bad[:5]) and bad[5] not in warnings[0]
    assert 'and 2 more' in warnings[0]
    assert all(b not in ds.paths for b in bad)
    # every file unreadable: an error naming the folder
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / 'bad')) + '.*none of its 7'):
        UnlabeledImageFolder(str(tmp_path / 'bad'))


def test_a_file_that_fails_at_load_is_replaced_and_counted_across_workers(tmp_path, photos,
                                                                          log):
    _unlabeled_folder(tmp_path, photos, n=6)
    ds = UnlabeledImageFolder(str(tmp_path), pipeline=[ResizeImage(32),
                                                       dict(type='PackClsInputs')])
    victim = ds.names.index('a/004.jpg')
    _truncate(ds.paths[victim])  # the header still parses: the build-time check passes
    assert UnlabeledImageFolder(str(tmp_path)).skipped == []
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2,
                                         collate_fn=semi_collate)
    idx = torch.cat([b['data_samples']['sample_idx'] for b in loader]).tolist()
    assert len(idx) == len(ds) and idx.count(victim) == 0 and idx.count(victim + 1) == 2
    # the workers' failure reaches the main process
    assert ds.load_failures.files() == [ds.paths[victim]] and len(ds.load_failures) == 1
    assert 'each replaced by the next readable image' in log()
    # the log survives pickling (spawned workers) and only its creator removes the file
    copy = pickle.loads(pickle.dumps(ds.load_failures))
    assert copy.files() == [ds.paths[victim]]
    del copy
    assert osp.exists(ds.load_failures.path)


def test_unreadable_log_positions_are_unique():
    log = UnreadableLog()
    assert len(log) == 0 and log.files() == []
    assert [log.add(f'f{i}.jpg') for i in range(3)] == [1, 2, 3]
    log.add('f0.jpg')
    assert log.files() == ['f0.jpg', 'f1.jpg', 'f2.jpg']
    path = log.path
    del log
    assert not osp.exists(path)


# ------------------------------------------------------------------- labeled files
def test_unreadable_labeled_file_is_an_error_naming_it(tmp_path, photos):
    _class_folders(tmp_path, photos)
    broken = tmp_path / 'flower' / 'broken.jpg'
    broken.write_bytes(b'not a jpeg')
    for check in (None, 'header', 'decode'):
        with pytest.raises(OSError, match=re.escape(str(broken))):
            ImageFolder(str(tmp_path), check=check)
    ds = ImageFolder(str(tmp_path), check='none')  # unchecked: the error comes when loaded
    with pytest.raises(OSError, match=re.escape(str(broken))):
        ds[ds.names.index('flower/broken.jpg')]
    # a detection image that does not decode: the error names it too
    ann = write_coco_scenes(str(tmp_path / 'det'), 2, seed=0, items='mnist5k', size=64)
    det = CocoDetDataset(ann, subset='labeled')
    _truncate(det.get_img_path(1))
    with pytest.raises(OSError, match=re.escape(det.get_img_path(1))):
        det[1]


def test_empty_folders_are_errors_naming_them(tmp_path, photos):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'sub').mkdir()
    (empty / 'sub' / 'readme.txt').write_text('no images here')
    for cls in (UnlabeledImageFolder, UnlabeledSegFolder, UnlabeledDetFolder):
        with pytest.raises(ValueError, match=re.escape(str(empty)) + '.*no image files'):
            cls(str(empty))
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / 'missing'))):
        UnlabeledImageFolder(str(tmp_path / 'missing'))
    labeled = tmp_path / 'labeled'
    _class_folders(labeled, photos)
    (labeled / 'empty_class').mkdir()
    with pytest.raises(ValueError, match=re.escape(str(labeled / 'empty_class'))):
        ImageFolder(str(labeled))
    (tmp_path / 'seg' / 'images').mkdir(parents=True)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / 'seg' / 'images'))):
        VOCSegDataset(str(tmp_path / 'seg'), img_dir='images', ann_dir='masks',
                      subset='labeled', num_classes=2)


# ----------------------------------------------------------- one sample per task
def test_class_folders_pair_with_a_flat_folder(tmp_path, photos):
    from ssvision.utils import load_config
    _class_folders(tmp_path / 'labeled', photos)
    _unlabeled_folder(tmp_path / 'unlabeled', photos)
    cfg = load_config(osp.join(CUSTOM, 'fixmatch_resnet18_own-folders.py'))
    semi = cfg.train_dataloader.dataset
    semi.labeled.root = str(tmp_path / 'labeled')
    semi.unlabeled.root = str(tmp_path / 'unlabeled')
    ds = SemiDataset(semi.labeled.to_dict(), semi.unlabeled.to_dict())
    assert ds.num_labeled == 6 and ds.num_unlabeled == 14 and ds.num_classes == 2
    assert ds.unlabeled.metainfo['classes'] == ('china', 'flower')  # taken from labeled
    batch = semi_collate([ds[(i, i)] for i in (0, 5, 6, 7, 8, 19)])
    size = cfg.img_size
    assert batch['inputs']['sup'].shape == (2, 3, size, size)
    assert batch['inputs']['unsup_student'].shape == (4, 3, size, size)
    assert batch['data_samples']['sup']['gt_label'].tolist() == [0, 1]
    assert batch['data_samples']['unsup_teacher']['gt_label'].tolist() == [-1] * 4
    assert batch['data_samples']['unsup_teacher']['true_label'].tolist() == [-1] * 4
    with pytest.raises(ValueError, match='color_type'):
        SemiDataset(ImageFolder(str(tmp_path / 'labeled'), color_type='grayscale'),
                    UnlabeledImageFolder(str(tmp_path / 'unlabeled')))


def test_unknown_true_labels_never_count_as_wrong_pseudo_labels():
    from ssvision.models.algorithms.health import selection_health
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels, weight = probs.argmax(1), torch.ones(3)
    unknown = selection_health(probs, labels, weight, {'true_label': torch.full((3,), -1)})
    assert 'pl_acc' not in unknown and 'pl_acc_all' not in unknown
    seg_probs = probs.T.reshape(1, 2, 1, 3)
    unknown_seg = selection_health(seg_probs, seg_probs.argmax(1), torch.ones(1, 1, 3),
                                   {'true_seg': torch.full((1, 1, 3), 255)})
    assert 'pl_acc' not in unknown_seg
    known = selection_health(probs, labels, weight, {'true_label': torch.tensor([0, 0, -1])})
    assert known['pl_acc'] == 0.5  # the unknown third sample is left out, not wrong


def test_unlabeled_seg_folder_packs_all_ignore_masks(tmp_path, photos):
    _unlabeled_folder(tmp_path, photos, n=4)
    pipeline = [dict(type='SegWeakAugment', scale_range=(0.5, 1.0), crop_size=(48, 48)),
                dict(type='MultiBranch', branches=dict(
                    unsup_teacher=[dict(type='PackSegInputs')],
                    unsup_student=[dict(type='SegStrongAugment'),
                                   dict(type='PackSegInputs')]))]
    ds = UnlabeledSegFolder(str(tmp_path), pipeline=pipeline)
    batch = semi_collate([ds[(i, i)] for i in range(len(ds))])
    teacher = batch['data_samples']['unsup_teacher']
    assert batch['inputs']['unsup_student'].shape == (len(ds), 3, 48, 48)
    assert (teacher['gt_seg'] == 255).all() and (teacher['true_seg'] == 255).all()
    assert teacher['valid_mask'].any()


def test_unlabeled_det_folder_packs_empty_boxes(tmp_path, photos):
    _unlabeled_folder(tmp_path, photos, n=4)
    pipeline = [dict(type='DetWeakAugment', short_side=(40, 48), flip_prob=0.5),
                dict(type='MultiBranch', branches=dict(
                    unsup_teacher=[dict(type='PackDetInputs')],
                    unsup_student=[dict(type='DetStrongAugment'), dict(type='PackDetInputs')]))]
    ds = UnlabeledDetFolder(str(tmp_path), pipeline=pipeline)
    batch = semi_collate([ds[(i, i)] for i in range(len(ds))])
    samples = batch['data_samples']['unsup_student']
    assert all(len(g) == 0 for g in samples['gt_instances'])
    assert all(len(t) == 0 for t in samples['true_instances'])
    assert all(img.shape[0] == 3 and min(img.shape[1:]) in range(40, 49)
               for img in batch['inputs']['unsup_teacher'])


def test_resize_image_crop_and_stretch():
    img = np.arange(40 * 80, dtype=np.uint8).reshape(40, 80, 1)
    out = ResizeImage(20)({'img': img})['img']
    assert out.shape == (20, 20, 1)  # scaled to 20 x 40, centre 20 columns
    np.testing.assert_array_equal(out, cv2.resize(img, (40, 20),
                                                  interpolation=cv2.INTER_AREA)[:, 10:30, None])
    assert ResizeImage((30, 10), fit='stretch')({'img': img})['img'].shape == (30, 10, 1)
    assert ResizeImage((100, 90))({'img': img})['img'].shape == (100, 90, 1)  # enlarges
    with pytest.raises(ValueError, match='gt_seg'):
        ResizeImage(20)({'img': img, 'gt_seg': img[..., 0]})


# ----------------------------------------------------------------- COCO annotations
def test_bad_json_names_the_file_line_and_column(tmp_path):
    path = tmp_path / 'annotations.json'
    path.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(ValueError, match=re.escape(str(path)) + '.*line 2, column 18'):
        CocoDetDataset(str(path))
    path.write_bytes(b'\x89PNG\r\n\x1a\n')
    with pytest.raises(ValueError, match=re.escape(str(path))):
        CocoDetDataset(str(path))
    path.write_text('[1, 2]')
    with pytest.raises(ValueError, match=re.escape(str(path)) + '.*not a COCO file'):
        CocoDetDataset(str(path))


def test_dropped_annotations_are_counted_by_reason_in_one_line(tmp_path, log):
    ann = write_coco_scenes(str(tmp_path), 3, seed=0, items='mnist5k', size=64)
    coco = json.load(open(ann))
    n = len(coco['annotations'])
    extra = [dict(bbox=[10, 10, -5, 8]), dict(bbox=[70, 70, 5, 5]), dict(bbox=[60, 2, 10, 10]),
             dict(bbox=[3, 3, 0.5, 9]), dict(bbox=[1, 2, 3]), dict(bbox=[1, 1, 4, 4], iscrowd=1),
             dict(bbox=[1, 1, 4, 4], image_id=99)]
    for k, a in enumerate(extra):
        coco['annotations'].append(dict(dict(id=9000 + k, image_id=1, category_id=1,
                                             iscrowd=0, area=1), **a))
    with open(ann, 'w') as f:
        json.dump(coco, f)
    ds = CocoDetDataset(ann, subset='labeled')
    assert ds.skipped == {'negative_size': 1, 'outside_image': 1, 'degenerate': 1,
                          'malformed': 1, 'crowd': 1, 'unknown_image': 1}
    assert ds.clipped == 1  # [60, 2, 10, 10] reaches over the right border: kept, clipped
    lines = [x for x in log().splitlines() if 'CocoDetDataset(' in x]
    assert len(lines) == 1 and 'WARNING' in lines[0]
    assert f'{n + 1} boxes on 3 images' in lines[0]
    for text in ('negative_size 1 (first: annotation 9000)', 'outside_image 1',
                 'degenerate 1', 'malformed 1', 'crowd 1', 'unknown_image 1', '1 boxes clipped'):
        assert text in lines[0]
    boxes = ds.prepare_results(0)['gt_bboxes']
    assert (boxes[:, 2] > boxes[:, 0]).all() and boxes[:, 2].max() <= 64


# --------------------------------------------------- the example configs, end to end
def _train(config: str, work_dir, options: list[str]) -> dict:
    """A few iterations of ``tools/train.py CONFIG``; returns the logged scalars."""
    from mmengine.logging import MessageHub

    from ssvision.tools import train as train_tool
    common = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
              'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=2',
              'train_dataloader.batch_size=4', 'train_dataloader.sampler.labeled_batch_size=2',
              'train_dataloader.sampler.unlabeled_ratio=1',
              'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
              'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False']
    train_tool.main([osp.join(CUSTOM, config), '--work-dir', str(work_dir), '--cfg-options',
                     *common, *options])
    assert osp.exists(osp.join(str(work_dir), 'iter_2.pth'))
    return MessageHub.get_current_instance().log_scalars


def test_fixmatch_on_class_folders_and_a_flat_folder_trains(tmp_path, photos, monkeypatch):
    """The user's story: images in the config's documented layout under ./data, the
    config unchanged (its default num_classes is 2); the options below only shrink."""
    data = tmp_path / 'data' / 'own_images'
    _class_folders(data / 'labeled', photos)
    _unlabeled_folder(data / 'unlabeled', photos)
    (data / 'unlabeled' / 'x' / 'broken.jpg').parent.mkdir()
    (data / 'unlabeled' / 'x' / 'broken.jpg').write_bytes(b'\xff\xd8 truncated')
    monkeypatch.chdir(tmp_path)
    ds = 'train_dataloader.dataset'
    scalars = _train('fixmatch_resnet18_own-folders.py', tmp_path / 'work', [
        'val_dataloader.batch_size=3', f'{ds}.labeled.pipeline.0.size=32',
        f'{ds}.unlabeled.pipeline.0.size=32', 'val_dataloader.dataset.pipeline.0.size=32'])
    assert 'train/unsup_loss' in scalars and 'val/teacher/top1' in scalars
    assert 'train/sel_frac' in scalars and 'train/pl_acc_all' not in scalars


def test_fixmatch_on_masks_and_an_unlabeled_folder_trains(tmp_path, photos):
    from ssvision.datasets import write_voc_scenes
    data = tmp_path / 'own_seg'
    ids = write_voc_scenes(str(tmp_path / 'scenes'), 4, seed=0, items='mnist5k', size=64,
                           binary=True)
    (data / 'labeled').mkdir(parents=True)
    os.rename(tmp_path / 'scenes' / 'JPEGImages', data / 'labeled' / 'images')
    os.rename(tmp_path / 'scenes' / 'SegmentationClass', data / 'labeled' / 'masks')
    for folder in ('images', 'masks'):  # one labeled image of another size
        path = str(data / 'labeled' / folder / f'{ids[1]}.png')
        cv2.imwrite(path, cv2.imread(path, cv2.IMREAD_UNCHANGED)[:48, 4:60])
    _unlabeled_folder(data / 'unlabeled', photos, n=6)
    (data / 'unlabeled' / 'broken.png').write_bytes(b'')
    ds = 'train_dataloader.dataset'
    scalars = _train('fixmatch_deeplabv3plus-r18_own-folders.py', tmp_path / 'work', [
        f'{ds}.labeled.data_root={data}/labeled', f'{ds}.unlabeled.root={data}/unlabeled',
        f'val_dataloader.dataset.data_root={data}/labeled',
        f'{ds}.labeled.pipeline.0.crop_size=[48,48]',
        f'{ds}.unlabeled.pipeline.0.crop_size=[48,48]',
        'model.model.aspp_channels=16', 'model.model.decoder_channels=16'])
    assert 'train/unsup_loss' in scalars and 'val/teacher/mIoU' in scalars
    assert 'train/sel_frac' in scalars and 'train/pl_acc_all' not in scalars


def test_mean_teacher_on_a_coco_json_and_an_unlabeled_folder_trains(tmp_path, photos, capfd):
    data = tmp_path / 'own_coco'
    ann = write_coco_scenes(str(data), 6, seed=0, items='mnist5k', size=64)
    coco = json.load(open(ann))
    coco['annotations'].append(dict(id=9000, image_id=1, category_id=1, bbox=[30, 30, -6, 9],
                                    area=0, iscrowd=0))
    with open(ann, 'w') as f:
        json.dump(coco, f)
    _unlabeled_folder(data / 'unlabeled', photos, n=6)
    (data / 'unlabeled' / 'a' / 'broken.jpg').write_text('<html>not an image</html>')
    ds = 'train_dataloader.dataset'
    scalars = _train('semi_det_retinanet-r18_own-coco-folder.py', tmp_path / 'work', [
        f'{ds}.labeled.ann_file={ann}', f'{ds}.labeled.img_dir={data}/images',
        f'{ds}.unlabeled.root={data}/unlabeled', f'val_dataloader.dataset.ann_file={ann}',
        f'val_dataloader.dataset.img_dir={data}/images', f'val_evaluator.ann_file={ann}',
        'model.detector.num_classes=10', 'model.selector.num_classes=10',
        'model.detector.min_size=64', 'model.detector.max_size=64',
        'model.semi_train_cfg.burn_in_iters=1', 'model.selector.floor=0.0',
        'model.selector.min_score=0.0', 'model.detector.score_thresh=0.0'])
    assert 'train/unsup_loss_cls' in scalars and 'val/teacher/mAP' in scalars
    assert 'train/pb_per_img' in scalars and 'train/pb_prec' not in scalars
    text = capfd.readouterr().out  # the run's logger writes to this test's stdout
    assert 'negative_size 1 (first: annotation 9000)' in text
    assert 'skipped 1 of 11 image files' in text and 'broken.jpg' in text
