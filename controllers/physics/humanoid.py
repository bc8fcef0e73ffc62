"""An MJCF humanoid built from any `Skeleton` (and, best, the corpus it animates).

One body per joint (the simulation bone is skipped: the hips body floats on a
free joint), three hinges per body, capsules sized from the bones, boxes for
the feet and toes, segment masses and inertias from de Leva (1996), position
(PD) actuators with DeepMimic's gains, joint ranges measured from the corpus.

Frames. Every body keeps the local axes of its kinematic joint: a body's
position in its parent is the joint offset and its frame is
``parent * rest * Rx Ry Rz`` (the three hinges, in the joint's own Euler
order), so local rotations, offsets, geoms and inertias are the same numbers
as in the database. The rest pose (`rest_rotations`) is the corpus' mean local
rotation per joint (the skeleton's identity pose of a BVH is often not a human
pose at all: in the Bandai-Namco files every bone lies along +X); hinge angles
are measured from it, so its zero is the middle of each joint's motion and the
measured ranges are tight intervals around 0. Only the floating root meets the
world, through `convert`.

Published tables used (documented at each constant):
* segment mass fractions, centre-of-mass positions and radii of gyration:
  de Leva, P. (1996), "Adjustments to Zatsiorsky-Seluyanov's segment inertia
  parameters", J. Biomechanics 29(9), male values;
* PD gains and torque limits: DeepMimic's humanoid3d (Peng et al. 2018), a
  45 kg character, scaled here by total_mass / 45.

`build(skeleton, stats, config) -> Humanoid`; `from_database(db) -> Humanoid`.
The `Humanoid` carries its MJCF text and everything `convert` needs, and saves
to / loads from a versioned JSON dict (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from anim import quat
from anim.skeleton import Skeleton

from . import convert

FORMAT = "anim-humanoid"
FORMAT_VERSION = 1
EULER_ORDERS = ("xyz", "xzy", "yxz", "yzx", "zxy", "zyx")
AXES = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}

# de Leva (1996), male: mass (% body mass), CoM from the proximal joint (% of
# segment length), radii of gyration (% of length: two transverse, longitudinal).
# Trunk = upper (UPT) + middle (MPT) + lower (LPT); 'head' includes the neck.
DE_LEVA = {
    "head":     (6.94, 59.76, (36.2, 37.6, 31.2)),
    "upper_trunk": (15.96, 29.99, (71.6, 45.4, 65.9)),
    "mid_trunk": (16.33, 45.02, (48.2, 38.3, 46.8)),
    "pelvis":   (11.17, 61.15, (61.5, 55.1, 58.7)),
    "upper_arm": (2.71, 57.72, (28.5, 26.9, 15.8)),
    "forearm":  (1.62, 45.74, (27.6, 26.5, 12.1)),
    "hand":     (0.61, 79.00, (28.8, 23.5, 18.4)),
    "thigh":    (14.16, 40.95, (32.9, 32.9, 14.9)),
    "shank":    (4.33, 44.59, (25.5, 24.9, 10.3)),
    "foot":     (1.37, 44.15, (25.7, 24.5, 12.4)),
}
# How a table segment is shared between the bodies of a skeleton:
#   head -> neck 25 %, head 75 %; foot -> foot 80 %, toes 20 %;
#   each clavicle takes 5 % of the upper trunk (the scapula-clavicle complex).
NECK_SHARE, TOES_SHARE, CLAVICLE_SHARE = 0.25, 0.20, 0.05

# DeepMimic humanoid3d (45 kg): kp (N m/rad), kd (N m s/rad), torque limit (N m).
# Classes without a DeepMimic joint take the nearest one, scaled (noted).
DEEPMIMIC_45KG = {
    "mid_trunk": (1000.0, 100.0, 200.0),    # chest
    "upper_trunk": (1000.0, 100.0, 200.0),  # chest
    "neck": (100.0, 10.0, 50.0),
    "head": (100.0, 10.0, 50.0),            # neck
    "clavicle": (400.0, 40.0, 100.0),       # shoulder
    "upper_arm": (400.0, 40.0, 100.0),      # shoulder
    "forearm": (300.0, 30.0, 60.0),         # elbow
    "hand": (100.0, 10.0, 30.0),            # wrist (fixed in DeepMimic): elbow / 3
    "thigh": (500.0, 50.0, 200.0),          # hip
    "shank": (500.0, 50.0, 150.0),          # knee
    "foot": (400.0, 40.0, 90.0),            # ankle
    "toes": (100.0, 10.0, 30.0),            # ankle / 4 (toes are rigid in DeepMimic)
}

# Capsule radii for a 1.75 m person (scaled by stature / 1.75), metres.
RADII_175 = {"pelvis": 0.10, "mid_trunk": 0.11, "upper_trunk": 0.11, "neck": 0.05, "head": 0.095,
             "clavicle": 0.04, "upper_arm": 0.045, "forearm": 0.038, "hand": 0.035,
             "thigh": 0.07, "shank": 0.05}
FOOT_WIDTH_175 = 0.09
# Lengths of leaf segments (no child joint to end at), as a fraction of stature.
LEAF_LENGTH = {"head": 0.13, "hand": 0.06, "toes": 0.035, "foot": 0.08, "forearm": 0.14,
               "shank": 0.24, "neck": 0.06, "upper_arm": 0.17, "thigh": 0.24}


@dataclass(frozen=True)
class HumanoidConfig:
    """How the MJCF is built. Defaults suit 60 Hz tracking with 4 substeps.

    total_mass:     kg, shared out by de Leva's table.
    timestep:       physics step (s); 1/240 = 4 substeps per 60 Hz frame (PD
                    tracking of a walk is as good as with 6; 2 goes unstable).
    range_margin:   added to both ends of each measured hinge range (rad).
    armature:       rotor inertia per hinge (kg m^2); keeps light links (hands,
                    toes) stable under stiff PD at this timestep.
    gain_scale:     multiplies every kp and kd (torque limits are kept).
    self_collision: 'none' (ground only), 'legs' (one leg against the other),
                    'all' (every pair but neighbours: parent, child, siblings
                    and grandparent are excluded).
    ground_contacts: 'all' bodies touch the ground, or only 'feet' (feet and
                    toes; cheaper in MJX, enough while episodes end on a fall).
    friction:       sliding friction with the ground.
    iterations, ls_iterations: constraint solver iterations (MJX speed).
    """

    total_mass: float = 70.0
    timestep: float = 1.0 / 240.0
    range_margin: float = 0.17
    armature: float = 0.02
    gain_scale: float = 1.0
    self_collision: str = "legs"
    ground_contacts: str = "all"
    friction: float = 1.0
    iterations: int = 4
    ls_iterations: int = 8


@dataclass(frozen=True)
class CorpusStats:
    """What the corpus says about its skeleton (see `measure`).

    rest_rotations: [J, 4] mean local rotation of each joint.
    root_position:  [3] mean local position of the root joint (hips).
    euler_orders:   per joint, the Euler order whose middle angle stays
                    furthest from gimbal lock over the corpus.
    ranges:         [J, 3, 2] min/max of each hinge angle (rad, in that order).
    soles:          {joint: (up [3] in the joint frame, height above ground)} of
                    foot and toe joints when flat on the ground.
    """

    rest_rotations: np.ndarray
    root_position: np.ndarray
    euler_orders: tuple
    ranges: np.ndarray
    soles: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Humanoid:
    """The MJCF and the map between its qpos and database poses.

    skeleton: the database skeleton (joint 0 = simulation bone).
    root:     kinematic index of the floating root joint (the hips).
    joints:   kinematic joint index of each MJCF body, in body order (body 1 =
              root); body b >= 2 has hinges qpos[7+3(b-2) : 10+3(b-2)].
    """

    xml: str
    skeleton: Skeleton
    root: int
    joints: tuple
    rest_rotations: np.ndarray
    rest_root_position: np.ndarray
    euler_orders: tuple
    segments: tuple                  # class of each kinematic joint ('' if no body)
    masses: np.ndarray               # [nb] kg per body
    kp: np.ndarray                   # [nu] per actuator
    kd: np.ndarray
    torque_limits: np.ndarray
    ranges: np.ndarray               # [nu, 2] hinge ranges (rad)
    hips_forward: np.ndarray         # [3] character forward (+Z) in the hips frame at rest
    end_effectors: tuple             # kinematic joints: hands, feet, head
    config: HumanoidConfig = HumanoidConfig()

    @property
    def num_bodies(self) -> int:
        return len(self.joints)

    @property
    def nq(self) -> int:
        return 7 + 3 * (len(self.joints) - 1)

    @property
    def nv(self) -> int:
        return 6 + 3 * (len(self.joints) - 1)

    @property
    def nu(self) -> int:
        return 3 * (len(self.joints) - 1)

    def body_of(self, joint: int) -> int:
        """MJCF body id (1-based; 0 is the world) of a kinematic joint."""
        return self.joints.index(int(joint)) + 1

    def model(self):
        import mujoco
        return mujoco.MjModel.from_xml_string(self.xml)

    def rest_pose(self):
        """(rotations [J,4], positions [J,3]) of the model's zero pose."""
        pos = self.skeleton.offsets.copy()
        pos[self.root] = self.rest_root_position
        return self.rest_rotations.copy(), pos

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": FORMAT_VERSION, "xml": self.xml,
                "skeleton": {"names": list(self.skeleton.names), "parents": self.skeleton.parents.tolist(),
                             "offsets": self.skeleton.offsets.tolist(), "signature": self.skeleton.signature()},
                "root": self.root, "joints": list(self.joints),
                "rest_rotations": self.rest_rotations.tolist(),
                "rest_root_position": self.rest_root_position.tolist(),
                "euler_orders": list(self.euler_orders), "segments": list(self.segments),
                "masses": self.masses.tolist(), "kp": self.kp.tolist(), "kd": self.kd.tolist(),
                "torque_limits": self.torque_limits.tolist(), "ranges": self.ranges.tolist(),
                "hips_forward": self.hips_forward.tolist(), "end_effectors": list(self.end_effectors),
                "config": asdict(self.config)}

    @staticmethod
    def from_dict(d: dict, skeleton: Skeleton | None = None) -> "Humanoid":
        if d.get("format") != FORMAT or d.get("version") != FORMAT_VERSION:
            raise ValueError(f"humanoid format {d.get('format')} v{d.get('version')}; this code reads "
                             f"{FORMAT} v{FORMAT_VERSION}: rebuild the model / retrain the policy")
        sk = d["skeleton"]
        skel = Skeleton(tuple(sk["names"]), np.array(sk["parents"]), np.array(sk["offsets"], np.float32))
        if skeleton is not None and skeleton.signature() != skel.signature():
            raise ValueError(f"humanoid built for skeleton {skel.names}, not for {skeleton.names}")
        f32 = lambda k: np.array(d[k], np.float32)  # noqa: E731
        return Humanoid(xml=d["xml"], skeleton=skel, root=int(d["root"]), joints=tuple(d["joints"]),
                        rest_rotations=f32("rest_rotations"), rest_root_position=f32("rest_root_position"),
                        euler_orders=tuple(d["euler_orders"]), segments=tuple(d["segments"]),
                        masses=f32("masses"), kp=f32("kp"), kd=f32("kd"), torque_limits=f32("torque_limits"),
                        ranges=f32("ranges"), hips_forward=f32("hips_forward"),
                        end_effectors=tuple(d["end_effectors"]), config=HumanoidConfig(**d["config"]))


