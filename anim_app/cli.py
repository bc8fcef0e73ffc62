"""The `anim` command line. Run `anim --help` or `anim COMMAND --help`.

It belongs to the application layer: it builds stages from the registry
(`anim_app.registry`) and runs them in the one loop (`anim.loop`); nothing
below it (anim/, controllers/, viewer/) imports it."""

from __future__ import annotations

import argparse
import os
import sys
import time

from anim.presets import DEFAULT_DB_DIR, LOCOMOTION, PRESETS, default_db_path, parse_tags  # noqa: F401


def _select_datasets(args):
    import mocap_data

    if getattr(args, "data", None):
        if getattr(args, "up", None) is not None:       # build-db: read raw, anim.importing conforms
            return [mocap_data.generic_dataset(args.data, scale=1.0, tag_pattern=args.tag_pattern)]
        return [mocap_data.generic_dataset(args.data, scale=args.scale or 0.01)]
    found = mocap_data.datasets()
    if not found:
        raise SystemExit(f"anim: no mocap datasets found under {mocap_data.mocap_root()} "
                         f"(set ANIM_MOCAP_DIR or pass --data DIR)")
    if getattr(args, "dataset", None):
        found = [d for d in found if d.name in args.dataset]
        if not found:
            raise SystemExit(f"anim: no dataset named {args.dataset}")
    return found


# ------------------------------------------------------------------ commands
def cmd_data_list(args) -> int:
    import mocap_data

    sets = _select_datasets(args)
    print(f"mocap root: {mocap_data.mocap_root()}")
    for row in mocap_data.summary(sets):
        print(f"\n{row['name']}: {row['clips']} clips, {row['minutes']:.1f} min, {row['joints']} joints")
        for key in ("contents", "styles"):
            if row.get(key):
                items = ", ".join(f"{k} ({v})" for k, v in sorted(row[key].items()))
                print(f"  {key}: {items}")
        if row.get("license"):
            print(f"  license: {row['license']}")
        for _, problem in row.get("bad_files", []):
            print(f"  left out (unreadable): {problem}")
        if row.get("import"):
            print("  as built (anim build-db --data): " + ", ".join(f"{k} {v}" for k, v in row["import"].items()))
    return 0


def cmd_build_db(args) -> int:
    import mocap_data
    from anim import database

    preset = args.preset or (None if args.data else "locomotion-normal")   # a --data folder: no preset
    tags = dict(PRESETS[preset]) if preset else {}
    tags.update(parse_tags(args.tag))
    out = args.out or default_db_path(preset or "custom")
    sets = _select_datasets(args)
    t0 = time.perf_counter()
    bad = [] if getattr(args, "skip_bad", False) else None
    clips = mocap_data.load_clips(sets, tags=tags, progress=not args.quiet, errors=bad)
    for _, problem in bad or []:
        print(f"skipped {problem}", file=sys.stderr)
    if bad:
        print(f"anim build-db: skipped {len(bad)} unreadable file(s)", file=sys.stderr)
    if not clips:
        raise SystemExit(f"anim build-db: no clip matches the tags {tags}")
    t1 = time.perf_counter()
    cfg = database.DatabaseConfig(mirror=not args.no_mirror)
    meta = {}
    if args.data:                                   # anyone's skeleton: conform, roles, contact height
        from anim import importing
        clips, cfg, meta = importing.prepare(clips, cfg, importing.options_from_args(args))
        mocap_data.record_import(sets[0], meta["import"])
    db = database.build_database(clips, cfg, progress=not args.quiet)
    db.meta = meta
    t2 = time.perf_counter()
    database.save(db, out)
    t3 = time.perf_counter()
    print(f"built {out}: {db.describe()}")
    if meta:
        print(importing.describe(meta))
    print(f"  load clips {t1 - t0:.1f} s, build {t2 - t1:.1f} s, save {t3 - t2:.1f} s, "
          f"{os.path.getsize(out) / 1e6:.0f} MB")
    return 0


