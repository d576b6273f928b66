"""A trained network out of ssvision: plain weights for its own library, or ONNX.

:func:`export_model` writes the teacher (or, with ``init_model(..., network='student')``,
the student) of an :class:`~ssvision.apis.inference.InferenceModel` into a folder, with
a json *manifest* beside it that says how to rebuild and feed it without ssvision.

**plain**: a state dict that loads strictly into the underlying library's own model:

============================  ==============================================================
network                       loads into
============================  ==============================================================
``TimmClassifier``            ``timm.create_model(name, num_classes=K, in_chans=C, ...)``
                              (the own linear head becomes timm's classifier, e.g. ``fc``)
``TorchvisionSegmentor``      ``torchvision.models.segmentation.<arch>(weights=None,
                              weights_backbone=None, num_classes=K)``; logits in ``['out']``
``TorchvisionDetector``       torchvision's ``FasterRCNN`` / ``RetinaNet`` / ``FCOS`` over
                              ``resnet_fpn_backbone`` / ``mobilenet_backbone`` with the run's
                              anchors and sizes (the manifest's ``python`` builds it)
mmdetection plug-in           the inner mmdetection detector: ``NAME_config.py`` +
                              ``NAME.pth`` (``{'state_dict', 'meta'}``) for
                              ``mmdet.apis.init_detector``
ssvision's own networks       no outside library has them (``TinyCNN``, ``WideResNet``,
                              ``DeepLabV3Plus``): ``NAME.pth`` is the network's state dict
                              (for ssvision's class) and ``NAME.pt2`` a ``torch.export``
                              program that runs with torch alone,
                              ``torch.export.load('NAME.pt2').module()``: any batch size;
                              segmentors also any height and width from
                              ``output_stride + 1`` on (:func:`min_input_side`)
============================  ==============================================================

Plain exports are the bare network: the caller normalises images as the manifest's
``input`` says. The weights are checked before anything is written: the outside model is
built from the manifest's own recipe and must load them strictly (and give the same
logits, for classifiers and segmentors).

**onnx** (``torch.onnx.export(dynamo=False)``, the TorchScript-based exporter: the
torch.export-based one cannot trace torchvision's detectors): pixels in, no ssvision
preprocessing needed:

* classifiers: ``input`` float32 ``(N, C, H, W)`` RGB / gray pixel values 0..255 at the
  export size, normalised inside the graph -> ``logits`` ``(N, K)``; ``N`` dynamic;
* segmentors: the same with ``N``, ``H`` and ``W`` dynamic -> ``logits`` ``(N, K, H, W)``
  (the network on the whole image; a config's sliding-window test mode is not part of
  the graph);
* torchvision detectors: ``input`` float32 ``(1, 3, H, W)`` RGB pixels 0..255, ``H`` and
  ``W`` dynamic -> ``boxes`` ``(n, 4)`` xyxy in input pixels, ``scores`` ``(n,)``,
  ``labels`` ``(n,)`` in ``[0, K)``. One image per call: torchvision detectors take a
  list of images, whose loop the exporter unrolls, so the batch axis cannot be dynamic;
* the mmdetection plug-in: refused (mmdetection models go to ONNX through mmdeploy).

The manifest (``NAME.plain.json`` or ``NAME.onnx.json``): ``format``, ``task``,
``network``, ``library``, ``files``, ``build`` (builder and keyword arguments), ``python``
(code that builds ``model`` or ``session`` from the files, run in the export folder,
importing only the library), ``input``, ``output``, ``postprocess``, ``classes`` and
``source`` (config and checkpoint).

``input`` says exactly how ssvision turns an image file into the network's input, so
that following it gives ssvision's own predictions (classifiers and segmentors):
``decode``, ``channel_order`` (``RGB`` / ``gray``), ``dtype`` and ``value_range``
(float32 0..255 before normalising), ``size_policy`` (``fixed``: ``size`` only;
``any``: any size from ``min_input_size`` on, ``multiple_of`` 1), ``resize`` (the test
pipeline's ``ResizeImage``: target, fit, interpolation rule; None: fed at its own
size), ``mean`` / ``std`` (0..255 units) with ``normalize`` (by the caller or inside the
model), ``layout`` and the same as ordered ``steps``. ``postprocess`` maps the outputs
back: softmax over the classes and, for segmentors whose input was resized, the
probabilities resized *bilinearly* (``align_corners=False``) to the image's size before
the argmax, with the config's test mode (a sliding window is not part of an export).

Every file is written under a temporary name and renamed into place when complete
(:func:`~ssvision.utils.atomic.atomic_write`); the manifest comes last.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from mmengine.config import Config
from torch import nn

from ssvision.utils.atomic import AtomicFile, atomic_write

from .inference import InferenceModel, network_config

__all__ = ['export_model', 'export_plain', 'export_onnx', 'FORMATS', 'ONNX_OPSET',
           'BUILTIN_SIZES']

FORMATS = ('plain', 'onnx')
#: ONNX opset of the exports (onnxruntime >= 1.13 runs it).
ONNX_OPSET = 17
#: Largest pixel value: torchvision detectors take images scaled to [0, 1].
PIXEL_MAX = 255.0
#: Example batch for tracing: 2, so that no size-1 axis is taken for a constant.
TRACE_BATCH = 2
#: Image sizes of the built-in datasets (their configs have no resize to read one from).
BUILTIN_SIZES = {'MNIST5k': (28, 28), 'MNISTIdx': (28, 28), 'FashionMNIST': (28, 28),
                 'CIFAR10': (32, 32), 'CIFAR100': (32, 32), 'Digits8x8': (8, 8)}
#: Config keys that name a network's input size, looked for at the top level.
_SIZE_KEYS = ('input_size', 'img_size', 'image_size', 'crop')
#: Segmentors and detectors take any size; this one traces them when none is known.
_DENSE_TRACE_SIZE = (128, 128)
#: Tolerance of the export-time check that the outside model gives the same logits.
_CHECK_ATOL = 1e-4
#: Largest batch of a torch.export program.
_MAX_BATCH = 4096


# ------------------------------------------------------------------------ helpers
def _size_pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


def input_size(model: InferenceModel, size=None) -> Optional[tuple[int, int]]:
    """The ``(H, W)`` a network is fed: ``size`` when given; else a ``ResizeImage`` in the
    test pipeline, a top-level config key (``input_size``, ``img_size``, ``image_size``,
    ``crop``), or the built-in dataset's image size (:data:`BUILTIN_SIZES`); else None."""
    if size is not None:
        return _size_pair(size)
    from .inference import _test_dataset_cfg
    ds = _test_dataset_cfg(model.cfg)
    for t in ds.get('pipeline') or []:
        if t.get('type') == 'ResizeImage' and t.get('size') is not None:
            return _size_pair(t['size'])
    for key in _SIZE_KEYS:
        if model.cfg.get(key) is not None:
            return _size_pair(model.cfg[key])
    return BUILTIN_SIZES.get(str(ds.get('type')))


