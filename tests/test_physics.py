"""Physics tracking (controllers/physics): the MJCF humanoid, the Y-up <-> Z-up
conversions, the MJX tracking environment, PPO and the CPU runtime.

The fast tests use C MuJoCo and numpy (and small jits); the ones that compile
the MJX physics step (a minute or more on a 2-core CPU) are marked slow."""

import dataclasses
import os
import sys

import numpy as np
import pytest

from anim import quat

mujoco = pytest.importorskip("mujoco")

from controllers.physics import convert, env as envmod, humanoid as hum  # noqa: E402


@pytest.fixture(scope="module")
def db():
    import _databases
    return _databases.physics_db()


@pytest.fixture(scope="module")
def h(db):
    return hum.from_database(db, every=6)


@pytest.fixture(scope="module")
def walk_clip(db):
    return db.clip_names.index(next(n for n, t in zip(db.clip_names, db.clip_tags)
                                    if t.get("content") == "walk" and not t.get("mirrored")))


# ------------------------------------------------------------------ MJCF
def test_mjcf_compiles_in_mujoco_and_mjx(h, db):
    mjx = envmod.import_mjx()
    m = h.model()
    assert m.nbody == db.skeleton.num_joints          # world + every joint but the simulation bone
    assert (m.nq, m.nv, m.nu) == (h.nq, h.nv, h.nu) == (7 + 3 * (m.nbody - 2), 6 + 3 * (m.nbody - 2), 3 * (m.nbody - 2))
    assert abs(m.body_mass.sum() - 70.0) < 1e-3
    assert (m.actuator_forcerange[:, 1] > 0).all() and (m.jnt_range[1:, 0] < m.jnt_range[1:, 1]).all()
    mx = mjx.put_model(m, impl="jax")
    assert mx.nq == m.nq
    # parents and children never collide; the ground touches the feet
    assert m.nexclude > 0
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    assert np.isfinite(d.qacc).all()


def test_segment_masses_follow_de_leva(h, db):
    names = db.skeleton.names
    mass = {names[j]: float(h.masses[b]) for b, j in enumerate(h.joints)}
    thigh = hum.DE_LEVA["thigh"][0] / 100 * 70
    assert mass["UpperLeg_L"] == pytest.approx(thigh, rel=1e-3)
    assert mass["UpperLeg_L"] == pytest.approx(mass["UpperLeg_R"])
    assert h.segments[db.skeleton.index("Foot_L")] == "foot"
    assert h.segments[db.skeleton.index("Hand_R")] == "hand"
    assert h.segments[db.skeleton.index("Head")] == "head"


def test_zero_pose_is_the_rest_pose(h, db):
    m = h.model()
    d = mujoco.MjData(m)
    mujoco.mj_kinematics(m, d)
    rot, pos = h.rest_pose()
    _, g = quat.fk(rot, pos, db.skeleton.parents)
    assert np.abs(convert.vec_to_mj(g[list(h.joints)]) - d.xpos[1:]).max() < 1e-3
    # without corpus statistics the rest pose is the skeleton's identity pose
    h0 = hum.build(db.skeleton, None, root="Hips")
    m0 = h0.model()
    d0 = mujoco.MjData(m0)
    mujoco.mj_kinematics(m0, d0)
    _, g0 = quat.fk(quat.identity((db.skeleton.num_joints,)), db.skeleton.offsets, db.skeleton.parents)
    assert np.abs(convert.vec_to_mj(g0[list(h0.joints)]) - d0.xpos[1:]).max() < 1e-3


def test_humanoid_saves_and_loads(h, db, tmp_path):
    p = tmp_path / "h.json"
    hum.save(h, str(p))
    h2 = hum.load(str(p), db.skeleton)
    assert h2.xml == h.xml and h2.joints == h.joints and np.allclose(h2.rest_rotations, h.rest_rotations)
    from anim.skeleton import Skeleton
    other = Skeleton(("a", "b"), [-1, 0], np.zeros((2, 3)))
    with pytest.raises(ValueError):
        hum.load(str(p), other)


# ------------------------------------------------------------------ conversions
def test_axis_conversion_round_trips():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3))
    q = quat.normalize(rng.normal(size=(50, 4)))
    assert np.allclose(convert.vec_from_mj(convert.vec_to_mj(v)), v)
    assert np.allclose(convert.frame_from_mj(convert.frame_to_mj(q)), q)
    assert np.allclose(convert.rot_from_mj(convert.rot_to_mj(q)), q)
    # up is up, forward is +X, left is +Y in MuJoCo
    assert np.allclose(convert.vec_to_mj(convert.UP_KIN), convert.UP_MJ)
    assert np.allclose(convert.vec_to_mj(convert.FWD_KIN), convert.FWD_MJ)
    assert np.allclose(convert.vec_to_mj([1.0, 0, 0]), [0, 1.0, 0])
    # the vector map is the rotation Q_C; operators and frames agree with it
    assert np.allclose(quat.rot(convert.Q_C, v), convert.vec_to_mj(v))
    assert np.allclose(quat.rot(convert.rot_to_mj(q), convert.vec_to_mj(v)), convert.vec_to_mj(quat.rot(q, v)))
    assert np.allclose(quat.rot(convert.frame_to_mj(q), v), convert.vec_to_mj(quat.rot(q, v)))


