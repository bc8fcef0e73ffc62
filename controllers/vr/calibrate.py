"""Fitting the sparse-VR avatar to its user: where the tracked points sit on
the body, and how big the body is.

Two things stand between a headset and the model (controllers.vr.data), which
was trained on the mocap actor's Head / Hand_L / Hand_R joints:

1. Where the devices are on the body (`DEVICE_OFFSETS`, the one table of it).
   A headset reports the point between the eyes, a controller the centre of
   the closed fist; the model wants the head joint (at the top of the neck on
   this rig) and the wrist joint. Each API's row gives, per device, the vector
   from the reported point to the joint in the device's own frame, for a body
   of the reference size (the model's actor): the controller adds
   `scale * R_device * offset` to the reported position (offsets grow with the
   user). Rotations are not in this table: the device -> joint rotation
   offsets are measured from the data and stored in the model artefact
   (meta['calibration'], `data.devices_to_joints`); both are applied in
   `VRController._joints`.

   | api    | head: reported point -> head joint   | hand: reported point -> wrist joint |
   | ------ | ------------------------------------ | ----------------------------------- |
   | joints | 0 (traces and mocap: the joints)     | 0                                   |
   | webxr  | viewer pose (centre of the eyes):    | gripSpace (centroid of the fist):   |
   |        | (0, -0.11, +0.09) in XR view axes    | (+-0.02, +0.06, 0) in XR grip axes  |
   | openxr | VIEW space (centre of the eyes):     | /input/grip/pose (fist centroid):   |
   |        | same as webxr                        | same as webxr                       |

   XR axes (OpenXR and WebXR agree): view -Z forward, +Y up; grip -Z along the
   held rod towards the thumb, +X out of the back of the right hand and out of
   the palm of the left (so +Y points back along the forearm for both hands).
   The wrist sits ~6 cm back along the forearm from the fist's centroid and
   ~2 cm towards the back of the hand (+X right, -X left); the head joint
   ~11 cm below and ~9 cm behind the eyes. These are adult anthropometric
   estimates (the specs define the reported points, not the body), good to a
   couple of centimetres. OpenXR's grip pose and WebXR's gripSpace are defined
   alike (origin at the fist's centroid, the axes above) and both report the
   head at the centre of the eyes, so their rows hold the same numbers; they are
   separate rows so that a runtime found to differ is corrected here alone.
   What does differ between the two is the floor: WebXR's 'local-floor' space
   and OpenXR's STAGE space put y = 0 on the floor (OpenXRSource asks for
   STAGE), which the height calibration needs.
   Values are stored in XR axes as read off the specs; `engine_offsets` turns
   them into the engine's device frame (a half turn about +Y: (x, y, z) ->
   (-x, y, -z), as viewer.vr_input.webxr_to_engine does for poses).

2. How big the user is (`Calibration`, estimated by `estimate` from a
   standing pose). Height comes from the headset: the scale s is the user's
   head-joint height over the model's standing head-joint height (the
   artefact's rest pose), with the eye -> head offset grown by s itself
   (solved in closed form); the user's stature is reported as eye height /
   EYE_HEIGHT_RATIO. Arm span comes from the controllers: the arm length is
   the distance from the shoulder (placed from the head joint by the model's
   standing head -> shoulder vector times s) to the wrist, taken straight
   (arms hanging or held out sideways both work; a bent arm reads short), and
   the span is the shoulder width times s plus both arms; arm_ratio is the
   user's arm length over s times the model's.

   Inputs into the model's space (`Calibration.to_model`): positions divided
   by s (about the world origin: the floor stays at y = 0, and the model's
   canonical frame removes where the user stands), and each hand moved
   towards its shoulder by 1 / arm_ratio. Output to the user's size
   (`Calibration.pose_to_user`): every local position of the pose times s
   (the skeleton scaled, and the root hung from the user's head), the
   forearm and hand bones times arm_ratio more. With exact offsets this
   makes the pipeline equivariant to the user's size: a uniformly scaled
   user gives the model the very input the actor did.

`AutoCalibrator` does this live: it watches the first ticks for a still,
standing user and hands the controller a Calibration (VRController.calibrator).
`evaluate_users` measures it on scaled test clips (synthetic users), for
`anim eval vr --users`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from anim import quat

from . import data as vd

EYE_HEIGHT_RATIO = 0.936       # eye height / stature of adults (anthropometric tables, both sexes)
APIS = ("joints", "webxr", "openxr")


# ====================================================================== the offsets table
@dataclass(frozen=True)
class DeviceOffsets:
    """Reported point -> joint, per device, in the device's XR frame (metres,
    for a body of the reference size). head, left_hand, right_hand: [3]."""

    api: str
    head: tuple
    left_hand: tuple
    right_hand: tuple
    head_pose: str = ""
    hand_pose: str = ""
    spec: str = ""

    def xr(self) -> np.ndarray:
        """[3, 3] the offsets in XR device axes, head then left then right hand."""
        return np.array([self.head, self.left_hand, self.right_hand], np.float32)


_HEAD_XR = (0.0, -0.11, 0.09)              # centre of the eyes -> head joint (XR view: +Z is backwards)
_WRIST_LEFT_XR = (-0.02, 0.06, 0.0)        # fist centroid -> wrist (XR grip: +Y back along the forearm)
_WRIST_RIGHT_XR = (0.02, 0.06, 0.0)

DEVICE_OFFSETS = {
    "joints": DeviceOffsets("joints", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0),
                            "the head joint", "the wrist joints", "recorded traces and the mocap: joint poses"),
    "webxr": DeviceOffsets("webxr", _HEAD_XR, _WRIST_LEFT_XR, _WRIST_RIGHT_XR,
                           "XRViewerPose.transform (centre of the eyes)", "XRInputSource.gripSpace (fist centroid)",
                           "WebXR Device API, 'gripSpace' and 'XRViewerPose'"),
    "openxr": DeviceOffsets("openxr", _HEAD_XR, _WRIST_LEFT_XR, _WRIST_RIGHT_XR,
                            "XR_REFERENCE_SPACE_TYPE_VIEW (centre of the eyes)",
                            "/user/hand/*/input/grip/pose (fist centroid)",
                            "OpenXR 1.0, 'Standard pose identifiers' (grip) and 'Reference spaces' (VIEW)"),
}


def device_offsets(api: str) -> DeviceOffsets:
    try:
        return DEVICE_OFFSETS[api]
    except KeyError:
        raise ValueError(f"unknown device API {api!r} (known: {', '.join(DEVICE_OFFSETS)})") from None


def engine_offsets(api: str) -> np.ndarray:
    """[3, 3] an API's reported point -> joint vectors in the ENGINE's device frame
    (the frame viewer.vr_input.webxr_to_engine gives a pose: a half turn about +Y
    of the XR one)."""
    return device_offsets(api).xr() * np.array([-1.0, 1.0, -1.0], np.float32)


# ====================================================================== the model's body
@dataclass(frozen=True)
class ModelReference:
    """The model's actor, standing (from the artefact's rest pose and skeleton).

    head_height:    head joint above the floor (m).
    shoulders:      [2, 3] upper-arm joints relative to the head joint, in the
                    head's heading frame (left, right).
    arm_length:     upper-arm + forearm bone lengths (shoulder to wrist), mean of both sides.
    shoulder_width: distance between the upper-arm joints.
    head_forward:   the head-local forward axis (data.head_forward_axis).
    rot_offsets:    [3, 4] the artefact's device -> joint rotation offsets.
    arm_joints:     skeleton indices of the forearm and hand joints (their local
                    positions are the upper-arm and forearm bones).
    """

    head_height: float
    shoulders: np.ndarray
    arm_length: float
    shoulder_width: float
    head_forward: np.ndarray
    rot_offsets: np.ndarray
    arm_joints: tuple

    @property
    def arm_span(self) -> float:
        """Wrist to wrist with the arms held out sideways."""
        return self.shoulder_width + 2 * self.arm_length

    def eye_height(self, api: str = "webxr") -> float:
        """Where a level headset of this API would be (the head offset's height)."""
        return self.head_height - float(engine_offsets(api)[0, 1])

    def stature(self, api: str = "webxr") -> float:
        return self.eye_height(api) / EYE_HEIGHT_RATIO


def reference_of(skeleton, rest_rot, rest_pos, head_forward, rot_offsets, roles=None) -> ModelReference:
    """The ModelReference of a skeleton in a standing pose (database layout)."""
    from anim.roles import find_roles
    r = roles if roles is not None else find_roles(skeleton)
    _, gp = quat.fk(np.asarray(rest_rot, np.float32), np.asarray(rest_pos, np.float32), skeleton.parents)
    g = vd.joint_groups(skeleton)
    head = skeleton.index(g["devices"][0])
    hq, _ = quat.fk(np.asarray(rest_rot, np.float32), np.asarray(rest_pos, np.float32), skeleton.parents)
    theta, _ = vd.canonical_frame(hq[head], gp[head], np.asarray(head_forward, np.float32))
    yaw = quat.from_angle_axis(theta, np.array([0.0, 1.0, 0.0], np.float32))
    ua = [skeleton.index(n) for n in r.pair("upper_arm")]
    fa = [skeleton.index(n) for n in r.pair("forearm")]
    hd = [skeleton.index(n) for n in r.pair("hand")]
    shoulders = quat.inv_rot(yaw, gp[ua] - gp[head])
    off = skeleton.offsets
    arm = float(np.mean([np.linalg.norm(off[f]) + np.linalg.norm(off[h]) for f, h in zip(fa, hd)]))
    return ModelReference(head_height=float(gp[head, 1]), shoulders=shoulders.astype(np.float32), arm_length=arm,
                          shoulder_width=float(np.linalg.norm(gp[ua[0]] - gp[ua[1]])),
                          head_forward=np.asarray(head_forward, np.float32),
                          rot_offsets=vd.calibration_offsets(rot_offsets).astype(np.float32),
                          arm_joints=tuple(fa + hd))


def reference_of_predictor(pred) -> ModelReference:
    """The ModelReference of a loaded predictor (its artefact's rest pose)."""
    rest = (getattr(pred, "meta", None) or {}).get("rest_pose")
    if rest is None:
        raise ValueError("the VR model has no rest pose in its meta: retrain it to calibrate users")
    return reference_of(pred.skeleton, rest["rotations"], rest["positions"], pred.head_forward, pred.calibration)


# ====================================================================== the user's calibration
@dataclass(frozen=True)
class Calibration:
    """A user's fit (see the module docstring). The default is the identity
    (joint poses of the model's own size: traces, the mocap).

    api:         which row of DEVICE_OFFSETS the devices' positions need.
    scale:       user / model size (head-joint heights).
    arm_ratio:   the user's arm length / (scale * the model's).
    eye_height, user_height, arm_span: what was measured (m; 0 when not measured).
    reference:   the model's body (needed by to_model / from_model with arm_ratio != 1).
    """

    api: str = "joints"
    scale: float = 1.0
    arm_ratio: float = 1.0
    eye_height: float = 0.0
    user_height: float = 0.0
    arm_span: float = 0.0
    reference: ModelReference | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        device_offsets(self.api)
        for k in ("scale", "arm_ratio"):
            v = getattr(self, k)
            if not (np.isfinite(v) and 0.2 < v < 5.0):
                raise ValueError(f"calibration {k} {v!r} is not a plausible body ratio (0.2 .. 5)")

    @property
    def offsets(self) -> np.ndarray:
        return engine_offsets(self.api)

    # -- devices -> joints -> the model's space, and back
    def joint_points(self, dev_p, dev_q) -> np.ndarray:
        """Reported device positions [..., 3, 3] and device rotations [..., 3, 4]
        (engine device convention) -> the joints' positions in the user's space."""
        return (np.asarray(dev_p, np.float32)
                + self.scale * quat.rot(np.asarray(dev_q, np.float32), self.offsets)).astype(np.float32)

    def device_points(self, joint_p, dev_q) -> np.ndarray:
        """The inverse of joint_points: where the devices report for joints at joint_p."""
        return (np.asarray(joint_p, np.float32)
                - self.scale * quat.rot(np.asarray(dev_q, np.float32), self.offsets)).astype(np.float32)

    def _shoulders(self, head_q, head_p_model) -> np.ndarray:
        """[..., 2, 3] the model-space shoulders under a model-space head joint."""
        ref = self.reference
        theta, _ = vd.canonical_frame(head_q, head_p_model, ref.head_forward)
        yaw = quat.from_angle_axis(theta, np.array([0.0, 1.0, 0.0], np.float32))
        return head_p_model[..., None, :] + quat.rot(yaw[..., None, :], ref.shoulders)

    def to_model(self, joint_p, joint_q) -> np.ndarray:
        """The joints' positions [..., 3, 3] in the user's space -> the model's
        space (/ scale; hands towards their shoulders by 1 / arm_ratio).
        joint_q [..., 3, 4]: the joints' world rotations (for the head's heading)."""
        p = np.asarray(joint_p, np.float32) / np.float32(self.scale)
        if self.arm_ratio != 1.0:
            if self.reference is None:
                raise ValueError("a calibration with an arm ratio needs its model reference")
            sh = self._shoulders(np.asarray(joint_q, np.float32)[..., 0, :], p[..., 0, :])
            p = p.copy()
            p[..., 1:, :] = sh + (p[..., 1:, :] - sh) / np.float32(self.arm_ratio)
        return p.astype(np.float32)

    def from_model(self, model_p, joint_q) -> np.ndarray:
        """The inverse of to_model."""
        p = np.asarray(model_p, np.float32).copy()
        if self.arm_ratio != 1.0:
            sh = self._shoulders(np.asarray(joint_q, np.float32)[..., 0, :], p[..., 0, :])
            p[..., 1:, :] = sh + (p[..., 1:, :] - sh) * np.float32(self.arm_ratio)
        return (p * np.float32(self.scale)).astype(np.float32)

    def pose_to_user(self, pos: np.ndarray) -> np.ndarray:
        """A pose's local positions [..., J, 3] in the model's size -> the user's:
        all times scale, the forearm and hand joints' (the arm bones) times
        arm_ratio more. Rotations are unchanged."""
        out = np.asarray(pos, np.float32) * np.float32(self.scale)
        if self.arm_ratio != 1.0 and self.reference is not None:
            j = list(self.reference.arm_joints)
            out[..., j, :] *= np.float32(self.arm_ratio)
        return out

    # -- a file
    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("reference")
        return {"format": "anim-vr-calibration", "version": 1, **d}

    @classmethod
    def from_json(cls, d: dict, reference: ModelReference | None = None, source: str = "calibration") -> "Calibration":
        if not isinstance(d, dict) or d.get("format") != "anim-vr-calibration" or d.get("version") != 1:
            raise ValueError(f"{source}: not an anim-vr-calibration v1 document")
        try:
            return cls(api=str(d["api"]), scale=float(d["scale"]), arm_ratio=float(d["arm_ratio"]),
                       eye_height=float(d.get("eye_height", 0.0)), user_height=float(d.get("user_height", 0.0)),
                       arm_span=float(d.get("arm_span", 0.0)), reference=reference)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{source}: bad calibration ({e})") from None

    def save(self, path) -> None:
        from anim.fileio import atomic_write
        with atomic_write(path, "w") as f:
            f.write(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path, reference: ModelReference | None = None) -> "Calibration":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e.msg})") from None
        return cls.from_json(d, reference, str(path))


