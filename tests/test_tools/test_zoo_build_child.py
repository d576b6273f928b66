"""``zoo build`` trains in a child process; stopping the parent must stop the child."""

import os
import signal
import sys
import threading
import time

import pytest

from ssvision.tools.zoo import run_child

pytestmark = pytest.mark.skipif(sys.platform == 'win32', reason='POSIX signals')


def test_sigterm_to_the_parent_stops_the_training_child(tmp_path):
    # catches: subprocess.run(cmd) in `zoo build`, where a SIGTERM (kill, a scheduler)
    # ends the parent and leaves the training child running without one
    pid_file = tmp_path / 'child.pid'
    code = (f'import os, time; open({str(pid_file)!r}, "w").write(str(os.getpid())); '
            'time.sleep(60)')

    def stop_parent():
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=stop_parent, daemon=True).start()
    t0 = time.time()
    rc = run_child([sys.executable, '-c', code])
    assert rc == -signal.SIGTERM
    assert time.time() - t0 < 30
    child = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # gone (reaped by wait)
    # the parent's own handler is back in place
    assert signal.getsignal(signal.SIGTERM) == before
