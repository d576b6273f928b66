"""Where weights come from: one resolver for every place that takes a checkpoint.

:func:`resolve` turns a checkpoint *source* into a local file:

- a local path (``~`` expanded);
- ``http://`` / ``https://`` URL: downloaded once into torch hub's cache, at
  :func:`cache_path` (``<torch.hub.get_dir()>/checkpoints/<host>[_<port>]/<hash of the
  URL>/<file name>``, so two hosts or paths serving one file name never share a file),
  and checked: against the sha256 the caller or ssvision's zoo index gives for that URL,
  else against the hash prefix in the file name (OpenMMLab's and torchvision's
  ``<name>-<first hex of sha256>.pth`` convention). A mismatch deletes the download and
  raises :class:`ChecksumError`; a URL with neither is downloaded unchecked, with a
  warning (as torch hub does). A cached file is checked the same way each time it is
  returned (its digest is recorded beside it and reused while the file is unchanged):
  a stale or corrupt one is deleted and downloaded again, or, offline, refused with
  :class:`ChecksumError`. A file in the flat ``checkpoints/<file name>`` that torch hub,
  timm and torchvision (and earlier ssvision) use is taken only when its hash is known
  and matches;
- ``zoo://NAME``: an entry of ssvision's model zoo (:mod:`ssvision.zoo`): its published
  URL, or, until it has one, the file ``tools/zoo.py build NAME`` wrote;
- ``timm://MODEL[.TAG]``: timm's pretrained weights, from the Hugging Face hub (its own
  cache and ``HF_HUB_OFFLINE``) or timm's URL;
- ``torchvision://NAME``: torchvision's weights, by enum (``ResNet18_Weights.IMAGENET1K_V1``)
  or model name (``resnet18``: its default weights).

Online it downloads, as timm, torchvision and mmengine do. Offline (``HF_HUB_OFFLINE=1``,
or the server cannot be reached) a cached file that verifies is used; without one the
error names the URL, the file looked for and where to put it. Files are read with
``torch.load(weights_only=True)`` (or safetensors), never more.

Importing :mod:`ssvision` registers these schemes with mmengine's ``CheckpointLoader``,
so ``load_from='zoo://...'`` or a URL in any config goes through the same checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import os.path as osp
import re
import shutil
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from urllib.parse import urlparse

import torch

from ssvision import zoo
from ssvision.utils.atomic import AtomicFile, atomic_write

__all__ = ['resolve', 'load_state_dict', 'load_checkpoint', 'ChecksumError', 'is_offline',
           'hash_prefix', 'sha256_of', 'cache_path', 'register_mmengine_schemes',
           'LoadReport', 'adapt_first_conv', 'find_cached_pretrained']

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


def _check(path: str, sha256: str | None, prefix: str | None, what: str) -> str | None:
    """Delete ``path`` and raise unless its sha256 matches (or starts with ``prefix``);
    the digest (None when there is nothing to check against)."""
    if sha256 is None and prefix is None:
        return None
    digest = sha256_of(path)
    if not _matches(digest, sha256, prefix):
        os.remove(path)
        expected = sha256 or f'{prefix}...'
        raise ChecksumError(f'{what}: sha256 {digest} is not the expected {expected}; the '
                            'file was deleted')
    return digest


def _cache_dir() -> str:
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def _file_name(url: str) -> str:
    name = osp.basename(urlparse(url).path)
    if name in ('', '.', '..'):
        raise ValueError(f'cannot tell a file name from the URL {url!r}')
    return name


def cache_path(url: str) -> str:
    """Where :func:`resolve` keeps the download of ``url``.

    ``<torch.hub.get_dir()>/checkpoints/<host>[_<port>]/<first 16 hex of sha256(url)>/
    <file name>``: the host keeps the folder readable, the hash of the whole URL (path
    and query included) keeps two URLs with the same file name apart, whichever host or
    path serves them.
    """
    parts = urlparse(url)
    host = (parts.hostname or 'nohost') + (f'_{parts.port}' if parts.port else '')
    host = re.sub(r'[^A-Za-z0-9.-]', '_', host.lower())
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return osp.join(_cache_dir(), host, key, _file_name(url))


def _legacy_path(url: str) -> str:
    """The flat ``checkpoints/<file name>`` that torch hub, timm and torchvision use (and
    ssvision used): shared by every URL with that file name."""
    return osp.join(_cache_dir(), _file_name(url))


def _expected(url: str, sha256: str | None) -> tuple[str | None, str | None]:
    """``(full sha256, None)`` from the caller or the zoo index, else ``(None, prefix)``
    from the file name, else ``(None, None)``."""
    if sha256 is None:
        sha256 = zoo.sha256_for_url(url)
    if sha256:
        return sha256.lower(), None
    return None, hash_prefix(_file_name(url))


def _matches(digest: str, sha256: str | None, prefix: str | None) -> bool:
    return digest == sha256.lower() if sha256 else digest.startswith(prefix.lower())


# Hashing a large checkpoint on every load is slow, so the digest of a file is kept in a
# record next to it (``<file>.sha256.json``), and trusted only while the file's size,
# mtime, ctime and inode are all those recorded: any rewrite, replacement or ``touch``
# (ctime cannot be set back by hand) makes the record stale and the file is hashed again.
# The record states a fact about the file, not about a URL, so a record next to a file in
# the shared flat folder is right for every URL that file is checked against.
_RECORD = '.sha256.json'


def _stat_key(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _recorded_sha256(path: str) -> str | None:
    try:
        with open(path + _RECORD) as f:
            record = json.load(f)
        if record.get('stat') == _stat_key(path):
            return record['sha256']
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no record, or an unreadable one: hash the file
    return None


def _record(path: str, digest: str) -> None:
    """Write the record of ``path`` (atomically; a cache that cannot be written only
    costs hashing again next time)."""
    with contextlib.suppress(OSError), AtomicFile(path + _RECORD, 'w', fsync=False) as f:
        json.dump({'sha256': digest, 'stat': _stat_key(path)}, f)


def _file_sha256(path: str) -> str:
    """sha256 of ``path``, from its record while that is current."""
    digest = _recorded_sha256(path)
    if digest is None:
        digest = sha256_of(path)
        _record(path, digest)
    return digest


def _remove(path: str) -> None:
    for p in (path, path + _RECORD):
        with contextlib.suppress(FileNotFoundError):  # another process may be first
            os.remove(p)


def _cached(url: str, sha256: str | None, prefix: str | None) -> str | None:
    """A cached file for ``url`` that can be returned, or None.

    The file at :func:`cache_path` is returned when its sha256 is the expected one (or
    none is known). One that does not match is stale or corrupt: online it is deleted (a
    download replaces it); offline it is kept and :class:`ChecksumError` says what to do.
    A file at the flat legacy place is returned only when its sha256 is known and
    matches: it may be another host's file of the same name, so unverified it is never
    used (and never deleted: timm and torchvision share that folder).
    """
    dest = cache_path(url)
    checked = sha256 is not None or prefix is not None
    stale = None
    if osp.isfile(dest):
        if not checked:
            return dest
        digest = _file_sha256(dest)
        if _matches(digest, sha256, prefix):
            return dest
        stale = digest
        if not is_offline():
            from mmengine.logging import print_log
            print_log(f'{url}: the cached {dest} has sha256 {stale}, not the expected '
                      f'{sha256 or prefix + "..."}: stale or corrupt, deleted',
                      logger='current', level=30)
            _remove(dest)
            stale = None
    legacy = _legacy_path(url)
    if checked and osp.isfile(legacy) and _matches(_file_sha256(legacy), sha256, prefix):
        return legacy
    if stale is not None:
        raise ChecksumError(
            f'{url}: the cached {dest} has sha256 {stale}, not the expected '
            f'{sha256 or prefix + "..."}, so it is stale or corrupt, and offline '
            '(HF_HUB_OFFLINE is set) it is not downloaded again: delete it and run once '
            'online, or put the file with that sha256 there')
    return None


#: Seconds to wait for a host to answer before a download counts as offline.
REACH_TIMEOUT = 3.0


def _unreachable(url: str, timeout: float = REACH_TIMEOUT) -> str | None:
    """``host:port`` when no connection to ``url``'s host opens within ``timeout``
    seconds (a machine without network then fails in seconds, not after the retries of
    a download client), else None. Proxies are left to the download itself."""
    import socket
    from urllib.parse import urlparse
    parts = urlparse(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        return None
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(
            parts.hostname):
        return None
    port = parts.port or (443 if parts.scheme == 'https' else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError:
        return f'{parts.hostname}:{port}'
    return None


def _download(url: str, sha256: str | None, timeout: float) -> str:
    """A verified cached file for ``url`` (:func:`_cached`), else a fresh, verified
    download at :func:`cache_path`."""
    sha256, prefix = _expected(url, sha256)
    cached = _cached(url, sha256, prefix)
    if cached is not None:
        return cached
    dest = cache_path(url)
    where = f'download {url} and put it at {dest}'
    legacy = _legacy_path(url)
    if osp.isfile(legacy):  # say why the flat file of that name was not taken
        where += (f' ({legacy} has another sha256)' if sha256 or prefix else
                  f' ({legacy} has that name, but no hash tells whether it is this URL\'s or '
                  'another host\'s file: if it is this one, move it there)')
    if is_offline():
        raise FileNotFoundError(f'offline (HF_HUB_OFFLINE is set) and {dest} is not cached: '
                                + where)
    unreachable = _unreachable(url)
    if unreachable:
        raise FileNotFoundError(f'cannot reach {unreachable} (no network?) and {dest} is not '
                                f'cached: {where}; with HF_HUB_OFFLINE=1 nothing is tried')
    try:
        with atomic_write(dest, fsync=False) as tmp:
            with open(tmp, 'wb') as out, urllib.request.urlopen(url, timeout=timeout) as r:
                shutil.copyfileobj(r, out, 1 << 20)
            digest = _check(tmp, sha256, prefix, url)
            if sha256 is None and prefix is None:
                from mmengine.logging import print_log
                print_log(f'{url}: no sha256 known (not in the zoo index, no -<hash> in the '
                          'file name); downloaded unchecked', logger='current', level=30)
    except (urllib.error.URLError, OSError) as err:
        raise FileNotFoundError(f'could not download {url} ({err}); {dest} is not cached: '
                                + where) from err
    if digest is not None:
        _record(dest, digest)
    return dest


def _hf_cache_dir() -> str:
    """The Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get('HF_HUB_CACHE'):
        return os.environ['HF_HUB_CACHE']
    hf_home = os.environ.get('HF_HOME') or os.path.join(
        os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache'),
        'huggingface')
    return os.path.join(hf_home, 'hub')


