"""Semantic segmentation data in VOC layout, and labeled / unlabeled splits of it.

Layout (what :func:`ssvision.datasets.scenes.write_voc_scenes` writes, and Pascal VOC)::

    data_root/JPEGImages/<id>.jpg|.png          RGB image
    data_root/SegmentationClass/<id>.png        class map, one value per pixel
    data_root/ImageSets/Segmentation/<name>.txt one id per line

Masks are read as *indices*: palette PNGs (Pascal VOC) give their palette indices, gray
PNGs their values (Pillow reads both; OpenCV would turn a palette PNG into colours).
A raw value is then mapped through ``label_map`` when given (e.g. Cityscapes ids ->
train ids; unmapped values -> ``ignore_index``). Every value of the final mask must be
in ``[0, num_classes)`` or equal ``ignore_index``.

Checked when the dataset is built (``check``, see :class:`VOCSegDataset`): every image
and mask exists and decodes, masks hold valid values and match their image's size.
Masks saved as black / white pictures (values 0 and 255 only, no ``label_map``) are an
error there: with ``ignore_index=255`` every object pixel would be ignored and training
would see background only; ``label_map={0: 0, 255: 1}`` maps them.

Results dict built by :meth:`VOCSegDataset.prepare_results` (see ``docs/data_flow.md``):

=============  =============================================================================
key            value
=============  =============================================================================
``img``        uint8 ``(H, W, 3)`` RGB
``gt_seg``     uint8 ``(H, W)`` (int64 when a value does not fit), labeled samples only
``true_seg``   same, for an unlabeled sample whose mask file exists: health logging only
``sample_idx`` int, index in this dataset
``img_path``   str
``seg_path``   str, when a mask was read
``sample_seed`` int, when the index was ``(index, sample_seed)``
=============  =============================================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ssvision.registry import DATASETS

from .base import PipelineDataset, build_pipeline, read_image
from .image_files import (
    check_images,
    decode_files,
    describe_files,
    parallel_map,
    resolve_check,
)
from .split import load_split, save_split
from .transforms.seg_augment import IGNORE_INDEX

__all__ = ['VOCSegDataset', 'make_seg_split', 'save_seg_splits', 'read_seg_mask',
           'VOC_CLASSES', 'SEG_FRACTIONS', 'IGNORE_INDEX']

SEG_SUBSETS = ('labeled', 'unlabeled')
#: label fractions of the usual semi-supervised segmentation protocols
SEG_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
VOC_CLASSES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
    'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
    'sheep', 'sofa', 'train', 'tvmonitor')
#: masks read for the black / white check when not every mask is read at build
MASK_SAMPLE = 16


def read_seg_mask(path: str) -> np.ndarray:
    """Read a class-index mask.

    Args:
        path: PNG (gray, 16-bit or palette) or any single-channel image file.

    Returns:
        np.ndarray: ``(H, W)`` integer array of raw values (palette indices for palette
        PNGs).

    Raises:
        FileNotFoundError: no such file (the message names it).
        OSError: the file cannot be decoded, or it is a colour (RGB) image.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'mask file not found: {path}')
    try:
        from PIL import Image

        with Image.open(path) as im:
            if im.mode not in ('P', 'L', 'I', 'I;16', 'I;16B', 'I;16L', '1'):
                raise OSError(f'mask file {path} has mode {im.mode!r}; expected a '
                              'single-channel or palette image of class indices')
            mask = np.array(im)
    except ImportError:  # pragma: no cover - Pillow is an mmengine dependency
        import cv2

        mask = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if mask is None or mask.ndim != 2:
            raise OSError(f'cannot read mask file {path} as a single-channel image') from None
    except OSError as e:
        if str(path) in str(e):
            raise
        raise OSError(f'cannot decode mask file {path}: {e}') from e
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    return mask


def _read_ids(path: str) -> list[str]:
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