def cmd_search(args) -> int:
    """Scripted walk-through: query the database with trajectories a stick would ask for."""
    import numpy as np

    from anim import database, search

    path = ensure_db(args.db, "locomotion-normal")
    t0 = time.perf_counter()
    db = database.load(path)
    print(f"loaded {path} in {1e3 * (time.perf_counter() - t0):.0f} ms: {db.describe()}")
    t0 = time.perf_counter()
    index = search.make_index(args.index, db.features, db.valid)
    print(f"{args.index} index built in {time.perf_counter() - t0:.2f} s")
    speeds = walkthrough_queries(db)
    for label, raw in speeds:
        q = db.normalize_features(raw)
        t0 = time.perf_counter()
        frame, dist = index.query(q)
        us = 1e6 * (time.perf_counter() - t0)
        clip = db.clip_of(frame)
        local = frame - int(db.range_starts[clip])
        v = db.root_velocity_character()[frame]
        print(f"  {label:<34} -> {db.clip_names[clip]:<40} frame {local:>5}  "
              f"cost {dist:7.3f}  root vel (x {v[0]:+.2f}, z {v[2]:+.2f}) m/s  [{us:.0f} us]")
    return 0


def walkthrough_queries(db) -> list[tuple[str, "np.ndarray"]]:
    """Feature queries for a few stick commands: the pose part is taken from a
    real standing-ish frame, the trajectory part is synthesized from the asked
    velocity and turn."""
    import numpy as np

    feats = db.features * db.features_scale + db.features_offset  # raw features
    speed = np.linalg.norm(db.root_velocity_character()[:, [0, 2]], axis=-1)
    base = feats[int(np.argmin(np.where(db.valid, speed, np.inf)))].copy()
    traj = db.feature_slice("trajectory_positions")
    dirs = db.feature_slice("trajectory_directions")
    out = []
    for label, vel, turn in [
        ("walk forward 1.3 m/s", (0.0, 1.3), 0.0),
        ("run forward 3.5 m/s", (0.0, 3.5), 0.0),
        ("walk, turning left 90 deg/s", (0.0, 1.2), np.pi / 2),
        ("walk, turning right 90 deg/s", (0.0, 1.2), -np.pi / 2),
        ("walk backwards 1.0 m/s", (0.0, -1.0), 0.0),
        ("side-step left 1.0 m/s", (1.0, 0.0), 0.0),
        ("stand still", (0.0, 0.0), 0.0),
    ]:
        q = base.copy()
        pos, d = [], []
        for k in db.config.trajectory_frames:
            t = k / db.config.fps
            ang = turn * t
            if abs(turn) > 1e-6:  # integrate a velocity that rotates with the facing
                r = np.hypot(*vel) / turn  # circle radius; left (+X) for a positive turn
                px, pz = r * (1 - np.cos(ang)), r * np.sin(ang)
            else:
                px, pz = vel[0] * t, vel[1] * t
            pos += [px, pz]
            d += [np.sin(ang), np.cos(ang)]
        q[traj] = pos
        q[dirs] = d
        out.append((label, q.astype(np.float32)))
    return out


def cmd_run(args) -> int:
    """Drive a controller headless with stick scripts; write BVH and metrics."""
    from anim import database

    from . import session

    limit = getattr(args, "accel_limit", None)
    if limit is not None and not (limit >= 0 and limit != float("inf")):
        raise ValueError(f"--accel-limit {limit}: a joint-acceleration bound in m/s^2 must be >= 0 "
                         f"(0 turns it off)")
    path = ensure_db(args.db, "locomotion-normal")
    db = database.load(path)
    if args.controller == "physics" and args.clip and not args.input:
        from controllers.physics.cli import run_clip

        run_clip(db, args.clip, args.policy, args.seconds, args.out)
        return 0
    session.run_command(db, path, controller=args.controller, inputs=args.input or ["walk"],
                        seconds=args.seconds, out_dir=args.out, style=args.style, index=args.index,
                        weights=args.weights, accel_limit=args.accel_limit,
                        **({"kinematic": args.kinematic, "policy": args.policy}
                           if args.controller == "physics" else {}))
    return 0


def ensure_db(path: str | None, preset: str) -> str:
    """The database file to use: `path` if given (it must exist), else the
    preset's default file, built on first use."""
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such database file (build one with `anim build-db`)")
        return path
    path = default_db_path(preset)
    from anim.database import is_current

    if not is_current(path):
        print(f"{path} {'is of an older format' if os.path.exists(path) else 'not found'}: building it "
              f"(preset {preset}; once, ~1 min)...")
        ns = argparse.Namespace(preset=preset, tag=None, out=path, no_mirror=False, quiet=False, data=None,
                                dataset=None, scale=1.0)
        cmd_build_db(ns)
    return path