def test_pose_qpos_round_trip(h, db):
    frames = np.arange(0, db.num_frames, max(1, db.num_frames // 300))
    rot, pos = np.asarray(db.rotations[frames]), np.asarray(db.positions[frames])
    qpos = convert.pose_to_qpos(h, rot, pos)
    assert qpos.shape == (len(frames), h.nq)
    r2, p2 = convert.qpos_to_pose(h, qpos)
    assert np.abs(convert.pose_to_qpos(h, r2, p2) - qpos).max() < 1e-5
    _, g = quat.fk(rot, pos, db.skeleton.parents)
    _, g2 = quat.fk(r2, p2, db.skeleton.parents)
    assert np.abs(g2[:, 1:] - g[:, 1:]).max() < 1e-3      # every joint but the simulation bone
    # the simulation bone given back exactly reproduces the database pose
    r3, p3 = convert.qpos_to_pose(h, qpos, root=(rot[:, 0], pos[:, 0]))
    _, g3 = quat.fk(r3, p3, db.skeleton.parents)
    assert np.abs(g3 - g).max() < 1e-3
    # the simulation bone from the hips faces where the database's does (within a few degrees)
    fwd = quat.rot(r2[:, 0], convert.FWD_KIN)
    fwd0 = quat.rot(rot[:, 0], convert.FWD_KIN)
    assert np.median(np.sum(fwd * fwd0, axis=-1)) > np.cos(np.radians(15))


def test_reference_pose_set_as_state_is_reproduced(h, db, walk_clip):
    m = h.model()
    d = mujoco.MjData(m)
    a, b = int(db.range_starts[walk_clip]), int(db.range_stops[walk_clip])
    qpos = convert.pose_to_qpos(h, db.rotations[a:b], db.positions[a:b])
    g = db.global_positions(slice(a, b))
    for i in range(0, b - a, 7):
        d.qpos[:] = qpos[i]
        mujoco.mj_kinematics(m, d)
        assert np.abs(convert.vec_from_mj(d.xpos[1:]) - g[i, list(h.joints)]).max() < 1e-3
    # velocities: integrating qvel over a frame reaches the next qpos
    dt = 1 / 60
    q0, q1 = qpos[10], qpos[11]
    v = convert.qvel_from_qpos(h, q0, q1, dt)
    q = q0.copy()
    mujoco.mj_integratePos(m, q, v, dt)
    assert np.abs(q - q1).max() < 1e-6
    mjv = np.zeros(m.nv)
    mujoco.mj_differentiatePos(m, mjv, dt, q0, q1)
    assert np.allclose(mjv, v, atol=1e-4)


# ------------------------------------------------------------------ environment pieces (numpy)
@pytest.fixture(scope="module")
def ref(db, h, walk_clip):
    return envmod.build_reference(db, h, [walk_clip])


def _feats(ref, f):
    return {k: v[f].astype(np.float64) for k, v in ref.feats.items()}


def test_reward_in_range_and_highest_at_the_reference(h, ref):
    m = h.model()
    parent = m.body_parentid[1:] - 1
    ee = np.array([h.body_of(j) - 1 for j in h.end_effectors])
    cfg = envmod.EnvConfig()
    f = 20
    r, terms = envmod.reward_terms(np, cfg, _feats(ref, f), _feats(ref, f), ref.qvel[f], ref.qvel[f], parent, ee)
    assert r == pytest.approx(1.0, abs=1e-5) and terms["tracking_error"] < 1e-6
    for g in (f - 5, f + 10, f + 30):
        r2, t2 = envmod.reward_terms(np, cfg, _feats(ref, g), _feats(ref, f), ref.qvel[g], ref.qvel[f], parent, ee)
        assert 0.0 <= r2 < r and t2["tracking_error"] > 0.005


def test_termination_on_a_fall(ref):
    cfg = envmod.EnvConfig()
    sim = _feats(ref, 5)
    fallen, term = envmod.termination(cfg, sim, _feats(ref, 5), 0.0, True)
    assert not fallen and not term
    sim["pos"] = sim["pos"].copy()
    sim["pos"][:, 2] = 0.15                        # lying on the ground
    fallen, term = envmod.termination(cfg, sim, _feats(ref, 5), 0.0, True)
    assert fallen and term
    assert envmod.termination(cfg, _feats(ref, 5), _feats(ref, 5), 0.8, True)[1]   # deviated
    assert envmod.termination(cfg, _feats(ref, 5), _feats(ref, 5), 0.0, False)[1]  # not finite


def test_observation_of_state_and_reference_agree(h, ref):
    """The numpy observation of C MuJoCo data equals the one from the reference
    features (what training sees at a reset), and it is heading invariant."""
    m = h.model()
    d = mujoco.MjData(m)
    f = 30
    d.qpos[:], d.qvel[:] = ref.qpos[f], ref.qvel[f]
    mujoco.mj_forward(m, d)
    sim = envmod.body_features(np, d.xpos[1:], d.xquat[1:], d.cvel[1:], d.xipos[1:], m.body_mass[1:])
    fut = [_feats(ref, f + 1), _feats(ref, f + 4)]
    o1 = envmod.observation(np, sim, fut, h.hips_forward)
    o2 = envmod.observation(np, _feats(ref, f), fut, h.hips_forward)
    assert o1.shape == (1 + (m.nbody - 1) * (15 + 18),)
    assert np.abs(o1 - o2).max() < 1e-3
    # turn the whole world about up: the observation does not change
    turn = np.array([np.cos(0.4), 0, 0, np.sin(0.4)])

    def turned(x):
        t = dict(x)
        t["pos"] = envmod.qrot(np, np.broadcast_to(turn, x["pos"].shape[:-1] + (4,)), x["pos"])
        t["quat"] = envmod.qmul(np, np.broadcast_to(turn, x["quat"].shape), x["quat"])
        t["vel"] = envmod.qrot(np, np.broadcast_to(turn, x["vel"].shape[:-1] + (4,)), x["vel"])
        t["avel"] = envmod.qrot(np, np.broadcast_to(turn, x["avel"].shape[:-1] + (4,)), x["avel"])
        return t
    o3 = envmod.observation(np, turned(_feats(ref, f)), [turned(x) for x in fut], h.hips_forward)
    assert np.abs(o3 - o2).max() < 1e-4


def test_clip_selection_keeps_held_out_clips_apart(db):
    cfg = envmod.EnvConfig()
    train = envmod.select_clips(db, cfg)
    held = envmod.select_clips(db, envmod.EnvConfig(split="holdout"))
    assert train and held and not set(train) & set(held)
    names = {db.clip_names[c].removesuffix("_mirror") for c in held}
    assert not names & {db.clip_names[c].removesuffix("_mirror") for c in train}
    assert all(db.clip_tags[c]["content"] in ("walk", "run") for c in train + held)
    assert {db.clip_tags[c]["content"] for c in train} == {"walk", "run"}


# ------------------------------------------------------------------ clip packs
@pytest.fixture(scope="module")
def side_pack(db, tmp_path_factory):
    from controllers.physics import clips
    path = str(tmp_path_factory.mktemp("pack") / "side.clips.npz")
    clips.save(clips.pack(db, {"content": ["walk-left", "walk-right"]}, source="test"), path)
    return path


def test_clip_pack_holds_the_clips_and_the_same_split(db, side_pack):
    from controllers.physics import clips
    p = clips.load_motion(side_pack)
    assert isinstance(p, clips.ClipPack) and p.skeleton.signature() == db.skeleton.signature()
    assert p.config.hips == db.config.hips and p.num_frames == int(p.range_stops[-1])
    for i, name in enumerate(p.clip_names):
        c = db.clip_names.index(name)
        a, b = int(db.range_starts[c]), int(db.range_stops[c])
        assert np.array_equal(p.rotations[p.range_starts[i]:p.range_stops[i]], db.rotations[a:b])
        assert np.array_equal(p.positions[p.range_starts[i]:p.range_stops[i]], db.positions[a:b])
        assert p.clip_tags[i] == db.clip_tags[c]
    tags = envmod.tags_from_dict({"content": ["walk-left", "walk-right"]})
    for split in ("train", "holdout"):
        cfg = envmod.EnvConfig(tags=tags, split=split, holdout_every=5)
        assert ([p.clip_names[c] for c in envmod.select_clips(p, cfg)]
                == [db.clip_names[c] for c in envmod.select_clips(db, cfg)])
    # the reference built from the pack is the database's
    cfg = envmod.EnvConfig(tags=tags, split="all")
    r1 = envmod.build_reference(p, hum.from_database(db, every=6), envmod.select_clips(p, cfg)[:2])
    assert r1.clip_names == tuple(p.clip_names[:2])


def test_clip_pack_bad_files_are_named(db, side_pack, tmp_path):
    from controllers.physics import clips
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        clips.load(str(tmp_path / "nope.npz"))
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz: not a clip pack"):
        clips.load(str(other))
    cut = tmp_path / "cut.npz"
    with open(side_pack, "rb") as f:
        data = f.read()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        clips.load(str(cut))
    with pytest.raises(ValueError, match="no clip matches"):
        clips.pack(db, {"content": "cartwheel"})


# ------------------------------------------------------------------ the shipped policy
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "controllers", "physics",
                       "weights", "walk-run.npz")


def _track(db, clip, policy, ticks, humanoid=None):
    from anim.control import ControlInput
    from controllers.physics.runtime import PhysicsController, PhysicsRuntimeConfig
    c = PhysicsController(db, clip, policy, humanoid=humanoid,
                          config=PhysicsRuntimeConfig(loop=False, fall_reset_seconds=1e9))
    for i in range(ticks):
        c.step(ControlInput(), 1 / 60)
        if c.fallen:
            return i, c.mean_tracking_error_cm()
    return None, c.mean_tracking_error_cm()


def test_shipped_policy_walks_a_held_out_clip(db):
    """The shipped policy keeps the humanoid up on a walk it never saw, in C
    MuJoCo, where PD tracking of the same clip falls within a second."""
    from controllers.physics import ppo
    pol, h, ecfg, meta = ppo.load_policy(SHIPPED, db.skeleton)
    held = {db.clip_names[c] for c in envmod.select_clips(db, dataclasses.replace(ecfg, split="holdout"))}
    clip = "dataset-2_walk_normal_010"
    assert clip in held and meta["training"]["env_steps"] > 1e7
    fell, err = _track(db, clip, SHIPPED, 300)
    assert fell is None and err < 15.0
    fell_pd, _ = _track(db, clip, None, 300, humanoid=h)
    assert fell_pd is not None and fell_pd < 90


def test_physics_demo_headless_pushes_and_draws(db, tmp_path):
    """`anim demo --physics --headless`: a held-out clip with the shipped
    policy, two pushes, PNG frames, a contact sheet and a JSON report."""
    import glob
    import json
    if sys.platform.startswith("linux"):
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    from controllers.physics import cli
    r = cli.demo(db, headless=True, out_dir=str(tmp_path), seconds=1.5, width=320, height=180,
                 echo=lambda *a: None)
    pol, h, ecfg, meta = __import__("controllers.physics.ppo", fromlist=["x"]).load_policy(SHIPPED, db.skeleton)
    held = {db.clip_names[c] for c in envmod.select_clips(db, dataclasses.replace(ecfg, split="holdout"))}
    assert r["clip"] in held and os.path.samefile(r["policy"], SHIPPED) and r["pushes"] == 2
    assert len(glob.glob(str(tmp_path / "frame_0*.png"))) >= 4 and os.path.exists(r["contact_sheet"])
    with open(tmp_path / "physics.json") as f:
        assert json.load(f)["falls"] == r["falls"]


@pytest.mark.parametrize("name", ["walk-run", "live"])
def test_shipped_checkpoint_holds_the_shipped_policy(db, walk_clip, name):
    """walk-run.checkpoint.npz and live.checkpoint.npz (to train on from) are
    the runs that made walk-run.npz and live.npz."""
    from controllers.physics import networks, ppo
    shipped = SHIPPED.replace("walk-run.npz", name + ".npz")
    pol, h, ecfg, meta = ppo.load_policy(shipped, db.skeleton)
    env = envmod.TrackingEnv(h, envmod.build_reference(db, h, [walk_clip]), ecfg)     # (live's are streams)
    pcfg = ppo.PPOConfig(num_envs=2, network=networks.NetworkConfig(**{
        k: tuple(v) if isinstance(v, list) else v for k, v in meta["ppo"]["network"].items()}))
    ts, cmeta = ppo.load_checkpoint(shipped.replace(".npz", ".checkpoint.npz"), ppo.init_state(env, pcfg, 0))
    assert float(ts["env_steps"]) == meta["env_steps"] and cmeta["seed"] == meta["seed"]
    for (w, b), (w2, b2) in zip(ts["params"]["policy"], pol.layers):
        assert np.array_equal(np.asarray(w), w2) and np.array_equal(np.asarray(b), b2)


# ------------------------------------------------------------------ C MuJoCo integrates as MJX
def _saturated_state(h, ref):
    """A reference state whose PD targets are far off, so that servos hit
    their force limits (where C MuJoCo's implicitfast and MJX's differ)."""
    m = h.model()
    d = mujoco.MjData(m)
    d.qpos[:], d.qvel[:] = ref.qpos[30], ref.qvel[30]
    d.ctrl[:] = np.clip(ref.qpos[30, 7:] + 0.8 * np.sign(np.sin(np.arange(m.nu))), m.actuator_ctrlrange[:, 0],
                        m.actuator_ctrlrange[:, 1])
    return m, d


def test_matched_step_solves_mjx_implicit_damping(h, ref):
    """MjxMatchedStep's velocity update is MJX's implicitfast one,
    v' = v + h (M + h Kv)^-1 f with every servo's kd, also for saturated
    servos (which plain C implicitfast leaves explicit)."""
    from controllers.physics.runtime import MjxMatchedStep
    m, d = _saturated_state(h, ref)
    mujoco.mj_forward(m, d)
    assert (np.abs(d.actuator_force) >= m.actuator_forcerange[:, 1] - 1e-9).sum() >= 5   # saturated servos
    kv = np.zeros(m.nv)
    for i in range(m.nu):
        kv[m.jnt_dofadr[m.actuator_trnid[i, 0]]] -= m.actuator_biasprm[i, 2]
    full = np.zeros((m.nv, m.nv))
    mujoco.mj_fullM(m, d, full)
    qacc = np.linalg.solve(full + m.opt.timestep * np.diag(kv), d.qfrc_smooth + d.qfrc_constraint)
    expected = d.qvel + m.opt.timestep * qacc
    plain = mujoco.MjData(m)
    plain.qpos[:], plain.qvel[:], plain.ctrl[:] = d.qpos, d.qvel, d.ctrl
    mujoco.mj_step(m, plain)
    m2 = h.model()
    step = MjxMatchedStep(m2)
    assert step.active and np.allclose(step.kv, kv)
    d2 = mujoco.MjData(m2)
    d2.qpos[:], d2.qvel[:], d2.ctrl[:] = d.qpos, d.qvel, d.ctrl
    step(m2, d2)
    assert np.abs(d2.qvel - expected).max() < 1e-6
    assert np.abs(plain.qvel - expected).max() > 1.0      # what plain mj_step does instead


def test_env_reset_is_jittable_and_sets_the_reference(db, h, walk_clip):
    import jax
    env = envmod.TrackingEnv(h, envmod.build_reference(db, h, [walk_clip]), envmod.EnvConfig())
    s = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 8))
    assert s.obs.shape == (8, env.obs_size) and np.isfinite(np.asarray(s.obs)).all()
    f = np.asarray(s.info["frame"])
    assert np.allclose(np.asarray(s.data.qpos), env.ref_np.qpos[f])
    assert (f + env.cfg.min_frames_left < env.ref_np.stop[f]).all()