# ====================================================================== corpus
def _mean_quat(q: np.ndarray) -> np.ndarray:
    m = np.einsum("ni,nj->ij", q.astype(np.float64), q.astype(np.float64))
    v = np.linalg.eigh(m)[1][:, -1]
    return v if v[0] >= 0 else -v


def measure(db, root: str | None = None, every: int = 3, roles=None) -> CorpusStats:
    """Rest pose, Euler orders, hinge ranges and foot soles from a database
    (every `every`-th frame: the whole corpus in a second or two). roles: the
    skeleton's anim.roles.Roles (segments from roles, not from the topology)."""
    skel = db.skeleton
    rot = np.asarray(db.rotations[::every], np.float64)
    pos = np.asarray(db.positions[::every], np.float64)
    j_count = skel.num_joints
    root_j = skel.index(root or db.config.hips)
    rest = np.stack([_mean_quat(rot[:, j]) for j in range(j_count)])
    rest[0] = (1, 0, 0, 0)
    orders, ranges = [], np.zeros((j_count, 3, 2))
    for j in range(j_count):
        r = quat.mul(quat.inv(rest[j]), rot[:, j])
        best = None
        for o in EULER_ORDERS:
            e = quat.to_euler(r, o)
            score = float(np.abs(e[:, 1]).max())
            if best is None or score < best[0]:
                best = (score, o, e)
        orders.append(best[1])
        ranges[j, :, 0] = best[2].min(axis=0)
        ranges[j, :, 1] = best[2].max(axis=0)
    stats = CorpusStats(rest.astype(np.float32), pos[:, root_j].mean(axis=0).astype(np.float32),
                        tuple(orders), ranges.astype(np.float32))
    grot, gpos = quat.fk(rot, pos, skel.parents)
    cls = classify_roles(skel, root_j, roles) if roles is not None else classify(skel, root_j,
                                                                                 rest.astype(np.float32))
    soles = {}
    for j, c in enumerate(cls):
        if c not in ("foot", "toes"):
            continue
        y = gpos[:, j, 1]
        h = float(np.percentile(y, 2))
        flat = y < h + 0.01
        up = quat.inv_rot(grot[flat, j], convert.UP_KIN)
        up = up.mean(axis=0)
        soles[j] = (up / np.linalg.norm(up), max(h, 0.0))
    return CorpusStats(stats.rest_rotations, stats.root_position, stats.euler_orders, stats.ranges, soles)


