"""Leave-one-style-out split and evaluation of the sparse-VR predictors.

The test split of `controllers/vr/split.json` is cut inside every (dataset,
content) group, so each test clip's style is also in training: its figures
overstate what the motion of a user whose way of moving the model never saw
gets. Here one style of the corpus is held out whole:

- `style_clips(data, style)`: the clips of a style, every dataset, every split,
  mirrors included. A style is a name of `STYLES` (the same way of moving is
  named differently in the two Bandai Namco datasets: dataset-1 'old' is
  dataset-2 'elderly'; holding out one name but not the other would leak the
  style into training) or any single style tag of the corpus.
- `leave_out(data, style)`: the same VRData (arrays shared, not copied) with
  those clips relabelled out of train / val / test: originals to 'heldout',
  mirrors to 'heldout-mirror'. Training on it (`python -m controllers.vr.train
  --leave-out-style STYLE`) sees no frame of the style, nor its normalization
  statistics, nor (for the motion-matching baseline, whose database is the
  training split) a pose of it.
- `evaluate(...)` (`anim eval vr --leave-out-style STYLE`): every method on
  (i) 'heldout', all clips of the style (none in the held-out model's
  training), and (ii) 'in-style', the test split without the style's clips;
  the control models (trained on the usual split) on (ii) only, and both
  kinds on the style's own test-split clips ('style-test', which no model
  trained on: the same clips for both, so their difference is the style
  effect alone). The
  motion-matching baseline searches the usual training split for the control
  rows and the split without the style for the held-out rows. The headline is
  the ratio held-out MPJPE / in-style MPJPE of each model trained without the
  style (over its own in-style figure and over its control's), and its
  jitter against the ground truth's on the held-out clips.

Chosen style (`DEFAULT_STYLE`): 'elderly' (dataset-2 'elderly' + dataset-1
'old', 117 clips, 9% of the corpus): the most distinctive way of moving of
the corpus (bent back, short slow steps, a posture no other style has), so
the hardest held-out case that still leaves the rest of the corpus whole;
'normal' (the most clips, 485) would take a third of the training data away
and mix the style effect with a data-size effect.
"""

from __future__ import annotations

import dataclasses
import os
import time

from . import data as vd

# One way of moving, named in each dataset: style name -> tag values.
STYLES = {
    "elderly": ("elderly", "old"),
    "tired": ("tired", "exhausted"),
    "masculine": ("masculine", "masculinity"),
}
DEFAULT_STYLE = "elderly"
HELDOUT, HELDOUT_MIRROR = "heldout", "heldout-mirror"


def style_tags(style: str, data: vd.VRData | None = None) -> tuple:
    """The style tag values a style name stands for; with `data`, checked
    against its clips (an unknown style is an error naming the styles there)."""
    tags = STYLES.get(style, (style,))
    if data is not None:
        present = sorted({t.get("style", "?") for t in data.clip_tags})
        if not any(t in present for t in tags):
            raise ValueError(f"leave-out style {style!r}: no clip of the data has that style "
                             f"(styles: {', '.join(present)}; names joining datasets: {', '.join(STYLES)})")
    return tags


def style_clips(data: vd.VRData, style: str) -> list[int]:
    """Indices of every clip of the style (all splits, mirrors included)."""
    tags = style_tags(style, data)
    return [c for c, t in enumerate(data.clip_tags) if t.get("style") in tags]


def split_ids(split: dict, id_tags: dict, style: str) -> dict:
    """The leave-out split over clip ids: `split` ({'train', 'val', 'test'}:
    ids, as in split.json) without the style's clips, plus 'heldout' (all of
    them); id_tags: clip id -> its file's tags (`mocap_data.select_files`)."""
    tags = style_tags(style)
    out = {k: [i for i in v if id_tags[i].get("style") not in tags] for k, v in split.items()}
    out[HELDOUT] = sorted(i for v in split.values() for i in v if id_tags[i].get("style") in tags)
    return out


def leave_out(data: vd.VRData, style: str) -> vd.VRData:
    """`data` with every clip of the style out of train/val/test: originals
    relabelled 'heldout', mirrors 'heldout-mirror' (the arrays are shared)."""
    held = set(style_clips(data, style))
    split = [(HELDOUT_MIRROR if data.clip_mirrored[c] else HELDOUT) if c in held else s
             for c, s in enumerate(data.clip_split)]
    out = dataclasses.replace(data, clip_split=split)
    out.left_out_style = style
    return out


