"""Users' own files that used to train or score silently wrong: class folders renamed or
reordered between splits, black / white masks, COCO sizes that disagree with the files,
missing COCO images, labeled files cut short after their header."""

from __future__ import annotations

import json
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest

from ssvision.datasets import (
    CocoDetDataset,
    ImageFolder,
    SemiDataset,
    UnlabeledImageFolder,
    VOCSegDataset,
    check_classes,
    image_size,
    read_image,
)


def _write(path, img: np.ndarray) -> str:
    path = str(path)
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, img), path
    return path


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _class_folders(root, names, per_class: int = 2) -> None:
    for c, name in enumerate(names):
        for i in range(per_class):
            _write(osp.join(root, name, f'{i}.png'), _noise(20, 24, seed=10 * c + i))


def _truncate(path: str, keep: float = 0.5) -> None:
    """Cut a file short: its header still parses, its pixels no longer decode."""
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])
    from PIL import Image
    with Image.open(path) as im:  # the header is intact: a header check passes it
        assert im.size[0] > 0


def _coco(root, sizes=((40, 48), (32, 32), (36, 50)), categories=('cat', 'dog')) -> str:
    """A COCO json over noise images of ``(height, width)`` ``sizes``, one box each."""
    images, anns = [], []
    for i, (h, w) in enumerate(sizes, start=1):
        _write(osp.join(root, 'images', f'{i:03d}.png'), _noise(h, w, seed=i))
        images.append(dict(id=i, file_name=f'{i:03d}.png', height=h, width=w))
        anns.append(dict(id=i, image_id=i, category_id=1 + (i % len(categories)),
                         bbox=[2, 3, 10, 12], area=120, iscrowd=0))
    cats = [dict(id=k + 1, name=n) for k, n in enumerate(categories)]
    path = osp.join(root, 'annotations.json')
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    return path


def _seg_folder(root, masks: list[np.ndarray]) -> str:
    for i, mask in enumerate(masks):
        _write(osp.join(root, 'images', f'{i}.png'), _noise(*mask.shape, seed=i))
        _write(osp.join(root, 'masks', f'{i}.png'), mask.astype(np.uint8))
    return str(root)


def _seg(root, **kwargs) -> VOCSegDataset:
    return VOCSegDataset(str(root), img_dir='images', ann_dir='masks', **kwargs)


# ------------------------------------------------------------------ class names
def test_renamed_val_class_folders_are_an_error_listing_both(tmp_path):
    # catches: splits compared by number of classes only (positions matched silently)
    _class_folders(tmp_path / 'labeled', ('cat', 'dog'))
    _class_folders(tmp_path / 'val', ('cat', 'fox'))
    labeled = ImageFolder(str(tmp_path / 'labeled'))
    train = SemiDataset(labeled, None)
    val = ImageFolder(str(tmp_path / 'val'))
    assert val.num_classes == labeled.num_classes == 2  # the count alone passes
    with pytest.raises(ValueError) as e:
        check_classes({'train_dataloader.dataset': train, 'val_dataloader.dataset': val},
                      num_classes=2)
    text = str(e.value)
    assert "has ['cat', 'fox']" in text and "has ['cat', 'dog']" in text
    assert str(tmp_path / 'val') in text and "missing ['dog']" in text
    assert "extra ['fox']" in text and 'rename' in text
    # a class missing from the test set is an error too, even with num_classes given
    _class_folders(tmp_path / 'test', ('dog',))
    test = ImageFolder(str(tmp_path / 'test'), num_classes=2)
    with pytest.raises(ValueError, match=re.escape("missing ['cat']")):
        check_classes({'train': train, 'test': test})
    # the checkpoint's class names are the reference when known
    with pytest.raises(ValueError, match=re.escape("the model (the checkpoint) has "
                                                   "['cat', 'wolf']")):
        check_classes({'test': labeled}, model_classes=('cat', 'wolf'), num_classes=2)
    assert check_classes({'train': train, 'val': labeled}, model_classes=('cat', 'dog')) == []


