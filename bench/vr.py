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
        "How the shipped weights were trained (their `meta[\"training\"]`): " + trained_with() + ".",
        "",
        r["table"],
    ])


def trained_with() -> str:
    """One line per shipped model: device, iterations x batch, wall time, parameters."""
    from controllers.vr import infer
    from controllers.vr.evaluate import DEFAULT_WEIGHTS

    parts = []
    for kind, path in DEFAULT_WEIGHTS.items():
        try:
            tr = infer.load_artefact(path)[0].get("training", {})
        except (OSError, ValueError) as e:
            parts.append(f"{kind}: unreadable ({e})")
            continue
        cfg = tr.get("train_config", {})
        parts.append(f"{kind} {tr.get('iterations')} iterations x {cfg.get('batch')} windows on "
                     f"{tr.get('device', '?')} in {tr.get('train_wall_s', 0) / 60:.1f} min "
                     f"({tr.get('params', 0) / 1e6:.2f} M parameters)")
    return "; ".join(parts)
