"""Parity tests: ssvision and the reference code on the same inputs (select with
``-m parity``).

The USB comparisons need ``semilearn==0.3.2``: its wheel in ssvision's cache
(``python -m ssvision.utils.wheels semilearn==0.3.2``; README's test command does it) or
an installation; see ``usb_reference``. Without it they are
skipped, unless ``SSVISION_REQUIRE_PARITY=1`` is set (CI sets it): then a missing or
unimportable semilearn is a test error, so the comparison can never pass by not running.
"""

import os

import pytest
import usb_reference

REQUIRE_ENV = 'SSVISION_REQUIRE_PARITY'


@pytest.fixture(scope='session')
def usb():
    """The :mod:`usb_reference` helpers, with semilearn imported."""
    required = os.environ.get(REQUIRE_ENV) == '1'
    if not usb_reference.available():
        if required:
            pytest.fail(f'{REQUIRE_ENV}=1 but semilearn is neither installed nor cached '
                        '(python -m ssvision.utils.wheels semilearn==0.3.2)', pytrace=False)
        pytest.skip('semilearn (USB 0.3.2) is not available')
    try:
        usb_reference.load()
    except ImportError as exc:
        if required:
            pytest.fail(f'{REQUIRE_ENV}=1 but semilearn cannot be imported: {exc}',
                        pytrace=False)
        pytest.skip(f'semilearn cannot be imported: {exc}')
    return usb_reference