# ------------------------------------------------------------------ learning pieces (small jits)
def test_gae_bootstraps_truncation_but_not_termination():
    import jax.numpy as jnp

    from controllers.physics import losses
    r = jnp.ones((3, 2))
    v = jnp.zeros((3, 2))
    nv = jnp.full((3, 2), 10.0)
    term = jnp.array([[0, 0], [0, 0], [1, 0]], jnp.float32)
    done = jnp.array([[0, 0], [0, 0], [1, 1]], jnp.float32)   # env 1 truncated at the end
    adv, ret = losses.gae(r, v, nv, term, done, gamma=0.5, lam=1.0)
    assert float(adv[2, 0]) == pytest.approx(1.0)              # fall: no bootstrap
    assert float(adv[2, 1]) == pytest.approx(1.0 + 0.5 * 10)   # time limit: bootstrap V(final obs)
    assert float(adv[0, 1]) == pytest.approx(6 + 0.5 * 6 + 0.25 * 6)      # deltas 1 + 0.5 V' = 6


def test_ppo_loss_stays_finite_when_a_probability_ratio_would_overflow():
    """A sample whose log probability rose by more than 88 (exp overflows in
    float32) gives a finite loss and gradient, not NaN parameters."""
    import jax
    import jax.numpy as jnp

    from controllers.physics import losses, networks
    p = networks.init(jax.random.PRNGKey(0), 6, 3, networks.NetworkConfig(policy_hidden=(8,), value_hidden=(8,)))
    norm = networks.init_normalizer(6)
    batch = {"obs": jnp.ones((4, 6)), "action": jnp.zeros((4, 3)), "logp": jnp.array([-1e4, 0.0, 0.0, 0.0]),
             "advantage": jnp.array([-1.0, 1.0, 0.5, -0.5]), "target": jnp.zeros(4)}
    (loss, m), g = jax.value_and_grad(losses.ppo_loss, has_aux=True)(p, norm, batch, 0.2, 0.5, 0.0)
    assert np.isfinite(float(loss)) and all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(g))
    assert float(m["clip_fraction"]) >= 0.25