def estimate(dev_p, dev_q, reference: ModelReference, api: str = "webxr", use_arms: bool = True,
             still=None) -> Calibration:
    """A Calibration from standing frames: reported device positions [T, 3, 3]
    and rotations [T, 3, 4] (engine axes and device convention; head, left,
    right) of a user standing upright, the arms hanging or held out straight.
    still [T, 3] (optional, e.g. `standing_mask`): which devices are at rest
    in each frame; the height is taken from frames with the head at rest, each
    arm from frames with the head and that hand at rest (medians). use_arms
    False: arm_ratio stays 1 (the arm span is still measured). A ValueError
    when no frame qualifies or the headset is not over a floor at y = 0."""
    dev_p = np.asarray(dev_p, np.float64).reshape(-1, 3, 3)
    dev_q = np.asarray(dev_q, np.float32).reshape(-1, 3, 4)
    m = np.ones(dev_p.shape[:2], bool) if still is None else np.asarray(still, bool).reshape(-1, 3)
    m = m & m[:, :1]
    if not m[:, 0].any() or not np.isfinite(dev_p[m[:, 0]]).all() or not np.isfinite(dev_q[m[:, 0]]).all():
        raise ValueError("calibration: no finite standing frames")
    off = engine_offsets(api)
    r = quat.rot(dev_q, off).astype(np.float64)                # [T, 3, 3]  R * offset (reference size)
    eye_y = dev_p[m[:, 0], 0, 1]
    denom = reference.head_height - r[m[:, 0], 0, 1]           # head_y = eye_y + s r_y = s H  ->  s = eye_y / (H - r_y)
    if (eye_y <= 0.3).any() or (denom <= 0).any():
        raise ValueError(f"calibration: the headset is {float(np.median(eye_y)):.2f} m above the floor: "
                         f"stand upright on a floor at y = 0")
    s = float(np.median(eye_y / denom))
    joints = dev_p + s * r                                       # user-space joints
    jq = quat.normalize(quat.mul(dev_q, reference.rot_offsets)).astype(np.float32)
    theta, _ = vd.canonical_frame(jq[:, 0], joints[:, 0].astype(np.float32), reference.head_forward)
    yaw = quat.from_angle_axis(theta, np.array([0.0, 1.0, 0.0], np.float32))
    sh = joints[:, None, 0] + s * quat.rot(yaw[:, None], reference.shoulders).astype(np.float64)   # [T, 2, 3]
    reach = np.linalg.norm(joints[:, 1:] - sh, axis=-1)         # [T, 2] shoulder -> wrist
    sides = [float(np.median(reach[m[:, 1 + i], i])) for i in range(2) if m[:, 1 + i].any()]
    if not sides:
        raise ValueError("calibration: no frame with a hand at rest")
    arm = float(np.mean(sides))
    ratio = arm / (s * reference.arm_length)
    eye = float(np.median(eye_y))
    return Calibration(api=api, scale=s, arm_ratio=ratio if use_arms else 1.0, eye_height=eye,
                       user_height=eye / EYE_HEIGHT_RATIO, arm_span=s * reference.shoulder_width + 2 * arm,
                       reference=reference)


