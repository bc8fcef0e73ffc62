"""Issue 5's benchmark: the sparse-VR methods side by side on the test split
(AGRoL / AvatarPoser metrics, online latency, foot skating), shipped weights."""

from __future__ import annotations


def run(quick: bool = False) -> str:
    from controllers.vr.evaluate import run as evaluate

    r = evaluate(max_clips=10 if quick else 0, latency_frames=200 if quick else 600, progress=True)
    return "\n".join([
        "Command: `python -m bench vr`" + (" --quick (NOT for the record)" if quick else "") +
        " (the same as `anim eval vr`); weights in `controllers/vr/weights/` (reproduce with the commands in "
        "its README). Split by clip: `controllers/vr/split.json`.",
        "",
        r["table"],
    ])
