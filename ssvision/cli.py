"""The ``ssvision`` command: one entry point for the tools.

    ssvision train CONFIG ...        # ssvision.tools.train
    ssvision test CONFIG CKPT ...    # ssvision.tools.test
    ssvision infer CONFIG CKPT INPUT... --out DIR
    ssvision export CONFIG CKPT --format plain|onnx
    ssvision split cls|seg|coco ...  # split files (labeled / unlabeled / test)
    ssvision prepare ...             # the built-in data's splits and scenes
    ssvision zoo list|get|build|publish|markdown
    ssvision configs [GROUP]         # the packaged configs (ssvision::GROUP/NAME.py)

Each command runs the same ``main(argv)`` as the matching script in a checkout's
``tools/`` folder; ``ssvision COMMAND -h`` shows its options. CONFIG may be a file or a
packaged config, ``ssvision::GROUP/NAME.py``.
"""

from __future__ import annotations

import importlib
import os
import sys

#: command -> module under ssvision.tools
COMMANDS = {
    'train': 'train',
    'test': 'test',
    'infer': 'infer',
    'export': 'export',
    'prepare': 'prepare',
    'zoo': 'zoo',
}
SPLITS = {'cls': 'split', 'seg': 'split_seg', 'coco': 'split_coco'}


def list_configs(group: str | None = None) -> list[str]:
    """Packaged config names (``ssvision::GROUP/NAME.py``), optionally of one group."""
    from ssvision.utils.config import PACKAGE_PREFIX, configs_dir
    root = configs_dir()
    groups = [group] if group else sorted(d for d in os.listdir(root)
                                          if not d.startswith(('_', '.')))
    out = []
    for g in groups:
        folder = os.path.join(root, g)
        if not os.path.isdir(folder):
            raise SystemExit(f'no config group {g!r}; groups: {", ".join(list_groups())}')
        out += [f'{PACKAGE_PREFIX}{g}/{f}' for f in sorted(os.listdir(folder))
                if f.endswith('.py')]
    return out


def list_groups() -> list[str]:
    from ssvision.utils.config import configs_dir
    return sorted(d for d in os.listdir(configs_dir()) if not d.startswith(('_', '.')))


def usage() -> str:
    return __doc__.split('\n\n')[1] if __doc__ else ''


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print('usage: ssvision COMMAND [ARGS...]\n' + usage())
        return 0 if argv else 2
    if argv[0] in ('-V', '--version'):
        from ssvision import __version__
        print(f'ssvision {__version__}')
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == 'configs':
        print('\n'.join(list_configs(rest[0] if rest else None)))
        return 0
    if cmd == 'split':
        if not rest or rest[0] not in SPLITS:
            print(f'usage: ssvision split {{{"|".join(SPLITS)}}} ...', file=sys.stderr)
            return 2
        module, rest = SPLITS[rest[0]], rest[1:]
        prog = f'ssvision split {argv[1]}'
    elif cmd in COMMANDS:
        module, prog = COMMANDS[cmd], f'ssvision {cmd}'
    else:
        print(f'ssvision: unknown command {cmd!r}\nusage: ssvision COMMAND [ARGS...]\n'
              + usage(), file=sys.stderr)
        return 2
    tool = importlib.import_module(f'ssvision.tools.{module}')
    old = sys.argv
    sys.argv = [prog, *rest]  # argparse's usage lines name the command
    try:
        result = tool.main(rest)
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - every failure: a short message, the rest in a file
        if os.environ.get(DEBUG_ENV) == '1':
            raise
        print(short_error(prog, err), file=sys.stderr)
        return 1
    finally:
        sys.argv = old
    return result if isinstance(result, int) else 0


#: ``SSVISION_DEBUG=1``: errors raise with their traceback on the console.
DEBUG_ENV = 'SSVISION_DEBUG'
#: Lines of an error's message shown on the console.
ERROR_LINES = 3


def short_error(prog: str, err: BaseException) -> str:
    """The console's few lines for a failed command: what went wrong, and where the full
    traceback was written (a file in the temporary folder)."""
    import tempfile
    import time
    import traceback
    path = os.path.join(tempfile.gettempdir(),
                        f'ssvision-error-{time.strftime("%Y%m%d-%H%M%S")}-{os.getpid()}.log')
    try:
        with open(path, 'w') as f:
            f.write(f'{prog} {" ".join(sys.argv[1:])}\n\n')
            traceback.print_exception(type(err), err, err.__traceback__, file=f)
    except OSError:
        path = None
    lines = str(err).strip().splitlines() or [type(err).__name__]
    text = '\n  '.join(lines[:ERROR_LINES]) + (' ...' if len(lines) > ERROR_LINES else '')
    where = f'traceback: {path}; ' if path else ''
    return f'{prog}: error: {text}\n  ({where}{DEBUG_ENV}=1 shows it here)'


if __name__ == '__main__':
    sys.exit(main())