def _decimal(value: torch.Tensor) -> float:
    """A float32 as its shortest decimal (``123.7``, not ``123.69999694824219``): the
    same float32 when read back."""
    return float(str(value.numpy().astype('float32')))


def _normalisation(model: InferenceModel) -> dict:
    pre = model.algorithm.data_preprocessor
    return {'mean': [_decimal(v) for v in pre.mean.detach().cpu().flatten()],
            'std': [_decimal(v) for v in pre.std.detach().cpu().flatten()],
            'gray_to_rgb': bool(getattr(pre, 'gray_to_rgb', False))}


def _image_channels(model: InferenceModel) -> int:
    return 1 if model.color_type == 'grayscale' else 3


#: How ssvision decodes image files (the datasets' ``read_image``), by colour type.
_DECODE = {'color': 'OpenCV (cv2.imread / cv2.imdecode, IMREAD_COLOR), BGR turned to RGB',
           'grayscale': 'OpenCV IMREAD_GRAYSCALE (0.299 R + 0.587 G + 0.114 B, rounded); '
                        'an RGB array: cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)'}
#: The ``ResizeImage`` rule, as the manifest states it.
_RESIZE_RULE = ('cv2.resize on the uint8 image: cv2.INTER_AREA when the result has fewer '
                'pixels than the image (rh * rw < H * W), else cv2.INTER_LINEAR (bilinear, '
                'half-pixel centres); the result stays uint8')


def _resize_spec(model: InferenceModel) -> Optional[dict]:
    """The test pipeline's ``ResizeImage`` as the manifest's ``input.resize`` (None: the
    image is fed at its own size)."""
    for t in _test_pipeline(model.cfg) or []:
        if t.get('type') != 'ResizeImage':
            continue
        h, w = _size_pair(t['size'])
        fit = t.get('fit', 'crop')
        spec = {'transform': 'ResizeImage', 'size': [h, w], 'fit': fit,
                'interpolation': {'shrink': 'area', 'enlarge': 'bilinear'},
                'rule': _RESIZE_RULE}
        if fit == 'crop':
            spec['steps'] = (f's = max({h} / H, {w} / W); resize to (rh, rw) = (max({h}, '
                             f'round(H * s)), max({w}, round(W * s))) by the rule; keep the '
                             f'centre {h} x {w}: rows (rh - {h}) // 2 on, columns '
                             f'(rw - {w}) // 2 on')
        else:
            spec['steps'] = f'resize to (rh, rw) = ({h}, {w}) by the rule (aspect ratio changes)'
        return spec
    return None


def _other_transforms(model: InferenceModel) -> list:
    """Test-pipeline steps the manifest does not spell out (anything but the resize and
    the packing): a manifest that names them warns the caller."""
    known = ('ResizeImage', 'PackClsInputs', 'PackSegInputs', 'PackDetInputs')
    return [t for t in _test_pipeline(model.cfg) or [] if t.get('type') not in known]


