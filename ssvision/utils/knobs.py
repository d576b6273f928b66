"""Top-level config knobs that take effect wherever they are set.

mmengine evaluates a config file top to bottom when it is loaded: a base config's
``resize = [dict(size=img_size)]`` holds the base's ``img_size``, and a child config
(or ``--cfg-options``) that sets ``img_size`` later changes nothing. Two tools fix that:

- **Placeholders.** A string ``'${EXPR}'`` anywhere in a config is replaced, when the
  run is built (:func:`resolve_knobs`), by ``EXPR`` evaluated over the config's
  top-level values: ``size='${img_size}'``,
  ``batch_size='${labeled_batch_size * (1 + unlabeled_ratio)}'``,
  ``root='${data_root}/labeled'``. A string that is one placeholder takes the value's
  type; placeholders inside a longer string are formatted into it. ``EXPR`` may use
  names, numbers, strings, ``+ - * / // %``, parentheses and ``len()``.
- **A check** (:func:`check_consumed`): a child config or a ``--cfg-options`` key that
  sets a top-level variable which a base config already *used* at load time (outside
  a placeholder) to build other values is refused, naming the variable and the values
  it built; an unknown top-level ``--cfg-options`` key is refused with the closest
  known names.
"""

from __future__ import annotations

import ast
import difflib
import os.path as osp
import re
from collections.abc import Iterable

_PLACEHOLDER = re.compile(r'\$\{([^{}]+)\}')
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Constant,
            ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.USub, ast.UAdd,
            ast.Call)


class KnobError(ValueError):
    """A config knob that cannot take effect (the message says what to do)."""


def _evaluate(expr: str, names: dict, where: str):
    try:
        tree = ast.parse(expr.strip(), mode='eval')
    except SyntaxError as err:
        raise KnobError(f'{where}: cannot read the placeholder ${{{expr}}} ({err.msg})') \
            from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED) or (isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id == 'len')):
            raise KnobError(f'{where}: ${{{expr}}} may use names, numbers, strings, '
                            '+ - * / // %, parentheses and len() only')
        if isinstance(node, ast.Name) and node.id != 'len' and node.id not in names:
            close = difflib.get_close_matches(node.id, list(names), n=3)
            hint = f' (did you mean {", ".join(close)}?)' if close else ''
            raise KnobError(f'{where}: ${{{expr}}} names {node.id!r}, which is not a '
                            f'top-level value of the config{hint}')
    return eval(compile(tree, '<knob>', 'eval'), {'__builtins__': {'len': len}}, names)  # noqa: S307


def _substitute(value, names: dict, where: str):
    if isinstance(value, str) and '${' in value:
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return _evaluate(whole.group(1), names, where)
        return _PLACEHOLDER.sub(lambda m: str(_evaluate(m.group(1), names, where)), value)
    return value


def _walk(node, names: dict, where: str):
    """``node`` with every placeholder substituted (dicts and lists in place)."""
    if isinstance(node, dict):
        for key in list(node.keys()):
            node[key] = _walk(node[key], names, f'{where}.{key}' if where else str(key))
        return node
    if isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = _walk(item, names, f'{where}[{i}]')
        return node
    if isinstance(node, tuple):
        return type(node)(_walk(item, names, f'{where}[{i}]') for i, item in enumerate(node))
    return _substitute(node, names, where)


def _scalars(cfg) -> dict:
    """The config's top-level values that placeholders may read, themselves resolved
    (a top-level string may use others: ``val_root = '${data_root}/val'``)."""
    def plain(v):
        return isinstance(v, (int, float, str, bool)) or v is None

    raw = {k: v for k, v in cfg.items()
           if plain(v) or (isinstance(v, (list, tuple)) and all(plain(x) for x in v))}
    done: dict = {}

    def get(name, stack=()):
        if name in done:
            return done[name]
        if name in stack:
            raise KnobError('config placeholders refer to each other in a circle: '
                            + ' -> '.join((*stack, name)))
        value = raw[name]
        deps = {n for m in _PLACEHOLDER.finditer(value) for n in _names(m.group(1))} \
            if isinstance(value, str) else set()
        for dep in deps & raw.keys():
            get(dep, (*stack, name))
        done[name] = _walk(value, {k: done.get(k, raw[k]) for k in raw}, name)
        return done[name]

    for name in raw:
        get(name)
    return done


def _names(expr: str) -> set[str]:
    try:
        return {n.id for n in ast.walk(ast.parse(expr.strip(), mode='eval'))
                if isinstance(n, ast.Name)}
    except SyntaxError:
        return set()


def resolve_knobs(cfg) -> None:
    """Replace every ``'${EXPR}'`` placeholder of ``cfg`` (an mmengine ``Config``) in
    place, from its top-level values (see the module docstring).

    Raises:
        KnobError: a placeholder naming no top-level value (with the closest names), a
            circular reference, or an expression beyond the allowed syntax.
    """
    names = _scalars(cfg)
    for key in list(cfg.keys()):
        cfg[key] = names[key] if key in names else _walk(cfg[key], names, key)


# ---------------------------------------------------------------- consumed variables
def _assigned(tree: ast.Module) -> dict[str, set[str]]:
    """Top-level ``name = ...`` of a config file -> the top-level names its value reads
    at load time (placeholders are strings, so they read nothing)."""
    out: dict[str, set[str]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            targets = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
            value = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            targets, value = [stmt.target.id], stmt.value
        else:
            continue
        reads = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)} if value else set()
        for t in targets:
            out[t] = reads
    return out


