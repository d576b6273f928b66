"""Run a trained model on new images: :func:`init_model` then :func:`inference`.

::

    from ssvision.apis import init_model, inference
    model = init_model('ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py',
                       'work_dirs/fixmatch_tinycnn_2k_mnist5k-4pc/iter_2000.pth')
    results = inference(model, ['digit.png', rgb_array])

Preprocessing is the config's own test pipeline (``test_dataloader.dataset.pipeline``)
and data preprocessor, and the network runs through the task adapter's ``infer`` (the
segmentation sliding window of ``task.test_cfg`` included), so predictions are the ones
``tools/test.py`` scores. The EMA teacher predicts unless ``network='student'``.

Results, one dict per image, in input order:

* classification: ``label`` (int), ``score`` (its probability), ``scores`` ``(C,)``
  float32 probabilities;
* segmentation: ``mask`` ``(H, W)`` int64 class indices at the original image size
  (class probabilities are resized back bilinearly when the pipeline resized the image);
  with ``with_scores=True`` also ``scores`` ``(K, H, W)`` float32, those probabilities;
* detection: ``boxes`` ``(n, 4)`` float32 ``x1, y1, x2, y2`` in original-image pixels,
  ``scores`` ``(n,)`` float32, ``labels`` ``(n,)`` int64 in ``[0, K)``, as the detector's
  own test settings (score threshold, detections per image) leave them.

Models of the mmdetection plug-in (configs with ``default_scope = 'mmdet'``) run
through mmdetection's test pipeline and data preprocessor instead, with the same
results.

A file that cannot be read as an image (empty, not an image, truncated, pixels that do
not decode) raises :class:`UnreadableImageError` naming it and the reason; folders of
real-world images are better run with ``tools/infer.py``, which skips such files and
lists them.
"""

from __future__ import annotations

import copy
import json
import os
import os.path as osp
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from ssvision import checkpoints
from ssvision.datasets.base import build_pipeline, read_image
from ssvision.engine.hooks.bn_recalibration_hook import META_KEY as BN_META_KEY
from ssvision.engine.hooks.bn_recalibration_hook import apply_recalibrated
from ssvision.models.algorithms.checkpoint_keys import expand_plain_state_dict
from ssvision.models.network import StudentNetwork

__all__ = ['InferenceModel', 'init_model', 'inference', 'iter_inference', 'load_image',
           'read_image_file', 'UnreadableImageError', 'NETWORKS', 'TASKS']

#: Networks an algorithm holds; the teacher predicts by default.
NETWORKS = ('teacher', 'student')
#: What a model does, as :attr:`InferenceModel.task` names it.
TASKS = ('classification', 'segmentation', 'detection')
#: Arguments of a network config that fetch weights when it is built; with a checkpoint
#: given they are switched off (the checkpoint replaces every weight anyway).
WEIGHT_SOURCES = {'pretrained': False, 'checkpoint': None, 'backbone_checkpoint': None}
#: The packing transform that ends each task's pipeline (used when a config has no
#: test pipeline).
_PACKERS = {'classification': 'PackClsInputs', 'segmentation': 'PackSegInputs',
            'detection': 'PackDetInputs'}
#: mmdetection transforms that need annotations, dropped for new images.
_ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadEmptyAnnotations', 'mmdet.LoadAnnotations')

ImageInput = Union[str, os.PathLike, np.ndarray]


