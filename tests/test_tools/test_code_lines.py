from benchmarks.code_lines import code_lines


def test_code_lines_leave_out_docstrings_comments_and_blank_lines():
    # catches a count that takes docstrings (module, class, function), comments or blank
    # lines for code, or that drops a continuation line of one statement
    source = '''"""Module docstring,
over two lines."""

import os  # a comment


class A:
    """Class docstring."""

    def f(self, x):
        """Function docstring."""
        # a comment line
        return (x +
                1)
'''
    assert code_lines(source) == 5  # import, class, def, return, its continuation
