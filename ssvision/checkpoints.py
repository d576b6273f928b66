"""Where weights come from: one resolver for every place that takes a checkpoint.

:func:`resolve` turns a checkpoint *source* into a local file:

- a local path (``~`` expanded);
- ``http://`` / ``https://`` URL: downloaded once into torch hub's cache
  (``<torch.hub.get_dir()>/checkpoints/<file name>``) and checked: against the sha256
  the caller or ssvision's zoo index gives for that URL, else against the hash prefix in
  the file name (OpenMMLab's and torchvision's ``<name>-<first hex of sha256>.pth``
  convention). A mismatch deletes the download and raises :class:`ChecksumError`; a URL
  with neither is downloaded unchecked, with a warning (as torch hub does);
- ``zoo://NAME``: an entry of ssvision's model zoo (:mod:`ssvision.zoo`): its published
  URL, or, until it has one, the file ``tools/zoo.py build NAME`` wrote;
- ``timm://MODEL[.TAG]``: timm's pretrained weights, from the Hugging Face hub (its own
  cache and ``HF_HUB_OFFLINE``) or timm's URL;
- ``torchvision://NAME``: torchvision's weights, by enum (``ResNet18_Weights.IMAGENET1K_V1``)
  or model name (``resnet18``: its default weights).

Online it downloads, as timm, torchvision and mmengine do. Offline (``HF_HUB_OFFLINE=1``,
or the server cannot be reached) a cached file is used; without one the error names the
URL, the file looked for and where to put it. Files are read with
``torch.load(weights_only=True)`` (or safetensors), never more.

Importing :mod:`ssvision` registers these schemes with mmengine's ``CheckpointLoader``,
so ``load_from='zoo://...'`` or a URL in any config goes through the same checks.
"""

from __future__ import annotations

import hashlib
import os
import os.path as osp
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlparse

import torch

__all__ = ['resolve', 'load_state_dict', 'load_checkpoint', 'ChecksumError', 'is_offline',
           'hash_prefix', 'sha256_of', 'register_mmengine_schemes', 'LoadReport',
           'adapt_first_conv']

SCHEMES = ('zoo://', 'timm://', 'torchvision://', 'http://', 'https://')
_PREFIX = re.compile(r'-([0-9a-f]{8,64})\.(pth|pt|bin|ckpt|safetensors)$')
_TRUE = ('1', 'true', 'yes', 'on')