def _input_spec(model: InferenceModel, size, fmt: str, program: dict | None = None) -> dict:
    """The manifest's ``input``: exactly how an image becomes what the exported model
    takes (decoding, channel order, value range, size policy, resize, normalisation,
    layout), in keys and as ordered ``steps``.

    Args:
        size: the fixed ``(H, W)`` a classifier takes (None otherwise).
        program: for a ``torch.export`` program, its size policy
            (:func:`_save_program`).
    """
    if model.library == 'mmdet':
        det = network_config(model.cfg.model)
        return {'color_type': 'color', 'channel_order': 'BGR (mmdetection loads BGR)',
                'data_preprocessor': det.get('data_preprocessor'),
                'test_pipeline': _test_pipeline(model.cfg),
                'inside_model': 'mmdetection data preprocessor (normalise, pad)'}
    if model.task == 'detection':
        t = model.net.net.transform
        spec = {'color_type': 'color', 'channels': 3, 'channel_order': 'RGB',
                'decode': _DECODE['color'], 'size_policy': 'any', 'size': None,
                'min_size': list(t.min_size),
                'max_size': int(t.max_size), 'image_mean': list(t.image_mean),
                'image_std': list(t.image_std), 'test_pipeline': _test_pipeline(model.cfg)}
        if fmt == 'onnx':
            spec.update(layout='float32 (1, 3, H, W), RGB pixel values 0..255',
                        inside_model='divide by 255; torchvision normalises and resizes')
        else:
            spec.update(layout='a list of float32 (3, H, W) RGB tensors in [0, 1]',
                        inside_model='torchvision normalises (image_mean / image_std) and '
                                     'resizes to min_size / max_size')
        return spec
    norm = _normalisation(model)
    channels = _image_channels(model)
    resize = _resize_spec(model)
    program = program or {}
    if model.task == 'classification':
        policy, fixed, smallest = 'fixed', list(size) if size else None, None
    else:  # segmentors take any size (a torch.export program: from a smallest one on)
        policy = program.get('size_policy', 'any')
        fixed = program.get('size') if policy == 'fixed' else None
        smallest = program.get('min_input_size')
    spec = {'color_type': model.color_type, 'channels': channels,
            'channel_order': 'RGB' if channels == 3 else 'gray',
            'decode': _DECODE[model.color_type], 'dtype': 'float32', 'value_range': [0, 255],
            'size_policy': policy, 'size': fixed, 'min_input_size': smallest,
            'multiple_of': 1, 'resize': resize, **norm,
            'normalize': 'inside the model' if fmt == 'onnx' else 'by the caller'}
    gray = ', gray repeated to 3 channels' if norm['gray_to_rgb'] else ''
    if fmt == 'onnx':
        spec.update(layout=f'float32 (N, {channels}, H, W) pixel values 0..255',
                    inside_model='x = (pixels - mean) / std' + gray)
    else:
        spec.update(layout='float32 (N, C, H, W)',
                    preprocess='x = (pixels - mean) / std, pixels 0..255'
                               + (', a gray image repeated to 3 channels first'
                                  if norm['gray_to_rgb'] else ''))
    steps = [f'decode the file: {_DECODE[model.color_type]} -> uint8 (H, W, {channels})']
    if resize is not None:
        steps.append(f"resize as 'resize' says: {resize['steps']}")
    elif policy == 'fixed':
        steps.append(f'no resize: the image must be {fixed[0]} x {fixed[1]} already (the '
                     "config's test pipeline does not resize)" if fixed else 'no resize')
    else:
        steps.append('no resize: the image is fed at its own size (H, W)'
                     + (f', at least {smallest[0]} x {smallest[1]}' if smallest else ''))
    if fmt == 'onnx':
        steps.append(f'float32, values 0..255, layout (N, {channels}, H, W); the model '
                     'normalises inside')
    else:
        steps.append('float32, values 0..255' + (', repeat the gray channel 3 times'
                                                 if norm['gray_to_rgb'] else '')
                     + ', x = (x - mean) / std per channel, layout (N, C, H, W)')
    others = _other_transforms(model)
    if others:
        steps.append(f'the test pipeline also runs {others}: not described here, see '
                     'test_pipeline')
    spec['steps'] = steps
    spec['test_pipeline'] = _test_pipeline(model.cfg)
    return spec


