"""Code lines of a package: lines holding code, not comments, docstrings or blank lines.

    python -m benchmarks.code_lines [ssvision] [--top 20] [--at REV]

``--at REV`` counts the package as it was at a git revision (read with ``git show``), so
a restructuring can be compared with the commit it started from.
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import tokenize

_NOT_CODE = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
             tokenize.DEDENT, tokenize.ENDMARKER)


def code_lines(source: str) -> int:
    """Lines that hold a token other than a comment, outside every docstring."""
    docs: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                docs.update(range(first.lineno, first.end_lineno + 1))
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NOT_CODE:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


def _git(*args: str) -> str:
    return subprocess.run(['git', *args], check=True, capture_output=True, text=True).stdout


def count(package: str, rev: str | None = None) -> dict[str, int]:
    """``{path: code lines}`` of every ``.py`` file under ``package`` (in the working tree,
    or at ``rev``)."""
    ref = rev or 'HEAD'
    paths = [p for p in _git('ls-files' if rev is None else 'ls-tree',
                             *([] if rev is None else ['-r', '--name-only', ref]),
                             '--', package).split() if p.endswith('.py')]
    if rev is None:
        paths += [p for p in _git('ls-files', '--others', '--exclude-standard', '--',
                                  package).split() if p.endswith('.py')]
    out = {}
    for path in sorted(set(paths)):
        if rev is None:
            with open(path, encoding='utf-8') as f:
                source = f.read()
        else:
            source = _git('show', f'{rev}:{path}')
        out[path] = code_lines(source)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('package', nargs='?', default='ssvision')
    p.add_argument('--top', type=int, default=10, help='largest files to list')
    p.add_argument('--at', default=None, help='a git revision instead of the working tree')
    args = p.parse_args(argv)
    counts = count(args.package, args.at)
    for path, n in sorted(counts.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f'{n:6d}  {path}')
    print(f'{sum(counts.values()):6d}  code lines in {len(counts)} files of {args.package}')


if __name__ == '__main__':
    main()
