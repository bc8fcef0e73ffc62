"""Joint roles: which joint of a skeleton is the hips, the left foot, the head...

Everything that needs a particular joint (mirroring, contacts, matching features,
the simulation bone, metrics, the physics humanoid, the VR devices) asks the
`Roles` of its skeleton instead of a fixed name, so any rig works:

    roles = find_roles(skeleton)                       # from names + topology
    roles = find_roles(skeleton, load_joint_map("map.toml"))   # with overrides
    roles["left_foot"], roles.index(skeleton, "head"), roles.mirror, roles.helpers

How roles are found (`find_roles`):
- Names: a joint name is split into a side (left / right / centre) and a body word
  after dropping a namespace (`mixamorig:`), a rig prefix (`CC_Base_`, `Bip01 `,
  `DEF-`) and the side token, wherever the conventions put it: `LeftFoot`,
  `Foot_L`, `foot.L`, `l_foot`, `L_Foot`, `LHipJoint`, `CC_Base_L_Foot`. The end
  joints (feet, hands, head) and the hips are found from the body word.
- Topology: the limbs are the chains above the end joints (foot's parent is the
  lower leg, its parent the upper leg; hand, forearm, upper arm, shoulder), with
  helper-named joints in a chain skipped; the hips are the highest hips-named
  joint above both feet (else their common ancestor), the chest the common
  ancestor of both hands, the spine the hips' child toward the chest, the neck
  the chest's child toward the head. So CMU's `LHipJoint` (between the hips and
  `LeftUpLeg`) is not mistaken for the thigh.
- Checks: each left joint's role has a right twin, both at the same depth below
  the hips, with bone lengths within 10 % of each other; a failure names the role.
- Mirror pairs: every sided joint paired with the joint whose name differs only
  in the side token (and whose bone offset has the same length), and each
  sided role's left joint with its right one.
- Helper joints: twist, share, roll, finger, toe digits, face, eyes, jaw, teeth,
  tongue and breast bones (by `HELPER_PATTERN` on the name), and everything below
  the hands, the head and the toes. They stay in the pose (FK, BVH output) but are
  left out of features and of the physics body (merged into their parent). A
  joint on a chain from the root to an end joint is never a helper (the
  `NeckTwist` bones that carry the CC rig's head stay).

A joint map file (JSON or TOML) overrides any of it:

    [roles]                      # role -> joint name
    left_foot = "l_ankle"
    helper_pattern = "twist|roll"   # replaces HELPER_PATTERN
    helpers = ["Spine_Fx"]       # also helpers
    keep = ["CC_Base_L_Breast"]  # never helpers
    mirror = [["ArmPad_A", "ArmPad_B"]]   # extra mirror pairs
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Roles", "RoleError", "find_roles", "load_joint_map", "ROLES", "SIDED_ROLES", "HELPER_PATTERN",
           "split_name"]

SIDED_ROLES = ("upper_leg", "lower_leg", "foot", "toe", "shoulder", "upper_arm", "forearm", "hand")
ROLES = ("root", "hips", "spine", "chest", "neck", "head") + tuple(
    f"{s}_{r}" for r in SIDED_ROLES for s in ("left", "right"))

HELPER_PATTERN = (r"twist|share|roll|finger|thumb|index|middle|^mid\d|ring|pinky|^toe\d|bigtoe|eye|tongue|"
                  r"jaw|teeth|facial|face|brow|lip|cheek|nose|breast|rib|nub$|end$|site$|^ik|pole|corrective")

# body words (lower case, separators removed, trailing digits dropped) of each end joint
_FOOT = ("foot", "ankle")
_TOE = ("toebase", "toes", "toe", "ball", "toe0")
_HAND = ("hand", "wrist")
_HEAD = ("head",)
_HIPS = ("hips", "hip", "pelvis")

_PREFIX_RE = re.compile(r"^(?:CC_Base_|RL_|Bip\d*[ _]|DEF[-_]|ORG[-_]|MCH[-_]|b_|j_|jnt_|joint_)", re.I)
# side token at the start: Left/left/LEFT + anything, L/l + separator, L + capital (LHipJoint)
_SIDE_START = re.compile(r"^(?:(?P<word>left|right)(?=[^a-z]|$)|(?P<word2>Left|Right|LEFT|RIGHT)"
                         r"|(?P<letter>[LlRr])(?=[_.\- ])|(?P<cap>[LR])(?=[A-Z][a-z]))")
_SIDE_END = re.compile(r"(?:[_.\- ](?P<letter>[LlRr])|(?P<word>Left|Right|_left|_right|\.left|\.right))$")
_SIDE_MID = re.compile(r"[_.\- ](?P<letter>[LlRr])[_.\- ]")


class RoleError(KeyError):
    """A role could not be found (or a mapping names a joint that is not there)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def split_name(name: str) -> tuple[str, str, tuple[int, int]]:
    """(side 'left'/'right'/'', body word, (start, end) of the side token in `name`).

    'mixamorig:LeftFoot' -> ('left', 'foot'); 'CC_Base_L_Foot' -> ('left', 'foot');
    'LHipJoint' -> ('left', 'hipjoint'); 'Foot_R' -> ('right', 'foot'); 'Spine1' -> ('', 'spine')."""
    base_at = max(name.rfind(":"), name.rfind("|")) + 1
    rest = name[base_at:]
    m = _PREFIX_RE.match(rest)
    if m:
        base_at += m.end()
        rest = name[base_at:]
    side, span = "", (0, 0)
    for rx, where in ((_SIDE_START, "start"), (_SIDE_END, "end"), (_SIDE_MID, "mid")):
        s = rx.search(rest)
        if not s:
            continue
        g = next(k for k in ("word", "word2", "letter", "cap") if k in s.groupdict() and s.group(k))
        tok = s.group(g)
        side = "left" if tok.strip("_.").lower().startswith("l") else "right"
        a, b = s.span(g)
        span = (base_at + a, base_at + b)
        rest = rest[:a] + rest[b:]
        break
    body = re.sub(r"[^a-z0-9]", "", rest.lower())
    body = re.sub(r"\d+$", "", body) or body
    return side, body, span


