"""The reference's import leaves nothing behind: the stand-ins for torchaudio,
transformers, wandb and aim exist only while semilearn is imported."""

import sys

import pytest

pytestmark = pytest.mark.parity


def test_stand_ins_are_gone_after_the_import(usb):
    # Catches a finder left on sys.meta_path or stand-in modules left in sys.modules,
    # which would hide a missing package from every later import in the session.
    assert 'semilearn' in sys.modules
    assert not any(isinstance(f, usb._StandInFinder) for f in sys.meta_path)
    assert not [name for name in sys.modules if usb._is_stand_in(name)]
    for name in usb.STAND_INS:
        module = sys.modules.get(name)
        assert module is None or not isinstance(module, usb._StandInModule)


def test_reference_arguments_are_usb_defaults(usb):
    # Catches hand-set reference arguments: they come from USB's own parser and
    # get_argument() (0.95 / 0.8 cut-offs, 0.999 EMAs, 0.4 warm-up, quantile off).
    assert usb.usb_args('fixmatch').p_cutoff == 0.95
    assert usb.usb_args('uda').p_cutoff == 0.8
    free = usb.usb_args('freematch')
    assert (free.ema_p, free.ent_loss_ratio, free.use_quantile, free.clip_thresh) == (
        0.999, 0.01, False, False)
    soft = usb.usb_args('softmatch')
    assert (soft.dist_align, soft.dist_uniform, soft.n_sigma) == (True, True, 2)
    assert usb.usb_args('meanteacher').unsup_warm_up == 0.4
    assert usb.usb_args('fixmatch').ulb_loss_ratio == 1.0
