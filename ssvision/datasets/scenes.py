"""Scenes for detection and segmentation: real items pasted on real photos, exact targets.

A scene is a random crop of one of the two real photos bundled with scikit-learn
(``sklearn/datasets/images/{china,flower}.jpg``, 427x640 RGB, read by path with OpenCV;
scikit-image is not needed) on which real 28x28 gray items (MNIST-5k digits or
Fashion-MNIST items) are pasted, each scaled and coloured. Conventions (exact):

* **Background**: crop of ``s * min(photo H, W)`` rows, ``s ~ U(0.5, 1.0)``, with the
  scene's aspect ratio, at a uniform position; resized to the scene size, flipped
  left-right with probability 0.5, multiplied by ``U(0.4, 0.7)`` (darker, so coloured
  items stay visible) and 3x3 Gaussian-blurred with probability 0.5.
* **Item**: gray ``g`` resized by ``f ~ U(1.0, 2.5)`` (bilinear), painted with a random
  bright colour ``c`` (one channel 255, the others ``U(64, 255)``) as
  ``out = (1 - a) * out + a * c`` with ``a = g / 255``, at a uniform top-left corner
  that keeps it inside the scene (it is clipped only when larger than the scene).
* **Instance mask**: the item's pixels with ``g > 0.5 * max(g)`` (after resizing).
  Items are pasted in order; a later item's mask pixels are removed from every earlier
  mask (a pixel belongs to the last item covering it). An instance is dropped when it
  is left with fewer than ``min_area`` pixels (default 20) or fewer than
  ``min_visible`` (default 30 %) of its own mask pixels inside the scene. Its painted
  remnant stays in the image and is background (0) in the targets.
* **Box**: COCO ``[x, y, w, h]`` (floats) of the tight extent of the final mask in pixel
  edges: the mask's pixels have columns ``x .. x + w - 1`` and rows ``y .. y + h - 1``
  (what ``pycocotools.mask.toBbox`` gives for the mask's RLE). ``area`` = mask pixels.
* **Semantic map**: uint8 ``(H, W)``; 0 is background, an instance of class ``k`` writes
  ``k + 1`` (= its COCO category id) on its mask. 255 (ignore) is never used.

Written to disk as VOC-style folders (:func:`write_voc_scenes`) or COCO json
(:func:`write_coco_scenes`); images are lossless PNG so the stored colours are exact.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Sequence
from typing import Any, Union

import cv2
import numpy as np

from .mnist import FashionMNIST, MNIST5k

MASK_THRESHOLD = 0.5          #: item pixel is in the mask when > this fraction of its max
MIN_AREA = 20                 #: instances with fewer final pixels are dropped
MIN_VISIBLE_FRACTION = 0.3    #: ... and so are those left with less of their own mask
ITEM_SCALE = (1.0, 2.5)       #: item resize factor range
BG_CROP_SCALE = (0.5, 1.0)    #: background crop side / shorter photo side
BG_BRIGHTNESS = (0.4, 0.7)    #: background intensity factor range
BG_FLIP_PROB = 0.5
BG_BLUR_PROB = 0.5
COLOR_MIN = 64                #: smallest value of an item colour's non-saturated channels
BACKGROUND_LABEL = 0          #: semantic value of pixels covered by no instance
MAX_PIXEL = 255
SKLEARN_PHOTOS = ('china.jpg', 'flower.jpg')
FOG_LEVEL = 200.0             #: the gray that ``fog`` blends toward
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]

#: name -> builder of a classification dataset whose images are the items
ITEM_SOURCES = {
    'mnist5k': lambda: MNIST5k(),
    'fashion_mnist': lambda: FashionMNIST(train=True),
    'fashion_mnist_test': lambda: FashionMNIST(train=False),
}


def package_photos(package: str, folder: str, names: Sequence[str],
                   missing_hint: str) -> tuple[np.ndarray, ...]:
    """Photos shipped inside an installed package (found without importing it), uint8 RGB,
    read-only; gray files come back as three equal channels.

    Args:
        package: top-level package name (``'sklearn'``).
        folder: their folder inside the package (``'datasets/images'``).
        names: file names.
        missing_hint: the error's explanation when a file is not found.
    """
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    photos = []
    for name in names:
        paths = [os.path.join(loc, folder, name) for loc in locations]
        path = next((p for p in paths if os.path.isfile(p)), None)
        if path is None:
            raise FileNotFoundError(f'{package}/{folder}/{name} not found: {missing_hint}')
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f'{path}: cannot decode the image')
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rgb.setflags(write=False)
        photos.append(rgb)
    return tuple(photos)


@functools.lru_cache(maxsize=1)
def sample_backgrounds() -> tuple[np.ndarray, ...]:
    """The real photos bundled with scikit-learn, uint8 RGB ``(427, 640, 3)``, read-only."""
    return package_photos('sklearn', os.path.join('datasets', 'images'), SKLEARN_PHOTOS,
                          'scikit-learn is not installed (`pip install scikit-learn`)')


class SceneItems:
    """Gray items to paste, grouped by class.

    Args:
        images: uint8 ``(N, h, w)`` or ``(N, h, w, 1)`` gray items.
        labels: int ``(N,)`` class of each item, in ``[0, len(classes))``.
        classes: class names.
    """

    def __init__(self, images: np.ndarray, labels: Sequence[int] | np.ndarray,
                 classes: Sequence[str]) -> None:
        images = np.asarray(images)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f'items must be uint8 (N, h, w), got {images.dtype} '
                             f'{images.shape}')
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.classes = tuple(str(c) for c in classes)
        if len(self.labels) != len(images):
            raise ValueError(f'{len(images)} items but {len(self.labels)} labels')
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= len(classes)):
            raise ValueError(f'labels must be in [0, {len(classes)})')
        self.by_class = [np.flatnonzero(self.labels == k) for k in range(len(self.classes))]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def from_dataset(cls, dataset: Any) -> SceneItems:
        """Items of a classification dataset (``load_image``, ``labels``, ``classes``)."""
        images = [dataset.load_image(i) for i in range(len(dataset))]
        images = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) if im.ndim == 3 and im.shape[2] == 3
                  else im.reshape(im.shape[:2]) for im in images]
        return cls(np.stack(images), dataset.labels, dataset.classes)

    def sample(self, rng: np.random.Generator,
               class_probs: Sequence[float] | None = None) -> tuple[np.ndarray, int]:
        """Draw a class (uniform, or ``class_probs``), then one of its items uniformly.

        Returns:
            tuple: gray item ``(h, w)`` uint8 (a view, do not modify) and its class.
        """
        c = self.num_classes
        probs = np.full(c, 1.0 / c) if class_probs is None else np.asarray(class_probs, float)
        if probs.shape != (c,) or (probs < 0).any() or not np.isclose(probs.sum(), 1.0):
            raise ValueError(f'class_probs must be {c} non-negative numbers summing to 1')
        empty = [k for k in range(c) if probs[k] > 0 and self.by_class[k].size == 0]
        if empty:
            raise ValueError(f'classes {empty} have a probability but no items')
        label = int(rng.choice(c, p=probs))
        pool = self.by_class[label]
        return self.images[pool[rng.integers(len(pool))]], label


ItemsLike = Union[str, SceneItems, Any]


def build_scene_items(items: ItemsLike) -> SceneItems:
    """A :class:`SceneItems` from a name in :data:`ITEM_SOURCES`, a dataset, or itself."""
    if isinstance(items, SceneItems):
        return items
    if isinstance(items, str):
        if items not in ITEM_SOURCES:
            raise ValueError(f'unknown item source {items!r}; one of {sorted(ITEM_SOURCES)}')
        items = ITEM_SOURCES[items]()
    return SceneItems.from_dataset(items)


def long_tail_probs(num_classes: int, ratio: float) -> np.ndarray:
    """Class probabilities ``p_k = r ** (-k / (C - 1)) / sum_j r ** (-j / (C - 1))``.

    Class 0 is the most frequent, class ``C - 1`` is ``r`` times rarer; ``C == 1`` gives
    ``[1.0]``. ``r >= 1`` (1 is uniform).
    """
    if num_classes < 1:
        raise ValueError(f'num_classes must be >= 1, got {num_classes}')
    if ratio < 1:
        raise ValueError(f'imbalance ratio must be >= 1, got {ratio}')
    if num_classes == 1:
        return np.ones(1)
    w = float(ratio) ** (-np.arange(num_classes) / (num_classes - 1))
    return w / w.sum()


def _scene_hw(size: int | Sequence[int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f'scene size must be positive, got {size}')
    return int(h), int(w)


def random_background(rng: np.random.Generator, size: int | Sequence[int],
                      photos: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """A random crop of a real photo (see the module docstring), uint8 RGB ``(H, W, 3)``."""
    h, w = _scene_hw(size)
    photos = sample_backgrounds() if photos is None else photos
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    side = rng.uniform(*BG_CROP_SCALE) * min(ph, pw)
    ch, cw = side, side * w / h
    fit = min(1.0, ph / ch, pw / cw)
    ch, cw = max(1, int(ch * fit)), max(1, int(cw * fit))
    y, x = int(rng.integers(ph - ch + 1)), int(rng.integers(pw - cw + 1))
    flip, brightness, blur = rng.random(), rng.uniform(*BG_BRIGHTNESS), rng.random()
    crop = cv2.resize(photo[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)
    if flip < BG_FLIP_PROB:
        crop = crop[:, ::-1]
    if blur < BG_BLUR_PROB:
        crop = cv2.GaussianBlur(np.ascontiguousarray(crop), (3, 3), 0)
    return np.clip(np.rint(crop * brightness), 0, MAX_PIXEL).astype(np.uint8)


def compose_scene(background: np.ndarray, items: Sequence[dict[str, Any]], *,
                  min_area: int = MIN_AREA,
                  min_visible: float = MIN_VISIBLE_FRACTION) -> dict[str, Any]:
    """Paste items in order on a background and derive the exact targets (no randomness).

    Args:
        background: uint8 RGB ``(H, W, 3)``.
        items: dicts with ``image`` (gray uint8 ``(h, w)``, already scaled), ``label``
            (int class), ``color`` (3 RGB values) and ``top_left`` (``(y, x)``, may be
            negative or reach past the border: the item is clipped).
        min_area: drop instances with fewer final pixels.
        min_visible: drop instances keeping less than this fraction of their own mask
            pixels inside the scene.

    Returns:
        dict: ``image`` uint8 ``(H, W, 3)`` RGB, ``semantic`` uint8 ``(H, W)``,
        ``instances`` (list of ``label``, ``mask`` bool ``(H, W)``, ``bbox`` COCO
        ``[x, y, w, h]`` floats, ``area`` int), back to front.
    """
    height, width = background.shape[:2]
    canvas = background.astype(np.float32)
    owner = np.full((height, width), -1, dtype=np.int16)  # last item covering each pixel
    own_area = []
    for j, item in enumerate(items):
        gray = np.asarray(item['image'])
        y0, x0 = (int(v) for v in item['top_left'])
        ys = slice(max(y0, 0), min(y0 + gray.shape[0], height))
        xs = slice(max(x0, 0), min(x0 + gray.shape[1], width))
        if ys.start >= ys.stop or xs.start >= xs.stop or gray.max() == 0:
            own_area.append(0)
            continue
        patch = gray[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
        alpha = patch.astype(np.float32)[..., None] / MAX_PIXEL
        color = np.asarray(item['color'], dtype=np.float32)
        canvas[ys, xs] = canvas[ys, xs] * (1 - alpha) + color * alpha
        mask = patch > MASK_THRESHOLD * gray.max()
        owner[ys, xs][mask] = j
        own_area.append(int(mask.sum()))

    semantic = np.full((height, width), BACKGROUND_LABEL, dtype=np.uint8)
    instances = []
    for j, item in enumerate(items):
        mask = owner == j
        area = int(mask.sum())
        if area == 0 or area < min_area or area < min_visible * own_area[j]:
            continue
        label = int(item['label'])
        semantic[mask] = label + 1
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        bbox = [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1),
                float(rows[-1] - rows[0] + 1)]
        instances.append(dict(label=label, mask=mask, bbox=bbox, area=area))
    image = np.clip(np.rint(canvas), 0, MAX_PIXEL).astype(np.uint8)
    return dict(image=image, semantic=semantic, instances=instances)


def place_item(rng: np.random.Generator, gray: np.ndarray, label: int,
               size: tuple[int, int], item_scale: tuple[float, float] = ITEM_SCALE
               ) -> dict[str, Any]:
    """Draw an item's scale, place and colour (module docstring), in this order.

    Returns:
        dict: an item of :func:`compose_scene` (``image`` resized, ``label``,
        ``color``, ``top_left``).
    """
    height, width = size
    f = rng.uniform(*item_scale)
    h, w = max(1, round(gray.shape[0] * f)), max(1, round(gray.shape[1] * f))
    gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_LINEAR)
    y = int(rng.integers(min(0, height - h), max(0, height - h) + 1))
    x = int(rng.integers(min(0, width - w), max(0, width - w) + 1))
    color = rng.uniform(COLOR_MIN, MAX_PIXEL, size=3)
    color[rng.integers(3)] = MAX_PIXEL
    return dict(image=gray, label=label, color=color, top_left=(y, x))


def make_scene(rng: np.random.Generator, items_source: ItemsLike,
               size: int | Sequence[int] = 128,
               num_items: int | tuple[int, int] = (2, 5),
               class_probs: Sequence[float] | None = None, *,
               item_scale: tuple[float, float] = ITEM_SCALE,
               min_area: int = MIN_AREA,
               min_visible: float = MIN_VISIBLE_FRACTION,
               backgrounds: Sequence[np.ndarray] | str | None = None,
               fog: float = 0.0) -> dict[str, Any]:
    """One random scene with exact targets (conventions in the module docstring).

    Args:
        rng: the only source of randomness.
        items_source: a :class:`SceneItems` (build it once; a name or a dataset is
            converted on every call).
        size: ``H = W``, or ``(H, W)``.
        num_items: items pasted, ``(low, high)`` inclusive uniform, or an int. Some may
            be dropped by occlusion, so a scene can have fewer (even 0) instances.
        class_probs: probability of each class (default uniform over classes); see
            :func:`long_tail_probs`.
        item_scale: range of the item resize factor.
        min_area: drop instances left with fewer pixels.
        min_visible: drop instances left with less than this fraction of their mask.
        backgrounds: RGB photos to crop (default :func:`sample_backgrounds`), or the
            file name of one of them (``'china.jpg'`` / ``'flower.jpg'``): a domain.
        fog: blend the finished image this far toward a flat light gray (0 none, 1 all
            gray), as fog lowers contrast; a photometric domain shift (targets unchanged).

    Returns:
        dict: ``image`` uint8 ``(H, W, 3)`` RGB, ``semantic`` uint8 ``(H, W)``,
        ``instances``: list of dict(``label`` int, ``mask`` bool ``(H, W)``, ``bbox``
        COCO ``[x, y, w, h]`` floats, ``area`` int), back to front.
    """
    bank = build_scene_items(items_source)
    height, width = _scene_hw(size)
    if isinstance(backgrounds, str):
        if backgrounds not in SKLEARN_PHOTOS:
            raise ValueError(f'backgrounds must be one of {SKLEARN_PHOTOS} or photos, got '
                             f'{backgrounds!r}')
        backgrounds = (sample_backgrounds()[SKLEARN_PHOTOS.index(backgrounds)],)
    if not 0.0 <= fog <= 1.0:
        raise ValueError(f'fog must be in [0, 1], got {fog}')
    background = random_background(rng, (height, width), backgrounds)
    if isinstance(num_items, (int, np.integer)):
        num_items = (num_items, num_items)
    low, high = (int(v) for v in num_items)
    if not 0 <= low <= high:
        raise ValueError(f'num_items must be 0 <= low <= high, got {num_items}')
    items = []
    for _ in range(int(rng.integers(low, high + 1))):
        gray, label = bank.sample(rng, class_probs)
        items.append(place_item(rng, gray, label, (height, width), item_scale))
    scene = compose_scene(background, items, min_area=min_area, min_visible=min_visible)
    if fog > 0:
        img = scene['image'].astype(np.float64)
        scene['image'] = np.clip(np.rint((1 - fog) * img + fog * FOG_LEVEL), 0,
                                 MAX_PIXEL).astype(np.uint8)
    return scene


def _scenes(n: int, seed: int, items: ItemsLike, class_probs, imbalance_ratio, **kwargs):
    """``(bank, class_probs, iterator of (id, scene))``; ids ``'000001'`` ...; one rng."""
    bank = build_scene_items(items)
    if imbalance_ratio is not None:
        if class_probs is not None:
            raise ValueError('give at most one of class_probs and imbalance_ratio')
        class_probs = long_tail_probs(bank.num_classes, imbalance_ratio)
    from ssvision.utils.progress import progress
    rng = np.random.default_rng(seed)
    gen = ((f'{i + 1:06d}', make_scene(rng, bank, class_probs=class_probs, **kwargs))
           for i in progress(range(n), f'scenes ({n})'))
    return bank, class_probs, gen


def _write_png(path: str, image: np.ndarray) -> None:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.png', image, PNG_PARAMS)
    if not ok:
        raise OSError(f'cannot encode {path}')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def write_voc_scenes(out_dir: str, n: int, seed: int = 0, items: ItemsLike = 'mnist5k', *,
                     class_probs: Sequence[float] | None = None,
                     imbalance_ratio: float | None = None, split_name: str = 'all',
                     binary: bool = False, **scene_kwargs) -> list[str]:
    """Write ``n`` scenes as VOC-style folders (same seed -> byte-identical files).

    Layout: ``JPEGImages/<id>.png`` (RGB, lossless PNG despite the VOC folder name),
    ``SegmentationClass/<id>.png`` (gray uint8 semantic map, no palette: 0 background,
    ``k + 1`` class ``k``), ``SegmentationObject/<id>.png`` (0 background, ``i`` the
    i-th kept instance, back to front) and ``ImageSets/Segmentation/<split_name>.txt``
    (one id per line). Ids are ``000001`` .. ``n``.

    Args:
        out_dir: output folder (created).
        n: number of scenes.
        seed: seed of the one numpy Generator drawing every scene in order.
        items: item source (:func:`build_scene_items`).
        class_probs: class probabilities; or ``imbalance_ratio`` for
            :func:`long_tail_probs`.
        imbalance_ratio: long-tailed classes.
        split_name: name of the id list.
        binary: write a foreground / background map (1 on every instance, 0 elsewhere)
            instead of the class map; the object map is unchanged.
        **scene_kwargs: :func:`make_scene` arguments (``size``, ``num_items``, ...).

    Returns:
        list[str]: the ids.
    """
    dirs = [os.path.join(out_dir, d) for d in
            ('JPEGImages', 'SegmentationClass', 'SegmentationObject', 'ImageSets/Segmentation')]
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    _, _, scenes = _scenes(n, seed, items, class_probs, imbalance_ratio, **scene_kwargs)
    ids = []
    for sid, scene in scenes:
        objects = np.zeros(scene['semantic'].shape, dtype=np.uint8)
        for i, inst in enumerate(scene['instances'], 1):
            objects[inst['mask']] = i
        _write_png(os.path.join(dirs[0], f'{sid}.png'), scene['image'])
        semantic = scene['semantic']
        if binary:
            semantic = (semantic != BACKGROUND_LABEL).astype(np.uint8)
        _write_png(os.path.join(dirs[1], f'{sid}.png'), semantic)
        _write_png(os.path.join(dirs[2], f'{sid}.png'), objects)
        ids.append(sid)
    with open(os.path.join(dirs[3], f'{split_name}.txt'), 'w', encoding='ascii') as f:
        f.write(''.join(f'{sid}\n' for sid in ids))
    return ids


def write_coco_scenes(out_dir: str, n: int, seed: int = 0, items: ItemsLike = 'mnist5k', *,
                      class_probs: Sequence[float] | None = None,
                      imbalance_ratio: float | None = None,
                      ann_file: str = 'annotations.json', **scene_kwargs) -> str:
    """Write ``n`` scenes as COCO (same seed -> byte-identical files).

    Layout: ``images/<id>.png`` (RGB, lossless PNG) and ``<ann_file>`` with ``images``
    (``id`` = int of the file id, 1 .. n; ``file_name`` relative to ``images/``),
    ``annotations`` (ids 1.., ``bbox`` ``[x, y, w, h]``, ``area`` mask pixels,
    ``iscrowd`` 0, ``segmentation`` compressed RLE from ``pycocotools.mask.encode``)
    and ``categories`` (``id`` = class + 1, names from the item source). Loadable with
    ``pycocotools.coco.COCO``; ``annToMask`` gives the instance mask back exactly.

    Args: as :func:`write_voc_scenes` (``ann_file`` instead of ``split_name``).

    Returns:
        str: path of the annotation file.
    """
    from pycocotools import mask as mask_utils

    img_dir = os.path.join(out_dir, 'images')
    os.makedirs(img_dir, exist_ok=True)
    bank, class_probs, scenes = _scenes(n, seed, items, class_probs, imbalance_ratio,
                                        **scene_kwargs)
    images, annotations = [], []
    for sid, scene in scenes:
        _write_png(os.path.join(img_dir, f'{sid}.png'), scene['image'])
        height, width = scene['semantic'].shape
        images.append(dict(id=int(sid), file_name=f'{sid}.png', height=height, width=width))
        for inst in scene['instances']:
            rle = mask_utils.encode(np.asfortranarray(inst['mask'], dtype=np.uint8))
            rle['counts'] = rle['counts'].decode('ascii')
            annotations.append(dict(
                id=len(annotations) + 1, image_id=int(sid), category_id=inst['label'] + 1,
                bbox=inst['bbox'], area=inst['area'], iscrowd=0, segmentation=rle))
    categories = [dict(id=k + 1, name=name, supercategory='item')
                  for k, name in enumerate(bank.classes)]
    info = dict(description='ssvision scenes: items pasted on scikit-learn photos',
                seed=int(seed), class_probs=None if class_probs is None else
                [float(p) for p in class_probs], imbalance_ratio=imbalance_ratio)
    coco = dict(info=info, licenses=[], images=images, annotations=annotations,
                categories=categories)
    path = os.path.join(out_dir, ann_file)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(coco, f, separators=(',', ':'))
    return path