def _opposite(name: str, span) -> list[str]:
    a, b = span
    tok = name[a:b]
    swap = {"L": "R", "R": "L", "l": "r", "r": "l", "Left": "Right", "Right": "Left", "left": "right",
            "right": "left", "LEFT": "RIGHT", "RIGHT": "LEFT", "_left": "_right", "_right": "_left",
            ".left": ".right", ".right": ".left"}
    if tok not in swap:
        return []
    return [name[:a] + swap[tok] + name[b:]]


@dataclass(frozen=True)
class Roles:
    """Role -> joint name of one skeleton, its helper joints and mirror pairs.

    joints:  {role: joint name}; 'neck' may be absent (head straight on the chest).
    helpers: names of helper joints (kept in the pose, left out of features and physics).
    mirror:  ((left name, right name), ...) every mirrored joint pair.
    """

    joints: dict
    helpers: tuple = ()
    mirror: tuple = ()
    notes: tuple = field(default=(), compare=False)

    def __getitem__(self, role: str) -> str:
        try:
            return self.joints[role]
        except KeyError:
            raise RoleError(f"role {role!r} has no joint (known: {', '.join(sorted(self.joints))})") from None

    def get(self, role: str, default=None):
        return self.joints.get(role, default)

    def index(self, skeleton, role: str) -> int:
        return skeleton.names.index(self[role])

    def pair(self, role: str) -> tuple[str, str]:
        """(left, right) joint names of a sided role, e.g. pair('foot')."""
        return self[f"left_{role}"], self[f"right_{role}"]

    def helper_mask(self, skeleton) -> np.ndarray:
        h = set(self.helpers)
        return np.array([n in h for n in skeleton.names], bool)

    def to_json(self) -> dict:
        return {"joints": dict(self.joints), "helpers": list(self.helpers), "mirror": [list(p) for p in self.mirror]}

    @classmethod
    def from_json(cls, d: dict) -> "Roles":
        return cls(dict(d["joints"]), tuple(d.get("helpers", ())), tuple(tuple(p) for p in d.get("mirror", ())))