def test_reordered_classes_map_by_name_or_are_refused(tmp_path, caplog):
    # catches: another order matched by position (labels of one class scored as another)
    _class_folders(tmp_path / 'val', ('cat', 'dog'))
    val = ImageFolder(str(tmp_path / 'val'))
    cat = val.names.index('cat/0.png')
    assert val.get_label(cat) == 0
    # the model was trained with ('dog', 'cat'): folders keep their names, not numbers
    assert check_classes({'val': val}, model_classes=('dog', 'cat')) == ['val']
    assert val.metainfo['classes'] == ('dog', 'cat') and val.get_label(cat) == 1
    assert val[cat]['gt_label'] == 1 and val[val.names.index('dog/1.png')]['gt_label'] == 0

    # COCO: the val json lists the same categories in another order, under other ids
    train = CocoDetDataset(_coco(str(tmp_path / 'train'), categories=('cat', 'dog')),
                           subset='labeled')
    val_ann = _coco(str(tmp_path / 'coco_val'), categories=('dog', 'cat'))
    det = CocoDetDataset(val_ann)
    names = {c['id']: c['name'] for c in json.load(open(val_ann))['categories']}
    box_names = [names[a['category_id']] for a in json.load(open(val_ann))['annotations']]
    assert check_classes({'train': train, 'val': det}) == ['val']
    assert det.metainfo['classes'] == ('cat', 'dog') and det.metainfo['cat_ids'] == [2, 1]
    got = [train.classes[int(det[i]['gt_labels'][0])] for i in range(len(det))]
    assert got == box_names  # every box keeps its category name

    # segmentation: masks store ids, names come from the config: another order is refused
    masks = [np.array([[0, 1], [2, 255]]).repeat(8, 0).repeat(8, 1)] * 2
    _seg_folder(tmp_path / 'seg', masks)
    seg_train = _seg(tmp_path / 'seg', subset='labeled', num_classes=3,
                     classes=('bg', 'road', 'car'))
    seg_val = _seg(tmp_path / 'seg', num_classes=3, classes=('bg', 'car', 'road'))
    with pytest.raises(ValueError, match='another order.*same classes= in the same order'):
        check_classes({'train': seg_train, 'val': seg_val})
    # index names (no classes=) are compared by count only
    assert check_classes({'train': seg_train, 'val': _seg(tmp_path / 'seg', num_classes=3)},
                         num_classes=3) == []


# ----------------------------------------------------------------------- masks
def test_black_white_masks_without_label_map_stop_the_build(tmp_path):
    # catches: 0/255 masks accepted as 'background + ignore' (training sees no object)
    blob = np.zeros((16, 16), np.uint8)
    blob[4:12, 4:12] = 255
    root = _seg_folder(tmp_path / 'bw', [blob, np.roll(blob, 3, axis=1)])
    for subset, check in ((None, None), ('labeled', None), ('labeled', 'header'),
                          ('labeled', 'none')):
        with pytest.raises(ValueError) as e:
            _seg(root, subset=subset, num_classes=2, check=check)
        text = str(e.value)
        assert 'label_map={0: 0, 255: 1}' in text and str(tmp_path / 'bw' / 'masks') in text
        assert 'ignore_index=255' in text and '0.png' in text
    mapped = _seg(root, subset='labeled', num_classes=2, label_map={0: 0, 255: 1})
    assert set(np.unique(mapped[0]['gt_seg'])) == {0, 1}
    # a genuine mask: 255 is ignore beside real class ids 1..3
    genuine = np.array([[0, 1, 2, 3], [255, 255, 1, 0]], np.uint8).repeat(4, 0).repeat(4, 1)
    real = _seg(_seg_folder(tmp_path / 'genuine', [genuine]), subset='labeled',
                num_classes=4)
    np.testing.assert_array_equal(real[0]['gt_seg'], genuine)
    # one class only: nothing to map
    assert len(_seg(root, subset='labeled', num_classes=1)) == 2


# ------------------------------------------------------------------------ COCO
@pytest.mark.parametrize('check', [None, 'header'])
def test_coco_size_that_disagrees_with_the_file_is_an_error(tmp_path, check):
    # catches: json width/height trusted without looking at the file (boxes clipped wrong)
    ann = _coco(str(tmp_path))
    coco = json.load(open(ann))
    coco['images'][1]['width'] = 80  # the file is 32 x 32
    with open(ann, 'w') as f:
        json.dump(coco, f)
    with pytest.raises(ValueError) as e:
        CocoDetDataset(ann, subset='labeled', check=check)
    text = str(e.value)
    assert str(tmp_path / 'images' / '002.png') in text and ann in text
    assert 'json width x height 80 x 32, file 32 x 32' in text
    assert '001.png' not in text and 'fix width / height in the json' in text
    assert len(CocoDetDataset(ann, subset='labeled', check='none')) == 3  # opted out


