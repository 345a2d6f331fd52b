"""Progress bars: shown on a terminal only, never in logs."""

import io
import sys

from granger_prune._progress import progress


def test_progress_bars_are_off_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = progress(range(3), desc="training", unit="epoch")
    assert bar.disable and list(bar) == [0, 1, 2]
    assert sys.stderr.getvalue() == ""


def test_progress_bars_show_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert list(progress(range(3), desc="recording", unit="epoch")) == [0, 1, 2]
    assert "recording" in sys.stderr.getvalue()
