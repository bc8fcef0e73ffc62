"""The AMP style discriminator (controllers/physics/amp.py) and its place in
PPO: features in numpy and JAX, the gradient penalty, the rewards' ranges, a
discriminator that learns to tell real motion from shuffled frames on real
data, and `anim train policy --amp` on C MuJoCo with resume."""

import argparse
import json

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")
pytest.importorskip("optax")

from controllers.physics import amp, env as envmod, humanoid as hum  # noqa: E402


@pytest.fixture(scope="module")
def db():
    import _databases
    return _databases.physics_db()


@pytest.fixture(scope="module")
def h(db):
    return hum.from_database(db, every=6)


@pytest.fixture(scope="module")
def walks(db, h):
    """The training-split walks of the normal style (about 20 clips, mirrored)."""
    cfg = envmod.EnvConfig(tags=(("content", ("walk",)),))
    clips = envmod.select_clips(db, cfg)[:12]
    return envmod.build_reference(db, h, clips)


@pytest.fixture(scope="module")
def motion(walks, h):
    return amp.motion_data(walks, h)


def _dims(h):
    m = h.model()
    return np.asarray(m.body_parentid[1:] - 1, np.int32), np.array([h.body_of(j) - 1 for j in h.end_effectors])


def test_features_numpy_and_jax_agree(walks, h, motion):
    import jax.numpy as jnp
    parent, ee = _dims(h)
    f = np.arange(0, walks.num_frames, 37)
    feats = {k: v[f] for k, v in walks.feats.items()}
    a = amp.frame_features(np, {k: v.astype(np.float64) for k, v in feats.items()},
                           walks.qvel[f].astype(np.float64), parent, ee, np.asarray(h.hips_forward, np.float64))
    b = amp.frame_features(jnp, {k: jnp.asarray(v) for k, v in feats.items()}, jnp.asarray(walks.qvel[f]),
                           parent, ee, jnp.asarray(h.hips_forward, jnp.float32))
    m = h.model()
    assert a.shape == (f.size, amp.frame_size(m.nbody - 1, m.nv, len(ee)))
    assert np.abs(a - np.asarray(b)).max() < 1e-4 * max(1.0, np.abs(a).max())
    assert np.allclose(motion.frames[f], a, atol=1e-4)
    # a transition never spans two clips
    assert (walks.stop[motion.starts] > motion.starts + 1).all()
    assert motion.num_transitions == walks.num_frames - len(walks.clip_names)


def test_features_ignore_where_and_which_way_the_character_stands(walks, h):
    """Heading frame: turning and moving the whole world changes nothing."""
    parent, ee = _dims(h)
    f = np.arange(0, walks.num_frames, 53)
    feats = {k: v[f].astype(np.float64) for k, v in walks.feats.items()}
    turn = np.array([np.cos(0.7), 0, 0, np.sin(0.7)])

    def rot(x):
        return envmod.qrot(np, np.broadcast_to(turn, x.shape[:-1] + (4,)), x)
    moved = {"pos": rot(feats["pos"]) + np.array([3.0, -2.0, 0.0]),
             "quat": envmod.qmul(np, np.broadcast_to(turn, feats["quat"].shape), feats["quat"]),
             "vel": rot(feats["vel"]), "avel": rot(feats["avel"])}
    hf = np.asarray(h.hips_forward, np.float64)
    qv = walks.qvel[f].astype(np.float64)
    a = amp.frame_features(np, feats, qv, parent, ee, hf)
    b = amp.frame_features(np, moved, qv, parent, ee, hf)
    assert np.abs(a - b).max() < 1e-6


def test_gradient_penalty_matches_finite_differences():
    """E |grad D|^2 by autodiff against central differences of D (float32:
    steps of 1e-2, so the error is that of the differences, ~1e-4)."""
    import jax
    import jax.numpy as jnp

    from controllers.physics import networks
    params = networks.init_mlp(jax.random.PRNGKey(0), (7, 16, 16, 1), 1.0)
    x = np.random.default_rng(1).normal(size=(5, 7)).astype(np.float32)
    gp = float(amp.gradient_penalty(params, jnp.asarray(x)))
    d = jax.jit(lambda v: amp._d_normalized(params, v))
    eps = 1e-2
    sq = []
    for row in x:
        plus = np.asarray(d(jnp.asarray(row[None] + eps * np.eye(7, dtype=np.float32))))
        minus = np.asarray(d(jnp.asarray(row[None] - eps * np.eye(7, dtype=np.float32))))
        sq.append(np.sum(((plus - minus) / (2 * eps)) ** 2))
    assert gp > 0.1 and abs(gp - np.mean(sq)) < 2e-3 * gp
    # and a penalty that is not the squared gradient norm (e.g. the norm itself) fails this
    assert abs(np.sqrt(gp) - np.mean(sq)) > 2e-3 * gp


