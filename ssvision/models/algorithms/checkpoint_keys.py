"""Which weights of a checkpoint go where: plain networks into teacher and student."""

from __future__ import annotations

PARTS = ('student.', 'teacher.')
#: Keys of the recipe itself, never copied into the networks.
OWN = ('selector.', 'data_preprocessor.')


def expand_plain_state_dict(state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` pre-hook of the recipe (in place).

    - keys with ``student.`` but none with ``teacher.``: the teacher gets a copy of the
      student's (a checkpoint saved without its teacher);
    - neither (a plain network, e.g. a supervised or zoo checkpoint): every key that is
      not the recipe's own (``selector.``, ``data_preprocessor.``) goes to both.
    """
    keys = [k for k in state_dict if k.startswith(prefix)]
    has_student = any(k.startswith(prefix + 'student.') for k in keys)
    has_teacher = any(k.startswith(prefix + 'teacher.') for k in keys)
    if has_student and not has_teacher:
        for k in keys:
            if k.startswith(prefix + 'student.'):
                state_dict[prefix + 'teacher.' + k[len(prefix + 'student.'):]] = state_dict[k]
    elif not has_student and not has_teacher:
        for k in keys:
            rest = k[len(prefix):]
            if rest.startswith(OWN):
                continue
            value = state_dict.pop(k)
            for part in PARTS:
                state_dict[prefix + part + rest] = value
