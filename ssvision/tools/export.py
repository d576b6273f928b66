"""Export a trained network as plain weights for its own library, or as ONNX.

    ssvision export CONFIG CKPT --format plain|onnx [--out DIR] [--name NAME]
                    [--network teacher|student] [--input-size H [W]] [--opset 17]
                    [--device cpu] [--cfg-options k=v ...]

(``python tools/export.py ...`` in a checkout runs the same code.) The EMA teacher is
exported unless ``--network student``. Files written to DIR (default ``work_dirs/export``),
NAME defaulting to ``<config name>_<network>``:

* ``--format plain``: ``NAME.pth``, a state dict that loads into the library's own
  model without ssvision: timm (``TimmClassifier``), torchvision (``TorchvisionSegmentor``,
  ``TorchvisionDetector``) or mmdetection (the plug-in; with ``NAME_config.py`` for
  ``mmdet.apis.init_detector``). ssvision's own networks (``TinyCNN``, ``WideResNet``,
  ``DeepLabV3Plus``) have no outside library: ``NAME.pth`` is their state dict for
  ssvision and ``NAME.pt2`` a ``torch.export`` program that needs torch alone (any
  batch; segmentors also any height and width from ``output_stride + 1`` on, whatever
  the training crop).
* ``--format onnx``: ``NAME.onnx`` taking pixel values (normalisation inside);
  classifiers and segmentors with a dynamic batch axis, torchvision detectors one image
  of any size per call. The mmdetection plug-in is refused (use mmdeploy).

Each export writes ``NAME.plain.json`` / ``NAME.onnx.json``, a manifest with the
library, builder and arguments, a Python snippet that rebuilds the model from the files,
the exact preprocessing (``input``: decoding, channel order, value range, size policy,
resize and its interpolation, mean / std, layout), the outputs and how to map them back
to the image (``postprocess``), and the class names. See docs/inference_export.md and
:mod:`ssvision.apis.export`. Files are written under temporary names and renamed into
place when complete, the manifest last.

``--input-size`` is the size the network is traced at: needed for classifiers whose
config shows none (ONNX keeps it; the built-in datasets' sizes are known); segmentors
take any size whatever it is.
"""

from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import DictAction

DEFAULT_OUT = osp.join('work_dirs', 'export')
EPILOG = """\
plain: NAME.pth loads strictly, without ssvision, into
  TimmClassifier        timm.create_model(name, num_classes=K, in_chans=C)
  TorchvisionSegmentor  torchvision.models.segmentation.<arch>(weights=None, ...)
  TorchvisionDetector   torchvision FasterRCNN / RetinaNet / FCOS (FPN backbone, anchors)
  mmdetection plug-in   mmdet.apis.init_detector(NAME_config.py, NAME.pth)
  TinyCNN, WideResNet, DeepLabV3Plus (ssvision's own, no outside library): NAME.pth is
  their state dict for ssvision, NAME.pt2 a torch.export program needing torch alone
  (segmentors: any height and width from output_stride + 1 on)
onnx: NAME.onnx takes pixel values 0..255 (normalisation inside); dynamic batch for
  classifiers and segmentors, one image of any size for torchvision detectors;
  mmdetection models: refused (use mmdeploy)
NAME.plain.json / NAME.onnx.json: how to rebuild it ('python'), prepare images
  ('input': channel order, resize, mean / std ...) and read the outputs ('postprocess').
"""


def parse_args(argv=None) -> argparse.Namespace:
    from ssvision.apis.export import FORMATS, ONNX_OPSET
    parser = argparse.ArgumentParser(
        description='Export a trained network: plain weights for its own library, or ONNX',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file or ssvision::GROUP/NAME.py')
    parser.add_argument('checkpoint', help='checkpoint: path, URL or zoo://NAME')
    parser.add_argument('--format', choices=FORMATS, required=True, help='what to write')
    parser.add_argument('--out', default=DEFAULT_OUT, help=f'output folder ({DEFAULT_OUT})')
    parser.add_argument('--name', help='file stem (default: <config name>_<network>)')
    parser.add_argument('--network', choices=['teacher', 'student'], default='teacher',
                        help='which network to export (default: the EMA teacher)')
    parser.add_argument('--input-size', type=int, nargs='+', metavar='PX',
                        help='H [W]: input size to trace at (classifiers keep it; needed '
                        'when the config shows none; segmentors take any size)')
    parser.add_argument('--opset', type=int, default=ONNX_OPSET,
                        help=f'ONNX opset ({ONNX_OPSET})')
    parser.add_argument('--device', default='cpu', help="'cpu' (default) or 'cuda'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    args = parser.parse_args(argv)
    if args.input_size is not None and len(args.input_size) not in (1, 2):
        parser.error('--input-size takes H or H W')
    return args


def main(argv=None) -> dict:
    """Run ``ssvision export``; returns the manifest."""
    from ssvision.apis import export_model, init_model
    args = parse_args(argv)
    model = init_model(args.config, args.checkpoint, device=args.device,
                       network=args.network, cfg_options=args.cfg_options)
    manifest = export_model(model, args.format, args.out, name=args.name,
                            size=args.input_size, opset=args.opset)
    files = ', '.join(manifest['files'].values())
    print(f'{model.network} ({model.task}, {manifest["library"]}) -> {args.out}: {files}')
    return manifest


if __name__ == '__main__':
    main()