def standing_mask(dev_p, fps: float = vd.FPS, max_speed: float = 0.15) -> np.ndarray:
    """[T, 3] which devices (head, left, right) are at rest in each frame of
    device positions [T, 3, 3]: slower than max_speed (m/s) over the frames
    on both sides; and the head within 5 cm of its highest resting height (an
    upright user, not a crouch)."""
    p = np.asarray(dev_p, np.float64)
    v = np.zeros(p.shape[:2])
    if len(p) > 1:
        d = np.linalg.norm(np.diff(p, axis=0), axis=-1) * fps
        v[1:] = d
        v[:-1] = np.maximum(v[:-1], d)
    still = v < max_speed
    if still[:, 0].any():
        still[:, 0] &= p[:, 0, 1] >= p[still[:, 0], 0, 1].max() - 0.05
    return still


class AutoCalibrator:
    """Live calibration from the first still, upright second: feed it every
    tick's ControlInput (`observe`); it returns a Calibration once it has seen
    `seconds` of consecutive ticks with all three devices tracked and none
    moving faster than `max_speed`, else None. VRController.calibrator runs it."""

    def __init__(self, reference: ModelReference, api: str = "webxr", seconds: float = 1.0,
                 max_speed: float = 0.15, use_arms: bool = True):
        device_offsets(api)
        self.reference, self.api, self.use_arms = reference, api, use_arms
        self.frames = max(int(round(seconds * vd.FPS)), 1)
        self.max_speed = max_speed
        self._p: list = []
        self._q: list = []

    def observe(self, ci) -> Calibration | None:
        devs = [getattr(ci, k) for k in vd.DEVICE_KEYS]
        if any(d is None for d in devs):
            self._p, self._q = [], []
            return None
        p = np.array([d[0] for d in devs], np.float32)
        if self._p and (np.linalg.norm(p - self._p[-1], axis=-1) * vd.FPS >= self.max_speed).any():
            self._p, self._q = [], []
        self._p.append(p)
        self._q.append(np.array([d[1] for d in devs], np.float32))
        if len(self._p) < self.frames:
            return None
        try:
            return estimate(np.stack(self._p), np.stack(self._q), self.reference, self.api, self.use_arms)
        except ValueError:       # a crouching or sitting start: keep waiting for an upright one
            self._p, self._q = [], []
            return None