@DATASETS.register_module()
class VOCSegDataset(PipelineDataset):
    """Semantic segmentation dataset in VOC layout; images and masks are read on access.

    Which ids, in this order of precedence:

    * ``ids``: an explicit list;
    * ``split_file``: a ``.txt`` (one id per line) or a ``.json`` written by
      :func:`save_seg_splits` / :func:`ssvision.datasets.split.save_split`, of which the
      ``subset`` list is taken (``subset`` is then required). A relative path that does
      not exist as given is looked up under ``data_root``;
    * neither: every file of ``img_dir`` ending with one of ``img_suffix``, sorted.

    ``subset='unlabeled'`` hides the masks: ``gt_seg`` is absent, no mask file is needed,
    and an existing one is read as ``true_seg`` (for pseudo-label accuracy logging only).
    ``'labeled'`` and None need a mask for every image.

    Args:
        data_root: dataset folder.
        split_file: id list (``.txt``) or split (``.json``), see above.
        img_dir: image folder, relative to ``data_root``.
        ann_dir: mask folder, relative to ``data_root``.
        img_suffix: image file suffix, or several tried in order.
        ann_suffix: mask file suffix.
        ids: explicit ids (overrides ``split_file``).
        subset: ``'labeled'``, ``'unlabeled'`` or None.
        num_classes: number of classes; mask values must be ``< num_classes`` or
            ``ignore_index``.
        ignore_index: ignored label. Defaults to 255.
        label_map: raw mask value -> train id; values not in it become ``ignore_index``.
            None keeps raw values.
        classes: class names (``num_classes`` of them). Defaults to
            :data:`VOC_CLASSES` when ``num_classes == 21``, else ``'0', '1', ...``
            (then :attr:`has_class_names` is False: the names are only indices).
            The masks store class ids, so datasets of one run must give the same names
            in the same order (checked by
            :func:`~ssvision.datasets.class_names.check_classes`).
        pipeline: transforms (config dicts or callables), results dict -> dict.
        check: build-time check, ``'decode'``, ``'header'`` or ``'none'``. Defaults
            to ``'decode'`` (``'header'`` for ``subset='unlabeled'``). ``'decode'``:
            every image and mask exists and decodes, every mask value is valid and
            every mask has its image's size; ``'header'``: files exist and image
            headers parse; ``'none'``: nothing. Masks are always checked when read.
            Whatever ``check``, labeled masks with only 0 and 255 (or ignore) and no
            ``label_map`` are an error (all masks are read with ``'decode'``, else up
            to :data:`MASK_SAMPLE` of those that exist, spread over the ids).
        check_masks: also read and check every existing mask with ``check='header'``,
            ``'none'`` or ``subset='unlabeled'``.

    Attributes:
        names (list[str]): ids of the samples, in order.
        num_classes (int), ignore_index (int), classes (tuple[str]),
        has_class_names (bool).

    Raises:
        FileNotFoundError: at build, an image or a needed mask is missing (named).
        OSError: at build, an image or a mask does not decode (named).
        ValueError: at build, a mask value that is neither a class id nor
            ``ignore_index``, a mask of another size than its image, or black / white
            masks without ``label_map`` (the file and the fix are named).
    """

    def __init__(self, data_root: str, split_file: str | None = None, img_dir: str = 'JPEGImages',
                 ann_dir: str = 'SegmentationClass',
                 img_suffix: str | Sequence[str] = ('.jpg', '.png'), ann_suffix: str = '.png',
                 ids: Sequence[str] | None = None, subset: str | None = None, num_classes: int = 21,
                 ignore_index: int = IGNORE_INDEX, label_map: dict[int, int] | None = None,
                 classes: Sequence[str] | None = None, pipeline: Sequence[dict | Callable] = (),
                 check: str | None = None, check_masks: bool = False) -> None:
        if subset is not None and subset not in SEG_SUBSETS:
            raise ValueError(f'subset must be one of {SEG_SUBSETS} or None, got {subset!r}')
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        if 0 <= ignore_index < num_classes:
            raise ValueError(f'ignore_index={ignore_index} is a class id '
                             f'(num_classes={num_classes})')
        from ssvision.utils.paths import find_data
        self.data_root = str(find_data(str(data_root)))
        self.img_dir = os.path.join(self.data_root, img_dir)
        self.ann_dir = os.path.join(self.data_root, ann_dir)
        self.img_suffix = (img_suffix,) if isinstance(img_suffix, str) else tuple(img_suffix)
        self.ann_suffix = ann_suffix
        self.subset = subset
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.has_class_names = classes is not None or num_classes == len(VOC_CLASSES)
        if classes is None:
            classes = VOC_CLASSES if num_classes == len(VOC_CLASSES) else \
                [str(k) for k in range(num_classes)]
        self.classes = tuple(str(c) for c in classes)
        if len(self.classes) != self.num_classes:
            raise ValueError(f'{len(self.classes)} class names for num_classes={num_classes}')
        self.label_map = None if label_map is None else \
            {int(k): int(v) for k, v in label_map.items()}
        if self.label_map is not None:
            bad = {k: v for k, v in self.label_map.items()
                   if v != self.ignore_index and not 0 <= v < self.num_classes}
            if bad:
                raise ValueError(f'label_map sends raw values to ids outside [0, {num_classes})'
                                 f' that are not ignore_index: {bad}')
        self.split_file = split_file
        self.pipeline = build_pipeline(pipeline)
        if not os.path.isdir(self.img_dir):
            raise FileNotFoundError(f'image folder not found: {self.img_dir}')
        self.names = self._load_ids(ids, split_file)
        self.check = resolve_check(check, subset)
        self._check_files(check_masks)

    # ------------------------------------------------------------------ ids
    def _load_ids(self, ids: Sequence[str] | None, split_file: str | None) -> list[str]:
        if ids is not None:
            return [str(i) for i in ids]
        if split_file is None:
            names = sorted(os.path.splitext(fn)[0] for fn in os.listdir(self.img_dir)
                           if fn.endswith(self.img_suffix))
            if not names:
                raise ValueError(f'{self.img_dir}: no image files ending with '
                                 f'{self.img_suffix}')
            return names
        from ssvision.utils.paths import find_data
        path = find_data(split_file)
        if not os.path.isabs(path) and not os.path.isfile(path):
            path = os.path.join(self.data_root, path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'split file not found: {split_file} (also tried {path})')
        if path.endswith('.json'):
            if self.subset is None:
                raise ValueError(f'split file {path} is a json split: pass subset= one of '
                                 f'{SEG_SUBSETS}')
            names = [str(i) for i in load_split(path)[self.subset]]
            if not names and self.subset == 'labeled':
                raise ValueError(f"split file {path} has no 'labeled' ids")
            return names
        return _read_ids(path)

    # ---------------------------------------------------------------- checks
    def _check_files(self, check_masks: bool) -> None:
        """The build-time check (see the class docstring)."""
        labeled = self.subset != 'unlabeled'
        n = len(self)
        sizes = None
        if self.check != 'none':
            missing, img_paths = [], []
            for i in range(n):
                try:
                    img_paths.append(self.get_img_path(i))
                except FileNotFoundError:
                    stem = os.path.join(self.img_dir, self.names[i])
                    missing.append(stem + (self.img_suffix[0] if len(self.img_suffix) == 1
                                           else f'({"|".join(self.img_suffix)})'))
            if labeled:
                missing += [p for p in map(self.get_seg_path, range(n))
                            if not os.path.isfile(p)]
            if missing:
                raise FileNotFoundError(
                    f'{self._name}: {len(missing)} image or mask file(s) not found: '
                    f'{describe_files(missing)}; every id needs an image in {self.img_dir}'
                    + (f' and a mask in {self.ann_dir}' if labeled else ''))
            if self.check == 'decode':
                sizes = decode_files(img_paths, 'color')
                bad = [(p, r) for p, r in zip(img_paths, sizes) if isinstance(r, str)]
            else:
                _, bad = check_images(img_paths, 'header')
            if bad:
                raise OSError(f'{self._name}: {len(bad)} image file(s) cannot be read: '
                              f'{describe_files(bad)}; replace or remove them (a file cut '
                              'short by a copy or download decodes only in part)')
        read_all = self.check == 'decode' or check_masks
        if labeled and read_all:
            read = list(range(n))
        elif labeled:  # the black / white check on a sample (missing masks: at load)
            read = [i for i in sorted({int(k) for k in np.linspace(0, n - 1,
                                                                    min(n, MASK_SAMPLE))})
                    if os.path.isfile(self.get_seg_path(i))]
        elif check_masks:
            read = [i for i in range(n) if os.path.isfile(self.get_seg_path(i))]
        else:
            read = []
        masks = self._read_masks(read)
        if labeled:
            self._check_black_white([(self.get_seg_path(i), m['values'])
                                     for i, m in zip(read, masks)])
        if not read_all:
            return
        for i, m in zip(read, masks):
            if m['error']:
                raise ValueError(m['error'])
            if sizes is not None and m['shape'] != sizes[i]:
                raise ValueError(f'mask file {self.get_seg_path(i)} is {m["shape"]} but image '
                                 f'{self.get_img_path(i)} is {sizes[i]} (height, width): a '
                                 'mask must have its image\'s size')

    @property
    def _name(self) -> str:
        return f'{type(self).__name__}({self.data_root})'

    def _read_masks(self, indices: list[int]) -> list[dict[str, Any]]:
        """Read the masks of ``indices`` once, on threads.

        Returns:
            list: per mask ``{'values'}`` (raw values present), ``'shape'`` and
            ``'error'`` (the value error :meth:`load_mask` would raise, or None).

        Raises:
            FileNotFoundError, OSError: masks that cannot be read (named).
        """
        def one(i: int) -> dict[str, Any] | str:
            path = self.get_seg_path(i)
            try:
                raw = read_seg_mask(path)
            except OSError as e:
                return str(e)
            if raw.dtype == np.uint8:
                values = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
            else:
                values = np.unique(raw)
            try:
                self._check_values(self._apply_label_map(raw), path)
                error = None
            except ValueError as e:
                error = str(e)
            return {'values': values, 'shape': raw.shape[:2], 'error': error}

        out = parallel_map(one, indices)
        bad = [(self.get_seg_path(i), r) for i, r in zip(indices, out) if isinstance(r, str)]
        missing = [p for p, _ in bad if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f'{self._name}: {len(missing)} mask file(s) not found: '
                                    f'{describe_files(missing)}')
        if bad:
            raise OSError(f'{self._name}: {len(bad)} mask file(s) cannot be read: '
                          f'{"; ".join(r for _, r in bad[:5])}'
                          + (f' and {len(bad) - 5} more' if len(bad) > 5 else ''))
        return out

    def _check_black_white(self, masks: list[tuple[str, np.ndarray]]) -> None:
        """Refuse masks whose only values are 0 and 255 / ``ignore_index`` when no
        ``label_map`` says what they are: every object pixel would be ignored."""
        if self.label_map is not None or self.num_classes < 2 or not masks:
            return
        union = np.unique(np.concatenate([v for _, v in masks]))
        marks = {255, self.ignore_index}
        others = [int(v) for v in union if v != 0]
        if not others or not set(others) <= marks:
            return  # a class id beside 0 (a genuine ignore label), or background only
        path = next(p for p, v in masks if any(int(x) in marks for x in v))
        what = ' and '.join(
            f'{v} means ignore (ignore_index={v})' if v == self.ignore_index else
            f'{v} is not a class id (num_classes={self.num_classes})' for v in others)
        mapping = ', '.join(f'{v}: 1' for v in others)
        raise ValueError(
            f'mask files in {self.ann_dir} hold only the values {[0] + others} (e.g. {path}) '
            f'and no label_map is set: {what}, so no pixel of any object would be trained '
            'on or scored (background only). If the non-zero pixels are your objects '
            f'(black / white masks), map them: label_map={{0: 0, {mapping}}} on the '
            'labeled and validation datasets; if they really are ignore, these masks have '
            'no object pixel to learn from.')

    # --------------------------------------------------------------- access
    @property
    def metainfo(self) -> dict:
        """``{'classes': tuple of names, 'ignore_index': int}``."""
        return {'classes': self.classes, 'ignore_index': self.ignore_index}

    def __len__(self) -> int:
        return len(self.names)

    def get_img_path(self, idx: int) -> str:
        """Image file of sample ``idx`` (the first suffix that exists).

        Raises:
            FileNotFoundError: none of the candidate files exists (they are named).
        """
        stem = os.path.join(self.img_dir, self.names[idx])
        candidates = [stem + s for s in self.img_suffix]
        for path in candidates:
            if os.path.isfile(path):
                return path
        raise FileNotFoundError(f'image file not found for id {self.names[idx]!r}: tried '
                                f'{", ".join(candidates)}')

    def get_seg_path(self, idx: int) -> str:
        """Mask file of sample ``idx`` (may not exist for unlabeled samples)."""
        return os.path.join(self.ann_dir, self.names[idx] + self.ann_suffix)

    def _apply_label_map(self, raw: np.ndarray) -> np.ndarray:
        if self.label_map is None:
            return raw
        if raw.size and raw.min() < 0:
            raise ValueError(f'negative raw mask value {int(raw.min())} with a label_map')
        size = max(int(raw.max(initial=0)), max(self.label_map, default=0)) + 1
        lut = np.full(size, self.ignore_index, dtype=np.int64)
        for k, v in self.label_map.items():
            if k >= 0:
                lut[k] = v
        return lut[raw]

    def _check_values(self, mask: np.ndarray, path: str) -> None:
        bad = (mask != self.ignore_index) & ((mask < 0) | (mask >= self.num_classes))
        if bad.any():
            values = np.unique(mask[bad])
            raise ValueError(
                f'mask file {path}: value {int(values[0])} is not a class id in '
                f'[0, {self.num_classes}) nor ignore_index={self.ignore_index} '
                f'(bad values: {values[:10].tolist()}, {int(bad.sum())} pixels)')

    def load_mask(self, idx: int) -> np.ndarray:
        """Class map of sample ``idx``, label-mapped and checked.

        Returns:
            np.ndarray: ``(H, W)`` uint8 (int64 when a value exceeds 255).

        Raises:
            FileNotFoundError: no mask file (the message names it).
            ValueError: a value ``>= num_classes`` (or negative) that is not
                ``ignore_index``; the message names the file and the value.
        """
        path = self.get_seg_path(idx)
        mask = self._apply_label_map(read_seg_mask(path))
        self._check_values(mask, path)
        fits = mask.size == 0 or (mask.min() >= 0 and mask.max() <= np.iinfo(np.uint8).max)
        return mask.astype(np.uint8 if fits else np.int64, copy=False)

    def prepare_results(self, idx: int, sample_seed: int | None = None) -> dict[str, Any]:
        """Results dict of sample ``idx`` before the pipeline (see the module docstring)."""
        img_path = self.get_img_path(idx)
        img = read_image(img_path, 'color')
        results: dict[str, Any] = {'img': img, 'sample_idx': int(idx), 'img_path': img_path}
        seg_path = self.get_seg_path(idx)
        if self.subset != 'unlabeled' or os.path.isfile(seg_path):
            mask = self.load_mask(idx)
            if mask.shape != img.shape[:2]:
                raise ValueError(f'mask file {seg_path} is {mask.shape} but image '
                                 f'{img_path} is {img.shape[:2]}')
            results['gt_seg' if self.subset != 'unlabeled' else 'true_seg'] = mask
            results['seg_path'] = seg_path
        if sample_seed is not None:
            results['sample_seed'] = int(sample_seed)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(data_root={self.data_root}, subset={self.subset}, '
                f'len={len(self)}, num_classes={self.num_classes})')


