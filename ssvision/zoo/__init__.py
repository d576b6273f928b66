"""ssvision's model zoo: a machine-readable index shipped inside the package.

``index.json`` holds one entry per model:

- ``name``, ``task``, ``config``;
- ``checkpoint``: ``{'url': ..., 'sha256': ...}`` once published, ``null`` before;
- ``metrics``: ``{'<metric>': value, 'date': ..., 'machine': ...}``;
- ``command``: the command that produced the metrics;
- ``needs_checkout``: ``true`` when ``command`` is a benchmark script
  (``python -m benchmarks.<name>``), which runs from a source checkout's root only (a pip
  install has no ``benchmarks``); ``build`` needs no checkout;
- ``build``: how ``tools/zoo.py build NAME`` trains it here: ``{'cfg_options': [...],
  'keep': 'teacher' | 'student' | 'both', 'rename': {old key prefix: new}}``
  (``config`` is trained with ``tools/train.py``), optionally with ``weights_sha256``
  (:func:`weights_sha256` of the weights a recorded build published),
  ``weights_sha256_with`` (the torch version and device it was built with) and
  ``threads`` (its CPU thread count, which ``build`` uses: sums over another count round
  differently, so only the same count can rebuild the weights bit for bit). A file's
  own sha256 cannot serve here: ``torch.save`` writes a fresh serialization id into
  every file, so two saves of the same tensors differ byte for byte.

``zoo://NAME`` resolves (:func:`ssvision.checkpoints.resolve`) to the published file
(downloaded into torch hub's cache and checked against ``sha256``) or, without one, to
the file ``tools/zoo.py build NAME`` wrote into :func:`built_dir`. ``model_zoo.md`` is generated
from the shipped index (:func:`render_markdown`, ``tools/zoo.py markdown``); a test keeps
the two equal.

**A team's own index.** ``$SSVISION_ZOO_INDEX`` names more index files (``os.pathsep``
separated), read after the shipped one: their entries add to it, and an entry with a
shipped name replaces the shipped one (e.g. to give it a checkpoint on the team's own
host). ``tools/zoo.py publish CKPT --name NAME --url-base URL --index FILE`` writes such
an entry: the shipped entry's fields (when ``NAME`` is shipped) plus ``checkpoint`` =
``{'url': URL/<name>-<sha8>.pth, 'sha256': ...}``; upload the file there and
``zoo://NAME`` downloads and checks it.
"""

from __future__ import annotations

import functools
import json
import os
import os.path as osp

import torch

__all__ = ['entries', 'get', 'built_dir', 'built_path', 'sha256_for_url', 'render_markdown',
           'weights_sha256']

INDEX = osp.join(osp.dirname(osp.abspath(__file__)), 'index.json')
INDEX_ENV = 'SSVISION_ZOO_INDEX'