# ====================================================================== synthetic users
def scaled_data(data: vd.VRData, k: float) -> vd.VRData:
    """The clips of `data` performed by a body k times the size: skeleton
    offsets and all positions times k (about the world origin, so the floor
    stays at y = 0); rotations and contacts unchanged."""
    from dataclasses import replace

    from anim.skeleton import Skeleton
    sk = data.skeleton
    skel = Skeleton(sk.names, sk.parents, (sk.offsets * np.float32(k)).astype(np.float32))
    return replace(data, skeleton=skel, dev_p=(data.dev_p * np.float32(k)).astype(np.float32),
                   hips_p=(data.hips_p * np.float32(k)).astype(np.float32))


def _standing_starts(data: vd.VRData, clips, dev_p, seconds: float = 0.5):
    """(frame indices [N], still [N, 3]) of the clips' first `seconds` where
    the head is at rest and upright (`standing_mask`, per clip)."""
    n = int(round(seconds * vd.FPS))
    frames, still = [], []
    for c in clips:
        f = np.arange(data.starts[c], min(data.stops[c], data.starts[c] + n))
        m = standing_mask(dev_p[f])
        frames.append(f[m[:, 0]])
        still.append(m[m[:, 0]])
    return np.concatenate(frames), np.concatenate(still)