# ====================================================================== segments
def classify(skel: Skeleton, root: int, rest: np.ndarray) -> list:
    """Segment class of every joint from the hierarchy and the rest pose:
    chains from the root that end below it are legs (thigh, shank, foot,
    toes...), the highest chain is the spine; at the spine's first branching
    joint the highest branch is neck and head, the others are arms (...,
    clavicle, upper_arm, forearm, hand). Joints above the root get ''."""
    _, gpos = quat.fk(rest, skel.offsets, skel.parents)
    n = skel.num_joints
    kids = [skel.children(j) for j in range(n)]

    def subtree(j):
        out = [j]
        for c in kids[j]:
            out += subtree(c)
        return out

    def chain(j):
        out = [j]
        while len(kids[out[-1]]) == 1:
            out.append(kids[out[-1]][0])
        return out

    cls = [""] * n
    cls[root] = "pelvis"
    up = 1
    spine, legs = [], []
    for c in kids[root]:   # a leg hangs below the root and never rises above it
        heights = [gpos[s, up] for s in subtree(c)]
        is_leg = max(heights) <= gpos[root, up] + 0.05 and min(heights) < gpos[root, up] - 0.2
        (legs if is_leg else spine).append(c)
    for c in legs:
        ch = chain(c)
        names = ["thigh", "shank", "foot"] + ["toes"] * max(0, len(ch) - 3)
        for j, k in zip(ch, names):
            cls[j] = k
        for s in subtree(c):
            cls[s] = cls[s] or "toes"
    if spine:
        top = max(spine, key=lambda c: max(gpos[s, up] for s in subtree(c)))
        for c in spine:
            if c != top:
                for s in subtree(c):
                    cls[s] = "mid_trunk"
        trunk = chain(top)
        branch = trunk[-1]
        for j in trunk[:-1]:
            cls[j] = "mid_trunk"
        cls[branch] = "upper_trunk"
        if len(trunk) == 1:
            cls[branch] = "upper_trunk"
        bk = kids[branch]
        if bk:
            neck = max(bk, key=lambda c: max(gpos[s, up] for s in subtree(c)))
            nch = chain(neck)
            for j in nch[:-1]:
                cls[j] = "neck"
            cls[nch[-1]] = "head"
            for s in subtree(neck):
                cls[s] = cls[s] or "head"
            for c in bk:
                if c == neck:
                    continue
                ach = chain(c)
                names = ["hand", "forearm", "upper_arm"]
                for i, j in enumerate(reversed(ach)):
                    cls[j] = names[i] if i < 3 else "clavicle"
                for s in subtree(c):
                    cls[s] = cls[s] or "hand"
    for j in subtree(root):
        cls[j] = cls[j] or "mid_trunk"
    return cls


