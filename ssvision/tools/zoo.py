"""ssvision's model zoo from the command line.

    python tools/zoo.py list
    python tools/zoo.py get NAME_OR_SOURCE [--out PATH]    # zoo://, URL, timm://, ...
    python tools/zoo.py build NAME [--work-dir DIR] [--cfg-options K=V ...] [--threads N]
    python tools/zoo.py publish CKPT --name NAME [--keep teacher|student|both]
        [--out-dir DIR] [--url-base URL --index FILE]  # FILE: a team index (see below)
    python tools/zoo.py markdown [--check]                  # model_zoo.md from the index

``get`` resolves a checkpoint as training does (download into torch hub's cache, sha256
checked) and exits with status 1 on a hash mismatch or a missing file. ``build`` trains
the entry's config here (``ssvision train`` with the entry's build options), then
publishes the last checkpoint into the place ``zoo://NAME`` reads, and says whether its
weights are bit-identical to the entry's recorded build (``build.weights_sha256``, a hash
of the tensors: file bytes differ between any two saves). It trains with the recorded
build's CPU thread count (``build.threads``) unless ``--threads`` says otherwise.
``publish`` keeps the weights only (no optimizer, no log history): the teacher's or the
student's as a plain network state dict (which loads into teacher and student alike), or
both, renamed as the entry's ``build`` says when ``NAME`` is an entry; it writes
``<name>-<first 8 hex of sha256>.pth``, prints its weights' hash (the entry's
``build.weights_sha256``; compared with the recorded one when the entry has it) and the
index line for its entry. With
``--url-base URL --index FILE`` it also writes that entry, checkpoint URL and sha256
included, into ``FILE``: a team's own index, read through ``$SSVISION_ZOO_INDEX`` after
the shipped one (:mod:`ssvision.zoo`). Upload the file to ``URL`` and ``zoo://NAME``
downloads it and checks its hash.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys

from ssvision import checkpoints, zoo
from ssvision.utils.atomic import AtomicFile, temporary_path
from ssvision.utils.config import PACKAGE_PREFIX

KEEP = ('teacher', 'student', 'both')


def weights(state: dict, keep: str, rename: dict | None = None) -> dict:
    """The kept part of a training checkpoint's state dict (``teacher.`` / ``student.``
    prefixes removed for one network; selector and preprocessor buffers dropped), with
    key prefixes renamed by ``rename`` (e.g. ``{'backbone.': '', 'head.': 'fc.'}`` turns
    a ``TimmClassifier`` into torchvision's classifier layout)."""
    if keep == 'both':
        out = {k: v for k, v in state.items() if k.startswith(('teacher.', 'student.'))}
    else:
        prefix = keep + '.'
        out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not out:
        raise ValueError(f'the checkpoint has no {keep}* weights')
    for old, new in (rename or {}).items():
        out = {(new + k[len(old):] if k.startswith(old) else k): v for k, v in out.items()}
    return out


def publish(ckpt: str, name: str, keep: str, out_dir: str,
            rename: dict | None = None) -> tuple[str, str]:
    """Write ``<out_dir>/<name>-<sha8>.pth``; returns its path and sha256."""
    import torch
    state = checkpoints.load_state_dict(ckpt)
    kept = weights(state, keep, rename)
    os.makedirs(out_dir, exist_ok=True)
    tmp = temporary_path(osp.join(out_dir, f'{name}.pth'))  # permissions as open gives
    torch.save(kept, tmp)
    digest = checkpoints.sha256_of(tmp)
    path = osp.join(out_dir, f'{name}-{digest[:8]}.pth')
    os.replace(tmp, path)
    return path, digest


def cmd_list(args) -> int:
    for e in zoo.entries():
        ckpt = e.get('checkpoint') or {}
        state = ckpt.get('url') or ('built' if osp.isfile(zoo.built_path(e['name']))
                                    else 'not built')
        metrics = {k: v for k, v in e['metrics'].items() if k not in ('date', 'machine')}
        print(f"{e['name']:42s} {e['task']:15s} {json.dumps(metrics)}  [{state}]")
    return 0


def cmd_get(args) -> int:
    source = args.source if '://' in args.source or osp.exists(args.source) \
        else f'zoo://{args.source}'
    try:
        path = checkpoints.resolve(source)
    except (checkpoints.ChecksumError, FileNotFoundError, KeyError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    if args.out:
        shutil.copyfile(path, args.out)
        path = args.out
    print(path)
    return 0


def cmd_publish(args) -> int:
    if (args.url_base is None) != (args.index is None):
        print('error: --url-base and --index go together', file=sys.stderr)
        return 2
    known = _known_entry(args.name)
    build = (known or {}).get('build') or {}
    rename = build.get('rename')  # unknown: kept as they are
    path, digest = publish(args.ckpt, args.name, args.keep, args.out_dir, rename)
    print(path)
    # the tensors' hash, for the entry's build.weights_sha256 (or checked against it)
    print(compare_build(path, build if args.keep == build.get('keep', 'teacher') else {}))
    base = args.url_base.rstrip('/') if args.url_base else '<host>'
    checkpoint = {'url': f'{base}/{osp.basename(path)}', 'sha256': digest}
    print(json.dumps({'name': args.name, 'checkpoint': checkpoint}))
    if args.index:
        index = osp.abspath(args.index)
        write_team_entry(index, args.name, checkpoint)
        print(f'{index}: entry {args.name} now points at {checkpoint["url"]}; upload '
              f'{path} there and set {zoo.INDEX_ENV}={index}')
    return 0


def _known_entry(name: str) -> dict | None:
    """The entry called ``name`` (team indexes included), or None. A team index named in
    the environment but not written yet (the first publish) falls back to the shipped
    index."""
    try:
        return zoo.get(name)
    except KeyError:
        return None
    except FileNotFoundError:
        return next((dict(e) for e in zoo.read_index(zoo.INDEX) if e['name'] == name), None)


def write_team_entry(index: str, name: str, checkpoint: dict) -> None:
    """Add or replace ``name`` in the team index file ``index`` (created when missing):
    the known entry's fields (task, config, metrics, command, build) plus ``checkpoint``."""
    entry = _known_entry(name) or {'name': name, 'task': 'unknown', 'config': '',
                                   'metrics': {}, 'command': '', 'build': {}}
    entry = dict(entry, checkpoint=checkpoint)
    data = zoo.read_index(index) if osp.isfile(index) else []
    data = [e for e in data if e['name'] != name] + [entry]
    with AtomicFile(index, 'w') as f:
        json.dump(data, f, indent=1)
        f.write('\n')


def run_child(cmd: list[str], env: dict | None = None) -> int:
    """Run ``cmd`` (in ``env``, default: this process's) and return its exit code;
    SIGTERM / SIGHUP sent to this process are passed on to it, so stopping ``zoo build``
    (a scheduler, ``kill``) stops its training instead of leaving it running without a
    parent."""
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum, frame):
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_build(args) -> int:
    entry = zoo.get(args.name)
    build = entry.get('build') or {}
    work = args.work_dir or osp.join('work_dirs', 'zoo', args.name)
    config = entry['config']
    if config.startswith('configs/'):  # index entries name the packaged configs
        config = PACKAGE_PREFIX + config[len('configs/'):]
    cmd = [sys.executable, '-m', 'ssvision.cli', 'train', config, '--work-dir', work]
    opts = list(build.get('cfg_options', [])) + list(args.cfg_options or [])
    if opts:
        cmd += ['--cfg-options', *opts]
    env, threads = build_env(build, args.threads)
    print('+', *([f'OMP_NUM_THREADS={threads}'] if threads else []), ' '.join(cmd), flush=True)
    if threads and args.threads is None:
        print(f'(the recorded build ran {threads} CPU thread(s); --threads N to change: '
              'then the weights are not bit-identical to it)', flush=True)
    code = run_child(cmd, env)
    if code:
        how = (f'killed by {signal.Signals(-code).name}' if code < 0 and -code in
               signal.valid_signals() else f'exit code {code}')
        print(f'error: training failed ({how}); its log is under {work}', file=sys.stderr)
        return 1
    with open(osp.join(work, 'last_checkpoint')) as f:
        last = f.read().strip()
    path, digest = publish(last, args.name, build.get('keep', 'teacher'), zoo.built_dir(),
                           build.get('rename'))
    os.replace(path, zoo.built_path(args.name))
    print(f'{zoo.built_path(args.name)} (sha256 {digest}); zoo://{args.name} now loads it')
    print(compare_build(zoo.built_path(args.name), build))
    return 0


def build_env(build: dict, threads: int | None) -> tuple[dict | None, int | None]:
    """The training child's environment: ``threads`` CPU threads (``--threads``), else the
    entry's recorded build's (``build['threads']``: CPU sums in another thread count round
    differently, so only the same count rebuilds its weights bit for bit), else this
    process's environment unchanged (``(None, None)``)."""
    threads = threads if threads is not None else build.get('threads')
    if threads is None:
        return None, None
    if int(threads) < 1:
        raise ValueError(f'threads must be >= 1, got {threads}')
    env = dict(os.environ, OMP_NUM_THREADS=str(int(threads)), MKL_NUM_THREADS=str(int(threads)))
    return env, int(threads)


def compare_build(path: str, build: dict) -> str:
    """One line comparing the weights in ``path`` with the entry's recorded build
    (``build['weights_sha256']``): bit-identical, or not (then the metrics are what to
    compare: another torch version, CPU kernels or thread count round differently)."""
    import torch
    here = zoo.weights_sha256(torch.load(path, map_location='cpu', weights_only=True))
    recorded = build.get('weights_sha256')
    if recorded is None:
        return f'weights sha256 {here} (the entry records no build to compare with)'
    if here == recorded:
        return f'weights sha256 {here}: bit-identical to the recorded build'
    return (f'weights sha256 {here} differs from the recorded build\'s {recorded} '
            f'({build.get("weights_sha256_with", "unknown torch / device")}): builds are '
            'bit-identical only with the same torch version, CPU kernels and number of '
            'threads (OMP_NUM_THREADS); compare the metrics in the training log with the '
            'entry\'s instead')


def cmd_markdown(args) -> int:
    text = zoo.render_markdown()
    path = args.out
    if args.check:
        with open(path) as f:
            same = f.read() == text
        print('model_zoo.md is up to date' if same else
              'model_zoo.md differs from the index: run python tools/zoo.py markdown')
        return 0 if same else 1
    with open(path, 'w') as f:
        f.write(text)
    print(f'wrote {path}')
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    sub.add_parser('list')
    g = sub.add_parser('get')
    g.add_argument('source', help='zoo entry name, zoo://NAME, URL, timm://, torchvision://')
    g.add_argument('--out')
    b = sub.add_parser('build')
    b.add_argument('name')
    b.add_argument('--work-dir')
    b.add_argument('--cfg-options', nargs='+', help='extra options after the entry\'s')
    b.add_argument('--threads', type=int, default=None,
                   help='CPU threads of the training (default: the recorded build\'s, '
                        'which reproduces its weights bit for bit on the same torch)')
    pub = sub.add_parser('publish')
    pub.add_argument('ckpt')
    pub.add_argument('--name', required=True)
    pub.add_argument('--keep', choices=KEEP, default='teacher')
    pub.add_argument('--out-dir', default='.')
    pub.add_argument('--url-base', help='where the file will be served (with --index)')
    pub.add_argument('--index', help='team index json to write the entry into')
    m = sub.add_parser('markdown')
    m.add_argument('--check', action='store_true')
    m.add_argument('--out', default='model_zoo.md', help='the page (default: ./model_zoo.md)')
    args = p.parse_args(argv)
    return {'list': cmd_list, 'get': cmd_get, 'build': cmd_build, 'publish': cmd_publish,
            'markdown': cmd_markdown}[args.cmd](args)


if __name__ == '__main__':
    sys.exit(main())
