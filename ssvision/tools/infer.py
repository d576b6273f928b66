"""Predict on new images with a trained model and write the results.

    ssvision infer CONFIG CKPT INPUT... --out DIR [--network teacher|student]
                   [--device cpu|cuda] [--batch-size 16] [--score-thr 0.3] [--strict]
                   [--cfg-options k=v ...]

(``python tools/infer.py ...`` in a checkout runs the same code.) INPUT is an image file
or a folder (its images at any depth, sorted). CKPT is a path, URL or ``zoo://NAME``.
The EMA teacher predicts unless ``--network student``; preprocessing is the config's
test pipeline (:mod:`ssvision.apis.inference`). What DIR receives:

* classification: ``predictions.json`` (per image: file, label, class, score, every
  class's probability) and ``predictions.csv`` (the same, one column per class);
* segmentation: ``masks/NAME.png``, palette PNGs of class indices at the image's size
  (any PNG reader gives the indices; viewers show the colours), ``overlays/NAME.png``
  (the image blended with the coloured mask) and ``masks.json`` (files, classes,
  palette);
* detection: ``results.json`` in COCO results format (``image_id``, ``category_id``,
  ``bbox`` ``[x, y, w, h]``, ``score``; every detection the model's test settings keep),
  ``images.json`` (COCO ``images`` and ``categories`` those ids refer to; category ids
  are the dataset's own when its annotation file is readable, else label + 1) and
  ``vis/NAME.png`` with the boxes scoring at least ``--score-thr`` drawn.

NAME is the image's file name without extension (``_1``, ``_2`` ... added when two
inputs share one).

**Unreadable files.** A file that is no readable image (empty, another kind of file, a
truncated copy, pixels that do not decode, not permitted to read) is skipped: every
other image's results are written, ``DIR/skipped.txt`` lists the skipped files (a
``file<TAB>reason`` header, then one such line per file; only the header when none was
skipped) and the last line printed says so: ``wrote 20 predictions to DIR
(classification, teacher, cpu), skipped 1 unreadable file: see DIR/skipped.txt``.
A missing INPUT is an error before anything runs.

Exit status: 0 when at least one prediction was written, skipped files or not (a folder
of real images often holds a stray file; the listing and the summary line report it);
1 when no input could be read (the empty result files and ``skipped.txt`` are still
written); with ``--strict``, 3 when any file was skipped (everything else written).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import os.path as osp
import sys
from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np
from mmengine.config import DictAction

#: Weight of the coloured mask in segmentation overlays.
OVERLAY_ALPHA = 0.5
#: Most classes a palette PNG can index; more are written as 16-bit gray PNGs.
PALETTE_SIZE = 256
#: The list of skipped (unreadable) inputs, in the output folder.
SKIPPED_FILE = 'skipped.txt'
#: Exit status when no input could be read.
EXIT_NOTHING_READ = 1
#: Exit status with ``--strict`` when some inputs were skipped.
EXIT_SKIPPED = 3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Predict on images with a trained model (classes, masks or boxes)')
    parser.add_argument('config', help='config file or ssvision::GROUP/NAME.py')
    parser.add_argument('checkpoint', help='checkpoint: path, URL or zoo://NAME')
    parser.add_argument('inputs', nargs='+', metavar='INPUT',
                        help='image files and / or folders of images (any depth)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--network', choices=['teacher', 'student'], default='teacher',
                        help='which network predicts (default: the EMA teacher)')
    parser.add_argument('--device', default=None,
                        help="'cpu', 'cuda', 'cuda:1' ... (default: cuda when available)")
    parser.add_argument('--batch-size', type=int, default=16, help='images per forward pass')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: lowest score drawn in vis/ (results.json keeps all)')
    parser.add_argument('--strict', action='store_true',
                        help=f'exit with status {EXIT_SKIPPED} when any input was skipped as '
                        'unreadable (the other results are written all the same)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    return parser.parse_args(argv)


def collect_images(inputs: Sequence[str]) -> list[str]:
    """Files as given, folders expanded to their image files (any depth, sorted).

    Raises:
        FileNotFoundError: an input that does not exist.
        ValueError: no image at all.
    """
    from ssvision.datasets.image_files import IMG_EXTENSIONS, find_images
    paths: list[str] = []
    for item in inputs:
        if osp.isdir(item):
            try:
                paths += find_images(item)
            except ValueError:  # an empty folder among other inputs is fine
                pass
        elif osp.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f'input not found: {item}')
    if not paths:
        raise ValueError(f'no image files in {list(inputs)} (extensions {IMG_EXTENSIONS})')
    return paths


def output_names(paths: Sequence[str]) -> list[str]:
    """One file stem per input, unique (``_1``, ``_2`` ... appended to repeats)."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = osp.splitext(osp.basename(p))[0]
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        names.append(stem if n == 0 else f'{stem}_{n}')
    return names