def classify_roles(skel: Skeleton, root: int, roles) -> list:
    """Segment class of every joint from its joint roles (anim.roles): upper leg
    thigh, lower leg shank, foot, toe (and what is below it) toes; shoulder
    clavicle, upper arm, forearm, hand (and below); neck, head (and below);
    chest upper_trunk; the root and the joints between it and the thighs (CMU's
    LHipJoint) pelvis; the rest of the trunk mid_trunk. Helper joints get ''
    (no body: they merge into their parent). Joints above the root get ''."""
    n = skel.num_joints
    idx = {r: skel.names.index(j) for r, j in roles.joints.items()}
    helpers = set(roles.helpers)
    cls = [""] * n

    def path(a, b):
        """Joints strictly between ancestor a and b."""
        out, p = [], int(skel.parents[b])
        while p >= 0 and p != a:
            out.append(p)
            p = int(skel.parents[p])
        return out

    for j in range(n):
        if (j == root or _under(skel.parents, j, root)) and skel.names[j] not in helpers:
            cls[j] = "mid_trunk"
    cls[root] = "pelvis"
    order = [("chest", "upper_trunk"), ("head", "head")]
    for side in ("left", "right"):
        order += [(f"{side}_{r}", c) for r, c in (("upper_leg", "thigh"), ("lower_leg", "shank"), ("foot", "foot"),
                                                   ("toe", "toes"), ("shoulder", "clavicle"),
                                                   ("upper_arm", "upper_arm"), ("forearm", "forearm"),
                                                   ("hand", "hand"))]
    for role, c in order:
        j = idx.get(role)
        if j is None or not cls[j]:
            continue
        if c == "clavicle" and j == idx.get(role.replace("shoulder", "upper_arm")):
            continue
        cls[j] = c
        if c in ("toes", "hand", "head"):            # what is below an end joint (and no helper)
            for k in range(n):
                if cls[k] and _under(skel.parents, k, j):
                    cls[k] = c
    for side in ("left", "right"):
        if f"{side}_upper_leg" in idx:
            for k in path(root, idx[f"{side}_upper_leg"]):
                if cls[k]:
                    cls[k] = "pelvis"
    if "head" in idx and "chest" in idx:
        for k in path(idx["chest"], idx["head"]):
            if cls[k]:
                cls[k] = "neck"
    return cls


