"""The one progress-bar helper: off gives a NullBar, on gives a bar on stderr that is closed."""

from __future__ import annotations

import pytest

from medzsad.progress import NullBar, progress_bar


def test_progress_bar_off_and_on(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(3, enabled=False) as bar:
        assert isinstance(bar, NullBar)
        bar.update(1)
        bar.write("nothing")
    assert capsys.readouterr().err == ""
    with progress_bar(3, enabled=True, desc="work", unit="step", leave=True) as bar:
        assert not isinstance(bar, NullBar)
        bar.update(3)
    err = capsys.readouterr().err
    assert "work" in err and "3/3" in err and "step" in err
    with progress_bar(2, enabled=None) as bar:  # pytest's stderr is not a terminal
        assert isinstance(bar, NullBar)