def style_test_clips(data: vd.VRData, style: str) -> list[int]:
    """The style's clips of the usual test split (originals): no model trained on them."""
    held = set(style_clips(data, style))
    return [c for c in data.clips("test", mirrored=False) if c in held]


def _relabel(data: vd.VRData, clips, name: str = "eval") -> vd.VRData:
    """`data` with exactly `clips` labelled `name` (for evaluate.evaluate's split
    argument); the other labels are kept, so its training split is unchanged."""
    keep = set(clips)
    return dataclasses.replace(data, clip_split=[name if c in keep else s for c, s in enumerate(data.clip_split)])


def evaluate(predictors_in: dict, predictors_out: dict, data: vd.VRData, style: str = DEFAULT_STYLE,
             max_clips: int = 0, progress: bool = True, mm: bool = True, every: int = 1) -> dict:
    """Leave-one-style-out figures. predictors_in: name -> predictor trained on
    the usual split (the control); predictors_out: name -> the same method
    trained without the style. mm: add the motion-matching baseline to both
    sides (its database the usual train split / the split without the style).
    The controls are measured on 'in-style' and 'style-test' (not on all the
    style's clips: they trained on most of them), the held-out models on all
    three sets. Returns {'style', 'sets': {set: {'clips', 'frames'}}, 'rows':
    {'in/NAME' or 'out/NAME': {set: metrics}}, 'gt': {set: {...}}, 'ratios',
    'targets'}."""
    from . import evaluate as ev
    held = leave_out(data, style)
    sets = {"heldout": held.clips(HELDOUT, mirrored=False),
            "in-style": held.clips("test", mirrored=False),
            "style-test": style_test_clips(data, style)}
    sets = {k: v[::max(1, every)] for k, v in sets.items()}     # every k-th clip: a quicker, spread subsample
    if max_clips:
        sets = {k: v[:max_clips] for k, v in sets.items()}
    if not sets["heldout"] or not sets["in-style"]:
        raise ValueError(f"leave-out style {style!r}: no held-out clips or no in-style test clips")
    preds = {"in": dict(predictors_in), "out": dict(predictors_out)}
    if mm:
        from .baselines import MotionMatchingBaseline
        preds["in"]["mm"] = MotionMatchingBaseline(data)
        preds["out"]["mm"] = MotionMatchingBaseline(held)
    res = {"style": style, "style_tags": list(style_tags(style)), "rows": {}, "gt": {},
           "sets": {k: {"clips": len(v), "frames": int(sum(data.stops[c] - data.starts[c] for c in v)),
                        "ids": [data.clip_ids[c] for c in v]}
                    for k, v in sets.items()}}
    t0 = time.perf_counter()
    for side in ("in", "out"):
        for set_name, clips in sets.items():
            if (side == "in" and set_name == "heldout") or not clips or not preds[side]:
                continue
            r = ev.evaluate(preds[side], _relabel(data, clips), latency_frames=0, progress=progress, split="eval")
            for name, m in r["methods"].items():
                res["rows"].setdefault(f"{side}/{name}", {})[set_name] = m
            res["gt"][set_name] = r["gt"]
    res["eval_s"] = time.perf_counter() - t0
    res["ratios"] = ratios(res)
    res["targets"] = targets(res)
    return res


def merge(*results: dict) -> dict:
    """One result of several `evaluate`/`run` results of the same style and
    data (e.g. the baseline measured in one run, the models in another): rows
    and ground truths joined, ratios and targets recomputed."""
    if not results:
        raise ValueError("merge: no results")
    first = results[0]
    out = {k: v for k, v in first.items() if k not in ("rows", "gt", "table")}
    out["rows"], out["gt"] = {}, {}
    for r in results:
        if r["style"] != first["style"] or {k: v["clips"] for k, v in r["sets"].items()} != {
                k: v["clips"] for k, v in first["sets"].items()}:
            raise ValueError("merge: results of different styles or clip sets")
        for key, per in r["rows"].items():
            out["rows"].setdefault(key, {}).update(per)
        out["gt"].update(r["gt"])
    out["ratios"] = ratios(out)
    out["targets"] = targets(out)
    out["table"] = markdown(out)
    return out