# ------------------------------------------------------------------------ splits
def make_seg_split(ids: Sequence[str],
                   fraction: float | None = None,
                   num_labeled: int | None = None,
                   seed: int = 0) -> dict[str, Any]:
    """Draw a seeded labeled / unlabeled split of image ids.

    The ids are permuted with ``np.random.default_rng(seed)``; the first ``n_lab`` are
    labeled, the rest unlabeled, each list kept in the input order. ``n_lab`` is
    ``num_labeled`` or ``max(1, round(fraction * len(ids)))``. For one seed the
    permutation does not depend on ``n_lab``, so smaller labeled sets are subsets of
    larger ones (1/16 within 1/8 within ...).

    Args:
        ids: unique image ids.
        fraction: labeled fraction in ``(0, 1]``.
        num_labeled: labeled count in ``[1, len(ids)]`` (exactly one of the two).
        seed: seed of the numpy Generator.

    Returns:
        dict: ``labeled``, ``unlabeled`` (id lists), ``seed``, ``rule``
        (``fraction``, ``num_labeled``), savable with :func:`ssvision.datasets.save_split`.
    """
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        raise ValueError('ids must be unique')
    if (fraction is None) == (num_labeled is None):
        raise ValueError('give exactly one of fraction and num_labeled')
    n = len(ids)
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f'fraction must be in (0, 1], got {fraction}')
        num_labeled = max(1, int(round(fraction * n)))
    if not 1 <= num_labeled <= n:
        raise ValueError(f'num_labeled must be in [1, {n}], got {num_labeled}')
    order = np.random.default_rng(seed).permutation(n)
    chosen = np.zeros(n, dtype=bool)
    chosen[order[:num_labeled]] = True
    return {
        'seed': int(seed),
        'rule': {'fraction': fraction, 'num_labeled': int(num_labeled)},
        'labeled': [ids[i] for i in range(n) if chosen[i]],
        'unlabeled': [ids[i] for i in range(n) if not chosen[i]],
    }


def _fraction_name(fraction: float) -> str:
    f = Fraction(fraction).limit_denominator(1000)
    return 'all' if f == 1 else f'{f.numerator}-{f.denominator}'


def save_seg_splits(ids: Sequence[str], out_dir: str,
                    fractions: Sequence[float] = SEG_FRACTIONS,
                    seed: int = 0) -> dict[str, str]:
    """Write one json split per labeled fraction (nested, see :func:`make_seg_split`).

    Files are ``<out_dir>/split_<num>-<den>_seed<seed>.json``, e.g.
    ``split_1-16_seed0.json``; fraction 1 (every image labeled, no unlabeled pool: the
    fully supervised reference) is ``split_all_seed<seed>.json``. Load them with
    ``VOCSegDataset(split_file=..., subset='labeled' | 'unlabeled')``.

    Returns:
        dict: fraction name (``'1-16'``, ``'all'``) -> file path.
    """
    paths = {}
    for fraction in fractions:
        name = _fraction_name(fraction)
        path = os.path.join(out_dir, f'split_{name}_seed{seed}.json')
        save_split(make_seg_split(ids, fraction=fraction, seed=seed), path)
        paths[name] = path
    return paths