def test_silu_gradient_is_finite_far_below_zero():
    import jax
    import jax.numpy as jnp

    from controllers.physics import networks
    g = jax.grad(lambda x: jnp.sum(networks._silu(jnp, x)))(jnp.array([-200.0, -90.0, 0.0, 5.0]))
    assert np.isfinite(np.asarray(g)).all() and float(g[2]) == pytest.approx(0.5)
    assert np.allclose(networks._silu(np, np.array([-200.0, 1.0])), [0.0, 1 / (1 + np.exp(-1.0))])


def test_numpy_policy_matches_jax(tmp_path):
    import jax

    from controllers.physics import networks
    p = networks.init(jax.random.PRNGKey(1), 12, 5, networks.NetworkConfig(policy_hidden=(16, 16)))
    norm = networks.update_normalizer(networks.init_normalizer(12), jax.random.normal(jax.random.PRNGKey(2), (64, 12)) * 3)
    x = np.random.default_rng(0).normal(size=(4, 12)).astype(np.float32) * 3
    a = np.asarray(networks.policy_mean(p, networks.normalize(norm, x)))
    pol = networks.NumpyPolicy(p["policy"], norm["mean"], norm["var"])
    assert np.allclose(pol(x), a, atol=1e-5)


def test_training_curves_plot(tmp_path):
    import json

    from controllers.physics import train
    log = tmp_path / "log.jsonl"
    with open(log, "w") as f:
        for i in range(5):
            f.write(json.dumps({"env_steps": 100 * i, "reward": 0.1 * i, "episode_length": 3 + i,
                                "tracking_error": 0.2 - 0.01 * i, "steps_per_s": 500}) + "\n")
    png = train.plot(str(log), str(tmp_path / "c.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ runtime (C MuJoCo)
def test_runtime_controller_steps_without_nan(db, h, walk_clip):
    from anim.control import ControlInput, Controller
    from controllers.physics.runtime import PhysicsController
    c = PhysicsController(db, walk_clip, humanoid=h)
    assert isinstance(c, Controller)
    pose = c.reset()
    assert pose.info.tracking_error_cm == pytest.approx(0.0, abs=0.5)
    errs = []
    for i in range(40):
        pose = c.step(ControlInput(actions=frozenset({"push"}) if i == 20 else frozenset()), 1 / 60)
        assert np.isfinite(pose.rotations).all() and np.isfinite(pose.positions).all()
        errs.append(pose.info.tracking_error_cm)
    ghost = pose.info.ghost
    assert ghost.rotations.shape == pose.rotations.shape
    assert 0 < np.mean(errs[:20]) < 20          # PD alone tracks the first third of a second
    assert c.stats["pushes"] == 1


def test_compiled_pose_and_features_equal_the_numpy_ones(db, h, walk_clip):
    """The runtime's compiled qpos -> pose and body velocities give what the
    numpy functions (the ones training and the clip player use) give, on
    states of a real walk, pushed and perturbed off the captured path."""
    from anim.control import ControlInput
    from controllers.physics.runtime import PhysicsController
    c = PhysicsController(db, walk_clip, humanoid=h)
    c.reset()
    rng = np.random.default_rng(5)
    for i in range(30):
        c.step(ControlInput(actions=frozenset({"push"}) if i == 5 else frozenset()), 1 / 60)
        d = c.data
        want = envmod.body_features(np, d.xpos[1:], d.xquat[1:], d.cvel[1:], d.xipos[1:], c.mass)
        got = c._features()
        for k in want:
            assert np.allclose(got[k], want[k], rtol=0, atol=1e-9), k
        q = d.qpos.copy()
        if i % 3:
            q[3:7] = quat.normalize(rng.normal(size=4))       # any hips frame, any hinge angles
            q[7:] += rng.normal(0, 0.5, q.shape[0] - 7)
        want_r, want_p = convert.qpos_to_pose(h, q)
        got_r, got_p = convert.qpos_to_pose_fast(h, q)
        assert got_r.dtype == want_r.dtype and got_p.shape == want_p.shape
        assert np.abs(got_r - want_r).max() < 1e-6 and np.abs(got_p - want_p).max() < 1e-6
    assert c.stats["pushes"] == 1


def test_runtime_pose_error_leaves_out_the_roots_drift(db, h, walk_clip):
    """info['pose_error_cm'] compares the poses relative to their roots: a
    body shifted 1 m off the clip's path scores ~100 cm more joint error and
    the same pose error as the body on it."""
    import mujoco
    from anim.control import ControlInput
    from controllers.physics.runtime import PhysicsController
    on, off = (PhysicsController(db, walk_clip, humanoid=h) for _ in range(2))
    off.data.qpos[0] += 1.0
    mujoco.mj_forward(off.model, off.data)
    for _ in range(10):
        a, b = on.step(ControlInput(), 1 / 60), off.step(ControlInput(), 1 / 60)
    assert b.info.tracking_error_cm > a.info.tracking_error_cm + 90
    assert a.info.pose_error_cm > 0.1
    assert b.info.pose_error_cm == pytest.approx(a.info.pose_error_cm, abs=0.05)
    assert off.mean_pose_error_cm() == pytest.approx(on.mean_pose_error_cm(), abs=0.05)
    assert off.mean_tracking_error_cm() > on.mean_tracking_error_cm() + 90


# ------------------------------------------------------------------ C MuJoCo training environment
def test_batch_env_steps_as_the_runtime_and_scores_the_reference(db, h, ref, walk_clip):
    """cpu_env.BatchTrackingEnv: a reset sets the reference state exactly; a
    step is the runtime's C MuJoCo step (MjxMatchedStep) to the bit; reward,
    termination and the trajectory keys are the MJX rollout's."""
    from controllers.physics.cpu_env import BatchTrackingEnv
    from controllers.physics.runtime import MjxMatchedStep
    cfg = envmod.EnvConfig()
    e = BatchTrackingEnv(h, ref, cfg, num_envs=3, nthread=2, seed=1)
    f = e.frame.copy()
    assert np.allclose(e.qpos, ref.qpos[f]) and np.allclose(e.qvel, ref.qvel[f])
    fut = [{k: v[np.minimum(f + k2, ref.stop[f] - 1)].astype(np.float64) for k, v in ref.feats.items()}
           for k2 in cfg.future_frames]
    o = envmod.observation(np, {k: v[f].astype(np.float64) for k, v in ref.feats.items()}, fut, h.hips_forward)
    assert np.abs(e.obs - o).max() < 1e-4
    # the same state and action through the runtime's stepping, one simulation at a time
    m = h.model()
    step = MjxMatchedStep(m)
    d = mujoco.MjData(m)
    action = np.random.default_rng(0).normal(0, 0.2, (3, e.action_size)).astype(np.float32)
    expect = []
    for i in range(3):
        mujoco.mj_resetData(m, d)
        d.qpos[:], d.qvel[:] = ref.qpos[f[i]], ref.qvel[f[i]]
        d.ctrl[:] = np.clip(ref.qpos[f[i] + 1, 7:] + cfg.action_scale * action[i], e.lo, e.hi)
        for _ in range(e.substeps):
            step(m, d)
        expect.append(d.qpos.copy())
    out = e.step(action)
    assert np.array_equal(np.asarray(e.qpos)[out["done"] == 0], np.array(expect)[out["done"] == 0])
    assert set(out) >= {"reward", "done", "termination", "final_obs", "ended_return", "ended_length",
                        "m_tracking_error", "m_r_pose", "m_fallen"}
    assert (out["reward"] > 0.5).all() and (out["m_tracking_error"] < 0.05).all()
    # a simulation lying on the ground ends by a fall and starts again at a reference frame
    e.qpos[1, 2] = 0.15
    out = e.step(np.zeros((3, e.action_size), np.float32))
    assert out["done"][1] == 1 and out["termination"][1] == 1 and out["m_fallen"][1] == 1
    assert np.allclose(e.qpos[1], ref.qpos[e.frame[1]]) and e.steps[1] == 0


def test_batch_env_reanchors_the_reference_as_the_live_loop(db, h, ref):
    """max_root_distance: a body 1 m off its reference is not ended for the
    deviation; the reference is moved to within the bound, as the live
    loop's physics stage moves it. Without it the same body ends the episode."""
    import mujoco
    from controllers.physics.cpu_env import BatchTrackingEnv
    out = {}
    for bound in (0.0, 0.15):
        cfg = dataclasses.replace(envmod.EnvConfig(), max_root_distance=bound)
        e = BatchTrackingEnv(h, ref, cfg, num_envs=2, nthread=1, seed=3)
        e.qpos[0, 0] += 1.0                     # MuJoCo x: 1 m to the side
        out[bound] = e.step(np.zeros((2, e.action_size), np.float32))
        if bound:
            gap = e.xpos[0, 1, :2] - (e.feats["pos"][e.frame[0], 0, :2] + e.offset[0, :2])
            assert np.linalg.norm(gap) == pytest.approx(0.15, abs=0.02)
            assert e.offset[1, :2] == pytest.approx(0.0, abs=0.2)        # the body on its reference moves little
    assert out[0.0]["termination"][0] == 1 and out[0.0]["m_tracking_error"][0] > 0.9
    assert out[0.15]["termination"][0] == 0 and out[0.15]["m_tracking_error"][0] < 0.3
    assert out[0.15]["reward"][0] > out[0.0]["reward"][0]


def test_lag_charge_scales_the_reward_by_the_pull_back(h, ref):
    """w_lag: a body 1 m off its reference, whose reference is pulled back
    ~0.85 m in one step (51 m/s), keeps 1 - w_lag of its reward; the body on
    its reference (nothing pulled) keeps all of it; off (w_lag 0), the same
    states give the plain reward. r_lag is logged either way."""
    from controllers.physics.cpu_env import BatchTrackingEnv
    out = {}
    for w in (0.0, 0.5):
        cfg = dataclasses.replace(envmod.EnvConfig(), max_root_distance=0.15, w_lag=w)
        e = BatchTrackingEnv(h, ref, cfg, num_envs=2, nthread=1, seed=3)
        e.qpos[0, 0] += 1.0
        out[w] = e.step(np.zeros((2, e.action_size), np.float32))
    assert out[0.5]["m_r_lag"][0] < 1e-6 and out[0.5]["m_r_lag"][1] > 0.99
    assert out[0.5]["reward"][0] == pytest.approx(0.5 * out[0.0]["reward"][0], rel=1e-5)
    assert out[0.5]["reward"][1] == pytest.approx(out[0.0]["reward"][1], rel=1e-2)
    # the factor itself: the state on its reference (reward 1), 0.1 m/s of lag at w 0.5, k 20
    parent = h.model().body_parentid[1:] - 1
    ee = np.array([h.body_of(j) - 1 for j in h.end_effectors])
    cfg = dataclasses.replace(envmod.EnvConfig(), w_lag=0.5)
    f = _feats(ref, 20)
    r, t = envmod.reward_terms(np, cfg, f, f, ref.qvel[20], ref.qvel[20], parent, ee, pulled=0.1 / 60)
    assert t["r_lag"] == pytest.approx(np.exp(-0.2)) and r == pytest.approx(1 - 0.5 * (1 - np.exp(-0.2)), abs=1e-5)


def test_slip_charge_counts_only_feet_the_reference_plants(h, ref):
    """w_slip: the feet and toes of the humanoid are found by their class; a
    simulated body equal to its reference keeps its reward; sliding the
    planted feet 0.3 m/s sideways costs exactly the factor of the doc
    (one foot: exp(-10 x 0.09)), a swinging foot (the reference's moving
    faster than slip_speed) costs nothing."""
    feet = envmod.foot_bodies(h)
    names = [h.skeleton.names[j] for j in h.joints]
    assert len(feet) == 4 and all(("Foot" in names[b] or "Toe" in names[b]) for b in feet), [names[b] for b in feet]
    parent = h.model().body_parentid[1:] - 1
    ee = np.array([h.body_of(j) - 1 for j in h.end_effectors])
    cfg = dataclasses.replace(envmod.EnvConfig(), w_slip=0.3)
    f = _feats(ref, 20)
    r0, t0 = envmod.reward_terms(np, cfg, f, f, ref.qvel[20], ref.qvel[20], parent, ee, feet=feet)
    assert r0 == pytest.approx(1.0, abs=1e-5) and t0["r_slip"] == pytest.approx(1.0)
    speed = np.linalg.norm(f["vel"][feet, :2], axis=-1)
    planted = speed < cfg.slip_speed
    assert planted.any() and not planted.all(), speed          # a walk: one foot down, one swinging
    sim = dict(f, vel=f["vel"].copy())
    sim["vel"][feet, 0] += 0.3                                  # every foot body slides 0.3 m/s
    r, t = envmod.reward_terms(np, cfg, sim, f, ref.qvel[20], ref.qvel[20], parent, ee, feet=feet)
    want = np.exp(-10 * 0.09 * planted.sum())
    assert t["r_slip"] == pytest.approx(want, rel=1e-6) and r == pytest.approx(1 - 0.3 * (1 - want), abs=1e-5)
    off, _ = envmod.reward_terms(np, envmod.EnvConfig(), sim, f, ref.qvel[20], ref.qvel[20], parent, ee, feet=feet)
    assert off == pytest.approx(1.0, abs=1e-5)
    import jax.numpy as jnp                                     # the same in JAX (MJX training)
    jr, jt = envmod.reward_terms(jnp, cfg, {k: jnp.asarray(v) for k, v in sim.items()},
                                 {k: jnp.asarray(v) for k, v in f.items()}, jnp.asarray(ref.qvel[20]),
                                 jnp.asarray(ref.qvel[20]), parent, ee, pulled=jnp.asarray(0.002), feet=feet)
    nr, nt = envmod.reward_terms(np, cfg, sim, f, ref.qvel[20], ref.qvel[20], parent, ee, pulled=0.002, feet=feet)
    assert float(jr) == pytest.approx(float(nr), rel=1e-5) and float(jt["r_slip"]) == pytest.approx(nt["r_slip"])


def test_train_on_c_mujoco_engine(db, side_pack, tmp_path):
    """`anim train policy --engine mujoco`: rollouts on C MuJoCo threads, the
    JAX PPO update; log, checkpoint and a policy the runtime loads."""
    import json

    from controllers.physics import ppo, train
    out = tmp_path / "cpu"
    p = __import__("argparse").ArgumentParser()
    train.add_arguments(p)
    cfg = train.config_from_args(p.parse_args([
        "--db", side_pack, "--tag", "content=walk-left,walk-right", "--engine", "mujoco", "--num-envs", "8",
        "--unroll", "8", "--minibatches", "2", "--epochs", "1", "--hidden", "16,16", "--steps", "192",
        "--device", "cpu", "--out", str(out)]))
    m = train.train(cfg, echo=lambda *a: None)
    rows = [json.loads(x) for x in open(out / "log.jsonl")]
    assert [r["env_steps"] for r in rows] == [64, 128, 192] and np.isfinite(m["loss"]) and 0 < m["reward"] <= 1
    pol, h2, ecfg, meta = ppo.load_policy(str(out / "policy.npz"), db.skeleton)
    assert meta["env_steps"] == 192 and pol(np.zeros(h2.num_bodies * 33 + 1, np.float32)).shape == (h2.nu,)


def test_adaptive_learning_rate_follows_the_kl_and_resumes(db, side_pack, tmp_path):
    """--lr-schedule adaptive: the step is Adam's at the TrainState's rate
    (the same update as a constant rate there), divided by 1.5 after an
    update over 2 x --desired-kl, multiplied by 1.5 after one under half of
    it, and a resumed run goes on from the rate its checkpoint holds."""
    import json

    from controllers.physics import ppo, train

    def run(out, *extra):
        p = __import__("argparse").ArgumentParser()
        train.add_arguments(p)
        cfg = train.config_from_args(p.parse_args([
            "--db", side_pack, "--tag", "content=walk-left,walk-right", "--engine", "mujoco", "--num-envs", "8",
            "--unroll", "8", "--minibatches", "2", "--epochs", "1", "--hidden", "16,16", "--device", "cpu",
            "--out", str(out), "--lr", "1e-3", *extra]))
        train.train(cfg, echo=lambda *a: None)
        return [json.loads(x) for x in open(out / "log.jsonl")]

    down = run(tmp_path / "down", "--lr-schedule", "adaptive", "--desired-kl", "1e-12", "--steps", "192")
    assert all(r["approx_kl"] > 2e-12 for r in down)
    assert np.allclose([r["learning_rate"] for r in down], [1e-3, 1e-3 / 1.5, 1e-3 / 1.5 ** 2], rtol=1e-5)
    up = run(tmp_path / "up", "--lr-schedule", "adaptive", "--desired-kl", "1e6", "--steps", "192")
    assert np.allclose([r["learning_rate"] for r in up], [1e-3, 1.5e-3, 2.25e-3], rtol=1e-5)
    more = run(tmp_path / "down", "--lr-schedule", "adaptive", "--desired-kl", "1e-12", "--steps", "256", "--resume")
    assert len(more) == 4 and np.isclose(more[-1]["learning_rate"], 1e-3 / 1.5 ** 3, rtol=1e-5)
    # one iteration at the same rate: the adaptive step is the constant one
    const = run(tmp_path / "const", "--steps", "64")
    assert np.isclose(const[0]["learning_rate"], 1e-3)
    run(tmp_path / "one", "--lr-schedule", "adaptive", "--steps", "64")
    a = ppo.load_policy(str(tmp_path / "const" / "policy.npz"), db.skeleton)[0]
    b = ppo.load_policy(str(tmp_path / "one" / "policy.npz"), db.skeleton)[0]
    a0 = ppo.load_policy(str(tmp_path / "up" / "policy.npz"), db.skeleton)[0]
    assert not np.allclose(a.layers[0][0], a0.layers[0][0])           # three updates differ from one
    for (w, bias), (w2, b2) in zip(a.layers, b.layers):
        assert np.allclose(w, w2, atol=1e-6) and np.allclose(bias, b2, atol=1e-6)


# ------------------------------------------------------------------ MJX (slow: compiles the physics step)
@pytest.mark.slow
def test_env_step_shapes_reward_and_fall(db, h, walk_clip):
    import jax
    import jax.numpy as jnp
    env = envmod.TrackingEnv(h, envmod.build_reference(db, h, [walk_clip]), envmod.EnvConfig())
    step = jax.jit(jax.vmap(env.step))
    s = jax.vmap(env.reset_to)(jnp.array([10, 10]), jax.random.split(jax.random.PRNGKey(0), 2))
    # env 1 starts lying on the ground: a fall, not a truncation
    qpos = s.data.qpos.at[1, 2].set(0.15)
    s = s.replace(data=s.data.replace(qpos=qpos))
    n = step(s, jnp.zeros((2, env.action_size)))
    assert n.obs.shape == (2, env.obs_size) and np.isfinite(np.asarray(n.obs)).all()
    r = np.asarray(n.reward)
    assert ((r >= 0) & (r <= 1)).all()
    assert r[0] > 0.5 and r[0] > r[1]
    assert np.asarray(n.done).tolist() == [0.0, 1.0] and np.asarray(n.info["truncation"]).tolist() == [0.0, 0.0]
    assert np.asarray(n.metrics["tracking_error"])[0] < 0.05


@pytest.mark.slow
def test_mjx_env_reanchors_as_the_c_mujoco_env(h, ref):
    """max_root_distance in MJX: a body 1 m off its reference moves the
    reference (info['offset']) as the C MuJoCo environment moves it, the
    episode goes on, and reward and observation agree with C MuJoCo's; an
    auto-reset starts the offset again at zero."""
    import jax
    import jax.numpy as jnp
    from controllers.physics.cpu_env import BatchTrackingEnv
    cfg = dataclasses.replace(envmod.EnvConfig(), max_root_distance=0.15, w_lag=0.5, w_slip=0.3)
    env = envmod.TrackingEnv(h, ref, cfg)
    c = BatchTrackingEnv(h, ref, cfg, num_envs=1, nthread=1, seed=3)
    f = int(c.frame[0])
    s = env.reset_to(jnp.asarray(f), jax.random.PRNGKey(0))
    assert np.asarray(s.info["offset"]).tolist() == [0.0, 0.0, 0.0]
    s = s.replace(data=s.data.replace(qpos=s.data.qpos.at[0].add(1.0)))
    c.qpos[0, 0] += 1.0
    n = jax.jit(env.step)(s, jnp.zeros(env.action_size))
    out = c.step(np.zeros((1, c.action_size), np.float32))
    assert float(n.done) == 0.0 and out["done"][0] == 0
    assert np.linalg.norm(np.asarray(n.info["offset"])[:2]) > 0.8
    assert np.abs(np.asarray(n.info["offset"]) - c.offset[0]).max() < 5e-3
    assert float(n.reward) == pytest.approx(float(out["reward"][0]), abs=0.02)
    assert float(n.metrics["r_lag"]) == pytest.approx(float(out["m_r_lag"][0]), abs=1e-3)
    # the slip term is the squared foot velocity error in an exponent: the two engines' velocities after a
    # step (different contact solvers) move it more than the whole reward; the formula's own parity is
    # test_slip_charge_counts_only_feet_the_reference_plants's
    assert float(n.metrics["r_slip"]) == pytest.approx(float(out["m_r_slip"][0]), abs=0.05)
    own = 1 + ref.feats["pos"].shape[1] * 15          # the body's own state; then the moved reference's frames
    assert np.abs(np.asarray(n.obs)[own:] - out["final_obs"][0][own:]).max() < 0.02
    # the body on the ground: a fall, and the fresh episode's offset is zero
    n = n.replace(data=n.data.replace(qpos=n.data.qpos.at[2].set(0.15)))
    r = jax.jit(env.step_autoreset)(n, jnp.zeros(env.action_size))
    assert float(r.done) == 1.0 and np.asarray(r.info["offset"]).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.slow
def test_matched_step_agrees_with_mjx(h, ref):
    import jax

    from controllers.physics.runtime import MjxMatchedStep
    mjx = envmod.import_mjx()
    m, d = _saturated_state(h, ref)
    dx = jax.jit(mjx.step)(mjx.put_model(m, impl="jax"), mjx.put_data(m, d, impl="jax"))
    plain = mujoco.MjData(m)
    plain.qpos[:], plain.qvel[:], plain.ctrl[:] = d.qpos, d.qvel, d.ctrl
    mujoco.mj_step(m, plain)
    m2 = h.model()
    d2 = mujoco.MjData(m2)
    d2.qpos[:], d2.qvel[:], d2.ctrl[:] = d.qpos, d.qvel, d.ctrl
    MjxMatchedStep(m2)(m2, d2)
    assert np.abs(d2.qvel - np.asarray(dx.qvel)).max() < 0.05        # float32 MJX
    assert np.abs(plain.qvel - np.asarray(dx.qvel)).max() > 1.0


@pytest.mark.slow
def test_train_from_a_clip_pack_stops_at_the_time_limit(db, h, side_pack, tmp_path):
    """`anim train policy` on a clip pack with --time-limit: one iteration (the
    compile alone passes the limit), then checkpoint, policy and log."""
    import json

    from controllers.physics import ppo, train
    out = tmp_path / "run"
    args = ["--db", side_pack, "--tag", "content=walk-left,walk-right", "--num-envs", "4", "--unroll", "4",
            "--minibatches", "2", "--epochs", "1", "--hidden", "16,16", "--time-limit", "1", "--steps", "1e6",
            "--device", "cpu", "--out", str(out)]
    p = __import__("argparse").ArgumentParser()
    train.add_arguments(p)
    cfg = train.config_from_args(p.parse_args(args))
    assert cfg.ppo.num_minibatches == 2 and cfg.ppo.update_epochs == 1 and cfg.time_limit == 1
    train.train(cfg, echo=lambda *a: None)
    rows = [json.loads(x) for x in open(out / "log.jsonl")]
    assert len(rows) == 1 and rows[0]["env_steps"] == 16
    pol, h2, ecfg, meta = ppo.load_policy(str(out / "policy.npz"), db.skeleton)
    assert ecfg.tags == (("content", ("walk-left", "walk-right")),) and meta["env_steps"] == 16


@pytest.mark.slow
def test_tiny_ppo_run_is_finite(db, h, walk_clip, tmp_path):
    import jax

    """PPO on MJX with the AMP style reward (the C MuJoCo path: test_amp.py)."""
    import jax.numpy as jnp

    from controllers.physics import amp, networks, ppo
    ref = envmod.build_reference(db, h, [walk_clip])
    env = envmod.TrackingEnv(h, ref, envmod.EnvConfig(), amp=True)
    cfg = ppo.PPOConfig(num_envs=4, unroll_length=8, num_minibatches=2, update_epochs=2,
                        network=networks.NetworkConfig(policy_hidden=(32, 32), value_hidden=(32, 32)))
    acfg = amp.AMPConfig(hidden=(16, 16), batch_size=16, updates=2, replay_size=64)
    motion = amp.motion_data(ref, h)
    ts = ppo.init_state(env, cfg, seed=0, amp=(acfg, motion))
    f0 = np.asarray(ts["env_state"].info["frame"])
    it = ppo.make_iteration(env, cfg, acfg)
    md = (jnp.asarray(motion.frames), jnp.asarray(motion.starts))
    ms = []
    for _ in range(3):
        ts, m = it(ts, md)
        ms.append({k: float(v) for k, v in jax.device_get(m).items()})
    for m in ms:
        assert all(np.isfinite(v) for v in m.values()), m
        assert 0 <= m["reward"] <= 1 and 0 <= m["task_reward"] <= 1 and 0 <= m["style_reward"] <= 1
        assert 0 <= m["disc_accuracy"] <= 1
    assert int(ts["amp"]["replay_count"]) == 48            # 3 rollouts, each adding a quarter of the 64 slots
    # the MJX env's transition features start from the JAX features of the reset frame (numpy: test_amp.py)
    s1 = jax.vmap(env.reset_to)(jnp.asarray(f0), jax.random.split(jax.random.PRNGKey(0), 4))
    n1 = jax.vmap(env.step)(s1, jnp.zeros((4, env.action_size)))
    half = np.asarray(n1.info["amp_obs"])[:, :motion.frames.shape[1]]
    assert np.abs(half - motion.frames[f0]).max() < 1e-3
    assert float(ts["env_steps"]) == 3 * cfg.batch_size
    path = tmp_path / "policy.npz"
    ppo.save_policy(str(path), ts, h, env.cfg, cfg, seed=0)
    pol, h2, ecfg, meta = ppo.load_policy(str(path), db.skeleton)
    assert meta["seed"] == 0 and h2.xml == h.xml and ecfg == env.cfg
    obs = np.asarray(ts["env_state"].obs[0])
    ref_a = np.asarray(networks.policy_mean(ts["params"], networks.normalize(ts["norm"], obs)))
    assert np.allclose(pol(obs), ref_a, atol=1e-4)
    ck = tmp_path / "ck.npz"
    ppo.save_checkpoint(str(ck), ts, {"seed": 0})
    ts2, _ = ppo.load_checkpoint(str(ck), ppo.init_state(env, cfg, seed=1, amp=(acfg, motion)))
    assert int(ts2["iteration"]) == 3
    adam = lambda t: t["opt"][1][0]  # noqa: E731   (optax chain: clipping, then Adam's state)
    assert np.array_equal(np.asarray(adam(ts2).nu["log_std"]), np.asarray(adam(ts).nu["log_std"]))
    assert np.array_equal(np.asarray(ts2["amp"]["params"][0][0]), np.asarray(ts["amp"]["params"][0][0]))
    light = tmp_path / "light.npz"
    ppo.save_checkpoint(str(light), ts, {"seed": 0}, light=True)
    assert light.stat().st_size < 0.5 * ck.stat().st_size
    fresh = ppo.init_state(env, cfg, seed=1, amp=(acfg, motion))
    ts3, _ = ppo.load_checkpoint(str(light), fresh)
    assert int(ts3["iteration"]) == 3 and int(adam(ts3).count) == 0       # Adam starts afresh
    assert np.array_equal(np.asarray(ts3["params"]["policy"][0][0]), np.asarray(ts["params"]["policy"][0][0]))
    ts3, _ = it(ts3, md)                                                        # and trains on
    assert int(ts3["iteration"]) == 4


def test_runtime_reference_placement_matches_a_recompute(db, h, walk_clip):
    """Moving the clip's reference by a ground motion equals rebuilding it there."""
    from controllers.physics.runtime import PhysicsController
    c = PhysicsController(db, walk_clip, humanoid=h)
    root = (quat.from_angle_axis(1.1, convert.UP_KIN), np.array([2.0, 0.0, -1.0]))
    c._anchor(*root)
    qpos = convert.pose_to_qpos(h, c.ref_rot, c.ref_pos)
    qvel = convert.clip_qvel(h, qpos, 1 / 60)
    feats = envmod.compute_features(h, qpos, qvel)
    assert np.abs(c.ref_qpos - qpos).max() < 1e-4 and np.abs(c.ref_qvel - qvel).max() < 1e-3
    for k in feats:
        a, b = c.ref_feats[k], feats[k]
        if k == "quat":   # the same rotations, up to sign
            a, b = quat.abs(a), quat.abs(b)
        assert np.abs(a - b).max() < 1e-3, k
    _, g = quat.fk(c.ref_rot[0], c.ref_pos[0], db.skeleton.parents)
    assert np.allclose(g[0], root[1], atol=1e-5)


def test_compiled_conversions_equal_the_numpy_ones(db, h, walk_clip):
    """The runtime's compiled pose_to_qpos and observation give what the
    numpy functions (the ones training uses) give."""
    from controllers.physics import kernels
    rng = np.random.default_rng(4)
    idx = rng.integers(0, db.num_frames, 200)
    rot, pos = np.asarray(db.rotations[idx]), np.asarray(db.positions[idx])
    want = convert.pose_to_qpos(h, rot, pos)
    got = np.array([convert.pose_to_qpos_fast(h, rot[i], pos[i]) for i in range(len(idx))])
    assert np.abs(got[:, :7] - want[:, :7]).max() < 1e-9
    assert np.abs(convert._wrap(got[:, 7:] - want[:, 7:])).max() < 1e-9
    q = want[:6]
    qv = convert.clip_qvel(h, q, 1 / 60)
    f = envmod.compute_features(h, q, qv)
    fr = lambda k: {key: v[k] for key, v in f.items()}  # noqa: E731
    obs = envmod.observation(np, fr(0), [fr(1), fr(4)], h.hips_forward.astype(np.float64)).astype(np.float32)
    out = np.empty_like(obs)
    kernels.observation(f["pos"][0], f["quat"][0], f["vel"][0], f["avel"][0], np.stack([f["pos"][1], f["pos"][4]]),
                        np.stack([f["quat"][1], f["quat"][4]]), h.hips_forward.astype(np.float64), out)
    assert np.abs(out - obs).max() < 1e-5