def find_cached_pretrained(model_name: str) -> str | None:
    """Locate the pretrained weights of a timm model in the local caches, never downloading.

    Looks in the Hugging Face hub cache (``HF_HUB_CACHE`` / ``HF_HOME``) for the
    model's ``hf_hub_id`` (weights timm serves by URL are left to
    :func:`resolve`, which verifies them).

    Args:
        model_name: timm model name, optionally with a tag (``'resnet18.a1_in1k'``).

    Returns:
        The path of a cached weight file, or ``None``.
    """
    import timm
    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None:
        return None
    hf_hub_id = getattr(cfg, 'hf_hub_id', None)
    if hf_hub_id:
        from huggingface_hub import try_to_load_from_cache
        repo_id, _, revision = hf_hub_id.partition('@')
        filename = getattr(cfg, 'hf_hub_filename', None)
        candidates = [filename] if filename else ['model.safetensors', 'pytorch_model.bin']
        for name in candidates:
            path = try_to_load_from_cache(repo_id, name, cache_dir=_hf_cache_dir(),
                                          revision=revision or None)
            if isinstance(path, str) and os.path.isfile(path):
                return path
    # a file of timm's URL goes through resolve('timm://...'),
    # whose cache is keyed by the URL and checks the file's hash
    return None


def _timm(name: str) -> str:
    import timm
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise ValueError(f'timm has no pretrained weights named {name!r}')
    url = getattr(cfg, 'url', None) or None
    cached = find_cached_pretrained(name)  # the Hugging Face cache
    if cached is not None:
        return cached
    if url:
        found = _cached(url, *_expected(url, None))
        if found is not None:
            return found
    hub_id = getattr(cfg, 'hf_hub_id', None)
    if hub_id:
        if is_offline():
            raise FileNotFoundError(
                f'timm weights {name!r}: offline (HF_HUB_OFFLINE is set) and not cached; run '
                f'once online, or put the file in the Hugging Face cache (HF_HOME) as repo '
                f'{hub_id}')
        unreachable = _unreachable('https://huggingface.co')
        if unreachable:
            raise FileNotFoundError(
                f'timm weights {name!r}: cannot reach {unreachable} (no network?) and they '
                f'are not cached; run once online, or put the file in the Hugging Face cache '
                f'(HF_HOME) as repo {hub_id}; with HF_HUB_OFFLINE=1 nothing is tried')
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
    if url:
        return _download(url, None, 60.0)  # offline, its error names where the file goes
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


def _zoo(name: str) -> str:
    """A local file for ``zoo://name``: the entry's published URL, or the file that
    ``tools/zoo.py build NAME`` wrote."""
    entry = zoo.get(name)
    ckpt = entry.get('checkpoint') or {}
    if ckpt.get('url'):
        return resolve(ckpt['url'], sha256=ckpt.get('sha256'))
    path = zoo.built_path(name)
    if osp.isfile(path):
        return path
    raise FileNotFoundError(f'zoo entry {name!r} has no published checkpoint yet and {path} '
                            f'does not exist: run `python tools/zoo.py build {name}` (it '
                            f'trains {entry["config"]} here and writes that file)')


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
        return _zoo(source[len('zoo://'):])
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
