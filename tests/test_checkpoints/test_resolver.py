"""Checkpoint sources: verified downloads from a local server, clear offline errors,
the zoo index and model_zoo.md. Every server here listens on 127.0.0.1 only and is
stopped by the test."""

import hashlib
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from ssvision import checkpoints, zoo

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _files(folder):
    """Every file under ``folder`` (the cache keeps each URL in its own subfolder)."""
    return [f for _, _, names in os.walk(folder) for f in names]


def _checkpoint(path, seed=0):
    torch.manual_seed(seed)
    state = {'state_dict': {'w': torch.randn(3, 4), 'b': torch.randn(3)}}
    torch.save(state, path)
    with open(path, 'rb') as f:
        return state['state_dict'], hashlib.sha256(f.read()).hexdigest()


def test_download_with_the_right_hash_loads_and_is_cached(hub, server):
    """Catches a resolver that skips the hash or the cache (a second download)."""
    root, url = server
    state, digest = _checkpoint(root / 'tmp.pth')
    os.replace(root / 'tmp.pth', root / f'net-{digest[:8]}.pth')
    loaded = checkpoints.load_state_dict(f'{url}/net-{digest[:8]}.pth')  # file-name prefix
    assert set(loaded) == {'w', 'b'} and torch.equal(loaded['w'], state['w'])
    cached = checkpoints.cache_path(f'{url}/net-{digest[:8]}.pth')
    assert osp.isfile(cached) and cached.startswith(str(hub))
    os.remove(root / f'net-{digest[:8]}.pth')  # served no more: the cache answers
    assert checkpoints.resolve(f'{url}/net-{digest[:8]}.pth') == cached
    # an explicit full sha256 (as the zoo index gives) is checked too
    _checkpoint(root / 'plain.pth', seed=1)
    with open(root / 'plain.pth', 'rb') as f:
        full = hashlib.sha256(f.read()).hexdigest()
    assert osp.isfile(checkpoints.resolve(f'{url}/plain.pth', sha256=full))


def test_wrong_hash_is_refused_and_leaves_no_file(hub, server):
    """Catches a resolver that keeps (or loads) a file whose hash does not match."""
    root, url = server
    _checkpoint(root / 'net-00000000.pth')  # the name promises another hash
    with pytest.raises(checkpoints.ChecksumError, match='deleted'):
        checkpoints.resolve(f'{url}/net-00000000.pth')
    assert _files(hub) == []
    _checkpoint(root / 'plain.pth')
    with pytest.raises(checkpoints.ChecksumError):
        checkpoints.resolve(f'{url}/plain.pth', sha256='0' * 64)
    assert _files(hub) == []
    # the command line exits non-zero on it
    env = dict(os.environ, TORCH_HOME=str(hub.parent.parent / 'th'), no_proxy='127.0.0.1')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools/zoo.py'), 'get',
                           f'{url}/net-00000000.pth'], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and 'sha256' in proc.stderr


def test_no_server_and_offline_give_one_clear_error(hub, monkeypatch):
    """Catches a raw socket traceback (or a silent None) instead of an error that names
    the URL and where to put the file."""
    import socket
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    url = f'http://127.0.0.1:{port}/net-12345678.pth'
    with pytest.raises(FileNotFoundError) as err:
        checkpoints.resolve(url, timeout=5)
    assert url in str(err.value) and checkpoints.cache_path(url) in str(err.value)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(FileNotFoundError, match='offline'):
        checkpoints.resolve(url)