class UnreadableImageError(OSError):
    """An input file that is not a readable image.

    Attributes:
        path: the file.
        reason: why, in a few words (``'empty file'``, ``'not an image ...'``,
            ``'PNG file whose pixels do not decode (truncated or corrupt)'``...).
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f'cannot read image file {path}: {reason}')
        self.path, self.reason = path, reason


@dataclass
class InferenceModel:
    """A built, weight-loaded algorithm ready for :func:`inference`.

    Attributes:
        algorithm: the whole algorithm (student, teacher, data preprocessor), eval mode.
        cfg: its config.
        network: ``'teacher'`` or ``'student'``: which network predicts.
        task: one of :data:`TASKS`.
        library: ``'ssvision'`` or ``'mmdet'`` (the mmdetection plug-in).
        classes: class names, ``num_classes`` of them (indices as names when neither
            the checkpoint nor the config names them).
        color_type: how image files are read, ``'color'`` (RGB) or ``'grayscale'``.
        checkpoint: the weight source given to :func:`init_model`.
        pipeline: the test pipeline, results dict -> packed sample.
    """

    algorithm: nn.Module
    cfg: Config
    network: str
    task: str
    library: str
    classes: tuple[str, ...]
    color_type: str
    checkpoint: str | None = None
    pipeline: Callable = field(default=None, repr=False)

    @property
    def net(self) -> nn.Module:
        """The network that predicts (``algorithm.teacher`` or ``algorithm.student``)."""
        return getattr(self.algorithm, self.network)

    @property
    def device(self) -> torch.device:
        return next(self.algorithm.parameters()).device

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ------------------------------------------------------------------------ building
def load_config(config: str | os.PathLike | Config,
                cfg_options: dict | None = None) -> Config:
    """A copy of ``config`` (a :class:`Config`, a file, or ``ssvision::GROUP/NAME.py``)
    with ``cfg_options`` merged in and its ``'${NAME}'`` placeholders resolved."""
    from ssvision.utils.knobs import check_consumed, resolve_knobs
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        import ssvision  # noqa: F401  (the ssvision:: prefix of _base_ entries)
        from ssvision.utils.config import config_path
        path = config_path(os.fspath(config))
        cfg = Config.fromfile(path)
        check_consumed(path, cfg, cfg_options)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    resolve_knobs(cfg)  # '${img_size}' placeholders read the final top-level values
    return cfg


def network_config(model_cfg) -> dict:
    """The network part of an algorithm config: ``model`` (classifiers, segmentors) or
    ``detector`` (detection recipes, the mmdetection plug-in)."""
    for key in ('model', 'detector'):
        if isinstance(model_cfg.get(key), dict):
            return model_cfg[key]
    raise KeyError(f"model config of type {model_cfg.get('type')!r} names no network "
                   "('model' or 'detector')")


def _library(cfg: Config) -> str:
    return 'mmdet' if cfg.get('default_scope') == 'mmdet' else 'ssvision'


def _build(cfg: Config, library: str) -> nn.Module:
    if library == 'mmdet':
        from mmdet.registry import MODELS as MMDET_MODELS
        from mmdet.utils import register_all_modules

        import ssvision.integrations.mmdet  # noqa: F401  (registers SsvSemiDetector)
        register_all_modules(init_default_scope=False)
        with DefaultScope.overwrite_default_scope('mmdet'):
            return MMDET_MODELS.build(cfg.model)
    import ssvision.models  # noqa: F401  (registers the algorithms and networks)
    from ssvision.registry import MODELS
    with DefaultScope.overwrite_default_scope('ssvision'):
        return MODELS.build(cfg.model)


def _task_of(algorithm: nn.Module, library: str) -> str:
    if library == 'mmdet':
        return 'detection'
    from ssvision.models.tasks import ClassificationTask, DetectionTask, SegmentationTask
    for cls, name in ((ClassificationTask, 'classification'),
                      (SegmentationTask, 'segmentation'), (DetectionTask, 'detection')):
        if isinstance(algorithm.task, cls):
            return name
    raise TypeError(f'unknown task adapter {type(algorithm.task).__name__}; inference knows '
                    f'{TASKS}')


def load_weights(algorithm: nn.Module, source: str) -> dict:
    """Fill the algorithm's teacher and student from a checkpoint source (path, URL,
    ``zoo://``...; :func:`ssvision.checkpoints.resolve`), strictly.

    A run's checkpoint fills each network from its own keys; one with ``student.``
    keys only fills the teacher with the student; a plain network checkpoint fills both
    (:func:`~ssvision.models.algorithms.checkpoint_keys.expand_plain_state_dict`).

    Returns:
        The checkpoint's ``meta`` (``{}`` when it has none).

    Raises:
        RuntimeError: a network's weights do not fit (names the source and network).
    """
    path = checkpoints.resolve(source)
    obj = checkpoints.load_checkpoint(path)
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        state, meta = dict(obj['state_dict']), dict(obj.get('meta') or {})
    else:  # another layout: the shared unwrapping ('model', 'module.' ...)
        state, meta = dict(checkpoints.load_state_dict(path)), {}
    expand_plain_state_dict(state, '')
    for part in NETWORKS:
        sub = {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + '.')}
        try:
            getattr(algorithm, part).load_state_dict(sub, strict=True)
        except RuntimeError as err:
            raise RuntimeError(f'{source}: the {part} weights do not fit the network the '
                               f'config builds: {err}') from None
    return meta


def _test_dataset_cfg(cfg: Config) -> dict:
    """The test (else validation) dataset config, wrappers unwrapped."""
    for key in ('test_dataloader', 'val_dataloader'):
        ds = (cfg.get(key) or {}).get('dataset')
        if ds:
            while isinstance(ds.get('dataset'), dict):  # RepeatDataset and the like
                ds = ds['dataset']
            for part in ('labeled', 'unlabeled'):  # a SemiDataset (either may be absent)
                if isinstance(ds.get(part), dict):
                    ds = ds[part]
                    break
            return ds
    return {}


def coco_categories(cfg: Config) -> list[dict]:
    """The ``categories`` of the test dataset's COCO ``ann_file`` (looked up like every
    data path, :func:`ssvision.utils.paths.find_data`); ``[]`` when there is none."""
    from ssvision.utils.paths import find_data
    ann = _test_dataset_cfg(cfg).get('ann_file')
    ann = find_data(ann) if isinstance(ann, str) else None
    if not ann or not osp.isfile(ann):
        return []
    with open(ann) as f:
        return list(json.load(f).get('categories', []))


def class_names(cfg: Config, meta: dict, num_classes: int | None) -> tuple[str, ...]:
    """Class names from, in order: the checkpoint's ``dataset_meta``, the config's
    ``classes``, the test dataset's ``classes`` / ``metainfo``, its COCO ``ann_file``'s
    categories; else the indices ``'0'`` .. ``'K-1'``. Names whose number differs from
    ``num_classes`` are skipped."""
    ds = _test_dataset_cfg(cfg)
    candidates = [(meta.get('dataset_meta') or {}).get('classes'), cfg.get('classes'),
                  ds.get('classes'), (ds.get('metainfo') or {}).get('classes'),
                  [c['name'] for c in coco_categories(cfg)]]
    for names in candidates:
        if names and (num_classes is None or len(names) == num_classes):
            return tuple(str(n) for n in names)
    return tuple(str(i) for i in range(num_classes or 0))


def _color_type(cfg: Config, algorithm: nn.Module, library: str) -> str:
    if library == 'mmdet':
        return 'color'
    declared = _test_dataset_cfg(cfg).get('color_type')
    if declared:
        return declared
    # gray images that the preprocessor repeats to RGB, or a 1-channel network
    if getattr(algorithm.data_preprocessor, 'gray_to_rgb', False):
        return 'grayscale'
    student = algorithm.student
    return ('grayscale' if isinstance(student, StudentNetwork) and student.in_channels == 1
            else 'color')


def _pipeline(cfg: Config, task: str, library: str) -> Callable:
    pipeline = copy.deepcopy(_test_dataset_cfg(cfg).get('pipeline'))
    for t in pipeline or []:
        if (task == 'segmentation' and t.get('type') == 'ResizeImage'
                and t.get('fit', 'crop') == 'crop'):
            # probabilities are resized back over the whole image: a centre crop would be
            # stretched over parts of the image it never saw
            raise ValueError(f"{cfg.filename or 'the config'}: a segmentation test pipeline "
                             "may resize with ResizeImage(fit='stretch') only, got "
                             f"{t}; set fit='stretch' (or drop the resize)")
    if library == 'mmdet':
        from mmcv.transforms import Compose
        steps = [t for t in (pipeline or []) if t.get('type') not in _ANNOTATION_LOADERS]
        if not steps or 'LoadImage' not in str(steps[0].get('type')):
            raise ValueError('the mmdetection test pipeline should start with an image '
                             f'loader, got {steps[:1]}')
        # images are decoded here (read_image) and handed over as arrays
        steps[0] = dict(type='mmdet.LoadImageFromNDArray')
        with DefaultScope.overwrite_default_scope('mmdet'):
            return Compose(steps)
    return build_pipeline(pipeline or [dict(type=_PACKERS[task])])


def init_model(config: str | os.PathLike | Config, checkpoint: str | None = None,
               device: str | torch.device = 'cpu', network: str = 'teacher',
               cfg_options: dict | None = None) -> InferenceModel:
    """Build a config's algorithm, load a checkpoint, move it to ``device``, eval mode.

    Args:
        config: a config file, ``ssvision::GROUP/NAME.py``, or a :class:`Config`.
        checkpoint: a path, URL, ``zoo://NAME`` (anything
            :func:`ssvision.checkpoints.resolve` takes), or None to keep the config's
            own initialisation (its ``pretrained`` / ``checkpoint`` weights, if any).
            With a checkpoint, the network config's weight sources are switched off.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'`` ...
        network: ``'teacher'`` (default: the EMA teacher) or ``'student'``.
        cfg_options: config overrides (``{'model.model.width': 8}``).

    Returns:
        The :class:`InferenceModel`.
    """
    if network not in NETWORKS:
        raise ValueError(f'network must be one of {NETWORKS}, got {network!r}')
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'device {device} asked for, but CUDA is not available here; '
                           "use device='cpu'")
    cfg = load_config(config, cfg_options)
    library = _library(cfg)
    if checkpoint is not None:
        net_cfg = network_config(cfg.model)
        for key, off in WEIGHT_SOURCES.items():
            if key in net_cfg:
                net_cfg[key] = off
        cfg.model.pop('init_cfg', None)
    algorithm = _build(cfg, library)
    meta = load_weights(algorithm, checkpoint) if checkpoint is not None else {}
    if meta.get(BN_META_KEY):  # BatchNorm statistics re-estimated when it was saved
        apply_recalibrated(algorithm, meta[BN_META_KEY])
    algorithm.to(device).eval()
    task = _task_of(algorithm, library)
    return InferenceModel(
        algorithm=algorithm, cfg=cfg, network=network, task=task, library=library,
        classes=class_names(cfg, meta, getattr(algorithm, 'num_classes', None)),
        color_type=_color_type(cfg, algorithm, library),
        checkpoint=None if checkpoint is None else str(checkpoint),
        pipeline=_pipeline(cfg, task, library))


# ------------------------------------------------------------------------ running
def _decode_problem(path: str) -> str:
    """Why OpenCV could not decode ``path``, as far as the file shows it."""
    try:
        if os.path.getsize(path) == 0:
            return 'empty file (0 bytes)'
    except OSError as err:
        return err.strerror or type(err).__name__
    from PIL import Image
    try:
        with Image.open(path) as im:
            fmt = im.format
    except Exception:  # noqa: BLE001  Pillow raises many types for a non-image
        return 'not an image (no known image format)'
    return f'{fmt} file whose pixels do not decode (truncated or corrupt)'


def read_image_file(path: str | os.PathLike, color_type: str = 'color') -> np.ndarray:
    """Decode an image file as the datasets do
    (:func:`~ssvision.datasets.base.read_image`: OpenCV, RGB or gray).

    Raises:
        FileNotFoundError: no such file.
        UnreadableImageError: the file is there but is no readable image (empty, another
            kind of file, truncated, pixels that do not decode, not permitted to read);
            the message names the file and the reason.
    """
    path = os.fspath(path)
    try:
        return read_image(path, color_type)
    except FileNotFoundError:
        raise
    except PermissionError:
        raise UnreadableImageError(path, 'permission denied') from None
    except (OSError, cv2.error):
        raise UnreadableImageError(path, _decode_problem(path)) from None


def load_image(image: ImageInput, color_type: str = 'color') -> np.ndarray:
    """An image as the model reads it: uint8 ``(H, W, 3)`` RGB or ``(H, W, 1)`` gray.

    Args:
        image: a file (read with :func:`read_image_file`) or a uint8 array ``(H, W)``,
            ``(H, W, 1)``, ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA, alpha dropped).
        color_type: ``'color'`` or ``'grayscale'``; arrays are converted to it.

    Raises:
        FileNotFoundError, UnreadableImageError: a file that is missing or unreadable.
    """
    if not isinstance(image, np.ndarray):
        return read_image_file(image, color_type)
    img = image[..., None] if image.ndim == 2 else image
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f'expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got '
                         f'shape {image.shape}')
    if img.dtype != np.uint8:
        raise TypeError(f'expected a uint8 image, got {img.dtype}')
    img = img[..., :3]
    if color_type == 'grayscale' and img.shape[2] == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)[..., None]
    elif color_type == 'color' and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


def _as_iterable(images) -> Iterable:
    """Inputs one at a time; an iterator is consumed lazily (a generator of decoded
    images is never held in memory all at once)."""
    if isinstance(images, np.ndarray):
        return images if images.ndim == 4 else [images]
    if isinstance(images, (str, os.PathLike)):
        return [images]
    return images


def _groups(packed: list[dict], by_shape: bool) -> list[list[int]]:
    """Indices of samples batched together: all of them (detection takes images of any
    size), else those whose packed inputs share a shape."""
    if not by_shape:
        return [list(range(len(packed)))]
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(packed):
        groups.setdefault(tuple(p['inputs'].shape), []).append(i)
    return list(groups.values())


def _run_ssvision(model: InferenceModel, images: list[np.ndarray],
                  with_scores: bool = False) -> list[dict]:
    from ssvision.datasets.collate import semi_collate
    algorithm, net, task = model.algorithm, model.net, model.algorithm.task
    packed = [model.pipeline({'img': img, 'sample_idx': i, 'ori_shape': img.shape[:2]})
              for i, img in enumerate(images)]
    out: list[dict | None] = [None] * len(images)
    for idx in _groups(packed, by_shape=model.task != 'detection'):
        data = algorithm.data_preprocessor(semi_collate([packed[i] for i in idx]), False)
        inputs, samples = data['inputs'], data['data_samples']
        pred = task.infer(net, inputs)
        if model.task == 'classification':
            probs = pred.float().cpu()
            for j, i in enumerate(idx):
                score, label = probs[j].max(dim=0)
                out[i] = {'label': int(label), 'score': float(score),
                          'scores': probs[j].numpy()}
        elif model.task == 'segmentation':
            for j, i in enumerate(idx):
                probs = pred[j:j + 1].float()
                ori = images[i].shape[:2]
                if tuple(probs.shape[-2:]) != tuple(ori):
                    probs = F.interpolate(probs, size=ori, mode='bilinear', align_corners=False)
                out[i] = {'mask': probs[0].argmax(dim=0).cpu().numpy().astype(np.int64)}
                if with_scores:
                    out[i]['scores'] = probs[0].cpu().numpy().astype(np.float32)
        else:
            # back to original-image pixels (inverse of each view's homography)
            items = task.pack_predictions({model.network: pred}, samples, inputs)
            for j, i in enumerate(idx):
                d = items[j]['pred'][model.network]
                out[i] = {'boxes': d.bboxes.numpy().astype(np.float32),
                          'scores': d.scores.numpy().astype(np.float32),
                          'labels': d.labels.numpy().astype(np.int64)}
    return out


def _run_mmdet(model: InferenceModel, images: list[np.ndarray],
               with_scores: bool = False) -> list[dict]:
    from mmengine.dataset import pseudo_collate
    # mmdetection's loaders and preprocessors work in BGR (bgr_to_rgb in the preprocessor)
    data = [model.pipeline({'img': np.ascontiguousarray(img[..., ::-1]), 'img_id': i})
            for i, img in enumerate(images)]
    data = model.algorithm.data_preprocessor(pseudo_collate(data), False)
    results = model.net.predict(data['inputs'], data['data_samples'], rescale=True)
    out = []
    for r in results:
        inst = r.pred_instances
        out.append({'boxes': inst.bboxes.detach().cpu().numpy().astype(np.float32),
                    'scores': inst.scores.detach().cpu().numpy().astype(np.float32),
                    'labels': inst.labels.detach().cpu().numpy().astype(np.int64)})
    return out


def iter_inference(model: InferenceModel, images: Iterable[ImageInput] | ImageInput,
                   batch_size: int = 16, with_scores: bool = False) -> Iterator[dict]:
    """:func:`inference`, one result at a time (``batch_size`` images decoded and run
    together), for inputs too many to hold all results in memory. ``images`` may be a
    generator: it is read ``batch_size`` items ahead of the results, no further."""
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    run = _run_mmdet if model.library == 'mmdet' else _run_ssvision
    chunk: list[np.ndarray] = []
    with torch.no_grad():
        for image in _as_iterable(images):
            chunk.append(load_image(image, model.color_type))
            if len(chunk) == batch_size:
                yield from run(model, chunk, with_scores)
                chunk = []
        if chunk:
            yield from run(model, chunk, with_scores)


def inference(model: InferenceModel, images: Sequence[ImageInput] | ImageInput,
              batch_size: int = 16, with_scores: bool = False) -> list[dict[str, Any]]:
    """Predict on images (see the module docstring for the results).

    Args:
        model: from :func:`init_model`.
        images: file paths and / or uint8 arrays (RGB ``(H, W, 3)``, gray ``(H, W)`` or
            ``(H, W, 1)``; converted to the model's ``color_type``), a single one, or an
            ``(N, H, W, C)`` array.
        batch_size: images per forward pass (cls / seg: images of one size share one).
        with_scores: segmentation: also return each pixel's class probabilities
            (``scores``, ``(K, H, W)`` float32: K times the memory of the mask).
            Default False.

    Returns:
        One result dict per image, in input order.

    Raises:
        FileNotFoundError, UnreadableImageError: a file input that is missing or not a
            readable image (nothing is returned for the other inputs then).
    """
    return list(iter_inference(model, images, batch_size, with_scores))