def test_style_rewards_are_bounded_and_grow_with_the_score():
    import jax.numpy as jnp
    params = [(jnp.ones((1, 1), jnp.float32), jnp.zeros((1,), jnp.float32))]       # D(x) = x
    norm = {"mean": jnp.zeros(1), "std": jnp.ones(1)}
    d = np.linspace(-50, 50, 2001, dtype=np.float32)[:, None]
    ls = np.asarray(amp.style_reward(params, norm, jnp.asarray(d), "lsgan"))
    bce = np.asarray(amp.style_reward(params, norm, jnp.asarray(d), "bce"))
    assert ls.min() >= 0 and ls.max() <= 1 and abs(ls[np.argmin(abs(d[:, 0] - 1))] - 1) < 1e-6
    assert ls[d[:, 0] <= -1].max() == 0                      # a sure fake earns nothing
    assert bce.min() >= 0 and bce.max() <= -np.log(amp.BCE_REWARD_FLOOR) + 1e-4
    assert np.all(np.diff(bce) >= -1e-6) and bce[-1] > 9 and bce[0] < 1e-6
    nd = amp.NumpyDiscriminator(params, np.zeros(1), np.ones(1), "bce")
    assert np.allclose(nd.reward(d), bce, atol=1e-4)


@pytest.mark.parametrize("objective", amp.OBJECTIVES)
def test_discriminator_tells_mocap_from_shuffled_frames(motion, objective):
    """Within 300 updates on real walks, real transitions against ones whose
    second frame is another random frame: > 90% accuracy on fresh samples, and
    the style reward ranks real above shuffled."""
    import jax
    import jax.numpy as jnp
    cfg = amp.AMPConfig(objective=objective, hidden=(64, 64), batch_size=128, updates=10, learning_rate=1e-3,
                        replay_size=4096)
    ds = amp.init(jax.random.PRNGKey(0), motion, cfg)
    update = jax.jit(amp.make_update(cfg))
    frames, starts = jnp.asarray(motion.frames), jnp.asarray(motion.starts)
    rng = np.random.default_rng(0)

    def shuffled(n):
        i = rng.choice(motion.starts, n)
        j = rng.integers(0, len(motion.frames), n)
        return np.concatenate([motion.frames[i], motion.frames[j]], -1)
    key = jax.random.PRNGKey(1)
    for _ in range(30):
        key, k = jax.random.split(key)
        ds, m = update(ds, frames, starts, jnp.asarray(shuffled(512)), k)
    assert int(ds["replay_count"]) > 0
    real = motion.transitions(rng.integers(0, motion.num_transitions, 1000))
    fake = shuffled(1000)
    dr = np.asarray(amp.logits(ds["params"], ds["norm"], jnp.asarray(real)))
    df = np.asarray(amp.logits(ds["params"], ds["norm"], jnp.asarray(fake)))
    acc = 0.5 * ((dr > 0).mean() + (df < 0).mean())
    assert acc > 0.9, acc
    rr = np.asarray(amp.style_reward(ds["params"], ds["norm"], jnp.asarray(real), objective))
    rf = np.asarray(amp.style_reward(ds["params"], ds["norm"], jnp.asarray(fake), objective))
    assert rr.mean() > rf.mean() + 0.3
    assert 0 <= float(m["disc_gp"]) < 10 and np.isfinite(float(m["disc_loss"]))


def test_batch_env_transition_features(db, h, walks):
    """C MuJoCo env: a step's amp_obs is (features of the state it started
    from, features of the simulated state it reached). MuJoCo's body arrays
    after a step are those computed at the start of its last 4 ms substep
    (the reward and the MJX env see the same): positions and rotations agree
    with a recompute from the final qpos within 1 cm, the hips' velocities
    (features 7-12, from cvel) within what one substep's contact forces change."""
    from controllers.physics.cpu_env import BatchTrackingEnv
    parent, ee = _dims(h)
    e = BatchTrackingEnv(h, walks, envmod.EnvConfig(), num_envs=3, nthread=2, seed=2, amp=True)
    f = e.frame.copy()
    out = e.step(np.zeros((3, e.action_size), np.float32))
    n = out["amp_obs"].shape[1] // 2
    start = amp.frame_features(np, {k: v[f].astype(np.float64) for k, v in walks.feats.items()},
                               walks.qvel[f].astype(np.float64), parent, ee, np.asarray(h.hips_forward))
    assert np.abs(out["amp_obs"][:, :n] - start).max() < 1e-4
    sim = envmod.compute_features(h, np.asarray(e.qpos, np.float64), np.asarray(e.qvel, np.float64))
    reached = amp.frame_features(np, sim, np.asarray(e.qvel, np.float64), parent, ee, np.asarray(h.hips_forward))
    live = out["done"] == 0
    diff = np.abs(out["amp_obs"][live, n:] - reached[live]).max(0)
    root_vel = np.zeros(n, bool)
    root_vel[7:13] = True
    assert diff[~root_vel].max() < 1e-2 and diff[root_vel].max() < 0.2
    assert np.abs(out["amp_obs"][live, n:] - start[live]).max() > 1.0       # it did move
    # the next step starts from where this one ended
    out2 = e.step(np.zeros((3, e.action_size), np.float32))
    assert np.allclose(out2["amp_obs"][live, :n], out["amp_obs"][live, n:])