def _masses(cls: list, total: float) -> dict:
    """kg per joint from de Leva's fractions, split between bodies of a class."""
    count = {}
    for c in cls:
        if c:
            count[c] = count.get(c, 0) + 1
    n_clav = count.get("clavicle", 0)
    frac = {}
    for j, c in enumerate(cls):
        if not c:
            continue
        if c == "clavicle":
            f = DE_LEVA["upper_trunk"][0] * CLAVICLE_SHARE
        elif c == "upper_trunk":
            f = DE_LEVA["upper_trunk"][0] * (1 - CLAVICLE_SHARE * n_clav) / count[c]
        elif c == "neck":
            f = DE_LEVA["head"][0] * NECK_SHARE / count[c]
        elif c == "head":
            f = DE_LEVA["head"][0] * ((1 - NECK_SHARE) if count.get("neck") else 1.0) / count[c]
        elif c == "toes":
            legs = max(1, count.get("foot", 1))
            f = DE_LEVA["foot"][0] * TOES_SHARE * legs / count[c]
        elif c == "foot":
            f = DE_LEVA["foot"][0] * ((1 - TOES_SHARE) if count.get("toes") else 1.0)
        elif c in ("mid_trunk", "pelvis"):
            f = DE_LEVA[c][0] / count[c]
        else:
            f = DE_LEVA[c][0] * (2.0 / max(count[c], 1)) if count[c] > 2 else DE_LEVA[c][0]
        frac[j] = f
    s = sum(frac.values())
    return {j: total * f / s for j, f in frac.items()}


def _fmt(v) -> str:
    return " ".join(f"{float(x):.6g}" for x in np.ravel(v))


def _frame(x_axis, z_hint):
    """Quaternion of a frame whose x axis is `x_axis` and z as close to z_hint."""
    x = x_axis / max(np.linalg.norm(x_axis), 1e-9)
    z = z_hint - np.dot(z_hint, x) * x
    if np.linalg.norm(z) < 1e-6:
        z = np.cross(x, [1.0, 0, 0]) if abs(x[0]) < 0.9 else np.cross(x, [0, 1.0, 0])
    z = z / np.linalg.norm(z)
    y = np.cross(z, x)
    return quat.from_matrix(np.stack([x, y, z], axis=-1))