def _bases(path: str, tree: ast.Module) -> list[str]:
    from .config import PACKAGE_PREFIX, config_path
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in stmt.targets):
            try:
                value = ast.literal_eval(stmt.value)
            except ValueError:
                return []
            items = [value] if isinstance(value, str) else list(value)
            return [config_path(b) if b.startswith(PACKAGE_PREFIX)
                    else osp.normpath(osp.join(osp.dirname(path), b)) for b in items]
    return []


def _parse(path: str) -> ast.Module | None:
    try:
        with open(path, encoding='utf-8') as f:
            return ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError):
        return None


def consumed_in(path: str, _seen: frozenset = frozenset()) -> dict[str, dict[str, str]]:
    """Variables that ``path`` or its bases used at load time to build other values:
    ``{variable: {built value: file}}``."""
    path = osp.abspath(path)
    tree = _parse(path)
    if tree is None or path in _seen:
        return {}
    out: dict[str, dict[str, str]] = {}
    for base in _bases(path, tree):
        for var, users in consumed_in(base, _seen | {path}).items():
            out.setdefault(var, {}).update(users)
    for target, reads in _assigned(tree).items():
        for var in reads:
            if var != target and var != '_base_':
                out.setdefault(var, {})[target] = path
    return out


def aliases_in(path: str, _seen: frozenset = frozenset()) -> dict[str, set[str]]:
    """Top-level ``X = Y`` assignments of ``path`` and its bases: ``{Y: {X, ...}}``."""
    path = osp.abspath(path)
    tree = _parse(path)
    if tree is None or path in _seen:
        return {}
    out: dict[str, set[str]] = {}
    for base in _bases(path, tree):
        for var, names in aliases_in(base, _seen | {path}).items():
            out.setdefault(var, set()).update(names)
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name):
            for t in stmt.targets:
                if isinstance(t, ast.Name):
                    out.setdefault(stmt.value.id, set()).add(t.id)
    return out


def _describe(users: dict[str, str]) -> str:
    names = sorted(users)
    files = sorted({osp.basename(f) for f in users.values()})
    return f"{', '.join(names)} (in {', '.join(files)})"


def check_consumed(config_file: str, cfg, cfg_options: dict | None = None) -> None:
    """Refuse settings that cannot take effect.

    - A top-level variable the config file sets that one of its bases already used to
      build other values, unless the file also sets all of those values again.
    - A ``--cfg-options`` key whose first part is a variable some file of the config
      used at load time, or is no top-level key of the config at all (with the closest
      names). An option for a loader that the config copies as a whole
      (``test_dataloader = val_dataloader``) is applied to the copy too (added to
      ``cfg_options``).

    Raises:
        KnobError: naming the variable, what it built and what to do.
    """
    tree = _parse(config_file)
    if tree is not None:
        own = _assigned(tree)
        used: dict[str, dict[str, str]] = {}
        for base in _bases(osp.abspath(config_file), tree):
            for var, users in consumed_in(base).items():
                used.setdefault(var, {}).update(users)
        for var in own:
            users = {k: f for k, f in used.get(var, {}).items() if k not in own}
            if users:
                raise KnobError(
                    f'{osp.basename(config_file)} sets {var}, but a base config already '
                    f'used {var} to build {_describe(users)}: those keep the base\'s value. '
                    f"Set them here too, or use a config whose values read '${{{var}}}' "
                    '(the packaged configs do for their knobs; docs/own_data.md)')
    if not cfg_options:
        return
    used_here = consumed_in(config_file)
    aliases = aliases_in(config_file)
    known = list(cfg.keys())
    for key in list(cfg_options):
        top = key.split('.')[0]
        users = {k: f for k, f in used_here.get(top, {}).items()
                 if k not in aliases.get(top, ()) and k not in
                 {o.split('.')[0] for o in cfg_options}}
        for alias in aliases.get(top, ()):  # `test_dataloader = val_dataloader`
            alias_key = alias + key[len(top):]
            if alias_key not in cfg_options:
                cfg_options[alias_key] = cfg_options[key]
        if users:
            raise KnobError(
                f'--cfg-options {key}: the config already used {top} to build '
                f"{_describe(users)}; setting {top} now changes nothing. Set those "
                "values instead, or use a config whose values read '${" + top + "}'")
        if top not in known:
            close = difflib.get_close_matches(top, known, n=3, cutoff=0.6)
            hint = f'; did you mean {", ".join(close)}?' if close else ''
            raise KnobError(f'--cfg-options {key}: the config has no top-level key {top!r}'
                            f'{hint}')


def placeholders_left(cfg) -> Iterable[str]:
    """Paths of strings that still hold a placeholder (for tests and checks)."""
    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f'{where}.{k}' if where else str(k))
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                yield from walk(v, f'{where}[{i}]')
        elif isinstance(node, str) and _PLACEHOLDER.search(node):
            yield where
    return list(walk(dict(cfg.items()), ''))


def load_config(name: str):
    """``mmengine.config.Config.fromfile`` for a path or a ``ssvision::`` name, with its
    ``'${NAME}'`` placeholders resolved."""
    from mmengine.config import Config

    from .config import config_path  # importing ssvision registered the ssvision:: prefix
    cfg = Config.fromfile(config_path(name))
    resolve_knobs(cfg)  # '${NAME}' placeholders from the top-level values
    return cfg
