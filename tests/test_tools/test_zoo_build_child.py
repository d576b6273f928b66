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
    # ends the parent and leaves the training child running without one. The test
    # stands in for the parent with its own SIGTERM handler, so on that wrong code the
    # signal is only recorded, the child sleeps on and the assertions below fail
    # (instead of the signal ending the test process).
    pid_file = tmp_path / 'child.pid'
    code = (f'import os, time; open({str(pid_file)!r}, "w").write(str(os.getpid())); '
            'time.sleep(20)')
    caught = []

    def callers_handler(signum, frame):
        caught.append(signum)

    def stop_parent():
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.signal(signal.SIGTERM, callers_handler)
    child = None
    try:
        threading.Thread(target=stop_parent, daemon=True).start()
        t0 = time.time()
        rc = run_child([sys.executable, '-c', code])
        child = int(pid_file.read_text())
        assert rc == -signal.SIGTERM
        assert time.time() - t0 < 15
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)  # gone (reaped by wait)
        assert caught == []  # run_child took the signal while the child ran
        # the caller's handler is back in place afterwards
        assert signal.getsignal(signal.SIGTERM) is callers_handler
    finally:
        signal.signal(signal.SIGTERM, before)
        if child is not None:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
