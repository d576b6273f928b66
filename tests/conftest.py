import os

# timm must never try to download weights in tests.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
# a developer's own zoo index must not leak into the zoo tests
os.environ.pop('SSVISION_ZOO_INDEX', None)
os.environ.setdefault('OMP_NUM_THREADS', '2')

import http.server  # noqa: E402
import threading  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs CUDA')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One intra-op thread for the test (small convolution nets run faster so here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache, no proxy, online."""
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    for var in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    return tmp_path / 'hub' / 'checkpoints'


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1 (a free port) for the test's duration."""
    root = tmp_path / 'www'
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f'http://127.0.0.1:{httpd.server_address[1]}'
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


class TopHalfBoxSelector:
    """A box selector keeping each image's higher-scoring half of the teacher's
    detections, so the other half is left for ignore regions (``ignore_score=0``)."""

    def __call__(self, dets):
        keep = []
        for d in dets:
            k = torch.zeros(len(d), dtype=torch.bool, device=d.scores.device)
            k[torch.argsort(d.scores, descending=True)[:len(d) // 2]] = True
            keep.append(k)
        return keep

    def extra_log(self):
        return {}


@pytest.fixture
def top_half_selector():
    """A :class:`TopHalfBoxSelector` (set it as ``model.policy.selector``)."""
    return TopHalfBoxSelector()
