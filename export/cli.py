"""`anim export`: glTF animations and ONNX networks for other engines.

`add_parser(subparsers)` registers the `export` group (subcommands `gltf` and
`onnx`) on the `anim` command line; everything else lives here.

    anim export gltf --clip dataset-2_walk_normal_001 --clip dataset-2_run_normal_001 --out out/export/clips.glb
    anim export gltf --bvh my.bvh --scale 0.01 --out out/export/my.glb
    anim export gltf --run turns --controller mm --run walk --controller lmm --out out/export/runs.glb
    anim export onnx --out out/export/onnx

Animations are written in the order given; `--clip`, `--bvh` and `--run`
may be repeated and mixed, as long as every animation is on one skeleton
(a recorded run is on its database's skeleton, which begins with a
simulation bone; a catalog clip or BVH file is on its file's).
"""

from __future__ import annotations

import argparse
import os


def _app():
    """The runner, the stick scripts and `ensure_db` (the application layer's:
    it builds the database on first use), imported in this one place."""
    from anim import runner, scripts
    from anim_app.cli import ensure_db
    return runner, scripts, ensure_db


class _Source(argparse.Action):
    """Keeps --clip/--bvh/--run in command-line order as (kind, value, controller)."""

    def __call__(self, parser, ns, value, option=None):
        items = list(getattr(ns, "sources", None) or [])
        kind = option.lstrip("-")
        items.append([kind, value, None])
        ns.sources = items


class _Controller(argparse.Action):
    """--controller applies to the --run just before it (or, given first, to every --run)."""

    def __call__(self, parser, ns, value, option=None):
        items = getattr(ns, "sources", None) or []
        runs = [s for s in items if s[0] == "run"]
        if runs and runs[-1][2] is None:
            runs[-1][2] = value
        else:
            ns.controller = value


def add_parser(subparsers) -> None:
    """Register `export gltf` and `export onnx` on the `anim` subparsers."""
    e = subparsers.add_parser("export", help="export glTF animations and ONNX networks for Unity, Unreal, the web",
                              description="Export what other engines import: animations as glTF 2.0 (.glb: "
                                          "skeleton, skinned bone mesh, named animations) and the networks as "
                                          "ONNX (opset 15, normalization inside each graph).")
    sub = e.add_subparsers(dest="export_command", metavar="FORMAT")
    e.set_defaults(func=lambda a: (e.print_help(), 0)[1])

    g = sub.add_parser("gltf", help="one .glb with a skeleton, a skinned mesh and named animations",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Write one binary glTF (.glb): the skeleton as a node hierarchy, a rigidly "
                                   "skinned bone mesh, and one animation per --clip / --bvh / --run (in the "
                                   "order given), sampled at its own rate.",
                       epilog="Examples:\n"
                              "  anim export gltf --clip dataset-2_walk_normal_001 --out out/export/walk.glb\n"
                              "  anim export gltf --bvh take.bvh --out out/export/take.glb\n"
                              "  anim export gltf --run turns --controller mm --run turns --controller lmm \\\n"
                              "      --out out/export/turns.glb --validate\n")
    g.add_argument("--clip", action=_Source, metavar="NAME",
                   help="a catalog clip by file name without .bvh (see `anim data list`)")
    g.add_argument("--bvh", action=_Source, metavar="FILE", help="a BVH file (units: --scale)")
    g.add_argument("--run", action=_Source, metavar="SCRIPT",
                   help="record a headless controller run of a stick script (shipped name or .stick file)")
    from anim_app import registry
    g.add_argument("--controller", action=_Controller, choices=registry.stage_names(), default="mm",
                   help="stage of the --run before it (default mm; physics: the MuJoCo humanoid tracking "
                        "motion matching driven by the script, or --track's clip)")
    g.add_argument("--name", action="append", metavar="NAME",
                   help="animation names, in order (default: the clip name, CONTROLLER-SCRIPT for runs)")
    g.add_argument("--scale", type=float, default=0.01, help="--bvh file units to metres (default 0.01: cm)")
    g.add_argument("--db", metavar="FILE", help="--run: database file (default: the normal-style locomotion "
                                                "database, built on first use)")
    g.add_argument("--seconds", type=float, help="--run: length (default: the script's duration)")
    g.add_argument("--weights", metavar="FILE", help="--run with lmm: weights file (default: the shipped one)")
    g.add_argument("--track", metavar="CLIP", help="--run with physics (or clip): a database clip to track "
                                                   "instead of motion matching")
    g.add_argument("--policy", metavar="FILE", help="--run with physics: policy file (default: the shipped one)")
    g.add_argument("--out", metavar="FILE", help="output .glb (default out/export/FIRST-ANIMATION.glb)")
    g.add_argument("--validate", action="store_true",
                   help="run the Khronos glTF-Validator on the file (needs node and `npm ci` in export/web)")
    g.set_defaults(func=cmd_gltf, sources=None)

    o = sub.add_parser("onnx", help="the networks as ONNX (LMM, VR predictor, physics policy)",
                       description="Write each network as one ONNX file (opset 15) with its input and output "
                                   "normalization inside the graph: lmm_decompressor, lmm_stepper, "
                                   "lmm_projector, vr_denoiser, vr_sampler (DDIM unrolled), vr_mlp, "
                                   "physics_policy.")
    o.add_argument("--out", default=os.path.join("out", "export", "onnx"), metavar="DIR",
                   help="output folder (default out/export/onnx)")
    o.add_argument("--only", action="append", choices=["lmm", "vr", "physics"],
                   help="export only this group (repeatable; default all)")
    o.add_argument("--lmm-weights", metavar="FILE", help="learned motion matching weights (default: shipped)")
    o.add_argument("--vr-diffusion", metavar="FILE", help="VR diffusion model (default: shipped)")
    o.add_argument("--vr-mlp", metavar="FILE", help="VR MLP baseline (default: shipped)")
    o.add_argument("--policy", metavar="FILE", help="physics policy (default: shipped)")
    o.set_defaults(func=cmd_onnx)