def _write_png(path: str, rgb: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f'cannot write {path}')


# ------------------------------------------------------------------------ writers
class _ClsWriter:
    def __init__(self, out: str, classes: Sequence[str]) -> None:
        self.out, self.classes, self.rows = out, list(classes), []

    def add(self, path: str, name: str, result: dict, image: np.ndarray) -> None:
        self.rows.append({'file': path, 'label': result['label'],
                          'class': self.classes[result['label']], 'score': result['score'],
                          'scores': dict(zip(self.classes,
                                             (float(s) for s in result['scores'])))})

    def close(self) -> dict:
        files = {'json': osp.join(self.out, 'predictions.json'),
                 'csv': osp.join(self.out, 'predictions.csv')}
        with open(files['json'], 'w') as f:
            json.dump(self.rows, f, indent=1)
        with open(files['csv'], 'w', newline='') as f:
            w = csv.writer(f)
            w.writerow(['file', 'label', 'class', 'score', *self.classes])
            for r in self.rows:
                w.writerow([r['file'], r['label'], r['class'], f"{r['score']:.6f}",
                            *(f'{r["scores"][c]:.6f}' for c in self.classes)])
        return files


class _SegWriter:
    def __init__(self, out: str, classes: Sequence[str]) -> None:
        from ssvision.visualization.seg_views import palette
        self.out, self.classes, self.items = out, list(classes), []
        self.colors = palette(max(len(classes), 1))
        for sub in ('masks', 'overlays'):
            os.makedirs(osp.join(out, sub), exist_ok=True)

    def add(self, path: str, name: str, result: dict, image: np.ndarray) -> None:
        from PIL import Image

        from ssvision.apis.inference import load_image
        mask = result['mask']
        mask_file = osp.join('masks', f'{name}.png')
        if len(self.classes) <= PALETTE_SIZE:
            im = Image.fromarray(mask.astype(np.uint8))  # 'L'; putpalette makes it 'P'
            flat = np.zeros((PALETTE_SIZE, 3), np.uint8)
            flat[:len(self.colors)] = self.colors
            im.putpalette(flat.flatten().tolist())
            im.save(osp.join(self.out, mask_file))
        else:
            cv2.imwrite(osp.join(self.out, mask_file), mask.astype(np.uint16))
        # overlays show the photo in colour, also when the model read it in gray
        img = (image if image.shape[2] == 3 else load_image(path, 'color')).astype(np.float32)
        color = self.colors[np.clip(mask, 0, len(self.colors) - 1)].astype(np.float32)
        blend = (1 - OVERLAY_ALPHA) * img + OVERLAY_ALPHA * color
        overlay_file = osp.join('overlays', f'{name}.png')
        _write_png(osp.join(self.out, overlay_file), np.clip(blend, 0, 255).astype(np.uint8))
        self.items.append({'file': path, 'mask': mask_file, 'overlay': overlay_file})

    def close(self) -> dict:
        path = osp.join(self.out, 'masks.json')
        with open(path, 'w') as f:
            json.dump({'classes': self.classes, 'palette': self.colors.tolist(),
                       'images': self.items}, f, indent=1)
        return {'json': path, 'masks': osp.join(self.out, 'masks'),
                'overlays': osp.join(self.out, 'overlays')}