def _postprocess_spec(model: InferenceModel, fmt: str) -> dict:
    """The manifest's ``postprocess``: from the outputs to what ``ssvision infer``
    writes (for segmentors: back to the image's own size)."""
    if model.task == 'classification':
        return {'probabilities': 'softmax over K (dim 1)',
                'label': 'argmax over K', 'score': "the label's probability"}
    if model.task == 'segmentation':
        test_cfg = dict(model.algorithm.task.test_cfg)
        spec = {'logits': '(N, K, h, w) at the input size (h, w)',
                'probabilities': 'softmax over K (dim 1), float32',
                'to_image_size': {
                    'when': "the input was resized (see input.resize); else the "
                            "probabilities are at the image's size already",
                    'on': 'probabilities',  # not the logits, not the mask
                    'interpolation': 'bilinear', 'align_corners': False,
                    'torch': "torch.nn.functional.interpolate(probs, size=(H, W), "
                             "mode='bilinear', align_corners=False)",
                    'not': 'nearest (it moves probabilities by up to 0.44 at region edges)'},
                'mask': 'argmax over K of the probabilities at the image size',
                'test_mode': test_cfg}
        if test_cfg.get('mode') == 'slide':
            spec['test_mode_note'] = (
                'ssvision averages the softmax of overlapping windows (window, stride) and '
                'pads windows beyond the image; the export runs the network on the whole '
                'input, so its masks can differ')
        return spec
    return {'boxes': "x1, y1, x2, y2 in the pixels of the image given (torchvision maps "
                     'them back from its own resize)'}


def _test_pipeline(cfg: Config):
    from .inference import _test_dataset_cfg
    return copy.deepcopy(_test_dataset_cfg(cfg).get('pipeline'))


def _output_spec(model: InferenceModel, fmt: str) -> str:
    if model.task == 'classification':
        return 'logits (N, K); softmax gives the class probabilities'
    if model.task == 'segmentation':
        return ('logits (N, K, H, W) at the input size; argmax over K gives the mask'
                + ('' if fmt == 'onnx' else " (torchvision models: model(x)['out'])"))
    if model.library == 'mmdet':
        return ('mmdetection DetDataSample.pred_instances (bboxes xyxy, scores, labels in '
                '[0, K)); inference_detector(model, image) runs the test pipeline')
    if fmt == 'onnx':
        return 'boxes (n, 4) xyxy in input pixels, scores (n,), labels (n,) in [0, K)'
    offset = model.net.label_offset
    return ("per image {'boxes' (n, 4) xyxy in input pixels, 'scores' (n,), 'labels' (n,)}"
            + (f'; class index = label - {offset} (label 0 is the background)'
               if offset else '; labels in [0, K)'))


def _kwargs_code(kwargs: dict) -> str:
    return ', '.join(f'{k}={v!r}' for k, v in kwargs.items())


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ------------------------------------------------------------------------ plain recipes
@dataclass
class _Plain:
    """How one network leaves as plain weights."""

    library: str
    build: dict
    build_code: str            # builds `model` (imports the library only)
    state: dict                # tensors written to NAME.pth
    load_code: str = ''        # fills `model` from NAME.pth (run in the export folder)
    check_forward: bool = True  # compare the outside model's logits at export time
    extra: dict = field(default_factory=dict)


def _timm_plain(net, net_cfg: dict) -> _Plain:
    from ssvision.models.classifiers import TimmClassifier
    own = set(inspect.signature(TimmClassifier.__init__).parameters)
    timm_kwargs = {k: v for k, v in net_cfg.items() if k not in own and k != 'type'}
    classifier = (net.backbone.pretrained_cfg or {}).get('classifier')
    if not isinstance(classifier, str):
        raise NotImplementedError(
            f'timm {net.model_name!r} has the classifier {classifier!r}; only models with '
            "one classifier layer export as plain timm weights; use --format onnx")
    state = dict(net.backbone.state_dict())
    state[f'{classifier}.weight'] = net.head.weight
    state[f'{classifier}.bias'] = net.head.bias
    kwargs = dict(pretrained=False, num_classes=net.num_classes, in_chans=net.in_channels,
                  **timm_kwargs)
    code = f'import timm\nmodel = timm.create_model({net.model_name!r}, {_kwargs_code(kwargs)})\n'
    return _Plain('timm', {'builder': 'timm.create_model', 'args': [net.model_name],
                           'kwargs': kwargs}, code, state)


def _tv_segmentor_plain(net) -> _Plain:
    kwargs = dict(weights=None, weights_backbone=None, num_classes=net.num_classes)
    if net.aux_classifier is not None:
        kwargs['aux_loss'] = True
    code = ('from torchvision.models import segmentation\n'
            f'model = segmentation.{net.arch}({_kwargs_code(kwargs)})\n')
    return _Plain('torchvision', {'builder': f'torchvision.models.segmentation.{net.arch}',
                                  'kwargs': kwargs}, code, dict(net.state_dict()))