def demo_vr(args) -> int:
    """`anim demo --vr SOURCE`: the sparse-VR avatar driven by a recorded trace
    (exported from the test split when none is given), a WebXR headset or OpenXR."""
    from anim_app.demo import has_display
    from viewer import vr_input

    if args.vr == "replay":
        trace = args.trace
        if trace is None:
            traces = vr_input.export_test_traces(os.path.join("out", "vr", "traces"), clips=1)
            trace = str(traces[0])
            print(f"replaying {trace} (a test-split clip: never seen in training)")
        argv = ["replay", trace] + (["--physics"] if args.physics else []) + (
            ["--policy", args.policy] if args.physics and args.policy else [])
        if args.headless or (not args.live and not has_display()):
            argv += ["--headless", os.path.join(args.out, "vr")]
        return vr_input.main(argv)
    if args.vr == "webxr":
        argv = ["webxr", "--host", args.vr_host, "--port", str(args.vr_port)]
        argv += [a for o in args.vr_allow_origin for a in ("--allow-origin", o)]
        if args.headless or (not args.live and not has_display()):   # serve for --seconds, PNGs + stats
            argv += ["--headless", os.path.join(args.out, "vr")] + (["--seconds", str(args.seconds)]
                                                                     if args.seconds is not None else [])
        return vr_input.main(argv)
    return vr_input.main([args.vr])


def demo_physics(args) -> int:
    """`anim demo --physics`: the MuJoCo humanoid tracking motion matching,
    driven by the gamepad or keyboard (headless: the scripted session with
    pushes); with --clip, tracking that database clip instead."""
    from anim import database
    from anim_app.demo import has_display, run_physics_demo

    headless = bool(args.headless or (not args.live and not has_display()))
    out_dir = os.path.join(args.out, "physics")
    if args.clip:
        from controllers.physics.cli import demo

        db = database.load(ensure_db(args.db, "locomotion-normal"))
        demo(db, clip=args.clip, policy=args.policy, headless=headless, out_dir=out_dir, seconds=args.seconds,
             width=args.width, height=args.height)
        return 0
    path = ensure_db(args.db, args.preset)
    run_physics_demo(database.load(path), path, headless=headless, out_dir=out_dir, seconds=args.seconds,
                     width=args.width, height=args.height, policy=args.policy)
    return 0


def cmd_demo(args) -> int:
    """The gamepad demo: a live window with a display, a scripted headless
    session without (motion matching, then the physics character)."""
    if args.vr:
        return demo_vr(args)
    if args.physics:
        return demo_physics(args)
    from anim import database
    from anim_app.demo import run_demo, run_physics_demo

    path = ensure_db(args.db, args.preset)
    db = database.load(path)
    headless = True if args.headless else (False if args.live else None)
    out = run_demo(db, path, headless=headless, out_dir=args.out, seconds=args.seconds, width=args.width,
                   height=args.height)
    if "render" in out and not args.no_physics:       # headless: the physics segment too
        run_physics_demo(db, path, headless=True, out_dir=os.path.join(args.out, "physics"),
                         seconds=args.seconds, width=args.width, height=args.height, policy=args.policy)
    return 0