def test_exif_turned_jpeg_size_is_read_as_opencv_reads_it(tmp_path):
    # catches: a header size that ignores EXIF orientation (a false mismatch, or none)
    from PIL import Image
    path = str(tmp_path / 'images' / '001.jpg')
    os.makedirs(osp.dirname(path))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 48 wide x 30 high, shown turned: 30 wide x 48 high
    Image.fromarray(_noise(30, 48)).save(path, exif=exif.tobytes())
    assert image_size(path) == read_image(path).shape[:2] == (48, 30)
    png = str(tmp_path / 'turned.png')
    Image.fromarray(_noise(30, 48)).save(png, exif=exif.tobytes())
    assert image_size(png) == read_image(png).shape[:2] == (48, 30)
    coco = dict(images=[dict(id=1, file_name='001.jpg', width=30, height=48)],
                annotations=[], categories=[dict(id=1, name='a')])
    ann = str(tmp_path / 'annotations.json')
    json.dump(coco, open(ann, 'w'))
    for check in ('decode', 'header'):
        assert len(CocoDetDataset(ann, check=check)) == 1
    coco['images'][0].update(width=48, height=30)  # the stored size
    json.dump(coco, open(ann, 'w'))
    with pytest.raises(ValueError, match='json width x height 48 x 30, file 30 x 48, turned '
                                         'by its EXIF orientation'):
        CocoDetDataset(ann, check='header')


def test_missing_coco_image_is_an_error_at_build(tmp_path):
    # catches: a missing image file found only when it is first loaded (mid-run)
    ann = _coco(str(tmp_path))
    os.remove(tmp_path / 'images' / '003.png')
    for subset in ('labeled', None, 'unlabeled'):
        with pytest.raises(FileNotFoundError) as e:
            CocoDetDataset(ann, subset=subset)
        assert str(tmp_path / 'images' / '003.png') in str(e.value)
        assert '1 of 3 image files not found' in str(e.value) and 'img_dir' in str(e.value)


# -------------------------------------------------------- files cut after the header
def test_truncated_labeled_files_are_caught_at_build(tmp_path):
    # catches: labeled files only header-checked at build (found at iteration 2 or 4)
    _class_folders(tmp_path / 'cls', ('cat', 'dog'))
    cut = _write(tmp_path / 'cls' / 'dog' / 'cut.jpg', _noise(40, 40))
    _truncate(cut)
    with pytest.raises(OSError, match=re.escape(cut)):
        ImageFolder(str(tmp_path / 'cls'))
    assert len(ImageFolder(str(tmp_path / 'cls'), check='header')) == 5  # opted out

    ann = _coco(str(tmp_path / 'det'))
    _truncate(str(tmp_path / 'det' / 'images' / '002.png'))
    with pytest.raises(OSError, match=re.escape(str(tmp_path / 'det' / 'images' / '002.png'))):
        CocoDetDataset(ann, subset='labeled')

    masks = [np.array([[0, 1], [1, 0]], np.uint8).repeat(32, 0).repeat(32, 1)] * 3
    root = _seg_folder(tmp_path / 'seg', masks)
    _truncate(osp.join(root, 'images', '1.png'))
    with pytest.raises(OSError, match=re.escape(osp.join(root, 'images', '1.png'))):
        _seg(root, subset='labeled', num_classes=2)
    _write(osp.join(root, 'images', '1.png'), _noise(64, 64))
    _truncate(osp.join(root, 'masks', '2.png'))
    with pytest.raises(OSError, match=re.escape(osp.join(root, 'masks', '2.png'))):
        _seg(root, num_classes=2)

    # unlabeled folders keep their counted skip at load: the build passes the file
    _write(tmp_path / 'unl' / 'a.png', _noise(20, 20))
    _write(tmp_path / 'unl' / 'b.jpg', _noise(40, 40))
    _truncate(str(tmp_path / 'unl' / 'b.jpg'))
    unlabeled = UnlabeledImageFolder(str(tmp_path / 'unl'))
    assert len(unlabeled) == 2 and unlabeled.skipped == []