def _tv_detector_plain(net, net_cfg: dict) -> _Plain:
    """torchvision's detector class over the same FPN backbone, anchors and sizes
    (:class:`~ssvision.models.TorchvisionDetector` builds it so; the anchors are read
    from the built model)."""
    from ssvision.models.detectors import TorchvisionDetector
    params = inspect.signature(TorchvisionDetector.__init__).parameters
    args = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    args.update({k: v for k, v in net_cfg.items() if k in params})
    extra = {k: v for k, v in net_cfg.items() if k not in params and k != 'type'}
    tv = net.net
    # torchvision's own class (ssvision's RetinaNet subclass only adds ignore regions to
    # the training loss)
    cls = next(c.__name__ for c in type(tv).__mro__ if c.__module__.startswith('torchvision.'))
    norm = 'nn.BatchNorm2d' if args['norm'] == 'bn' else 'misc.FrozenBatchNorm2d'
    backbone_kwargs = dict(backbone_name=args['backbone'], weights=None)
    if args['backbone'].startswith('resnet'):
        fn, tail = 'resnet_fpn_backbone', ''
        if net.one_stage:
            tail = ', returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256)'
    else:
        fn = 'mobilenet_backbone'
        backbone_kwargs['fpn'] = True
        tail = ', extra_blocks=LastLevelP6P7(256, 256)' if net.one_stage else ''
    backbone_kwargs['trainable_layers'] = args['trainable_layers']
    anchors = tv.rpn.anchor_generator if cls == 'FasterRCNN' else tv.anchor_generator
    anchor_arg = 'rpn_anchor_generator' if cls == 'FasterRCNN' else 'anchor_generator'
    sizes = [list(s) for s in anchors.sizes]
    ratios = [list(r) for r in anchors.aspect_ratios]
    kwargs = dict(num_classes=net.num_classes + net.label_offset, min_size=args['min_size'],
                  max_size=args['max_size'], **extra)
    code = (
        'from torch import nn\n'
        f'from torchvision.models.detection import {cls}\n'
        'from torchvision.models.detection.anchor_utils import AnchorGenerator\n'
        f'from torchvision.models.detection.backbone_utils import {fn}\n'
        'from torchvision.ops import misc\n'
        'from torchvision.ops.feature_pyramid_network import LastLevelP6P7\n'
        f'backbone = {fn}({_kwargs_code(backbone_kwargs)}, norm_layer={norm}{tail})\n'
        f'anchors = AnchorGenerator({_tuples(sizes)}, {_tuples(ratios)})\n'
        f'model = {cls}(backbone, {anchor_arg}=anchors, {_kwargs_code(kwargs)})\n')
    build = {'builder': f'torchvision.models.detection.{cls}', 'kwargs': kwargs,
             'backbone': {'builder': f'torchvision.models.detection.backbone_utils.{fn}',
                          'kwargs': backbone_kwargs, 'norm_layer': norm.split('.')[-1],
                          'one_stage_extra_blocks': net.one_stage},
             anchor_arg: {'sizes': sizes, 'aspect_ratios': ratios},
             'label_offset': net.label_offset}
    return _Plain('torchvision', build, code, dict(tv.state_dict()), check_forward=False)


def _tuples(rows: list[list]) -> str:
    """``[[1, 2], [3]]`` -> ``'((1, 2,), (3,),)'`` (AnchorGenerator takes tuples)."""
    return '(' + ', '.join('(' + ', '.join(repr(v) for v in r) + ',)' for r in rows) + ',)'


def _mmdet_plain(model: InferenceModel, name: str) -> _Plain:
    det = copy.deepcopy(network_config(model.cfg.model))
    if isinstance(det.get('backbone'), dict):
        det['backbone'].pop('init_cfg', None)  # no pretrained download when rebuilt
    config = {'default_scope': 'mmdet', 'model': det}
    for key in ('test_pipeline', 'test_dataloader'):
        if model.cfg.get(key) is not None:
            config[key] = copy.deepcopy(model.cfg[key])
    code = ('from mmdet.apis import init_detector\n'
            f"model = init_detector('{name}_config.py', '{name}.pth', device='cpu')\n")
    return _Plain('mmdet', {'builder': 'mmdet.apis.init_detector',
                            'config': f'{name}_config.py'}, code,
                  dict(model.net.state_dict()), check_forward=False,
                  extra={'config': Config(config)})


def _own_plain(model: InferenceModel, name: str) -> _Plain:
    net_cfg = network_config(model.cfg.model)
    build = {'builder': f"ssvision.models.{net_cfg['type']}",
             'kwargs': {k: v for k, v in net_cfg.items() if k != 'type'},
             'note': 'no outside library has this network: NAME.pth is for ssvision; '
                     'NAME.pt2 (torch.export) runs with torch alone'}
    code = f"import torch\nmodel = torch.export.load('{name}.pt2').module()\n"
    return _Plain('torch', build, code, dict(model.net.state_dict()), check_forward=False)


def _plain_recipe(model: InferenceModel, name: str) -> _Plain:
    from ssvision.models.classifiers import TimmClassifier
    from ssvision.models.detectors import TorchvisionDetector
    from ssvision.models.segmentors import TorchvisionSegmentor
    if model.library == 'mmdet':
        return _mmdet_plain(model, name)
    net, net_cfg = model.net, network_config(model.cfg.model)
    if isinstance(net, TimmClassifier):
        return _timm_plain(net, net_cfg)
    if isinstance(net, TorchvisionSegmentor):
        return _tv_segmentor_plain(net)
    if isinstance(net, TorchvisionDetector):
        return _tv_detector_plain(net, net_cfg)
    return _own_plain(model, name)