# ---------------------------------------------------------------- the parser
def build_parser() -> argparse.ArgumentParser:
    from anim.scripts import seconds_arg

    p = argparse.ArgumentParser(
        prog="anim",
        description="Real-time character animation engine: mocap data, motion databases, "
                    "motion matching and its learned, VR and physics variants.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n"
               "  anim data list                       datasets, clips, minutes, tags\n"
               "  anim build-db --preset locomotion    all locomotion styles, mirrored, 60 Hz\n"
               "  anim search                          scripted search walk-through\n"
               "  anim run --input turns               headless controller run: BVH + metrics\n"
               "  anim demo                            the demo (builds what it needs)\n"
               "  anim export gltf --run turns         a controller run as glTF (also --clip, --bvh; onnx)\n")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def data_args(sp):
        sp.add_argument("--data", metavar="DIR", help="use any folder of BVH files instead of the catalog")
        sp.add_argument("--scale", type=float,
                        help="with --data: file units to metres (default 0.01, centimetres; build-db: "
                             "detected, see --units)")
        sp.add_argument("--dataset", action="append", metavar="NAME",
                        help="restrict to a catalog dataset (repeatable), e.g. bandai-namco-2")

    d = sub.add_parser("data", help="inspect the mocap catalog",
                       description="Inspect the mocap catalog. Datasets are found in $ANIM_MOCAP_DIR, "
                                   "else ../shared/mocap beside the checkout, else mocap_data/.")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    dl = dsub.add_parser("list", help="print datasets with clip counts, minutes, joints and tags",
                         description="Print each dataset with its clip count, minutes, joint count, "
                                     "content and style tags and license.")
    data_args(dl)
    dl.set_defaults(func=cmd_data_list)
    d.set_defaults(func=lambda a: (d.print_help(), 0)[1])

    b = sub.add_parser("build-db", help="build a motion database from clips chosen by tags",
                       description="Build a motion-matching database: clips chosen by tags, resampled "
                                   "to 60 Hz, mirrored, with a simulation bone, contacts and matching "
                                   "features; saved as one versioned file that loads in under a second.")
    b.add_argument("--preset", choices=sorted(PRESETS),
                   help="named clip selection (default locomotion-normal, none with --data; 'all' is the "
                        "whole corpus)")
    b.add_argument("--skip-bad", action="store_true",
                   help="skip files that cannot be read, naming each and why (default: stop at the first)")
    b.add_argument("--tag", action="append", metavar="KEY=V[,V]",
                   help="extra tag filter, e.g. --tag style=normal,active --tag content=walk")
    b.add_argument("--out", metavar="FILE", help=f"output file (default {DEFAULT_DB_DIR}/PRESET.animdb)")
    b.add_argument("--no-mirror", action="store_true", help="do not add mirrored copies")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    data_args(b)
    from anim.importing import add_arguments as add_import_arguments

    add_import_arguments(b)
    b.set_defaults(func=cmd_build_db)

    s = sub.add_parser("search", help="scripted search walk-through on a database",
                       description="Load a database, build a search index and print what a few "
                                   "scripted stick commands (walk, run, turn, strafe, stop) match.")
    s.add_argument("--db", metavar="FILE", help="database file (default: the normal-style locomotion "
                                                "database, built on first use)")
    s.add_argument("--index", choices=["kdtree", "aabb", "brute", "ckdtree"], default="kdtree",
                   help="search implementation (default kdtree)")
    s.set_defaults(func=cmd_search)

    r = sub.add_parser("run", help="drive a controller headless with a stick script; BVH + metrics",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Drive a controller at 60 Hz with a scripted stick (a .stick file: "
                                   "timed keys such as 't=2 move=0,-1 run=1', see anim/scripts/), write "
                                   "the motion as BVH (centimetres, the database skeleton) and a metrics "
                                   "report (JSON, and text on screen): responsiveness, heading error, "
                                   "foot skating, joint accelerations against the database's, search "
                                   "statistics, per-tick time.",
                       epilog="Shipped scripts: walk, run, turns, circles, strafe, stop_start, styles "
                              "(styles needs `anim build-db --preset locomotion` and --db "
                              "out/databases/locomotion.animdb).\n"
                              "  anim run --input turns\n"
                              "  anim run --input all --out out/runs/mm\n")
    from . import registry

    r.add_argument("--controller", choices=registry.stage_names(), default="mm",
                   help="stage (default mm): " + "; ".join(f"{e.name}: {e.help}" for e in registry.STAGES.values())
                        + ". physics with --clip and no --input plays that clip on the MuJoCo humanoid")
    r.add_argument("--kinematic", choices=registry.stage_names("kinematic"),
                   help="with --controller physics: the kinematic stage the humanoid tracks (default mm)")
    r.add_argument("--weights", metavar="FILE", help="weights file of a learned controller")
    r.add_argument("--input", action="append", metavar="SCRIPT",
                   help="a shipped script name, a .stick file, or 'all' (repeatable; default walk)")
    r.add_argument("--seconds", type=seconds_arg, help="run length, at most an hour (default: the script's "
                                                        "duration)")
    r.add_argument("--db", metavar="FILE", help="database file (default: the normal-style locomotion "
                                                "database, built on first use)")
    r.add_argument("--out", metavar="DIR", help="output folder (default out/runs/CONTROLLER): SCRIPT.bvh, "
                                                "SCRIPT.json, summary.md")
    r.add_argument("--style", help="style tag to start in (default: match every style)")
    r.add_argument("--index", choices=["kdtree", "aabb", "brute", "ckdtree"], default="kdtree",
                   help="search implementation (default kdtree)")
    r.add_argument("--accel-limit", type=float, metavar="M_S2",
                   help="hold every joint's acceleration under this, in m/s^2 (default: the database's "
                        "99.9th percentile; lmm: the one its weights were trained with); 0: off, the "
                        "matched clips shown as captured")
    from controllers.physics.cli import add_run_arguments

    add_run_arguments(r)
    r.set_defaults(func=cmd_run)

    tr = sub.add_parser("train", help="train a learned controller (lmm, ...)",
                        description="Train a learned controller. Each kind writes a versioned weights file; "
                                    "training shows progress, checkpoints, resumes and is seeded.")
    what = tr.add_subparsers(dest="what", metavar="KIND")
    from controllers.learned.cli import add_train_lmm_parser

    add_train_lmm_parser(what)
    from controllers.physics.cli import add_physics_parsers

    add_physics_parsers(what)
    from controllers.vr.cli import add_vr_parsers

    add_vr_parsers(sub)                # `train vr` (into the group above) and `eval vr`
    tr.set_defaults(func=lambda a: (tr.print_help(), 0)[1])

    dm = sub.add_parser("demo", help="the gamepad demo (live window; headless: PNGs + metrics)",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="The motion-matching demo. With a display it opens a window: a gamepad "
                                    "(plugged in any time) or the keyboard drives the character. Without a "
                                    "display it runs a scripted session headless and writes PNG frames, a "
                                    "contact sheet, the motion as BVH and the metrics under --out, then the "
                                    "same session played by the physics character (--no-physics leaves it "
                                    "out). Builds the database on first use.",
                        epilog="Keys: WASD move, Shift run, Q strafe, Tab cycle style, G debug drawing, "
                               "F1/H help, arrows/mouse orbit, wheel zoom, R reset, Esc quit; physics: F push, "
                               "K ghost.\n"
                               "Gamepad: left stick move, RT run, LT strafe, Y style, right stick camera, "
                               "Back debug, Start help; physics: B push, left stick click ghost.")
    dm.add_argument("--db", metavar="FILE", help="database file (default: the preset's, built on first use)")
    dm.add_argument("--preset", choices=sorted(PRESETS), default="locomotion",
                    help="database preset when --db is not given (default locomotion: every style)")
    g = dm.add_mutually_exclusive_group()
    g.add_argument("--headless", action="store_true", help="force the headless scripted session")
    g.add_argument("--live", action="store_true", help="force the live window")
    dm.add_argument("--out", default=os.path.join("out", "demo"), metavar="DIR",
                    help="headless output folder (default out/demo)")
    dm.add_argument("--seconds", type=seconds_arg, help="headless session length (default: the script's)")
    dm.add_argument("--vr", choices=["replay", "webxr", "openxr"],
                    help="the sparse-VR avatar instead: replay a head-and-hands trace (--trace, default a "
                         "test-split clip), serve the WebXR page to a headset, or read an OpenXR runtime")
    dm.add_argument("--trace", metavar="FILE", help="with --vr replay: the trace file")
    dm.add_argument("--vr-host", default="127.0.0.1", metavar="HOST",
                    help="with --vr webxr: interface to serve on (beyond loopback the page needs the printed token)")
    dm.add_argument("--vr-port", type=int, default=8765, metavar="PORT", help="with --vr webxr: port (default 8765)")
    dm.add_argument("--vr-allow-origin", action="append", default=[], metavar="ORIGIN",
                    help="with --vr webxr: also accept pages from this origin (e.g. an HTTPS proxy); repeatable")
    dm.add_argument("--physics", action="store_true",
                    help="the physics character: the MuJoCo humanoid tracks motion matching live (gamepad or "
                         "keyboard), the kinematic target drawn as a ghost (K hides it); F / pad B pushes it. "
                         "With --vr replay: the humanoid tracks the VR avatar")
    dm.add_argument("--no-physics", action="store_true",
                    help="headless: leave out the physics segment that follows the motion-matching session")
    dm.add_argument("--clip", help="with --physics: track this database clip instead of motion matching "
                                   "(database: locomotion-normal)")
    dm.add_argument("--policy", metavar="FILE", help="with --physics: a policy from `anim train policy`")
    dm.add_argument("--width", type=int, default=1280, help="window / image width (default 1280)")
    dm.add_argument("--height", type=int, default=720, help="window / image height (default 720)")
    dm.set_defaults(func=cmd_demo)
    from export.cli import add_parser as add_export_parser

    add_export_parser(sub)             # `export gltf`, `export onnx`
    return p


def main(argv=None) -> int:
    from anim.fileio import describe_os_error, interrupt_on_sigterm

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with interrupt_on_sigterm():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError) as e:
        print(f"anim: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:        # missing, read-only, full, a file for a folder or the reverse
        print(f"anim: error: {describe_os_error(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