def test_mmengine_load_from_uses_the_resolver(hub, server):
    """load_from / init_cfg URLs go through the same checks (mmengine's own URL loader
    would load a file whose hash does not match)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    import ssvision  # noqa: F401  (registers the schemes)
    root, url = server
    _checkpoint(root / 'net-00000000.pth')
    with pytest.raises(checkpoints.ChecksumError):
        CheckpointLoader.load_checkpoint(f'{url}/net-00000000.pth', map_location='cpu')
    with pytest.raises(FileNotFoundError, match='tools/zoo.py build'):
        CheckpointLoader.load_checkpoint('zoo://fixmatch_tinycnn_mnist5k-4pc')


def test_zoo_entry_resolves_to_its_built_file(hub, tmp_path):
    """zoo://NAME without a host reads the file tools/zoo.py build writes; publish keeps
    one network's weights as a plain state dict named <name>-<sha8>.pth."""
    from ssvision.tools import zoo as zoo_tool
    ckpt = tmp_path / 'iter_2.pth'
    torch.save({'state_dict': {'teacher.w': torch.ones(2), 'student.w': torch.zeros(2),
                               'selector.n': torch.tensor(3)}, 'optimizer': {}}, ckpt)
    path, digest = zoo_tool.publish(str(ckpt), 'fixmatch_tinycnn_mnist5k-4pc', 'teacher',
                                    zoo.built_dir())
    assert osp.basename(path) == f'fixmatch_tinycnn_mnist5k-4pc-{digest[:8]}.pth'
    assert checkpoints.sha256_of(path) == digest
    os.replace(path, zoo.built_path('fixmatch_tinycnn_mnist5k-4pc'))
    state = checkpoints.load_state_dict('zoo://fixmatch_tinycnn_mnist5k-4pc')
    assert set(state) == {'w'} and torch.equal(state['w'], torch.ones(2))  # the teacher
    with pytest.raises(KeyError, match='no zoo entry'):
        checkpoints.resolve('zoo://no-such-model')
    # a TimmClassifier published in torchvision's classifier layout
    timm_state = {'teacher.backbone.conv1.weight': torch.ones(1), 'teacher.head.weight':
                  torch.zeros(1), 'student.head.weight': torch.ones(1)}
    renamed = zoo_tool.weights(timm_state, 'teacher', {'backbone.': '', 'head.': 'fc.'})
    assert set(renamed) == {'conv1.weight', 'fc.weight'}


def test_zoo_index_and_model_zoo_md_agree():
    """model_zoo.md is generated from the index (python tools/zoo.py markdown)."""
    with open(osp.join(REPO, 'model_zoo.md')) as f:
        assert f.read() == zoo.render_markdown()
    for e in zoo.entries():
        assert osp.isfile(osp.join(REPO, e['config'])), e['config']
        assert {'name', 'task', 'config', 'metrics', 'command', 'build'} <= set(e)
        assert {'date', 'machine'} <= set(e['metrics'])


@pytest.mark.slow
def test_build_then_fine_tune_from_zoo(tmp_path):
    """tools/zoo.py build trains the entry's config and publishes its teacher; a config
    with load_from='zoo://NAME' then starts both networks from those weights (a start
    where teacher and student of the new model differ from them, so a loader that fills
    only the student, or nothing, fails)."""
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from ssvision.registry import MODELS
    name = 'fixmatch_tinycnn_mnist5k-4pc'
    env = dict(os.environ, TORCH_HOME=str(tmp_path / 'th'), PYTHONPATH=REPO)
    from ssvision.datasets import MNIST5k, make_split, save_split
    ds = MNIST5k()  # built-in data; a fresh split, as a clean checkout has none
    split = make_split(ds.labels, list(range(len(ds))), num_labels_per_class=4,
                       num_test_per_class=20, seed=0)
    split['unlabeled'] = split['unlabeled'][::12]
    split_file = str(tmp_path / 'split.json')
    save_split(split, split_file)
    opts = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'param_scheduler.0.end=2',
            'param_scheduler.0.T_max=2', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False', 'default_hooks.checkpoint.interval=2',
            *(f'{k}.split_file={split_file}' for k in (
                'train_dataloader.dataset.labeled', 'train_dataloader.dataset.unlabeled',
                'val_dataloader.dataset', 'test_dataloader.dataset'))]
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools/zoo.py'), 'build', name,
                           '--work-dir', str(tmp_path / 'w'), '--cfg-options', *opts],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    built = tmp_path / 'th' / 'hub' / 'ssvision_zoo' / f'{name}.pth'
    assert built.is_file()
    trained = torch.load(tmp_path / 'w' / 'iter_2.pth', map_location='cpu',
                         weights_only=True)['state_dict']
    cfg = Config.fromfile(osp.join(REPO, zoo.get(name)['config']))
    torch.manual_seed(123)
    model = MODELS.build(cfg.model)
    old = os.environ.get('TORCH_HOME')
    os.environ['TORCH_HOME'] = str(tmp_path / 'th')
    try:
        load_checkpoint(model, f'zoo://{name}', map_location='cpu')
    finally:
        if old is None:
            os.environ.pop('TORCH_HOME')
        else:
            os.environ['TORCH_HOME'] = old
    for key, value in model.state_dict().items():
        if key.startswith(('teacher.', 'student.')):
            rest = key.split('.', 1)[1]
            assert torch.equal(value, trained['teacher.' + rest]), key