def evaluate_users(pred, data: vd.VRData, heights=(1.5, 1.7, 2.0), api: str = "webxr", max_clips: int = 0,
                   split: str = "test", use_arms: bool = True, uncalibrated: bool = True,
                   reference_row: bool = True, progress: bool = False) -> dict:
    """MPJPE etc. of `pred` on synthetic users: the split's clips scaled by k so
    that the actor's calibrated stature (eye height / EYE_HEIGHT_RATIO)
    becomes each of `heights` (m). max_clips: evaluate on that many clips,
    evenly spaced over the split (0: all).

    Per user: the scaled clips' joints -> what an `api` headset and
    controllers would report (offsets grown with the body: exact anatomy);
    one calibration (`estimate`) from the frames of the split's clips' first
    0.5 s where the head is at rest (a hand counts where it rests too); then
    what VRController computes: reported -> joints -> the model's space,
    predict (the same batched path as anim eval vr), the pose scaled to the
    user, compared with the scaled ground truth. Errors in the user's space
    ('*_user', cm) and divided by k (the rest: at the actor's size, where a
    perfect fit of any user gives the same figure). 'metrics_uncalibrated':
    the scaled joints fed in as they are (what a user of another size got
    without calibration, with exact joint positions). reference_row: first
    the actor's own clips with the exact joints (what `anim eval vr` measures,
    on the same clips). Returns {'users':
    [{user, k, height_m, calibration, metrics, metrics_uncalibrated}],
    'actor': the actor's calibration, 'clips', 'frames', 'standing_frames', ...}."""
    ref = reference_of_predictor(pred)
    every = data.clips(split, mirrored=False)
    if not every:
        raise ValueError(f"no {split} clips")
    clips = [every[int(i * len(every) / max_clips)] for i in range(max_clips)] \
        if 0 < max_clips < len(every) else every
    hf = np.asarray(pred.head_forward, np.float32)
    dev_q = vd.joints_to_devices(data.dev_q, data.calibration)     # the devices' rotations (any size)
    exact = Calibration(api=api)
    stand, still = _standing_starts(data, every, data.dev_p)
    if not len(stand):
        raise ValueError(f"no {split} clip starts with the head at rest: nothing to calibrate from")
    actor = estimate(exact.device_points(data.dev_p[stand], dev_q[stand]), dev_q[stand], ref, api, use_arms, still)
    users = [{"user": "actor, joints", "k": 1.0, "height_m": actor.user_height, "calibration": _cal_dict(Calibration()),
              "metrics": _metrics(pred, data, clips, hf, Calibration(), data, 1.0, progress)}] if reference_row else []
    for h in heights:
        k = h / actor.user_height
        user = scaled_data(data, k)
        truth = Calibration(api=api, scale=k)                      # the user's true anatomy (offsets grown by k)
        reported = truth.device_points(user.dev_p, dev_q)          # what the headset and controllers report
        cal = estimate(reported[stand], dev_q[stand], ref, api, use_arms, still)
        model = replace_positions(data, cal.to_model(cal.joint_points(reported, dev_q), data.dev_q))
        entry = {"user": f"{h:.2f} m", "k": k, "height_m": h, "calibration": _cal_dict(cal),
                 "metrics": _metrics(pred, model, clips, hf, cal, user, k, progress)}
        if uncalibrated:
            entry["metrics_uncalibrated"] = _metrics(pred, user, clips, hf, Calibration(), user, k, progress)
        users.append(entry)
    return {"users": users, "actor": _cal_dict(actor), "api": api, "clips": len(clips), "split_clips": len(every),
            "frames": int(sum(data.stops[c] - data.starts[c] for c in clips)), "standing_frames": int(len(stand)),
            "use_arms": use_arms, "split": split}