# ------------------------------------------------------------------------ checks
def _check_plain(model: InferenceModel, recipe: _Plain, size) -> None:
    """Build the outside model from the recipe, load the weights strictly and, for
    classifiers and segmentors, compare its logits with the network's on random inputs
    of ``size`` (when known)."""
    if recipe.library == 'torch':
        return  # checked when the program is traced
    if recipe.library == 'mmdet':
        from mmdet.registry import MODELS as MMDET_MODELS
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope('mmdet'):
            outside = MMDET_MODELS.build(recipe.extra['config'].model)
    else:
        scope: dict = {}
        exec(recipe.build_code, scope)  # noqa: S102  (our own generated code)
        outside = scope['model']
    try:
        outside.load_state_dict(recipe.state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f'the exported weights do not load into the {recipe.library} '
                           f'model its recipe builds: {err}') from None
    if not recipe.check_forward:
        return
    size = size or (_DENSE_TRACE_SIZE if model.task == 'segmentation' else (32, 32))
    x = torch.randn(TRACE_BATCH, _net_channels(model), *size, device=model.device)
    outside.to(model.device).eval()
    with torch.no_grad():
        ours, theirs = model.net(x), outside(x)
    theirs = theirs['out'] if isinstance(theirs, dict) else theirs
    if not torch.allclose(ours, theirs, atol=_CHECK_ATOL, rtol=_CHECK_ATOL):
        raise RuntimeError(f'the {recipe.library} model rebuilt from the export gives other '
                           f'logits (max difference {(ours - theirs).abs().max():.3g})')


def _net_channels(model: InferenceModel) -> int:
    norm = _normalisation(model)
    return 3 if norm['gray_to_rgb'] else _image_channels(model)


# ------------------------------------------------------------------------ writers
def _manifest(model: InferenceModel, fmt: str, library: str, files: dict, build: dict,
              python: str, size, program: dict | None = None) -> dict:
    import ssvision
    return _jsonable({
        'ssvision_version': ssvision.__version__, 'format': fmt, 'task': model.task,
        'network': model.network, 'library': library, 'files': files, 'build': build,
        'python': python, 'input': _input_spec(model, size, fmt, program),
        'output': _output_spec(model, fmt), 'postprocess': _postprocess_spec(model, fmt),
        'classes': list(model.classes),
        'source': {'config': model.cfg.filename or '<Config object>',
                   'checkpoint': model.checkpoint}})


def _write_manifest(out_dir: str, name: str, manifest: dict) -> dict:
    """Written last (and atomically, like every file of an export): a manifest names
    only complete files."""
    path = manifest['files']['manifest'] = f"{name}.{manifest['format']}.json"
    with AtomicFile(osp.join(out_dir, path), 'w') as f:
        json.dump(manifest, f, indent=2)
    return manifest


def _default_name(model: InferenceModel) -> str:
    stem = osp.splitext(osp.basename(model.cfg.filename or 'model'))[0]
    return f'{stem}_{model.network}'


def export_plain(model: InferenceModel, out_dir: str, name: str | None = None,
                 size=None) -> dict:
    """Write the network as plain weights for its own library (see the module docstring).

    Args:
        model: from :func:`~ssvision.apis.init_model` (its ``network`` is exported).
        out_dir: folder for ``NAME.pth``, ``NAME.plain.json`` (and ``NAME_config.py`` for
            mmdetection, ``NAME.pt2`` for ssvision's own networks).
        name: file stem; default ``<config name>_<network>``.
        size: ``(H, W)`` (or an int) of the ``torch.export`` program of ssvision's own
            networks, when :func:`input_size` finds none (segmentors: 128 x 128).

    Returns:
        The manifest (also written to ``NAME.plain.json``).
    """
    name = name or _default_name(model)
    own_size = input_size(model, size)
    recipe = _plain_recipe(model, name)
    if recipe.library == 'torch' and own_size is None:
        if model.task != 'segmentation':
            raise ValueError(f"{type(model.net).__name__} is ssvision's own network: its "
                             'plain export includes a torch.export program, traced at the '
                             'input size; none is known from the config, give one '
                             '(size=(H, W), tools/export.py --input-size H W)')
        own_size = _DENSE_TRACE_SIZE
    _check_plain(model, recipe, own_size)
    os.makedirs(out_dir, exist_ok=True)
    files = {'weights': f'{name}.pth'}
    state = {k: v.detach().cpu() for k, v in recipe.state.items()}
    load = ''
    program = None
    # every file is written under a temporary name and renamed when complete, so a
    # failed export (a full disk) never leaves a truncated file under a real name
    if recipe.library == 'mmdet':
        with atomic_write(osp.join(out_dir, files['weights'])) as tmp:
            torch.save({'state_dict': state,
                        'meta': {'dataset_meta': {'classes': tuple(model.classes)}}}, tmp)
        with atomic_write(osp.join(out_dir, f'{name}_config.py')) as tmp:
            recipe.extra['config'].dump(tmp)
        files['config'] = f'{name}_config.py'
    else:
        with atomic_write(osp.join(out_dir, files['weights'])) as tmp:
            torch.save(state, tmp)
        if recipe.library != 'torch':
            load = (f"model.load_state_dict(torch.load('{name}.pth', map_location='cpu', "
                    'weights_only=True))\n')
    if recipe.library == 'torch':
        program = _save_program(model, osp.join(out_dir, f'{name}.pt2'), own_size)
        files['program'] = f'{name}.pt2'
    python = ('import torch\n' if load else '') + recipe.build_code + load
    if recipe.library != 'torch':  # a torch.export program is fixed in eval mode already
        python += 'model.eval()\n'
    manifest = _manifest(model, 'plain', recipe.library, files, recipe.build, python,
                         own_size if model.task == 'classification' else None, program)
    return _write_manifest(out_dir, name, manifest)