def test_torchvision_names_resolve_as_openmmlab_configs_expect(monkeypatch):
    """torchvision://resnet50 (OpenMMLab configs' init_cfg) keeps mmengine's URL (the V1
    ImageNet weights), not torchvision's newer default; an enum name gives its own URL.
    Catches a resolver that silently swaps the pretrained weights of every mmdet config."""
    from mmengine.runner.checkpoint import get_torchvision_models
    seen = []
    monkeypatch.setattr(checkpoints, '_download', lambda url, sha, timeout: seen.append(url))
    checkpoints.resolve('torchvision://resnet50')
    checkpoints.resolve('torchvision://ResNet18_Weights.IMAGENET1K_V1')
    assert seen[0] == get_torchvision_models()['resnet50']
    assert seen[1] == torchvision_weights_url('ResNet18_Weights.IMAGENET1K_V1')
    assert checkpoints.hash_prefix(seen[0]) is not None  # so the download is verified


def torchvision_weights_url(name):
    from torchvision.models import get_weight
    return get_weight(name).url


def test_published_to_a_team_host_then_zoo_downloads_and_checks_it(hub, server, tmp_path,
                                                                  monkeypatch):
    """publish --url-base --index writes a team index entry; with $SSVISION_ZOO_INDEX
    zoo://NAME downloads the uploaded file and checks its sha256. Catches an entry written
    without the file's hash, a team index that is not read (zoo:// would ask for a build),
    and a replaced upload that is loaded anyway."""
    from ssvision.tools import zoo as zoo_tool
    root, url = server
    ckpt = tmp_path / 'iter_2.pth'
    torch.save({'state_dict': {'teacher.w': torch.full((2,), 7.0),
                               'student.w': torch.zeros(2)}}, ckpt)
    index = tmp_path / 'team_zoo.json'
    name = 'fixmatch_tinycnn_mnist5k-4pc'  # a shipped entry without a host
    assert zoo_tool.main(['publish', str(ckpt), '--name', name, '--out-dir', str(root),
                          '--url-base', url + '/', '--index', str(index)]) == 0
    [published] = [p for p in os.listdir(root) if p.startswith(name)]
    entry = zoo.read_index(str(index))[0]
    assert entry['checkpoint'] == {'url': f'{url}/{published}',
                                   'sha256': checkpoints.sha256_of(str(root / published))}
    assert entry['config'] == zoo.get(name)['config']  # the shipped fields are kept
    monkeypatch.setenv('SSVISION_ZOO_INDEX', str(index))
    state = checkpoints.load_state_dict(f'zoo://{name}')
    assert torch.equal(state['w'], torch.full((2,), 7.0))  # the teacher, downloaded
    cached = checkpoints.cache_path(f'{url}/{published}')
    assert osp.isfile(cached)
    # the shipped page is unchanged by a team index
    page = zoo.render_markdown()
    monkeypatch.delenv('SSVISION_ZOO_INDEX')
    assert zoo.render_markdown() == page
    monkeypatch.setenv('SSVISION_ZOO_INDEX', str(index))
    # an upload replaced by other bytes under the same name is refused
    os.remove(cached)
    torch.save({'w': torch.zeros(2)}, root / published)
    with pytest.raises(checkpoints.ChecksumError):
        checkpoints.resolve(f'zoo://{name}')
    assert not osp.exists(cached)
    monkeypatch.setenv('SSVISION_ZOO_INDEX', str(tmp_path / 'missing.json'))
    with pytest.raises(FileNotFoundError, match='SSVISION_ZOO_INDEX'):
        zoo.entries()
    assert zoo_tool.main(['publish', str(ckpt), '--name', name, '--url-base', url]) == 2