def _cal_dict(cal: Calibration) -> dict:
    return {k: v for k, v in cal.to_json().items() if k not in ("format", "version")}


def run_users(args) -> dict:
    """`anim eval vr --users 1.5,1.7,2.0 [--users-clips N]`: evaluate_users with
    the diffusion model of args (its --steps/--inpaint/... settings) on
    args.split; the dict gets 'table'."""
    from .infer import load_predictor
    try:
        heights = tuple(float(h) for h in args.users.split(",") if h.strip())
    except ValueError:
        raise SystemExit(f"--users {args.users!r}: give heights in metres, e.g. 1.5,1.7,2.0") from None
    if not heights or not all(0.5 <= h <= 3.0 for h in heights):
        raise SystemExit(f"--users {args.users!r}: heights between 0.5 and 3 m")
    data = vd.build(vd.VRDataConfig(), progress=not args.quiet)
    pred = load_predictor(args.diffusion, data.skeleton, inpaint=args.inpaint, noise_scale=args.noise,
                          inpaint_weight=args.inpaint_weight, **({"sample_steps": args.steps} if args.steps else {}))
    res = evaluate_users(pred, data, heights, max_clips=args.users_clips, split=args.split,
                         progress=not args.quiet)
    res["table"] = markdown_users(res)
    return res