class _DetWriter:
    def __init__(self, out: str, classes: Sequence[str], cat_ids: Sequence[int],
                 score_thr: float) -> None:
        from ssvision.visualization.seg_views import palette
        self.out, self.classes, self.cat_ids = out, list(classes), list(cat_ids)
        self.score_thr = score_thr
        self.colors = palette(max(len(classes), 1))
        self.results: list[dict] = []
        self.images: list[dict] = []
        os.makedirs(osp.join(out, 'vis'), exist_ok=True)

    def add(self, path: str, name: str, result: dict, image: np.ndarray) -> None:
        img = image  # detection models read RGB
        image_id = len(self.images)
        self.images.append({'id': image_id, 'file_name': path, 'height': int(img.shape[0]),
                            'width': int(img.shape[1])})
        canvas = img.copy()
        scale = max(0.3, min(img.shape[:2]) / 600)
        thick = max(1, round(min(img.shape[:2]) / 300))
        for box, score, label in zip(result['boxes'], result['scores'], result['labels']):
            x1, y1, x2, y2 = (float(v) for v in box)
            self.results.append({'image_id': image_id, 'category_id': self.cat_ids[label],
                                 'bbox': [round(x1, 2), round(y1, 2), round(x2 - x1, 2),
                                          round(y2 - y1, 2)], 'score': round(float(score), 5)})
            if score < self.score_thr:
                continue
            color = tuple(int(c) for c in self.colors[label])
            p1, p2 = (round(x1), round(y1)), (round(x2), round(y2))
            cv2.rectangle(canvas, p1, p2, color, thick)
            cv2.putText(canvas, f'{self.classes[label]} {score:.2f}',
                        (p1[0], max(p1[1] - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, scale, color,
                        1, cv2.LINE_AA)
        _write_png(osp.join(self.out, 'vis', f'{name}.png'), canvas)

    def close(self) -> dict:
        files = {'results': osp.join(self.out, 'results.json'),
                 'images': osp.join(self.out, 'images.json'), 'vis': osp.join(self.out, 'vis')}
        with open(files['results'], 'w') as f:
            json.dump(self.results, f)
        with open(files['images'], 'w') as f:
            json.dump({'images': self.images,
                       'categories': [{'id': c, 'name': n}
                                      for c, n in zip(self.cat_ids, self.classes)]}, f,
                      indent=1)
        return files


def coco_category_ids(model) -> list[int]:
    """The test dataset's COCO category ids when its annotation file is readable and has
    one per class, else ``label + 1``."""
    from ssvision.apis.inference import coco_categories
    cats = coco_categories(model.cfg)
    if len(cats) == model.num_classes:
        return [int(c['id']) for c in cats]
    return list(range(1, model.num_classes + 1))


def skip_reason(err: OSError) -> str:
    """A few words on why an input could not be read (no path: the listing names it)."""
    reason = getattr(err, 'reason', None)
    if reason:
        return reason
    if isinstance(err, FileNotFoundError):
        return 'file not found (a broken link, or removed while running)'
    return err.strerror or str(err)


def write_skipped(out: str, skipped: Sequence[tuple[str, str]]) -> str:
    """``OUT/skipped.txt``: a ``file<TAB>reason`` header and one line per skipped file
    (tabs and line breaks in names or reasons become spaces, so each line splits in
    two on its tab). Written also when empty, so an earlier run's list never stays."""
    path = osp.join(out, SKIPPED_FILE)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('file\treason\n')
        for file, reason in skipped:
            clean = [' '.join(str(v).replace('\t', ' ').splitlines()) for v in (file, reason)]
            f.write('\t'.join(clean) + '\n')
    return path


def summary(written: int, skipped: int, out: str, what: str) -> str:
    """``wrote N predictions to OUT (WHAT)[, skipped K unreadable file(s): see ...]``."""
    line = f'wrote {written} prediction{"" if written == 1 else "s"} to {out} ({what})'
    if skipped:
        line += (f', skipped {skipped} unreadable file{"" if skipped == 1 else "s"}: see '
                 f'{osp.join(out, SKIPPED_FILE)}')
    return line


def main(argv=None) -> dict:
    """Run ``ssvision infer``; returns the written files by kind (``skipped``: the list
    of unreadable inputs).

    Raises:
        SystemExit: status 1 when no input could be read, 3 with ``--strict`` when some
            were skipped (see the module docstring); the results are written first.
    """
    import torch

    from ssvision.apis import init_model, iter_inference, load_image
    from ssvision.utils.progress import progress
    args = parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    paths = collect_images(args.inputs)
    model = init_model(args.config, args.checkpoint, device=device, network=args.network,
                       cfg_options=args.cfg_options)
    os.makedirs(args.out, exist_ok=True)
    if model.task == 'classification':
        writer = _ClsWriter(args.out, model.classes)
    elif model.task == 'segmentation':
        writer = _SegWriter(args.out, model.classes)
    else:
        writer = _DetWriter(args.out, model.classes, coco_category_ids(model), args.score_thr)
    skipped: list[tuple[str, str]] = []
    decoded: deque = deque()  # (path, name, image) of the images handed to the model

    def readable():
        # decoded here, not in iter_inference, so that one bad file is skipped instead of
        # ending the run; iter_inference reads this a batch ahead of its results
        for path, name in progress(zip(paths, output_names(paths)),
                                   f'{model.task} ({model.network})', total=len(paths)):
            try:
                image = load_image(path, model.color_type)
            except OSError as err:
                skipped.append((path, skip_reason(err)))
                continue
            decoded.append((path, name, image))
            yield image

    written = 0
    for result in iter_inference(model, readable(), args.batch_size):
        path, name, image = decoded.popleft()
        writer.add(path, name, result, image)
        written += 1
    files = writer.close()
    files['skipped'] = write_skipped(args.out, skipped)
    print(summary(written, len(skipped), args.out, f'{model.task}, {model.network}, {device}'))
    if not written:
        print(f'error: none of the {len(paths)} input files could be read as an image; see '
              f'{files["skipped"]}', file=sys.stderr)
        raise SystemExit(EXIT_NOTHING_READ)
    if skipped and args.strict:
        raise SystemExit(EXIT_SKIPPED)
    return files


if __name__ == '__main__':
    main()