def ratios(res: dict) -> dict:
    """Per method trained without the style: its held-out MPJPE over its own
    in-style MPJPE ('mpjpe_ratio'), over the control's in-style MPJPE (the
    figure the usual test split reports: 'mpjpe_ratio_vs_control', when a
    control of the method was measured), the same for the lower body, and
    its held-out jitter over the ground truth's ('jitter_over_gt')."""
    out = {}
    rows = res["rows"]
    for key, sets in rows.items():
        side, name = key.split("/", 1)
        if side != "out" or "heldout" not in sets or "in-style" not in sets:
            continue
        h, i = sets["heldout"], sets["in-style"]
        r = {"mpjpe_ratio": h["mpjpe_cm"] / i["mpjpe_cm"], "lower_pe_ratio": h["lower_pe_cm"] / i["lower_pe_cm"],
             "jitter_over_gt": h["jitter_km_s3"] / res["gt"]["heldout"]["jitter_km_s3"]}
        c = rows.get(f"in/{name}", {}).get("in-style")
        if c is not None:
            r["mpjpe_ratio_vs_control"] = h["mpjpe_cm"] / c["mpjpe_cm"]
            r["lower_pe_ratio_vs_control"] = h["lower_pe_cm"] / c["lower_pe_cm"]
        out[key] = r
    return out


def targets(res: dict) -> dict:
    """Issue 23's targets for the diffusion model trained without the style:
    held-out MPJPE <= 1.5x the in-style test figure (the control's when one
    was measured, else its own), held-out jitter <= 2x the ground truth's,
    and held-out MPJPE below both baselines' (trained without the style too)."""
    rows = res["rows"]
    d = rows.get("out/diffusion", {}).get("heldout")
    if d is None:
        return {}
    r = res["ratios"]["out/diffusion"]
    t = {"mpjpe_within_1.5x_in_style": r.get("mpjpe_ratio_vs_control", r["mpjpe_ratio"]) <= 1.5,
         "jitter_within_2x_gt": r["jitter_over_gt"] <= 2.0}
    for b in ("mlp", "mm"):
        o = rows.get(f"out/{b}", {}).get("heldout")
        if o is not None:
            t[f"beats_{b}_mpjpe"] = d["mpjpe_cm"] < o["mpjpe_cm"]
    return t