# ====================================================================== build
def build(skeleton: Skeleton, stats: CorpusStats | None = None, config: HumanoidConfig = HumanoidConfig(),
          root: str | int | None = None, roles=None) -> Humanoid:
    """The MJCF humanoid of `skeleton`. Without `stats` the rest pose is the
    skeleton's identity pose, orders 'xyz' and ranges +-pi. root: the floating
    body's joint (default: the hips role). roles: anim.roles.Roles of the
    skeleton (default: found from its names); segments come from them and
    helper joints get no body (they keep their pose from the database when
    the body is converted back: convert.qpos_to_pose)."""
    skel = skeleton
    n = skel.num_joints
    if roles is None:
        from anim.roles import find_roles
        roles = find_roles(skel)
    if root is None:
        root = roles["hips"]
    root_j = skel.index(root) if isinstance(root, str) else int(root)
    if stats is None:
        stats = CorpusStats(quat.identity((n,)), skel.offsets[root_j].copy(), ("xyz",) * n,
                            np.tile(np.array([[-np.pi, np.pi]], np.float32), (n, 3, 1)))
    rest = np.asarray(stats.rest_rotations, np.float64)
    rest_pos = skel.offsets.astype(np.float64).copy()
    rest_pos[root_j] = stats.root_position
    grot, gpos = quat.fk(rest, rest_pos, skel.parents)
    cls = classify_roles(skel, root_j, roles)

    # bodies: the root's subtree but its helper joints, parents before children
    joints = [j for j in range(n) if cls[j] and (j == root_j or _under(skel.parents, j, root_j))]
    kids = {j: [c for c in skel.children(j) if c in joints] for j in joints}
    # stature from the hip joint's height (0.53 of stature, Drillis & Contini 1966);
    # joint extents miss the head top and the soles
    hip_h = float(gpos[root_j, 1] - min(gpos[joints, 1].min(), 0.0))
    stature = hip_h / 0.53 if hip_h > 0.2 else max(float(np.ptp(gpos[joints, 1])) * 1.15, 0.5)
    s175 = stature / 1.75
    masses = _masses([c if j in joints else "" for j, c in enumerate(cls)], config.total_mass)
    mscale = config.total_mass / 45.0
    cfg = config

    soles = dict(stats.soles)
    for j in joints:   # no corpus: the foot's rest pose stands flat on the ground
        if cls[j] in ("foot", "toes") and j not in soles:
            soles[j] = (quat.inv_rot(grot[j], convert.UP_KIN), max(float(gpos[j, 1] - gpos[joints, 1].min()), 0.03))

    def bone(j):
        """(direction, length) of a body's main bone in its own frame."""
        ks = kids[j]
        if ks:
            # the child furthest away (for a branching trunk joint: the chain child)
            if cls[j] in ("pelvis", "upper_trunk", "mid_trunk"):
                trunk_kids = [c for c in ks if cls[c] in ("mid_trunk", "upper_trunk", "neck", "head")]
                ks = trunk_kids or ks
            c = max(ks, key=lambda c: np.linalg.norm(skel.offsets[c]))
            off = skel.offsets[c].astype(np.float64)
            return off / max(np.linalg.norm(off), 1e-9), float(np.linalg.norm(off))
        # a leaf continues its parent's bone
        d = quat.inv_rot(rest[j], skel.offsets[j].astype(np.float64))
        d = d / max(np.linalg.norm(d), 1e-9) if np.linalg.norm(d) > 1e-9 else np.array([0.0, 1.0, 0.0])
        return d, LEAF_LENGTH.get(cls[j], 0.05) * stature

    lines = []
    cfg_solver = f'iterations="{cfg.iterations}" ls_iterations="{cfg.ls_iterations}"'
    lines.append(f'<mujoco model="humanoid-{len(joints)}">')
    lines.append('  <compiler angle="radian" autolimits="true"/>')
    lines.append(f'  <option timestep="{cfg.timestep:.8g}" integrator="implicitfast" {cfg_solver}/>')
    lines.append('  <default>')
    lines.append(f'    <joint type="hinge" armature="{cfg.armature}" damping="0" limited="true"/>')
    lines.append(f'    <geom condim="3" friction="{cfg.friction} 0.005 0.0001" density="0" '
                 f'solref="0.015 1" rgba="0.75 0.6 0.5 1"/>')
    lines.append('    <position ctrllimited="true" forcelimited="true"/>')
    lines.append('  </default>')
    lines.append('  <worldbody>')
    lines.append('    <light pos="0 0 4" dir="0 0 -1" directional="true"/>')
    lines.append('    <geom name="ground" type="plane" size="0 0 0.05" contype="1" conaffinity="0" '
                 'rgba="0.45 0.5 0.55 1"/>')

    legs = [j for j in joints if cls[j] == "thigh"]
    leg_of = {}
    for i, t in enumerate(legs):
        for j in joints:
            if _under(skel.parents, j, t) or j == t:
                leg_of[j] = i
    actuators, kp, kd, tl, ranges = [], [], [], [], []
    body_mass = []

    def bits(j):
        floor = 1 if (cfg.ground_contacts == "all" or cls[j] in ("foot", "toes")) else 0
        if cfg.self_collision == "all":
            return 2, floor | 2
        if cfg.self_collision == "legs" and j in leg_of and len(legs) == 2:
            me = 2 << leg_of[j]
            other = 2 << (1 - leg_of[j])
            return me, floor | other
        return 0, floor

    def emit(j, depth):
        ind = "  " * depth
        name = skel.names[j]
        if j == root_j:
            p = convert.vec_to_mj(gpos[j])
            q = quat.abs(convert.frame_to_mj(grot[j]))
            lines.append(f'{ind}<body name="{name}" pos="{_fmt(p)}" quat="{_fmt(q)}">')
            lines.append(f'{ind}  <freejoint name="root"/>')
        else:
            lines.append(f'{ind}<body name="{name}" pos="{_fmt(skel.offsets[j])}" quat="{_fmt(rest[j])}">')
            order = stats.euler_orders[j]
            g = DEEPMIMIC_45KG.get(cls[j], DEEPMIMIC_45KG["hand"])
            for a in range(3):
                lo, hi = stats.ranges[j, a]
                lo = max(float(lo) - cfg.range_margin, -np.pi)
                hi = min(float(hi) + cfg.range_margin, np.pi)
                jn = f"{name}_{order[a]}"
                lines.append(f'{ind}  <joint name="{jn}" axis="{_fmt(AXES[order[a]])}" range="{lo:.5f} {hi:.5f}"/>')
                k_p, k_d, t_l = g[0] * mscale * cfg.gain_scale, g[1] * mscale * cfg.gain_scale, g[2] * mscale
                actuators.append(f'    <position name="{jn}" joint="{jn}" kp="{k_p:.5g}" kv="{k_d:.5g}" '
                                 f'ctrlrange="{lo:.5f} {hi:.5f}" forcerange="{-t_l:.5g} {t_l:.5g}"/>')
                kp.append(k_p)
                kd.append(k_d)
                tl.append(t_l)
                ranges.append((lo, hi))
        # inertia: de Leva CoM and radii of gyration along the main bone
        c = cls[j]
        m = masses[j]
        body_mass.append(m)
        d, length = bone(j)
        table = DE_LEVA.get({"clavicle": "upper_arm", "neck": "head", "toes": "foot"}.get(c, c), DE_LEVA["mid_trunk"])
        com = d * length * table[1] / 100.0
        rg = np.array(table[2]) / 100.0 * length
        inertia = m * np.array([rg[2] ** 2, rg[0] ** 2, rg[1] ** 2])   # x = along the bone
        iq = _frame(d, quat.inv_rot(grot[j], convert.UP_KIN))
        lines.append(f'{ind}  <inertial pos="{_fmt(com)}" quat="{_fmt(iq)}" mass="{m:.5g}" '
                     f'diaginertia="{_fmt(np.maximum(inertia, 1e-5))}"/>')
        ct, ca = bits(j)
        gattr = f'contype="{ct}" conaffinity="{ca}"'
        r = RADII_175.get(c, 0.04) * s175
        if c in ("foot", "toes"):
            up, h = soles[j]
            up = np.asarray(up, np.float64)
            fwd = d - np.dot(d, up) * up
            fwd = fwd / max(np.linalg.norm(fwd), 1e-9)
            if c == "foot":
                heel = 0.06 * s175
                front = float(np.dot(d * length, fwd)) if kids[j] else length
            else:
                heel = 0.0
                front = LEAF_LENGTH["toes"] * stature
            top = max(h, 0.03)
            center = fwd * (front - heel) / 2 - up * (h - top / 2)
            size = np.array([(front + heel) / 2, FOOT_WIDTH_175 * s175 / 2, top / 2])
            bq = _frame(fwd, up)
            lines.append(f'{ind}  <geom name="{name}" type="box" pos="{_fmt(center)}" quat="{_fmt(bq)}" '
                         f'size="{_fmt(size)}" {gattr}/>')
        elif c == "head":
            lines.append(f'{ind}  <geom name="{name}" type="sphere" pos="{_fmt(d * length * 0.5)}" '
                         f'size="{r:.4g}" {gattr}/>')
        else:
            ends = []
            if kids[j]:
                ks = kids[j]
                if c in ("pelvis", "upper_trunk", "mid_trunk"):
                    chain_k = [k for k in ks if cls[k] in ("mid_trunk", "upper_trunk", "neck", "head")]
                    side = [k for k in ks if k not in chain_k]
                    ends += [(np.zeros(3), skel.offsets[k]) for k in chain_k]
                    if len(side) >= 2:   # across the pelvis / the shoulder girdle
                        a, b = max(((a, b) for a in side for b in side if a < b),
                                   key=lambda ab: np.linalg.norm(skel.offsets[ab[0]] - skel.offsets[ab[1]]))
                        ends.append((skel.offsets[a], skel.offsets[b]))
                    if not ends:
                        ends.append((np.zeros(3), d * length))
                else:
                    ends += [(np.zeros(3), skel.offsets[k]) for k in ks]
            else:
                ends.append((np.zeros(3), d * length))
            for i, (a, b) in enumerate(ends):
                a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
                if np.linalg.norm(b - a) < 1e-3:
                    lines.append(f'{ind}  <geom name="{name}_{i}" type="sphere" pos="{_fmt(a)}" size="{r:.4g}" '
                                 f'{gattr}/>')
                else:
                    # shorten by the radius at a child joint so neighbours barely overlap
                    lines.append(f'{ind}  <geom name="{name}_{i}" type="capsule" fromto="{_fmt(a)} {_fmt(b)}" '
                                 f'size="{r:.4g}" {gattr}/>')
        for k in kids[j]:
            emit(k, depth + 1)
        lines.append(f'{ind}</body>')

    emit(root_j, 2)
    lines.append('  </worldbody>')
    # neighbours never collide: MuJoCo filters parent-child; exclude siblings and
    # grandparent-grandchild too (capsules meet at shared joints)
    excl = set()
    for j in joints:
        ks = kids[j]
        for a in ks:
            for b in ks:
                if a < b:
                    excl.add((a, b))
            for g in kids[a]:
                excl.add((j, g))
    if excl and cfg.self_collision != "none":
        lines.append('  <contact>')
        for a, b in sorted(excl):
            lines.append(f'    <exclude body1="{skel.names[a]}" body2="{skel.names[b]}"/>')
        lines.append('  </contact>')
    lines.append('  <actuator>')
    lines += actuators
    lines.append('  </actuator>')
    lines.append('</mujoco>')
    xml = "\n".join(lines) + "\n"

    # order bodies exactly as MuJoCo numbers them (depth-first, as emitted)
    order = []

    def walk(j):
        order.append(j)
        for k in kids[j]:
            walk(k)
    walk(root_j)
    rest32 = rest.astype(np.float32)
    ee = tuple(j for j in order if cls[j] in ("hand", "head") or (cls[j] == "foot"))
    mass_arr = np.array([masses[j] for j in order], np.float32)
    return Humanoid(xml=xml, skeleton=skel, root=root_j, joints=tuple(order), rest_rotations=rest32,
                    rest_root_position=np.asarray(stats.root_position, np.float32),
                    euler_orders=tuple(stats.euler_orders), segments=tuple(cls[j] if j in joints else ""
                                                                           for j in range(n)),
                    masses=mass_arr, kp=np.array(kp, np.float32), kd=np.array(kd, np.float32),
                    torque_limits=np.array(tl, np.float32), ranges=np.array(ranges, np.float32),
                    hips_forward=quat.inv_rot(rest[root_j], convert.FWD_KIN).astype(np.float32),
                    end_effectors=ee, config=config)


def _under(parents, j, ancestor) -> bool:
    p = parents[j]
    while p >= 0:
        if p == ancestor:
            return True
        p = parents[p]
    return False


def from_database(db, config: HumanoidConfig = HumanoidConfig(), every: int = 4) -> Humanoid:
    """The humanoid of a database's skeleton, rest pose and ranges from its frames."""
    if hasattr(db, "roles"):
        roles = db.roles()
    else:                                   # a clip pack: roles from the names
        from anim.roles import find_roles
        roles = find_roles(db.skeleton)
    return build(db.skeleton, measure(db, every=every, roles=roles), config, root=db.config.hips, roles=roles)


def save(h: Humanoid, path: str) -> None:
    from anim.fileio import write_text
    write_text(path, json.dumps(h.to_dict()))


def load(path: str, skeleton: Skeleton | None = None) -> Humanoid:
    with open(path) as f:
        return Humanoid.from_dict(json.load(f), skeleton)
