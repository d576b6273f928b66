"""ssvision: semi-supervised computer vision on mmengine."""

__version__ = '0.1.0'


def _register_checkpoint_schemes() -> None:
    # load_from / init_cfg checkpoints (zoo://, URLs, timm://, torchvision://) go through
    # ssvision's resolver: cached downloads with sha256 checks, weights-only reads
    from ssvision.checkpoints import register_mmengine_schemes
    register_mmengine_schemes()


_register_checkpoint_schemes()