# ------------------------------------------------------------------ sources
def catalog_clip(name: str):
    """A catalog clip by file name (without .bvh), parsed through the clip cache."""
    import difflib

    import mocap_data
    found, stems = [], []
    for ds in mocap_data.datasets():
        for p in ds.files():
            stems.append(p.stem)
            if p.stem == name or p.name == name:
                found.append((ds, p))
    if not found:
        near = difflib.get_close_matches(name, stems, n=3)
        raise FileNotFoundError(f"--clip {name}: no such clip in the catalog under {mocap_data.mocap_root()}"
                                + (f" (did you mean {', '.join(near)}?)" if near else ""))
    if len(found) > 1:
        raise ValueError(f"--clip {name}: several files match: {', '.join(str(p) for _, p in found)}")
    ds, p = found[0]
    clips = [c for c in mocap_data.load_clips(ds, tags=ds.tags_for(p), progress=False) if c.source == str(p)]
    return clips[0]


def record_run(script_name: str, controller: str, db, args):
    """A recorded headless run as a Clip (the database's skeleton, 60 Hz)."""
    runner, scripts, _ = _app()
    script = scripts.load(script_name)
    from anim_app import registry
    opts = {"weights": args.weights}
    if controller == "physics":      # the humanoid tracks motion matching driven by the script (or --track's clip)
        opts.update(policy=args.policy, clip=args.track)
    ctrl = registry.build_stage(controller, db, **opts)
    rec = runner.run(ctrl, script, args.seconds)
    clip = rec.clip()
    clip.source = str(getattr(script, "path", script_name))
    return clip, f"{controller}-{script.name}"


def gather(args) -> tuple[list, list[str]]:
    """The clips and default names of args.sources, in order."""
    from anim.bvh import read_bvh
    sources = args.sources or []
    if not sources:
        raise ValueError("anim export gltf: give at least one --clip, --bvh or --run")
    clips, names, db = [], [], None
    for kind, value, ctrl in sources:
        if kind == "clip":
            c = catalog_clip(value)
            clips.append(c)
            names.append(c.name)
        elif kind == "bvh":
            if not os.path.exists(value):
                raise FileNotFoundError(f"--bvh {value}: no such file")
            _, c = read_bvh(value, scale=args.scale)
            clips.append(c)
            names.append(c.name)
        else:
            if db is None:
                from anim import database
                _, _, ensure_db = _app()
                db = database.load(ensure_db(args.db, "locomotion-normal"))
            c, n = record_run(value, ctrl or args.controller, db, args)
            clips.append(c)
            names.append(n)
    if args.name:
        if len(args.name) > len(names):
            raise ValueError(f"anim export gltf: {len(args.name)} --name for {len(names)} animations")
        names[:len(args.name)] = args.name
    return clips, names


# ------------------------------------------------------------------ commands
def cmd_gltf(args) -> int:
    from . import gltf
    clips, names = gather(args)
    out = args.out or os.path.join("out", "export", f"{names[0]}.glb")
    info = gltf.write_glb(out, clips, names)
    print(f"wrote {out}: {info['bytes'] / 1e3:.0f} kB, {info['joints']} joints, "
          f"{len(info['animations'])} animation(s)")
    for n, frames, fps in info["animations"]:
        print(f"  {n}: {frames} frames at {fps:g} Hz ({frames / fps:.2f} s)")
    if args.validate:
        from . import checks
        rep = checks.validate([out])
        r = next(iter(rep.values()))
        print(f"glTF-Validator {r['validatorVersion']}: {r['numErrors']} errors, {r['numWarnings']} warnings, "
              f"{r['numInfos']} infos, {r['numHints']} hints")
        for m in r["messages"][:20]:
            print(f"  {m.get('code')}: {m.get('message')} ({m.get('pointer', '')})")
        if r["numErrors"] or r["numWarnings"]:
            return 1
    return 0


def cmd_onnx(args) -> int:
    from . import onnx_export as ox
    which = tuple(args.only or ox.NETWORKS)
    print(f"ONNX opset {ox.OPSET} (IR {ox.IR_VERSION}) -> {args.out}")
    ox.export_all(args.out, which, lmm=args.lmm_weights or ox.LMM_WEIGHTS,
                  vr_diffusion=args.vr_diffusion or ox.VR_DIFFUSION, vr_mlp=args.vr_mlp or ox.VR_MLP,
                  policy=args.policy, echo=print)
    return 0
