"""Command-line tools, shipped with the package.

Each module has ``main(argv=None)``; ``ssvision <command> ...`` (see
:mod:`ssvision.cli`) and the thin scripts in the repository's ``tools/`` folder run
the same code.
"""
