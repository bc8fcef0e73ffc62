"""Random stick programs and the reference streams made from them
(anim.scripts.random_script, controllers/physics/streams.py): what the live
loop's tracking policy trains on and the benchmark's held-out sessions."""

import numpy as np
import pytest

from anim import scripts
from controllers.physics import streams


def _segments(script):
    """(start time, stopped?) of each key after the first."""
    return [(k.t, bool(np.allclose(k.move, 0.0))) for k in script.keys[1:-1]]


def test_default_stops_keep_every_program_and_longer_stops_change_only_the_stops():
    """The defaults give the programs of before (the held-out sessions are
    fixed by their seeds); stop_seconds lengthens the stops alone: the
    same sequence of segment kinds, every stop within the asked range, the
    other segments as long as before."""
    for seed in (0, 7, streams.HELDOUT_SEEDS[0]):
        a = scripts.random_script(seed, 120.0, styles=("x", "y"))
        b = scripts.random_script(seed, 120.0, styles=("x", "y"), stop_seconds=(1.0, 4.0))
        assert [(k.t, k.move.tolist(), k.run, k.style) for k in a.keys] == \
            [(k.t, k.move.tolist(), k.run, k.style) for k in b.keys]
        long = scripts.random_script(seed, 120.0, styles=("x", "y"), stop_seconds=(5.0, 9.0))
        sa, sl = _segments(a), _segments(long)
        n = min(len(sa), len(sl)) - 1
        assert [s for _, s in sa[:n]] == [s for _, s in sl[:n]]
        for i in range(n):
            da, dl = sa[i + 1][0] - sa[i][0], sl[i + 1][0] - sl[i][0]
            if sl[i][1]:
                assert 5.0 - 1e-6 <= dl <= 9.0 + 1e-6
            else:
                assert dl == pytest.approx(da, abs=0.011) and 1.0 - 0.011 <= dl <= 4.0 + 0.011
        assert any(s for _, s in sl[:n])


def test_streams_command_refuses_bad_stop_seconds(capsys):
    for bad in ("3", "5-2", "0-4", "a-b"):
        with pytest.raises(SystemExit):
            streams.main(["--stop-seconds", bad, "--out", "/nonexistent/x.npz"])
        assert "--stop-seconds" in capsys.readouterr().err