def replace_positions(data: vd.VRData, dev_p) -> vd.VRData:
    from dataclasses import replace
    return replace(data, dev_p=np.asarray(dev_p, np.float32))


def _metrics(pred, model: vd.VRData, clips, hf, cal: Calibration, user: vd.VRData, k: float, progress: bool) -> dict:
    """Predict every frame of `clips` from `model` (the inputs as the model sees
    them), place each pose under the model-space head, scale it to the user by
    `cal`, and compare with `user`'s ground truth; errors divided by k."""
    from . import evaluate as ve
    from .blas import single_thread
    acc = ve.Accumulator(model.skeleton)
    sk = model.skeleton
    for c in clips:
        frames = np.arange(model.starts[c], model.stops[c])
        if getattr(pred, "stateful", False):      # one stream, frame after frame (the controller's path)
            pred.reset()
            x, _, th, _ = vd.windows(model, frames, hf, pred.window, with_target=False)
            pred.predict(x[:1], th[:1])              # (loads the numba kernel's BLAS before limiting it)
            pred.reset()
            with single_thread():                     # tiny products: many BLAS threads only wait
                y = np.concatenate([pred.predict(x[i:i + 1], th[i:i + 1]) for i in range(len(frames))])
        else:
            y, th = ve._predict_clip(pred, model, frames, hf)
        rot, pos = vd.poses_from_features(y, th, model.dev_p[frames, 0], sk)
        pos = cal.pose_to_user(pos)
        grot, gpos = vd.ground_truth_pose(user, frames, hf)
        _, pg = quat.fk(rot, pos, sk.parents)
        _, gg = quat.fk(grot, gpos, sk.parents)
        acc.clip(ve.joint_rotations(rot), pg[:, 1:] / k, ve.joint_rotations(grot), gg[:, 1:] / k,
                 user.contacts[frames])
    m = acc.result()
    for key in ("mpjpe_cm", "hand_pe_cm", "upper_pe_cm", "lower_pe_cm", "root_pe_cm"):
        m[key + "_user"] = m[key] * k
    return m


