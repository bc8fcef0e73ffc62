"""Joint roles (anim.roles), conforming a folder (anim.conform) and `anim build-db
--data` on skeletons other than Bandai Namco's: small rigs the tests write (CMU's
31-joint names, a Mixamo prefix, Blender's .L/.R, Z up, inches, root channels
relative to the OFFSET, a T-pose frame 0) and the CMU takes on the Character
Creator rig in ../shared/mocap/other-skeletons (skipped when absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import _skeletons as S
import mocap_data
from anim import database, quat
from anim.bvh import read_bvh, read_bvh_header
from anim_app.cli import main
from anim.conform import ConformOptions, conform_clips
from anim.roles import RoleError, database_names, find_roles, load_joint_map, split_name

CMU_ICLONE = mocap_data.mocap_root() / "other-skeletons" / "cmu-iclone"


def test_names_are_split_into_side_and_body_for_each_convention():
    cases = {"mixamorig:LeftFoot": ("left", "foot"), "CC_Base_L_Foot": ("left", "foot"),
             "Foot_R": ("right", "foot"), "foot.L": ("left", "foot"), "l_foot": ("left", "foot"),
             "LHipJoint": ("left", "hipjoint"), "RightUpLeg": ("right", "upleg"), "LowerBack": ("", "lowerback"),
             "Spine1": ("", "spine"), "LThumb": ("left", "thumb")}
    for name, want in cases.items():
        assert split_name(name)[:2] == want, name


def test_cmu_31_joint_roles_skip_the_hip_joint_and_leave_fingers_out():
    skel, _ = S.make_skeleton("cmu")
    r = find_roles(skel)
    assert r.pair("upper_leg") == ("LeftUpLeg", "RightUpLeg")        # not LHipJoint, one joint off
    assert r.pair("lower_leg") == ("LeftLeg", "RightLeg")
    assert r.pair("foot") == ("LeftFoot", "RightFoot") and r.pair("toe") == ("LeftToeBase", "RightToeBase")
    assert r.pair("hand") == ("LeftHand", "RightHand") and r.pair("forearm") == ("LeftForeArm", "RightForeArm")
    assert r.pair("shoulder") == ("LeftShoulder", "RightShoulder")
    assert (r["hips"], r["chest"], r["spine"], r["neck"], r["head"]) == ("Hips", "Spine1", "Spine", "Neck", "Head")
    assert ("LHipJoint", "RHipJoint") in r.mirror and ("LeftHandIndex1", "RightHandIndex1") in r.mirror
    assert set(r.helpers) == {"LeftHandIndex1", "LeftHandThumb1", "RightHandIndex1", "RightHandThumb1"}


@pytest.mark.parametrize("naming,foot,hips", [("mixamo", "mixamorig:LeftFoot", "mixamorig:Hips"),
                                              ("blender", "foot.L", "hips"), ("bandai", "Foot_L", "Hips")])
def test_roles_of_other_conventions(naming, foot, hips):
    skel, _ = S.make_skeleton(naming, extras=False)
    r = find_roles(skel)
    assert r["left_foot"] == foot and r["hips"] == hips
    assert len(r.mirror) == 8 and not r.helpers


def test_bandai_roles_are_the_database_defaults():
    """The Bandai Namco rig's roles give exactly the names DatabaseConfig has
    always used, and the same mirror pairs as database.mirror_pairs."""
    skel, _ = S.make_skeleton("bandai", extras=False)
    names = database_names(find_roles(skel))
    cfg = database.DatabaseConfig()
    assert names["feet"] == cfg.feet and names["toes"] == cfg.toes and names["hips"] == cfg.hips
    assert names["facing_pairs"] == cfg.facing_pairs
    assert (database.mirror_pairs(skel.names, names["mirror_map"]) == database.mirror_pairs(skel.names)).all()


def test_a_missing_role_names_the_role_and_the_candidates():
    skel, _ = S.make_skeleton("cmu")
    names = [n.replace("LeftFoot", "LeftPaw") for n in skel.names]
    bad = type(skel)(names, skel.parents, skel.offsets)
    with pytest.raises(RoleError, match=r"'left_foot'.*--joint-map"):
        find_roles(bad)


def test_a_joint_map_overrides_roles_helpers_and_mirror(tmp_path):
    skel, _ = S.make_skeleton("cmu")
    names = [n.replace("LeftFoot", "LeftPaw") for n in skel.names]
    odd = type(skel)(names, skel.parents, skel.offsets)
    p = tmp_path / "map.toml"
    p.write_text('helpers = ["LHipJoint", "RHipJoint"]\nkeep = ["LeftHandThumb1"]\n[roles]\nleft_foot = "LeftPaw"\n')
    r = find_roles(odd, load_joint_map(p))
    assert r["left_foot"] == "LeftPaw" and r["left_lower_leg"] == "LeftLeg"
    assert "LHipJoint" in r.helpers and "LeftHandThumb1" not in r.helpers
    j = tmp_path / "map.json"
    j.write_text(json.dumps({"roles": {"left_foot": "NoSuchJoint"}}))
    with pytest.raises(RoleError, match=r"map.json.*NoSuchJoint"):
        find_roles(odd, load_joint_map(j))
    j.write_text('{"roles": {"left_fot": "LeftPaw"}}')
    with pytest.raises(ValueError, match=r"map.json: unknown roles \['left_fot'\]"):
        load_joint_map(j)
    j.write_text("{not json")
    with pytest.raises(ValueError, match=r"map.json: not a valid JSON joint map"):
        load_joint_map(j)


def test_conform_detects_z_up_inches_and_a_tpose_frame(tmp_path):
    paths = S.write_walks(tmp_path, "cmu", n=2, units=0.0254, up="z", tpose_first=True)
    clips = [read_bvh(p)[1] for p in paths]
    out, rep = conform_clips(clips)
    d = rep["files"]["cmu_walk_01"]
    assert (d["units"], d["up"], d["dropped_frames"], d["root_offset"]) == ("in", "z", 1, "absolute")
    skel, canon = S.make_skeleton("cmu")
    ref = S.walk_clip(skel, canon)
    _, g = quat.fk(out[0].rotations, out[0].positions, out[0].skeleton.parents)
    _, g_ref = quat.fk(ref.rotations[1:], ref.positions[1:], skel.parents)
    assert np.abs(g - g_ref).max() < 1e-3          # the walk as made, in metres, Y up
    # stated instead of detected: the same
    out2, rep2 = conform_clips(clips, ConformOptions(units="in", up="z", drop_frames=1))
    assert np.allclose(out2[0].positions, out[0].positions, atol=1e-5)
    with pytest.raises(ValueError, match="up axis 'w'"):
        conform_clips(clips, ConformOptions(up="w"))


def test_conform_reads_root_channels_relative_to_the_offset(tmp_path):
    paths = S.write_walks(tmp_path, "mixamo", n=1, units=0.01, root_relative=True)
    clip = read_bvh(paths[0])[1]
    _, g_raw = quat.fk(clip.rotations, clip.positions, clip.skeleton.parents)
    assert g_raw[:, :, 1].min() < -80                  # as written: the feet ~1 m under the floor (cm)
    out, rep = conform_clips([clip])
    assert rep["files"][clip.name]["root_offset"] == "relative"
    _, g = quat.fk(out[0].rotations, out[0].positions, out[0].skeleton.parents)
    assert -0.03 < g[:, :, 1].min() < 0.03


def test_build_db_data_folder_of_a_cmu_rig_with_no_flags(tmp_path, capsys, monkeypatch):
    """Plain `anim build-db --data DIR` on a Z-up, inch, CMU-named folder: no preset tags
    (it used to fail with 'no clip matches the tags'), roles found, units and axes
    recorded in the database, mirrored clips are the mirror images."""
    monkeypatch.setenv("ANIM_CACHE_DIR", str(tmp_path / "cache"))
    S.write_walks(tmp_path / "cmu", "cmu", n=3, units=0.0254, up="z")
    out = tmp_path / "cmu.animdb"
    assert main(["build-db", "--data", str(tmp_path / "cmu"), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "units in, up z" in text and "feet LeftFoot/RightFoot" in text
    db = database.load(str(out))
    assert db.num_clips == 6 and db.config.feet == ("LeftFoot", "RightFoot") and db.config.hips == "Hips"
    assert db.meta["import"]["summary"]["units"] == "in" and db.meta["roles"]["joints"]["left_toe"] == "LeftToeBase"
    g = db.global_positions(slice(0, int(db.range_stops[0])))
    assert abs(g[:, db.skeleton.index("Head"), 1].mean() - 1.6) < 0.05      # metres, Y up
    m = db.clip_names.index(db.clip_names[0] + "_mirror")
    gm = db.global_positions(slice(int(db.range_starts[m]), int(db.range_stops[m])))
    assert np.abs(g[:, db.mirror_joints] * [-1, 1, 1] - gm).max() < 1e-4
    assert db.contacts.any(axis=0).all()
    assert list(db.body_joints()) == [j for j, n in enumerate(db.skeleton.names) if "Index" not in n
                                      and "Thumb" not in n]
    assert main(["data", "list", "--data", str(tmp_path / "cmu")]) == 0      # the catalog remembers the import
    assert "as built (anim build-db --data): units in, up z, root_offset absolute" in capsys.readouterr().out


def test_tags_from_a_pattern_and_sidecars(tmp_path):
    paths = S.write_walks(tmp_path, "blender", n=2, extras=False)
    Path(paths[1]).with_name(Path(paths[1]).stem + ".tags.json").write_text('{"content": "walk", "style": "calm"}')
    ds = mocap_data.generic_dataset(tmp_path, tag_pattern=r"(?P<rig>[a-z]+)_walk_(?P<take>\d+)")
    t0, t1 = (ds.tags_for(p) for p in paths)
    assert t0["rig"] == "blender" and t0["take"] == "01" and "style" not in t0
    assert t1["style"] == "calm" and t1["take"] == "02"
    with pytest.raises(ValueError, match="no named group"):
        mocap_data.generic_dataset(tmp_path, tag_pattern=r"walk_\d+")
    Path(paths[0]).with_name(Path(paths[0]).stem + ".tags.json").write_text('["walk"]')
    with pytest.raises(ValueError, match=r"blender_walk_01.tags.json: tags must be a JSON object"):
        ds.tags_for(paths[0])


@pytest.mark.skipif(not CMU_ICLONE.is_dir(), reason="the CMU takes on the CC rig are not in ../shared/mocap")
def test_cmu_iclone_folder_two_roots_relative_root_and_helpers(tmp_path, monkeypatch):
    """Three of the real files (two rooted at RL_BoneRoot, Z-offset hips; one at
    CC_Base_Hip with root channels relative to its OFFSET) build one database: one
    skeleton, feet on the floor, the toes' planted height measured (~10 cm) and
    the contact threshold above it, 76 helper joints."""
    monkeypatch.setenv("ANIM_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "cmu"
    folder.mkdir()
    for name in ("002_01.bvh", "002_02.bvh", "002_04.bvh"):
        os.symlink(CMU_ICLONE / name, folder / name)
    assert read_bvh_header(folder / "002_01.bvh")[0].names[0] == "RL_BoneRoot"
    out = tmp_path / "cc.animdb"
    assert main(["build-db", "--data", str(folder), "--out", str(out), "--quiet"]) == 0
    db = database.load(str(out))
    files = db.meta["import"]["files"]
    assert files["002_01"]["rerooted_from"] == "RL_BoneRoot" and files["002_04"]["root_offset"] == "relative"
    assert db.skeleton.names[:2] == ("Simulation", "CC_Base_Hip") and db.num_clips == 6
    assert db.config.toes == ("CC_Base_L_ToeBase", "CC_Base_R_ToeBase")
    assert 0.07 < db.meta["planted_toe_height_m"] < 0.12
    assert db.config.contact_height > db.meta["planted_toe_height_m"]
    assert len(db.meta["roles"]["helpers"]) == 76
    g = db.global_positions(slice(0, None, 5))
    hips = g[:, db.skeleton.index("CC_Base_Hip"), 1]
    assert 0.85 < np.median(hips) < 1.15
    assert 0.5 < db.contacts.mean() < 0.95


def test_build_db_joint_map_flag_names_what_was_not_found(tmp_path, capsys, monkeypatch):
    """A rig whose left foot is called 'LeftPaw': build-db stops with an error
    naming the role and the flag; with --joint-map it builds, the paw as the foot."""
    monkeypatch.setenv("ANIM_CACHE_DIR", str(tmp_path / "cache"))
    for p in S.write_walks(tmp_path / "paw", "cmu", n=2, units=0.01):
        Path(p).write_text(Path(p).read_text().replace("LeftFoot", "LeftPaw"))
    out = tmp_path / "paw.animdb"
    assert main(["build-db", "--data", str(tmp_path / "paw"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'left_foot'" in err and "--joint-map" in err and not out.exists()
    jm = tmp_path / "paw.json"
    jm.write_text(json.dumps({"roles": {"left_foot": "LeftPaw"}}))
    assert main(["build-db", "--data", str(tmp_path / "paw"), "--out", str(out), "--joint-map", str(jm),
                 "--quiet"]) == 0
    db = database.load(str(out))
    assert db.config.feet == ("LeftPaw", "RightFoot")
    assert db.mirror_joints[db.skeleton.index("LeftPaw")] == db.skeleton.index("RightFoot")