def read_index(path: str) -> list[dict]:
    """The entries of one index file (a json list), checked for duplicate names."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list) or not all(isinstance(e, dict) and 'name' in e
                                             for e in data):
        raise ValueError(f'{path}: a zoo index is a json list of entries with a name')
    names = [e['name'] for e in data]
    if len(set(names)) != len(names):
        raise ValueError(f'{path}: duplicate entry names')
    return data


@functools.cache
def _merged_files(files: tuple[tuple, ...]) -> tuple[dict, ...]:
    merged: dict[str, dict] = {}
    for path, *_ in files:
        for e in read_index(path):
            merged[e['name']] = e  # a later index replaces an entry (dicts keep its place)
    return tuple(merged.values())


def _merged(paths: tuple[str, ...]) -> tuple[dict, ...]:
    """Entries of ``paths`` in order (re-read when a file changes)."""
    stats = [os.stat(p) for p in paths]  # a rewrite (os.replace) has another inode
    return _merged_files(tuple((osp.abspath(p), st.st_ino, st.st_size, st.st_mtime_ns)
                               for p, st in zip(paths, stats)))


def _load() -> tuple[dict, ...]:
    """The shipped index, then the files of ``$SSVISION_ZOO_INDEX``."""
    extra = [p for p in os.environ.get(INDEX_ENV, '').split(os.pathsep) if p]
    missing = [p for p in extra if not osp.isfile(p)]
    if missing:
        raise FileNotFoundError(f'{INDEX_ENV} names {missing[0]}, which does not exist')
    return _merged((INDEX, *extra))


def entries() -> list[dict]:
    """Every zoo entry, in index order."""
    return [dict(e) for e in _load()]


def get(name: str) -> dict:
    for e in _load():
        if e['name'] == name:
            return dict(e)
    known = ', '.join(e['name'] for e in _load())
    raise KeyError(f'no zoo entry {name!r}; known: {known}')


def sha256_for_url(url: str) -> str | None:
    """The indexed sha256 of a published checkpoint URL, or None."""
    for e in _load():
        ckpt = e.get('checkpoint') or {}
        if ckpt.get('url') == url:
            return ckpt.get('sha256')
    return None


def built_dir() -> str:
    """Where ``tools/zoo.py build`` puts checkpoints: ``<torch hub dir>/ssvision_zoo``."""
    return osp.join(torch.hub.get_dir(), 'ssvision_zoo')


def built_path(name: str) -> str:
    return osp.join(built_dir(), f'{name}.pth')


def weights_sha256(state: dict) -> str:
    """The sha256 of a state dict's contents: every key (sorted), its dtype, shape and
    raw bytes. Equal for bit-identical weights however and whenever they were saved, so
    a build can be compared with the recorded one."""
    import hashlib
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f'{key}: weights_sha256 takes tensors only, got {type(value)}')
        t = value.detach().cpu().contiguous()
        h.update(f'{key}\0{t.dtype}\0{tuple(t.shape)}\0'.encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return h.hexdigest()


def _metric_cell(metrics: dict) -> str:
    values = [f'{k} {v}' for k, v in metrics.items() if k not in ('date', 'machine')]
    return ', '.join(values)


def render_markdown() -> str:
    """``model_zoo.md``, generated from the index."""
    lines = [
        '# Model zoo',
        '',
        '<!-- generated from ssvision/zoo/index.json by `python tools/zoo.py markdown`; '
        'edit the index, not this file -->',
        '',
        'Each entry is a config with measured results. `load_from=\'zoo://NAME\'` (or '
        '`checkpoint=\'zoo://NAME\'`) fine-tunes from it: a published checkpoint is '
        'downloaded and its sha256 checked; an entry without one says to run '
        '`python tools/zoo.py build NAME`, which trains the config here and puts the '
        'weights where `zoo://NAME` finds them. `python tools/zoo.py list` shows the '
        'index. Checkpoints load with `torch.load(weights_only=True)`; a plain state dict '
        'loads into both teacher and student.',
        '',
        '| name | task | config | metrics | date, machine | checkpoint (sha256) | command |',
        '|---|---|---|---|---|---|---|',
    ]
    for e in _merged((INDEX,)):
        ckpt = e.get('checkpoint') or {}
        cell = (f'[{osp.basename(ckpt["url"])}]({ckpt["url"]}) (`{ckpt["sha256"]}`)'
                if ckpt.get('url') else 'not published: `python tools/zoo.py build '
                f'{e["name"]}`')
        built = (e.get('build') or {}).get('weights_sha256')
        if built and not ckpt.get('url'):
            cell += (f'; recorded build: weights sha256 `{built[:16]}` '
                     f'({e["build"].get("weights_sha256_with", "")})')
        m = e.get('metrics', {})
        lines.append(f'| `{e["name"]}` | {e["task"]} | `{e["config"]}` | {_metric_cell(m)} | '
                     f'{m.get("date", "")}, {m.get("machine", "")} | {cell} | '
                     f'`{e["command"]}`{" (source checkout)" if e.get("needs_checkout") else ""} |')
    lines += [
        '',
        'Not in the index yet (no complete measurement): CIFAR-10 WRN-28-2, the timm '
        'resnet18 classifier, FlexMatch / FreeMatch / DSSN on the digits, Cityscapes DSSN, '
        'the binary scenes (BENCHMARKS.md has 300-iteration figures but no zoo entry), the '
        'other detection configs in `configs/semi_det/` (the fixed threshold, Faster R-CNN '
        'with torchvision\'s COCO RoI budget, random-init starts) and the mmdetection '
        'plug-in config in '
        '`configs/mmdet/`. No entry has a hosted checkpoint yet. Figures and protocols: '
        'BENCHMARKS.md. A team can host checkpoints itself and list them in its own '
        'index (`$SSVISION_ZOO_INDEX`; `python tools/zoo.py publish CKPT --name NAME '
        '--url-base URL --index FILE` writes the entry).',
        '']
    return '\n'.join(lines)
