"""ssvision: semi-supervised computer vision on mmengine."""

# The one version source: setup.cfg reads it (``version = attr: ssvision.__version__``).
__version__ = '0.1.0'


def _register_checkpoint_schemes() -> None:
    # load_from / init_cfg checkpoints (zoo://, URLs, timm://, torchvision://) go through
    # ssvision's resolver: cached downloads with sha256 checks, weights-only reads
    from ssvision.checkpoints import register_mmengine_schemes
    register_mmengine_schemes()


def _register_config_prefix() -> None:
    # _base_ = ['ssvision::GROUP/NAME.py'] inherits a config shipped in the package
    from ssvision.engine.mmengine_compat import register_config_prefix
    register_config_prefix()


_register_checkpoint_schemes()
_register_config_prefix()