def min_input_side(net: nn.Module) -> int:
    """Smallest height / width a segmentor's ``torch.export`` program takes:
    ``output_stride + 1`` (the contract's, 32 unless the network sets its own).

    torch.export treats a size-1 axis as a special case it cannot keep symbolic, so the
    deepest feature map (``H / output_stride``) must be at least 2 x 2.
    """
    return int(net.output_stride) + 1


def _save_program(model: InferenceModel, path: str, size) -> dict:
    """``torch.export`` the network, check it against the network, save it.

    Classifiers: a dynamic batch axis at the traced ``size``. Segmentors: batch, height
    and width dynamic (height and width from :func:`min_input_side` on), checked at the
    smallest size and at an odd size other than the traced one; a network whose shapes
    torch.export cannot keep symbolic falls back to the traced size, with a warning.

    Returns:
        The program's size policy for the manifest: ``{'size_policy': 'fixed',
        'size': [H, W]}`` or ``{'size_policy': 'any', 'min_input_size': [h, w]}``.
    """
    net = model.net.eval()
    batch = torch.export.Dim('batch', min=1, max=_MAX_BATCH)
    dims: dict = {0: batch}
    info: dict = {'size_policy': 'fixed', 'size': list(size)}
    checks = [(TRACE_BATCH + 1, tuple(size))]
    if model.task == 'segmentation':
        side = min_input_side(net)
        size = tuple(max(s, side) for s in size)
        dims = {0: batch, 2: torch.export.Dim('height', min=side),
                3: torch.export.Dim('width', min=side)}
        info = {'size_policy': 'any', 'min_input_size': [side, side]}
        checks = [(TRACE_BATCH + 1, (size[0] + 13, size[1] + 7)), (1, (side, side))]
    x = torch.randn(TRACE_BATCH, _net_channels(model), *size, device=model.device)
    with torch.no_grad():
        try:
            program = torch.export.export(net, (x,), dynamic_shapes=(dims,))
        except Exception as err:  # noqa: BLE001  torch raises many types for shapes
            if len(dims) == 1:
                raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
            warnings.warn(f'{type(net).__name__} does not export with a free height and '
                          f'width ({first}); its .pt2 program takes {size[0]} x {size[1]} '
                          'images only (the ONNX export takes any size)', stacklevel=3)
            program = torch.export.export(net, (x,), dynamic_shapes=({0: batch},))
            info = {'size_policy': 'fixed', 'size': list(size)}
            checks = [(TRACE_BATCH + 1, tuple(size))]
        module = program.module()
        for n, hw in checks:
            xc = torch.randn(n, *x.shape[1:2], *hw, device=x.device)
            diff = (module(xc) - net(xc)).abs().max()
            if diff > _CHECK_ATOL:
                raise RuntimeError(f'the torch.export program differs from the network by '
                                   f'{diff:.3g} on a {n} x {hw[0]} x {hw[1]} batch')
    with atomic_write(path) as tmp:
        torch.export.save(program, tmp)
    return info


