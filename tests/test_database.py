"""The motion database, built from real clips of ../shared/mocap."""

import os

import numpy as np
import pytest

import mocap_data
from anim import database, quat
from anim.skeleton import Clip, Skeleton

pytestmark = pytest.mark.skipif(not any(True for _ in mocap_data.datasets()),
                                reason="the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")

NAMES = ["dataset-2_walk_normal_001", "dataset-2_run_normal_001", "dataset-2_walk-turn-left_normal_001"]


@pytest.fixture(scope="module")
def clips():
    ds = mocap_data.datasets()
    out = mocap_data.load_clips(ds, tags={"content": ["walk", "run", "walk-turn-left"], "style": "normal",
                                          "take": "001", "dataset": "bandai-namco-2"}, progress=False)
    assert sorted(c.name for c in out) == sorted(NAMES)
    return sorted(out, key=lambda c: NAMES.index(c.name))


@pytest.fixture(scope="module")
def db(clips):
    return database.build_database(clips, progress=False)


def _clip_slice(db, name):
    i = db.clip_names.index(name)
    return slice(int(db.range_starts[i]), int(db.range_stops[i]))


def test_resampled_to_60hz_and_ranges(db, clips):
    assert db.config.fps == 60
    n_src = [c.num_frames for c in clips]
    lengths = (db.range_stops - db.range_starts).tolist()
    assert lengths[:3] == [2 * n - 1 for n in n_src]      # 30 -> 60 Hz keeps both ends
    assert lengths[3:] == lengths[:3]                       # mirrored copies
    assert db.range_starts[0] == 0 and db.range_stops[-1] == db.num_frames
    assert (db.range_starts[1:] == db.range_stops[:-1]).all()


def test_simulation_bone_and_reroot_keep_the_body_in_place(db, clips):
    clip = clips[0]
    sl = _clip_slice(db, clip.name)
    root_rot, root_pos = db.rotations[sl, 0], db.positions[sl, 0]
    assert np.abs(root_pos[:, 1]).max() < 1e-6                    # on the ground
    assert np.abs(root_rot[:, [1, 3]]).max() < 1e-6               # rotation about +Y only
    # even frames of the 60 Hz clip are the source frames: world joint positions agree
    _, g_src = quat.fk(clip.rotations, clip.positions, clip.skeleton.parents)
    g_db = db.global_positions(sl)[::2]
    assert np.abs(g_db[:, 1:] - g_src[:, 1:]).max() < 1e-3
    # the simulation bone stays under the hips
    hips = db.skeleton.index("Hips")
    assert np.abs(g_db[:, hips, [0, 2]] - root_pos[::2][:, [0, 2]]).max() < 0.15


def test_walk_goes_forward_and_turn_left_turns_left(db):
    v = db.root_velocity_character()
    walk = db.tag_mask(content="walk", mirrored=False)
    assert 0.8 < v[walk, 2].mean() < 1.6 and abs(v[walk, 0].mean()) < 0.2
    run = db.tag_mask(content="run", mirrored=False)
    assert v[run, 2].mean() > 2.0
    turn = db.tag_mask(content="walk-turn-left", mirrored=False)
    assert db.angular_velocities[turn, 0, 1].mean() > 0.1            # +Y: turning left
    mturn = db.tag_mask(content="walk-turn-left", mirrored=True)
    assert db.angular_velocities[mturn, 0, 1].mean() < -0.1           # its mirror turns right


def test_mirror_is_the_reflected_motion_in_the_skeletons_own_conventions(db, clips):
    names = db.skeleton.names
    m = db.mirror_joints
    assert names[m[names.index("Foot_L")]] == "Foot_R" and names[m[names.index("Hips")]] == "Hips"
    for clip in clips:
        a, b = _clip_slice(db, clip.name), _clip_slice(db, clip.name + "_mirror")
        g, gm = db.global_positions(a), db.global_positions(b)
        assert np.abs(gm - g[:, m] * np.array([-1.0, 1, 1])).max() < 1e-4
        # mirrored local positions land on the skeleton's own offsets (same conventions)
        assert np.abs(db.positions[b, 2:] - db.skeleton.offsets[2:]).max() < 1e-3
    # mirrored left foot height pattern equals the original right foot's
    assert db.contacts[_clip_slice(db, NAMES[0] + "_mirror"), 0].tolist() == \
        db.contacts[_clip_slice(db, NAMES[0]), 1].tolist()


def test_contacts_alternate_in_a_walk(db):
    c = db.contacts[_clip_slice(db, NAMES[0])]
    assert 0.25 < c.mean() < 0.75
    # both feet change state several times (steps), never a flicker shorter than 3 frames
    for f in range(2):
        changes = np.flatnonzero(np.diff(c[:, f].astype(int)))
        assert len(changes) >= 4
        assert np.diff(changes).min() >= 3