def markdown(res: dict) -> str:
    """The figures as a markdown table: one row per (training split, method),
    MPJPE / lower-body error / jitter on each set, and the ratios."""
    from .evaluate import LABELS
    cols = ("mpjpe_cm", "lower_pe_cm", "jitter_km_s3")
    sets = [s for s in ("heldout", "in-style", "style-test") if s in res["gt"]]
    lines = ["| trained on | method | " + " | ".join(f"{s}: MPJPE / lower / jitter" for s in sets)
             + " | held-out / own in-style MPJPE | held-out / control's in-style MPJPE |",
             "| --- | --- |" + " --- |" * (len(sets) + 2)]
    order = {"diffusion": 0, "mlp": 1, "mm": 2}
    for key in sorted(res["rows"], key=lambda k: (order.get(k.split("/", 1)[1], 3), k)):
        per = res["rows"][key]
        side, name = key.split("/", 1)
        cells = [" / ".join(f"{per[s][k]:.2f}" for k in cols) if s in per else "-" for s in sets]
        r = res["ratios"].get(key, {})
        ratio = [f"{r[k]:.2f}" if k in r else "-" for k in ("mpjpe_ratio", "mpjpe_ratio_vs_control")]
        lines.append(f"| {'usual split' if side == 'in' else 'without ' + res['style']} | "
                     f"{LABELS.get(name, name)} | " + " | ".join(cells + ratio) + " |")
    lines.append("| - | ground truth | " + " | ".join(f"- / - / {res['gt'][s]['jitter_km_s3']:.2f}" for s in sets)
                 + " | - | - |")
    info = "; ".join(f"{k} {v['clips']} clips, {v['frames']} frames" for k, v in res["sets"].items())
    lines += ["", f"Style '{res['style']}' (tags {', '.join(res['style_tags'])}) held out. {info}. "
              "MPJPE and lower-body error in cm, jitter in km/s^3.",
              "Targets: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in res.get("targets", {}).items())]
    if res.get("load_average") is not None:
        lines.append(f"Machine load average while measuring: {res['load_average']:.1f}.")
    return "\n".join(lines)


def run(style: str = DEFAULT_STYLE, diffusion_in: str | None = None, diffusion_out: str | None = None,
        mlp_in: str | None = None, mlp_out: str | None = None, mm: bool = True, max_clips: int = 0,
        progress: bool = False, data=None, steps: int | None = None, every: int = 1) -> dict:
    """Load the given model files and evaluate (`anim eval vr --leave-out-style`).
    A model given as trained without the style must say so in its training
    record (`meta['training']['left_out_style']`, written by `train
    --leave-out-style`) and a control must not: mixing them up would report
    the wrong ratio."""
    from .infer import load_artefact, load_predictor
    files = {}
    for side, name, path in (("in", "diffusion", diffusion_in), ("out", "diffusion", diffusion_out),
                             ("in", "mlp", mlp_in), ("out", "mlp", mlp_out)):
        if not path:
            continue
        meta, _ = load_artefact(path)          # checked before the corpus is loaded
        left = (meta.get("training") or {}).get("left_out_style")
        if meta.get("kind") != name:
            raise ValueError(f"{path}: a {meta.get('kind')!r} model, given as the {name} model")
        if side == "out" and left != style:
            raise ValueError(f"{path}: not trained without style {style!r} (its training record says "
                             f"{left!r}); train one with `anim train vr --leave-out-style {style}`")
        if side == "in" and left:
            raise ValueError(f"{path}: trained without style {left!r}; a control is trained on the usual split")
        files[(side, name)] = path
    data = data if data is not None else vd.build(vd.VRDataConfig(), progress=progress)
    style_tags(style, data)
    sides = {"in": {}, "out": {}}
    for (side, name), path in files.items():
        kw = {"sample_steps": steps} if steps and name == "diffusion" else {}
        sides[side][name] = load_predictor(path, data.skeleton, **kw)
    res = evaluate(sides["in"], sides["out"], data, style, max_clips=max_clips, progress=progress, mm=mm,
                   every=every)
    res["models"] = {"diffusion_in": diffusion_in, "diffusion_out": diffusion_out, "mlp_in": mlp_in,
                     "mlp_out": mlp_out}
    res["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    res["table"] = markdown(res)
    return res


def add_arguments(p) -> None:
    """`--leave-out-style` and the held-out models' files, for `anim eval vr`."""
    p.add_argument("--leave-out-style", default=None, metavar="STYLE",
                   help=f"leave-one-style-out evaluation (e.g. {DEFAULT_STYLE}): --diffusion / --mlp are the "
                        "controls trained on the usual split, --diffusion-out / --mlp-out the same methods trained "
                        "with --leave-out-style STYLE")
    p.add_argument("--diffusion-out", default=None, help="with --leave-out-style: diffusion trained without it")
    p.add_argument("--mlp-out", default=None, help="with --leave-out-style: MLP trained without it")
    p.add_argument("--every", type=int, default=1, metavar="K",
                   help="with --leave-out-style: every K-th clip of each set (a quicker subsample; default 1: all)")


def run_from_args(args) -> dict:
    """`anim eval vr --leave-out-style STYLE ...` (the methods of --methods)."""
    import json

    from anim.fileio import atomic_write
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    pick = {k: (v if k.split("_")[0] in methods else None) for k, v in
            (("diffusion_in", args.diffusion), ("diffusion_out", args.diffusion_out), ("mlp_in", args.mlp),
             ("mlp_out", args.mlp_out))}
    try:
        res = run(args.leave_out_style, mm="mm" in methods, max_clips=args.max_clips, progress=not args.quiet,
                  steps=args.steps, every=args.every, **pick)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(str(e)) from None
    print(res["table"])
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with atomic_write(args.json, "w") as f:
            f.write(json.dumps(summary(res), indent=1))
    return res


def summary(res: dict) -> dict:
    """The figures of `res` without the table (JSON-ready)."""
    return {k: v for k, v in res.items() if k != "table"}


def main(argv=None) -> int:
    """`python -m controllers.vr.styles A.json [B.json ...]`: the table of one
    or more `anim eval vr --leave-out-style ... --json` results, joined."""
    import argparse
    import json
    p = argparse.ArgumentParser(prog="python -m controllers.vr.styles", description=main.__doc__.split(":")[1])
    p.add_argument("results", nargs="+", help="--json files of `anim eval vr --leave-out-style`")
    args = p.parse_args(argv)
    res = []
    for path in args.results:
        try:
            with open(path) as f:
                res.append(json.load(f))
        except (OSError, ValueError) as e:
            raise SystemExit(f"{path}: {e}") from None
    try:
        print(merge(*res)["table"])
    except (KeyError, ValueError) as e:
        raise SystemExit(f"{', '.join(args.results)}: not leave-out-style results that join ({e})") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