# ------------------------------------------------------------------------ onnx
class _PixelsIn(nn.Module):
    """``(N, C, H, W)`` float pixel values 0..255 -> the network's logits (normalised
    inside: ``x = (pixels - mean) / std``, a gray image repeated to 3 channels when the
    run's preprocessor did so)."""

    def __init__(self, net: nn.Module, mean: list, std: list, gray_to_rgb: bool) -> None:
        super().__init__()
        self.net, self.gray_to_rgb = net, gray_to_rgb
        self.register_buffer('mean', torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer('std', torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gray_to_rgb:
            x = x.expand(-1, 3, -1, -1)
        return self.net((x - self.mean) / self.std)


class _DetectorPixelsIn(nn.Module):
    """``(1, 3, H, W)`` float RGB pixels 0..255 -> ``boxes``, ``scores``, ``labels`` in
    ``[0, K)`` of a :class:`~ssvision.models.TorchvisionDetector` (in eval mode)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor):
        out = self.detector.net([x[0] / PIXEL_MAX])[0]
        return out['boxes'], out['scores'], out['labels'] - self.detector.label_offset


def export_onnx(model: InferenceModel, out_dir: str, name: str | None = None, size=None,
                opset: int = ONNX_OPSET) -> dict:
    """Write the network as ``NAME.onnx`` with its manifest (see the module docstring).

    Args:
        model: from :func:`~ssvision.apis.init_model`.
        out_dir: output folder.
        name: file stem; default ``<config name>_<network>``.
        size: ``(H, W)`` (or an int) of the traced input. Classifiers keep it (give it
            when :func:`input_size` finds none); segmentors and detectors take any size
            (default: the one found, else 128 x 128 / the detector's ``min_size``).
        opset: ONNX opset.

    Returns:
        The manifest (also written to ``NAME.onnx.json``).

    Raises:
        NotImplementedError: the mmdetection plug-in (use mmdeploy).
        ValueError: a classifier whose input size is not known.
    """
    from ssvision.models.detectors import TorchvisionDetector
    if model.library == 'mmdet':
        raise NotImplementedError(
            'ONNX export of mmdetection models is mmdeploy\'s job (its rewriters handle '
            "mmdetection's heads); export --format plain and convert that with mmdeploy")
    name = name or _default_name(model)
    found = input_size(model, size)
    net = model.net.eval()
    device = model.device
    if model.task == 'detection':
        if not isinstance(net, TorchvisionDetector):
            raise NotImplementedError(f'ONNX export knows TorchvisionDetector, not '
                                      f'{type(net).__name__}')
        trace = found or (int(net.net.transform.min_size[0]),) * 2
        wrapper = _DetectorPixelsIn(net)
        x = torch.rand(1, 3, *trace, device=device) * PIXEL_MAX
        outputs = ['boxes', 'scores', 'labels']
        axes = {'input': {2: 'height', 3: 'width'},
                **{o: {0: 'num_detections'} for o in outputs}}
    else:
        if found is None and model.task == 'classification':
            raise ValueError('the classifier\'s input size is not known from the config; '
                             'give it (size=(H, W), tools/export.py --input-size H W)')
        trace = found or _DENSE_TRACE_SIZE
        wrapper = _PixelsIn(net, **_normalisation(model))
        x = torch.rand(TRACE_BATCH, _image_channels(model), *trace, device=device) * PIXEL_MAX
        outputs = ['logits']
        dims = {0: 'batch'} if model.task == 'classification' else \
            {0: 'batch', 2: 'height', 3: 'width'}
        axes = {'input': dims, 'logits': dims}
    onnx = _require_onnx()
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, f'{name}.onnx')
    with atomic_write(path) as tmp:  # the real name only for a complete, checked model
        with warnings.catch_warnings(), torch.no_grad():
            # the TorchScript-based exporter warns that it is deprecated, and tracing warns
            # about Python values taken as constants (torchvision's checks of input sizes)
            warnings.simplefilter('ignore')
            torch.onnx.export(wrapper.to(device).eval(), (x,), tmp, dynamo=False,
                              opset_version=opset, input_names=['input'],
                              output_names=outputs, dynamic_axes=axes)
        onnx.checker.check_model(tmp)
    python = ('import onnxruntime as ort\n'
              f"session = ort.InferenceSession('{name}.onnx')\n"
              f"# {', '.join(outputs)} = session.run(None, {{'input': pixels}})  "
              "# pixels: see 'input'\n")
    build = {'exporter': 'torch.onnx.export(dynamo=False)', 'opset': opset,
             'traced_size': list(trace), 'dynamic_axes': axes}
    size_kept = list(trace) if model.task == 'classification' else None
    manifest = _manifest(model, 'onnx', 'onnxruntime', {'model': f'{name}.onnx'}, build,
                         python, size_kept)
    return _write_manifest(out_dir, name, manifest)


def _require_onnx():
    """The ``onnx`` package, which the TorchScript-based exporter writes with."""
    try:
        import onnx
    except ImportError:
        raise ImportError('ONNX export needs the onnx package (and onnxruntime to run the '
                          "result): pip install 'ssvision[onnx]'") from None
    return onnx


def export_model(model: InferenceModel, fmt: str, out_dir: str, name: str | None = None,
                 size=None, opset: int = ONNX_OPSET) -> dict:
    """:func:`export_plain` (``fmt='plain'``) or :func:`export_onnx` (``'onnx'``)."""
    if fmt == 'plain':
        return export_plain(model, out_dir, name, size)
    if fmt == 'onnx':
        return export_onnx(model, out_dir, name, size, opset)
    raise ValueError(f'format must be one of {FORMATS}, got {fmt!r}')