class ChecksumError(RuntimeError):
    """A downloaded or built file whose sha256 is not the expected one."""


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` (Hugging Face's switch, which timm follows) is set."""
    return os.environ.get('HF_HUB_OFFLINE', '').strip().lower() in _TRUE


def hash_prefix(filename: str) -> str | None:
    """The sha256 prefix in a ``<name>-<hex>.pth`` file name, or None."""
    m = _PREFIX.search(osp.basename(filename))
    return m.group(1) if m else None


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _check(path: str, sha256: str | None, prefix: str | None, what: str) -> None:
    """Delete ``path`` and raise unless its sha256 matches (or starts with ``prefix``)."""
    if sha256 is None and prefix is None:
        return
    digest = sha256_of(path)
    ok = digest == sha256.lower() if sha256 else digest.startswith(prefix.lower())
    if not ok:
        os.remove(path)
        expected = sha256 or f'{prefix}...'
        raise ChecksumError(f'{what}: sha256 {digest} is not the expected {expected}; the '
                            'file was deleted')


def _cache_dir() -> str:
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def _download(url: str, sha256: str | None, timeout: float) -> str:
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'cannot tell a file name from the URL {url!r}')
    dest = osp.join(_cache_dir(), name)
    if osp.isfile(dest):
        return dest
    where = (f'download {url} and put it at {dest} (or set TORCH_HOME to a folder whose '
             'checkpoints/ holds it)')
    if is_offline():
        raise FileNotFoundError(f'offline (HF_HUB_OFFLINE is set) and {dest} is not cached: '
                                + where)
    if sha256 is None:
        from ssvision import zoo
        sha256 = zoo.sha256_for_url(url)
    prefix = None if sha256 else hash_prefix(name)
    os.makedirs(_cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=_cache_dir(), prefix=name + '.', suffix='.part')
    try:
        with os.fdopen(fd, 'wb') as out, urllib.request.urlopen(url, timeout=timeout) as r:
            shutil.copyfileobj(r, out, 1 << 20)
        _check(tmp, sha256, prefix, url)
        if sha256 is None and prefix is None:
            from mmengine.logging import print_log
            print_log(f'{url}: no sha256 known (not in the zoo index, no -<hash> in the file '
                      'name); downloaded unchecked', logger='current', level=30)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as err:
        if osp.exists(tmp):
            os.remove(tmp)
        raise FileNotFoundError(f'could not download {url} ({err}); {dest} is not cached: '
                                + where) from err
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return dest


def _timm(name: str) -> str:
    import timm

    from ssvision.models.classifiers.timm_classifier import find_cached_pretrained
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise ValueError(f'timm has no pretrained weights named {name!r}')
    cached = find_cached_pretrained(name)
    if cached is not None:
        return cached
    hub_id = getattr(cfg, 'hf_hub_id', None)
    if is_offline():
        where = (f'the Hugging Face cache (HF_HOME) as repo {hub_id}' if hub_id else
                 f'{osp.join(_cache_dir(), osp.basename(getattr(cfg, "url", "") or ""))}')
        raise FileNotFoundError(f'timm weights {name!r}: offline (HF_HUB_OFFLINE is set) and '
                                f'not cached; run once online, or put the file in {where}')
    if hub_id:
        from huggingface_hub import hf_hub_download
        repo_id, _, revision = hub_id.partition('@')
        filename = getattr(cfg, 'hf_hub_filename', None) or 'model.safetensors'
        try:  # honours HF_HUB_OFFLINE and the Hugging Face cache itself
            return hf_hub_download(repo_id, filename, revision=revision or None)
        except Exception as err:  # noqa: BLE001 - hub errors differ between versions
            raise FileNotFoundError(
                f'timm weights {name!r}: {filename} of the Hugging Face repo {repo_id} is not '
                f'available ({type(err).__name__}: {err}); run once online, or put the file '
                'in the Hugging Face cache (HF_HOME)') from err
    if getattr(cfg, 'url', None):
        return _download(cfg.url, None, 60.0)
    raise ValueError(f'timm gives no download location for {name!r}')


def _torchvision(name: str) -> str:
    """A weights enum (``ResNet18_Weights.IMAGENET1K_V1``), or a model name mapped to the
    same URL as mmengine's ``torchvision://`` (so OpenMMLab configs get the weights
    they always got), else to the model's default weights."""
    from torchvision.models import get_model_weights, get_weight
    if '.' in name:
        url = get_weight(name).url
    else:
        from mmengine.runner.checkpoint import get_torchvision_models
        url = get_torchvision_models().get(name) or get_model_weights(name).DEFAULT.url
    return _download(url, None, 60.0)  # torchvision file names carry the hash prefix


def resolve(source: str, sha256: str | None = None, timeout: float = 60.0) -> str:
    """A local file for a checkpoint ``source`` (see the module docstring).

    Args:
        source: path, URL, ``zoo://NAME``, ``timm://NAME`` or ``torchvision://NAME``.
        sha256: expected full sha256 of a URL's file (wins over the zoo index and the
            file-name prefix).
        timeout: seconds per network operation.
    """
    source = str(source)
    if source.startswith('zoo://'):
        from ssvision import zoo
        return zoo.checkpoint_path(source[len('zoo://'):])
    if source.startswith(('http://', 'https://')):
        return _download(source, sha256, timeout)
    if source.startswith('timm://'):
        return _timm(source[len('timm://'):])
    if source.startswith('torchvision://'):
        return _torchvision(source[len('torchvision://'):])
    path = osp.expanduser(source)
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {source}')
    return path


def load_checkpoint(source: str, map_location='cpu'):
    """The object stored at ``source`` (resolved), read weights-only."""
    path = resolve(source)
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device=str(map_location) if map_location else 'cpu')
    return torch.load(path, map_location=map_location, weights_only=True)


def load_state_dict(source: str) -> OrderedDict:
    """A plain state dict from ``source``: ``{'state_dict' | 'model' | 'state_dict_ema':
    ...}`` checkpoints are unwrapped and a DataParallel ``module.`` prefix removed."""
    state = load_checkpoint(source)
    for key in ('state_dict', 'model', 'state_dict_ema'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise TypeError(f'{source} does not hold a state dict (got {type(state).__name__})')
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return OrderedDict(state)


@dataclass
class LoadReport:
    """What loading a checkpoint into a module did, key by key.

    ``loaded``: module keys filled from the checkpoint; ``reinitialized``: checkpoint keys
    whose tensor did not fit (a classifier head for other classes) and whose module
    weights keep their fresh initialisation; ``missing``: module keys the checkpoint
    does not have; ``unexpected``: checkpoint keys the module does not have.
    """

    source: str
    target: str
    loaded: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def check(self) -> LoadReport:
        """Loading that matched nothing is an error, not a warning."""
        if not self.loaded:
            raise RuntimeError(f'{self.source}: no tensor matches {self.target} (unexpected '
                               f'keys, first 5: {self.unexpected[:5]})')
        return self

    def table(self, names: bool = False) -> str:
        """One short table; with ``names`` the keys of every column but ``loaded``."""
        lines = [f'weights from {self.source} into {self.target}:',
                 '| loaded | re-initialised (shape changed) | missing | unexpected |',
                 f'| {len(self.loaded)} | {len(self.reinitialized)} | {len(self.missing)} | '
                 f'{len(self.unexpected)} |']
        if names:
            for title, keys in (('re-initialised', self.reinitialized),
                                ('missing', self.missing), ('unexpected', self.unexpected)):
                if keys:
                    lines.append(f'{title}: {", ".join(keys)}')
        return '\n'.join(lines)

    def log(self) -> LoadReport:
        """Log :meth:`table`; key names too with ``SSVISION_LOAD_REPORT=names``."""
        from mmengine.logging import print_log
        names = os.environ.get('SSVISION_LOAD_REPORT', '').strip().lower() == 'names'
        worry = self.missing or self.reinitialized or self.unexpected
        print_log(self.table(names), logger='current', level=30 if worry else 20)
        return self


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """A first conv ``(O, I, k, k)`` for ``in_channels`` inputs: a gray (I = 1) filter is
    repeated over the channels and divided by their number (so a gray image replicated
    into every channel gives the same response); other cases use timm's
    ``adapt_input_conv`` (RGB -> gray sums the channels, RGB -> N repeats them)."""
    if weight.shape[1] == in_channels:
        return weight
    if weight.shape[1] == 1:
        return (weight.float().repeat(1, in_channels, 1, 1) / in_channels).to(weight.dtype)
    from timm.models import adapt_input_conv
    return adapt_input_conv(in_channels, weight.float()).to(weight.dtype)


def _mmengine_loader(filename, map_location=None, logger=None):
    return load_checkpoint(filename, map_location=map_location)


def register_mmengine_schemes() -> None:
    """Route mmengine's ``load_from`` / ``init_cfg`` checkpoints with these schemes
    through :func:`resolve` (replacing mmengine's unchecked URL and torchvision
    loaders)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes=list(SCHEMES), loader=_mmengine_loader,
                                     force=True)