def markdown_users(res: dict) -> str:
    """The synthetic users' table."""
    rows = ["| user | k | est. height (m) | scale | arm ratio | arm span (m) | MPJPE (cm, user) | "
            "MPJPE (cm, / k) | Lower PE (/ k) | Hand PE (/ k) | Jitter (/ k) | MPJPE / k, uncalibrated |",
            "| --- |" + " --- |" * 11]
    for u in res["users"]:
        m, c = u["metrics"], u["calibration"]
        un = u.get("metrics_uncalibrated")
        est = f"{c['user_height']:.3f}" if c["user_height"] else "-"
        rows.append(f"| {u['user']} | {u['k']:.3f} | {est} | {c['scale']:.3f} | "
                    f"{c['arm_ratio']:.3f} | {c['arm_span']:.3f} | {m['mpjpe_cm_user']:.2f} | {m['mpjpe_cm']:.2f} | "
                    f"{m['lower_pe_cm']:.2f} | {m['hand_pe_cm']:.2f} | {m['jitter_km_s3']:.2f} | "
                    + (f"{un['mpjpe_cm']:.2f} |" if un else "- |"))
    a = res["actor"]
    t = users_target(res)
    some = f" (evenly spaced of {res['split_clips']})" if res["clips"] < res["split_clips"] else ""
    rows += ["", f"Synthetic users: the {res['split']} clips scaled by k ({res['clips']} clips{some}, {res['frames']} "
                 f"frames); devices as {res['api']} reports them; one calibration per user from "
                 f"{res['standing_frames']} frames of the {res['split_clips']} clips' first 0.5 s with the head at "
                 f"rest. The actor calibrates as {a['user_height']:.3f} m (scale {a['scale']:.3f}, arm ratio "
                 f"{a['arm_ratio']:.3f}, arm span {a['arm_span']:.3f} m). Target (MPJPE / k within 15% of the "
                 f"1.70 m user's): " + (", ".join(f"{k} {'yes' if v else 'NO'} ({r:+.1%})" for k, (v, r) in t.items())
                                         or "no 1.70 m user")]
    return "\n".join(rows)


def users_target(res: dict) -> dict:
    """{user: (within 15%, relative change)} of MPJPE / k against the 1.70 m user's."""
    base = next((u for u in res["users"] if abs(u["height_m"] - 1.7) < 1e-6), None)
    if base is None:
        return {}
    b = base["metrics"]["mpjpe_cm"]
    return {u["user"]: (abs(u["metrics"]["mpjpe_cm"] / b - 1) <= 0.15, u["metrics"]["mpjpe_cm"] / b - 1)
            for u in res["users"] if u is not base and u["user"] != "actor, joints"}