@pytest.fixture(scope="module")
def side_pack(db, tmp_path_factory):
    from controllers.physics import clips
    path = str(tmp_path_factory.mktemp("pack") / "side.clips.npz")
    clips.save(clips.pack(db, {"content": ["walk-left", "walk-right"]}, source="test"), path)
    return path


def test_train_with_amp_on_c_mujoco_and_resume(db, side_pack, tmp_path):
    """`anim train policy --amp`: the log shows the discriminator, the
    checkpoint holds it and its normalizer, a resumed run goes on with them."""
    from controllers.physics import ppo, train
    out = tmp_path / "amp"
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    args = ["--db", side_pack, "--tag", "content=walk-left,walk-right", "--engine", "mujoco", "--num-envs", "8",
            "--unroll", "8", "--minibatches", "2", "--epochs", "1", "--hidden", "16,16", "--device", "cpu",
            "--out", str(out), "--amp", "--amp-objective", "bce", "--lr-schedule", "linear",
            "--amp-lr", "5e-5", "--amp-updates", "2"]
    cfg = train.config_from_args(p.parse_args(args + ["--steps", "128"]))
    assert cfg.amp.objective == "bce" and cfg.amp.gp == 5.0
    assert cfg.amp.learning_rate == 5e-5 and cfg.amp.updates == 2
    lines = []
    train.train(cfg, echo=lines.append)
    assert any("AMP (bce, gradient penalty 5" in x for x in lines)
    assert any("disc acc" in x for x in lines if x.startswith("it "))
    rows = [json.loads(x) for x in open(out / "log.jsonl")]
    assert all({"disc_accuracy", "style_reward", "disc_gp", "task_reward"} <= set(r) for r in rows)
    assert all(0 <= r["disc_accuracy"] <= 1 and 0 <= r["style_reward"] <= 9.3 for r in rows)
    z = np.load(out / "checkpoint.npz")
    keys = [k for k in z.files if k.startswith("['amp']")]
    assert any("['norm']['mean']" in k for k in keys) and any("['params']" in k for k in keys)
    assert not any("replay" in k for k in keys)
    w0 = z["['amp']['params'][0][0]"].copy()
    cfg2 = train.config_from_args(p.parse_args(args + ["--steps", "192"]))
    lines = []
    train.train(cfg2, resume=True, echo=lines.append)
    assert any("resumed" in x for x in lines) and not any("fresh" in x for x in lines), lines
    z2 = np.load(out / "checkpoint.npz")
    assert z2["['amp']['params'][0][0]"].shape == w0.shape and not np.array_equal(z2["['amp']['params'][0][0]"], w0)
    assert [json.loads(x)["env_steps"] for x in open(out / "log.jsonl")] == [64, 128, 192]
    _, _, _, meta = ppo.load_policy(str(out / "policy.npz"), db.skeleton)
    assert meta["amp"]["objective"] == "bce" and meta["amp"]["updates"] == 2


def test_bad_style_weight_objective_and_lag_are_refused():
    from controllers.physics import train
    p = argparse.ArgumentParser()
    train.add_arguments(p)
    with pytest.raises(SystemExit, match="style-weight"):
        train.config_from_args(p.parse_args(["--amp", "--style-weight", "1.5"]))
    for bad in (["--amp-lr", "0"], ["--amp-updates", "0"]):
        with pytest.raises(SystemExit, match="amp-lr"):
            train.config_from_args(p.parse_args(["--amp", *bad]))
    # the lag charge needs the re-anchoring it charges
    with pytest.raises(SystemExit, match="max-root-distance"):
        train.config_from_args(p.parse_args(["--lag-weight", "0.5"]))
    with pytest.raises(SystemExit, match="lag-weight"):
        train.config_from_args(p.parse_args(["--lag-weight", "2", "--max-root-distance", "0.15"]))
    cfg = train.config_from_args(p.parse_args(["--lag-weight", "0.5", "--max-root-distance", "0.15"]))
    assert cfg.env.w_lag == 0.5 and cfg.env.k_lag == 20.0
    with pytest.raises(ValueError, match="objective"):
        amp.AMPConfig(objective="wgan")