def test_features_layout_normalization_and_valid_frames(db):
    assert db.features.shape == (db.num_frames, 27)
    assert np.isfinite(db.features).all()
    horizon = max(db.config.trajectory_frames)
    for a, b in zip(db.range_starts, db.range_stops):
        assert db.valid[a:b - horizon].all() and not db.valid[b - horizon:b].any()
    # group-wise normalization: each group has zero mean and std ~ weight
    raw = db.features * db.features_scale + db.features_offset
    assert np.abs(db.features.mean(0)).max() < 1e-3
    for name, w in db.config.weights:
        sl = db.feature_slice(name)
        assert db.features[:, sl].std(0).mean() == pytest.approx(w, rel=1e-3)
    # trajectory features are the future root positions in character space
    i = int(db.range_starts[0]) + 10
    k = db.config.trajectory_frames[0]
    expect = quat.inv_rot(db.rotations[i, 0], db.positions[i + k, 0] - db.positions[i, 0])[[0, 2]]
    assert np.allclose(raw[i, db.feature_slice("trajectory_positions")][:2], expect, atol=1e-4)
    # direction features are unit vectors
    d = raw[:, db.feature_slice("trajectory_directions")].reshape(-1, 3, 2)
    assert np.allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-3)


def test_velocities_agree_with_positions(db):
    sl = _clip_slice(db, NAMES[1])
    pos = db.positions[sl]
    vel = db.velocities[sl]
    assert np.allclose(vel[1:], (pos[1:] - pos[:-1]) * 60.0, atol=1e-3)


def test_save_load_roundtrip_and_errors(db, tmp_path):
    path = str(tmp_path / "db.animdb")
    database.save(db, path)
    loaded = database.load(path)
    for k in ("rotations", "positions", "features", "valid", "contacts", "range_starts"):
        assert np.array_equal(np.asarray(getattr(loaded, k)), getattr(db, k)), k
    assert loaded.clip_names == db.clip_names and loaded.clip_tags == db.clip_tags
    assert loaded.config == db.config
    assert loaded.skeleton.signature() == db.skeleton.signature()
    # a database for another skeleton is refused
    other = Skeleton(("a", "b"), [-1, 0], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="skeleton"):
        database.load(path, skeleton=other)
    # truncated file
    trunc = str(tmp_path / "trunc.animdb")
    with open(path, "rb") as f, open(trunc, "wb") as g:
        g.write(f.read()[: os.path.getsize(path) // 2])
    with pytest.raises(ValueError, match="trunc.animdb.*truncated"):
        database.load(trunc)
    # not a database
    bad = tmp_path / "bad.animdb"
    bad.write_bytes(b"hello world")
    with pytest.raises(ValueError, match="bad.animdb"):
        database.load(str(bad))
    with pytest.raises(FileNotFoundError, match="missing.animdb"):
        database.load(str(tmp_path / "missing.animdb"))


def test_tag_masks(db):
    walk = db.tag_mask(content="walk")
    run = db.tag_mask(content="run")
    both = db.tag_mask(content=["walk", "run"])
    assert not (walk & run).any() and np.array_equal(both, walk | run)
    assert db.tag_mask(mirrored=True).sum() == db.num_frames // 2
    assert db.tag_values("content") == ["run", "walk", "walk-turn-left"]


def test_bad_input_is_refused(clips):
    c = clips[0]
    rot = c.rotations.copy()
    rot[3, 2, 0] = np.nan
    bad = Clip(c.skeleton, rot, c.positions, c.fps, source="nan.bvh")
    with pytest.raises(ValueError, match="nan.bvh.*NaN"):
        database.build_database([bad], progress=False)
    with pytest.raises(ValueError, match="no clips"):
        database.build_database([], progress=False)


def test_mirror_needs_left_right_pairs_or_a_map():
    skel = Skeleton(("Root", "Hips", "A", "B", "Foot_L", "Toes_L", "Foot_R", "Toes_R"),
                    [-1, 0, 1, 1, 2, 4, 3, 6],
                    [[0, 0, 0], [0, 1, 0], [0.1, -0.1, 0], [-0.1, -0.1, 0], [0, -0.8, 0], [0, -0.1, 0.1],
                     [0, -0.8, 0], [0, -0.1, 0.1]])
    m = database.mirror_pairs(skel.names, mirror_map=(("A", "B"),))
    assert [skel.names[i] for i in m] == ["Root", "Hips", "B", "A", "Foot_R", "Toes_R", "Foot_L", "Toes_L"]
