"""``pip install .`` in a fresh virtual environment, then ``ssvision train ssvision::...``
from a folder outside the checkout.

The wheel is built from the tracked files only (what a clean clone holds), installed
without dependencies into a venv that sees the packages of the environment the suite
runs in (torch & co are not downloaded again; the suite may itself run in a venv), and
run from an empty folder: catches configs or the zoo index
missing from the wheel, a missing or broken ``ssvision`` entry point, and tools that
only work from the repository root.
"""

import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

pytest.importorskip('sklearn')


def _tracked_copy(dst):
    files = subprocess.run(['git', 'ls-files', '-z'], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split('\0')
    for rel in filter(None, files):
        src = osp.join(REPO, rel)
        if osp.islink(src) or not osp.isfile(src):
            continue  # the top-level configs link: the package holds the files
        os.makedirs(osp.dirname(osp.join(dst, rel)), exist_ok=True)
        shutil.copy2(src, osp.join(dst, rel))


def test_wheel_in_fresh_venv_trains_a_packaged_config_from_any_folder(tmp_path):
    if shutil.which('git') is None or not osp.isdir(osp.join(REPO, '.git')):
        pytest.skip('needs the git checkout')
    src, dist = tmp_path / 'src', tmp_path / 'dist'
    _tracked_copy(str(src))
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '-q', '-w', str(dist), str(src)], check=True, capture_output=True)
    wheel = next(dist.glob('ssvision-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    assert 'ssvision/configs/fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py' in names
    assert 'ssvision/configs/_base_/default_runtime.py' in names
    assert 'ssvision/zoo/index.json' in names
    assert any(n.endswith('licenses/LICENSE') or n.endswith('/LICENSE') for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith('METADATA')))
    assert b'Provides-Extra: onnx' in meta and b'Requires-Dist: matplotlib' not in \
        meta.split(b'Provides-Extra')[0]  # plotting is an extra, not a requirement

    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    py, exe = str(venv / 'bin' / 'python'), str(venv / 'bin' / 'ssvision')
    # the new venv sees the packages of the environment this suite runs in (a venv or
    # the base interpreter; --system-site-packages would see the base one only): a
    # path file lists this interpreter's site folders after the venv's own
    purelib = subprocess.run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                              "['purelib'])"], capture_output=True, text=True,
                             check=True).stdout.strip()
    ours = [p for p in dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()[k]
                                                               for k in ('purelib', 'platlib')])
            if osp.isdir(p)]
    with open(osp.join(purelib, 'ssvision-test-parent.pth'), 'w') as f:
        f.write('\n'.join(ours) + '\n')
    subprocess.run([py, '-m', 'pip', 'install', '--no-deps', '--no-index', '-q', str(wheel)],
                   check=True, capture_output=True)
    work = tmp_path / 'elsewhere'
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'SSVISION_DATA')}
    where = subprocess.run([py, '-c', 'import ssvision; print(ssvision.__file__)'],
                           cwd=str(work), env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(venv))  # the installed copy, not the checkout

    def run(*args):
        out = subprocess.run([exe, *args], cwd=str(work), env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        return out.stdout + out.stderr

    run('prepare', '--only', 'mnist5k')
    assert (work / 'data' / 'splits' / 'mnist5k_4pc_seed0.json').is_file()
    run('train', 'ssvision::fixmatch/fixmatch_tinycnn_2k_mnist5k-4pc.py', '--work-dir', 'run',
        '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'param_scheduler.0.end=2', 'param_scheduler.0.T_max=2', 'labeled_batch_size=4',
        'train_dataloader.batch_size=12', 'train_dataloader.sampler.labeled_batch_size=4',
        'train_dataloader.sampler.unlabeled_ratio=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False', 'model.model.width=8',
        'default_hooks.checkpoint.interval=2')
    assert (work / 'run' / 'iter_2.pth').is_file()
