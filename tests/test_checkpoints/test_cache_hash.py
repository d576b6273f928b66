"""The download cache: a cached file is checked against its expected sha256 each time it
would be returned, each URL has its own place in the cache, and files are read
weights-only. Every server here listens on 127.0.0.1 only and is stopped by the test."""

import http.server
import json
import os
import os.path as osp
import pickle
import threading
import time

import pytest
import torch

from ssvision import checkpoints


@pytest.fixture
def serve(tmp_path):
    """``serve(name)`` starts a server for ``tmp_path/name`` on 127.0.0.1 (a free port)
    and returns ``(root, url, requests)``; ``requests`` lists the paths it was asked
    for. Every server is stopped after the test."""
    started = []

    def start(name):
        root = tmp_path / name
        root.mkdir()
        requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        started.append((httpd, thread))
        return root, f'http://127.0.0.1:{httpd.server_address[1]}', requests

    try:
        yield start
    finally:
        for httpd, thread in started:
            httpd.shutdown()
            httpd.server_close()
            thread.join()


def _save(path, seed):
    """A small checkpoint at ``path``; its file's sha256."""
    torch.manual_seed(seed)
    torch.save({'state_dict': {'w': torch.randn(4, 3), 'seed': torch.tensor(seed)}}, path)
    return checkpoints.sha256_of(str(path))