# ------------------------------------------------------------------ the map file
def load_joint_map(path) -> dict:
    """Read a joint map (.json or .toml; see the module docstring). Errors name the file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read the joint map ({e.strerror})") from None
    try:
        if path.lower().endswith(".toml"):
            import tomllib
            data = tomllib.loads(raw.decode())
        else:
            data = json.loads(raw)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one clear message
        raise ValueError(f"{path}: not a valid {'TOML' if path.lower().endswith('.toml') else 'JSON'} "
                         f"joint map ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a joint map is a table of roles, helpers, keep, mirror")
    unknown = set(data) - {"roles", "helper_pattern", "helpers", "keep", "mirror"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)} (expected roles, helper_pattern, helpers, "
                         f"keep, mirror)")
    bad = set(data.get("roles", {})) - set(ROLES)
    if bad:
        raise ValueError(f"{path}: unknown roles {sorted(bad)} (roles: {', '.join(ROLES)})")
    if "helper_pattern" in data:
        try:
            re.compile(data["helper_pattern"])
        except re.error as e:
            raise ValueError(f"{path}: helper_pattern is not a regular expression ({e})") from None
    data["_source"] = path
    return data


# ------------------------------------------------------------------ finding roles
def _depths(parents) -> np.ndarray:
    d = np.zeros(len(parents), int)
    for j, p in enumerate(parents):
        d[j] = d[p] + 1 if p >= 0 else 0
    return d


def _ancestors(parents, j) -> list[int]:
    out = []
    while j >= 0:
        out.append(j)
        j = int(parents[j])
    return out


def _lca(parents, a, b) -> int:
    anc = set(_ancestors(parents, a))
    for j in _ancestors(parents, b):
        if j in anc:
            return j
    return 0


def find_roles(skeleton, joint_map: dict | None = None) -> Roles:
    """Roles of `skeleton` from names and topology, `joint_map` entries first.
    Raises RoleError naming the role it could not find and the candidates."""
    jm = joint_map or {}
    src = f" (joint map {jm['_source']})" if jm.get("_source") else ""
    names = list(skeleton.names)
    parents = skeleton.parents
    nj = len(names)
    split = [split_name(n) for n in names]
    helper_rx = re.compile(jm.get("helper_pattern", HELPER_PATTERN), re.I)
    named_helper = [bool(helper_rx.search(b)) or bool(helper_rx.search(n.lower())) for n, (_, b, _) in
                    zip(names, split)]
    fixed = {}
    for role, joint in jm.get("roles", {}).items():
        if joint not in names:
            close = [n for n in names if joint.lower() in n.lower() or n.lower() in joint.lower()][:8]
            raise RoleError(f"role {role!r}{src} names joint {joint!r}, not in the skeleton"
                            + (f" (close: {', '.join(close)})" if close else ""))
        fixed[role] = names.index(joint)
    depth = _depths(parents)

    def by_body(words, side):
        hits = [j for j in range(nj) if split[j][0] == side and split[j][1] in words and not named_helper[j]]
        for w in words:                                  # first word wins, then the shallowest joint
            c = sorted((j for j in hits if split[j][1] == w), key=lambda j: depth[j])
            if c:
                return c[0]
        return None

    def candidates(words):
        return [names[j] for j in range(nj) if any(w in names[j].lower() for w in words)][:12]

    def need(role, side, words):
        if role in fixed:
            return fixed[role]
        j = by_body(words, side)
        if j is None:
            cand = candidates(words)
            raise RoleError(f"no joint for role {role!r}: no {side + ' ' if side else ''}joint named like "
                            f"{'/'.join(words)}; candidates: {', '.join(cand) if cand else 'none'}. Name it in "
                            f"a joint map (--joint-map FILE): [roles] {role} = \"JOINT\"")
        return j

    out = {}
    for side in ("left", "right"):
        out[f"{side}_foot"] = need(f"{side}_foot", side, _FOOT)
        out[f"{side}_hand"] = need(f"{side}_hand", side, _HAND)
    out["head"] = need("head", "", _HEAD)

    def chain_parent(j):
        """The first ancestor of j that is not a helper by name."""
        p = int(parents[j])
        while p >= 0 and named_helper[p]:
            p = int(parents[p])
        return p

    lca_feet = _lca(parents, out["left_foot"], out["right_foot"])
    lca_hands = _lca(parents, out["left_hand"], out["right_hand"])
    for side in ("left", "right"):
        f = out[f"{side}_foot"]
        toe = fixed.get(f"{side}_toe")
        if toe is None:
            below = [j for j in range(nj) if f in _ancestors(parents, j)[1:] and split[j][1] in _TOE
                     and not named_helper[j]]
            if below:
                toe = min(below, key=lambda j: (_TOE.index(split[j][1]), depth[j]))
            else:
                kids = [j for j in range(nj) if parents[j] == f and not named_helper[j]]
                toe = kids[0] if kids else f      # no toe joint: contacts on the foot itself
        out[f"{side}_toe"] = toe
        ll = fixed.get(f"{side}_lower_leg", chain_parent(f))
        ul = fixed.get(f"{side}_upper_leg", chain_parent(ll))
        out[f"{side}_lower_leg"], out[f"{side}_upper_leg"] = ll, ul
        h = out[f"{side}_hand"]
        fa = fixed.get(f"{side}_forearm", chain_parent(h))
        ua = fixed.get(f"{side}_upper_arm", chain_parent(fa))
        sh = fixed.get(f"{side}_shoulder")
        if sh is None:
            p = chain_parent(ua)
            sh = p if p >= 0 and p != lca_hands and depth[p] > depth[lca_hands] else ua
        out[f"{side}_forearm"], out[f"{side}_upper_arm"], out[f"{side}_shoulder"] = fa, ua, sh
        for role in ("lower_leg", "upper_leg", "forearm", "upper_arm"):
            if out[f"{side}_{role}"] < 0 or depth[out[f"{side}_{role}"]] <= depth[lca_feet if "leg" in role
                                                                                 else lca_hands]:
                raise RoleError(f"no joint for role '{side}_{role}': the chain above "
                                f"{names[out[f'{side}_foot' if 'leg' in role else f'{side}_hand']]} is too short "
                                f"(name it in a joint map: [roles] {side}_{role} = \"JOINT\")")

    hips = fixed.get("hips")
    if hips is None:
        above = [j for j in _ancestors(parents, lca_feet) if split[j][1] in _HIPS and not split[j][0]]
        hips = above[-1] if above else lca_feet
    out["hips"] = hips
    out["root"] = fixed.get("root", 0)
    chest = fixed.get("chest", lca_hands)
    out["chest"] = chest
    path_hc = _ancestors(parents, chest)
    if hips not in path_hc:
        raise RoleError(f"the chest ({names[chest]}, above both hands) is not below the hips ({names[hips]}); "
                        f"name 'hips' and 'chest' in a joint map")
    below_hips = path_hc[:path_hc.index(hips)]
    out["spine"] = fixed.get("spine", below_hips[-1] if below_hips else chest)
    head_path = _ancestors(parents, out["head"])
    if chest not in head_path:
        raise RoleError(f"the head ({names[out['head']]}) is not below the chest ({names[chest]}); "
                        f"name them in a joint map")
    neck_path = head_path[1:head_path.index(chest)]
    if "neck" in fixed:
        out["neck"] = fixed["neck"]
    elif neck_path:                  # else the head sits on the chest: no neck role
        out["neck"] = neck_path[-1]
    # checks: left and right twins at the same depth with similar bone lengths
    length = np.linalg.norm(np.asarray(skeleton.offsets, np.float64), axis=-1)
    for r in SIDED_ROLES:
        a, b = out[f"left_{r}"], out[f"right_{r}"]
        if a == b:
            raise RoleError(f"roles 'left_{r}' and 'right_{r}' are the same joint {names[a]!r}")
        if f"left_{r}" in fixed or f"right_{r}" in fixed:
            continue
        la, lb = length[a], length[b]
        if abs(la - lb) > 0.1 * max(la, lb) + 1e-6:
            raise RoleError(f"'left_{r}' {names[a]} and 'right_{r}' {names[b]} differ in bone length "
                            f"({la:.3g} against {lb:.3g}): not mirror twins; name them in a joint map")
    joints = {k: names[v] for k, v in out.items() if v is not None}

    # helpers: named ones off the main chains, and everything below the hands, the head and the toes
    chain = set()
    for role in ("head", "left_hand", "right_hand", "left_toe", "right_toe", "left_foot", "right_foot"):
        chain.update(_ancestors(parents, out[role]))
    ends = {out["head"], out["left_hand"], out["right_hand"], out["left_toe"], out["right_toe"]}
    helper = np.zeros(nj, bool)
    for j in range(nj):
        p = int(parents[j])
        if j in chain:
            continue
        helper[j] = named_helper[j] or (p >= 0 and (helper[p] or p in ends))
    keep = set(jm.get("keep", ()))
    extra = set(jm.get("helpers", ()))
    for n in keep | extra:
        if n not in names:
            raise RoleError(f"joint map{src}: {n!r} (in keep/helpers) is not in the skeleton")
    helpers = tuple(n for j, n in enumerate(names) if (helper[j] or n in extra) and n not in keep)

    # mirror pairs: names that differ only in the side token, bone lengths alike
    pairs, seen = [], set()
    explicit = [tuple(p) for p in jm.get("mirror", ())]
    for a, b in explicit:
        if a not in names or b not in names:
            raise RoleError(f"joint map{src}: mirror pair ({a!r}, {b!r}) names a joint not in the skeleton")
        pairs.append((a, b))
        seen.update((a, b))
    notes = []
    for j, (side, _, span) in enumerate(split):
        if side != "left" or names[j] in seen:
            continue
        for other in _opposite(names[j], span):
            if other in names and other not in seen:
                k = names.index(other)
                if abs(length[j] - length[k]) > 0.1 * max(length[j], length[k]) + 0.02 * length.max():
                    notes.append(f"{names[j]} / {other}: bone lengths differ, not paired")
                    continue
                pairs.append((names[j], other))
                seen.update((names[j], other))
    for r in SIDED_ROLES:             # the roles' twins are mirrors whatever their names (a joint map's)
        a, b = joints[f"left_{r}"], joints[f"right_{r}"]
        if a not in seen and b not in seen:
            pairs.append((a, b))
            seen.update((a, b))
    return Roles(joints, helpers, tuple(pairs), tuple(notes))


def database_names(roles: Roles) -> dict:
    """The DatabaseConfig fields a database reads from roles (feet, toes, hips,
    facing pairs, mirror map)."""
    return dict(feet=roles.pair("foot"), toes=roles.pair("toe"), hips=roles["hips"],
                facing_pairs=(roles.pair("upper_leg"), roles.pair("shoulder")),
                mirror_map=tuple(roles.mirror))