def _plant(path, seed):
    """Put another checkpoint at ``path`` (a new file, as a bad copy would be)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = f'{path}.new'
    digest = _save(tmp, seed)
    os.replace(tmp, path)
    return digest


def _seed(path):
    return int(torch.load(path, weights_only=True)['state_dict']['seed'])


def _files(folder):
    return sorted(f for _, _, names in os.walk(folder) for f in names)


def test_a_corrupt_cached_file_is_downloaded_again_online(hub, serve, tmp_path, monkeypatch):
    # catches: a cache hit returned without its hash checked, and a cache hit checked
    # against the caller's sha256 only (the zoo / team index consulted for downloads only)
    root, url, requests = serve('www')
    digest = _save(root / 'model.pth', seed=1)
    index = tmp_path / 'team_zoo.json'
    index.write_text(json.dumps([{'name': 'team_model', 'checkpoint': {
        'url': f'{url}/model.pth', 'sha256': digest}}]))
    monkeypatch.setenv('SSVISION_ZOO_INDEX', str(index))
    path = checkpoints.resolve(f'{url}/model.pth')
    assert path == checkpoints.cache_path(f'{url}/model.pth') and len(requests) == 1
    _plant(path, seed=2)  # a stale or damaged copy under the expected name
    assert checkpoints.resolve(f'{url}/model.pth') == path
    assert _seed(path) == 1 and checkpoints.sha256_of(path) == digest
    assert len(requests) == 2  # downloaded again
    # zoo://NAME (its entry's sha256 given by the caller) is checked the same way
    _plant(path, seed=3)
    assert checkpoints.resolve('zoo://team_model') == path
    assert _seed(path) == 1 and len(requests) == 3


def test_a_corrupt_cached_file_offline_is_refused_with_what_to_do(hub, serve, monkeypatch):
    # catches: an offline resolver that returns the cached file whatever its hash (or
    # deletes it, or says only "not found")
    root, url, requests = serve('www')
    digest = _save(root / 'model.pth', seed=1)
    path = checkpoints.cache_path(f'{url}/model.pth')
    wrong = _plant(path, seed=2)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(checkpoints.ChecksumError) as err:
        checkpoints.resolve(f'{url}/model.pth', sha256=digest)
    message = str(err.value)
    for part in (path, digest, wrong, 'HF_HUB_OFFLINE', 'delete it'):
        assert part in message, part
    assert osp.isfile(path) and requests == []  # kept for the user to look at; no request


def test_the_sha8_in_the_file_name_checks_a_cached_file(hub, serve):
    # catches: a name-prefix check applied to downloads only, and a re-download whose
    # wrong bytes are kept
    root, url, requests = serve('www')
    digest = _save(root / 'tmp.pth', seed=1)
    name = f'net-{digest[:8]}.pth'
    os.replace(root / 'tmp.pth', root / name)
    path = checkpoints.cache_path(f'{url}/{name}')
    _plant(path, seed=2)
    assert checkpoints.resolve(f'{url}/{name}') == path
    assert _seed(path) == 1 and len(requests) == 1
    # the cached copy goes bad and so does the served one: refused, nothing kept
    _plant(path, seed=2)
    _save(root / name, seed=3)
    with pytest.raises(checkpoints.ChecksumError, match='deleted'):
        checkpoints.resolve(f'{url}/{name}')
    assert not osp.exists(path) and len(requests) == 2
    assert not [f for f in _files(hub) if f.endswith('.pth')]


def test_one_file_name_on_two_hosts_or_paths_gives_each_its_own_file(hub, serve):
    # catches: a cache keyed by the file name alone (host A's model.pth returned for
    # host B's URL)
    root_a, url_a, requests_a = serve('a')
    root_b, url_b, requests_b = serve('b')
    _save(root_a / 'model.pth', seed=1)
    _save(root_b / 'model.pth', seed=2)
    (root_a / 'other').mkdir()
    _save(root_a / 'other' / 'model.pth', seed=3)
    path_a = checkpoints.resolve(f'{url_a}/model.pth')
    path_b = checkpoints.resolve(f'{url_b}/model.pth')
    path_c = checkpoints.resolve(f'{url_a}/other/model.pth')
    assert [_seed(p) for p in (path_a, path_b, path_c)] == [1, 2, 3]
    assert len({path_a, path_b, path_c}) == 3
    assert len(requests_a) == 2 and len(requests_b) == 1
    # each is found again in the cache
    assert checkpoints.resolve(f'{url_b}/model.pth') == path_b
    assert checkpoints.resolve(f'{url_a}/model.pth') == path_a
    assert len(requests_a) == 2 and len(requests_b) == 1


def test_a_verified_cached_file_is_returned_without_download_or_rehash(hub, serve,
                                                                      monkeypatch):
    # catches: a download on every call, and a recorded hash trusted after the file
    # changed (same size, mtime set back)
    root, url, requests = serve('www')
    digest = _save(root / 'tmp.pth', seed=1)
    name = f'net-{digest[:8]}.pth'
    os.replace(root / 'tmp.pth', root / name)
    path = checkpoints.resolve(f'{url}/{name}')
    hashed = []
    real_sha256_of = checkpoints.sha256_of
    monkeypatch.setattr(checkpoints, 'sha256_of', lambda p: hashed.append(p) or
                        real_sha256_of(p))
    for _ in range(2):
        assert checkpoints.resolve(f'{url}/{name}') == path
    assert len(requests) == 1 and hashed == []  # the record made hashing unnecessary
    # the same bytes count again after a touch: hashed once, then recorded anew
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    assert checkpoints.resolve(f'{url}/{name}') == path
    assert checkpoints.resolve(f'{url}/{name}') == path
    assert hashed == [path] and len(requests) == 1
    # bytes changed in place, size and mtime kept: the record is not trusted
    before = os.stat(path)
    time.sleep(0.05)  # so the change gets a later ctime than the record saw
    with open(path, 'r+b') as f:
        f.seek(before.st_size // 2)
        byte = f.read(1)
        f.seek(before.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert checkpoints.resolve(f'{url}/{name}') == path
    assert checkpoints.sha256_of(path) == digest and len(requests) == 2


def test_the_flat_cache_of_earlier_versions_is_used_only_when_its_hash_verifies(
        hub, serve, monkeypatch):
    # catches: a file in the flat checkpoints/<file name> (shared by every host, and by
    # timm and torchvision) returned without a hash that says it is this URL's file
    root, url, requests = serve('www')
    hub.mkdir(parents=True)
    digest = _save(hub / 'tmp.pth', seed=1)
    name = f'net-{digest[:8]}.pth'
    os.replace(hub / 'tmp.pth', hub / name)
    assert checkpoints.resolve(f'{url}/{name}') == str(hub / name) and requests == []
    # a flat file whose hash does not match is left alone, and this URL's file is fetched
    good = _save(root / 'tmp.pth', seed=2)
    name = f'net-{good[:8]}.pth'
    os.replace(root / 'tmp.pth', root / name)
    _save(hub / name, seed=3)
    assert checkpoints.resolve(f'{url}/{name}') == checkpoints.cache_path(f'{url}/{name}')
    assert _seed(hub / name) == 3 and len(requests) == 1
    # no hash known: the flat model.pth may be any host's, so it is not taken ...
    _save(root / 'model.pth', seed=4)
    _save(hub / 'model.pth', seed=5)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(FileNotFoundError) as err:
        checkpoints.resolve(f'{url}/model.pth')
    assert str(hub / 'model.pth') in str(err.value) and 'move it' in str(err.value)
    # ... and online this URL's own file is downloaded
    monkeypatch.delenv('HF_HUB_OFFLINE')
    assert _seed(checkpoints.resolve(f'{url}/model.pth')) == 4
    assert _seed(hub / 'model.pth') == 5


LOADED = []


class Payload:
    """Not a tensor or a plain container: only a full unpickler builds it, running its
    code (``__setstate__``) as it does."""

    def __init__(self):
        self.note = 'built by the unpickler'

    def __setstate__(self, state):
        LOADED.append(state)
        self.__dict__.update(state)


def test_checkpoints_are_read_weights_only(hub, serve, tmp_path):
    # catches: torch.load(..., weights_only=False) in the loader, which would build any
    # pickled object (and run its code) from a downloaded file
    root, url, _ = serve('www')
    path = tmp_path / 'payload.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        checkpoints.load_checkpoint(str(path))
    with pytest.raises(pickle.UnpicklingError):
        checkpoints.load_state_dict(str(path))
    # through a URL and mmengine's load_from as well
    from mmengine.runner.checkpoint import CheckpointLoader

    import ssvision  # noqa: F401  (registers the schemes)
    digest = checkpoints.sha256_of(str(path))
    os.replace(path, root / f'payload-{digest[:8]}.pth')
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(f'{url}/payload-{digest[:8]}.pth', map_location='cpu')
    assert LOADED == []
    # the file is one a full unpickler does load: the refusal is weights_only's
    cached = checkpoints.cache_path(f'{url}/payload-{digest[:8]}.pth')
    assert isinstance(torch.load(cached, weights_only=False)['meta'], Payload)
    assert LOADED != []


def test_an_unreachable_host_fails_fast_with_what_to_do(hub, monkeypatch):
    # catches: a download that waits out a client's retries (tens of seconds) on a machine
    # without network before saying anything; here the port on 127.0.0.1 is closed
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]  # free again once closed: nothing listens there
    url = f'http://127.0.0.1:{port}/w/model.pth'
    calls = []
    monkeypatch.setattr(checkpoints.urllib.request, 'urlopen',
                        lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(OSError()))
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match=r'cannot reach 127\.0\.0\.1.*HF_HUB_OFFLINE'):
        checkpoints.resolve(url)
    assert time.monotonic() - start < checkpoints.REACH_TIMEOUT + 1 and calls == []
