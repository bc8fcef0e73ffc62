"""Learned foot contacts for the sparse-VR avatar: which predicted foot is
planted, read from the predicted legs' recent motion by a small network.

    from controllers.vr.contacts import LearnedContacts, load
    det = LearnedContacts(load(DEFAULT_WEIGHTS, skeleton))
    det.reset()
    planted = det.step(gpos)      # global joint positions of one predicted pose [J, 3] -> [2] bool

Why learned. The predictors output rotations only, so the contacts must be
read from the predicted motion. A toe-height-and-speed rule (feet.py's
ContactDetector) misses the stances the predictor gets late or early: on
the val split 6% of the data's contact frames have the predicted toe still
in the air or on its way, and with the feet locked those frames are most of
the skating that is left. The prediction's errors are not random: its feet
land early and slide, lift late, hover a few centimetres up. A network that
has seen the predictor's own output against the data's contacts reads them
better than a threshold (val: F1 0.962 against 0.932, recall 0.963 against
0.936; `python -m controllers.vr.contacts --score`).

Input: a causal window of `window` frames (10: 1/6 s) of the legs (toes,
feet, lower legs), each placed relative to the current frame's hips ground
point in its heading frame (from the thighs), heights kept: the same motion
moved or turned anywhere on the floor gives the same contacts. Output: each
foot's contact probability; `LearnedContacts` switches a foot on above
`on` and off below `off`. A 180 -> 128 -> 128 -> 2 SiLU MLP in numpy,
about 20 us a frame.

Training data: the shipped diffusion model's predictions of the train
split, made frame after frame as the live controller makes them, against
the data's contacts there; val is for choosing, test is never read. The
artefact (format `anim-vr-contacts`, the VR models' container) records the
skeleton it reads (checked on load), the window, the model whose
predictions it learned and its val scores.

    python -m controllers.vr.contacts --train     # ~7 min predicting on 2 cores, ~1 min training
    python -m controllers.vr.contacts --score     # val: learned against the height rule
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from anim.fileio import ArtefactError

from . import data as vd
from . import infer

FORMAT = "anim-vr-contacts"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "contacts.npz"
TRAIN_COMMAND = "python -m controllers.vr.contacts --train"


# ------------------------------------------------------------------ features
def leg_joints(skeleton) -> tuple[np.ndarray, np.ndarray]:
    """(the joints the features read: toes, feet, lower legs, left then
    right within each; the thighs that give the heading frame), from the
    skeleton's roles (controllers.vr.data.joint_groups)."""
    parents = np.asarray(skeleton.parents)
    toes = [skeleton.index(n) for n in vd.joint_groups(skeleton)["feet"]]
    feet = [int(parents[t]) for t in toes]
    shins = [int(parents[f]) for f in feet]
    thighs = [int(parents[s]) for s in shins]
    if min(thighs) < 0:
        raise ValueError(f"contacts: the toes {toes} of skeleton {skeleton.signature()!r} are not three joints "
                         f"below a thigh")
    return np.array(toes + feet + shins, np.int64), np.array(thighs, np.int64)


def _frame(thighs: np.ndarray):
    """Ground origin and heading axes (lateral, forward) of thigh positions [..., 2, 3]."""
    origin = 0.5 * (thighs[..., 0, :] + thighs[..., 1, :])
    origin = origin * np.array([1.0, 0.0, 1.0])
    lat = (thighs[..., 0, :] - thighs[..., 1, :]) * np.array([1.0, 0.0, 1.0])
    lat = lat / np.maximum(np.linalg.norm(lat, axis=-1, keepdims=True), 1e-9)
    fwd = np.stack([-lat[..., 2], np.zeros(lat.shape[:-1]), lat[..., 0]], -1)
    return origin, lat, fwd


def _place(past: np.ndarray, origin, lat, fwd) -> np.ndarray:
    """Joint positions [..., K, L, 3] in the heading frame of (origin, lat, fwd) [..., 3]."""
    d = past - origin[..., None, None, :]
    return np.stack([(d * lat[..., None, None, :]).sum(-1), past[..., 1],
                     (d * fwd[..., None, None, :]).sum(-1)], -1)


def features(gpos: np.ndarray, skeleton, window: int) -> np.ndarray:
    """Every frame's input [T, window * 18] of one clip's global joint
    positions [T, J, 3], from its first frame (the frames before it are the
    first frame, as `LearnedContacts` starts)."""
    legs, thighs = leg_joints(skeleton)
    g = np.asarray(gpos, np.float64)
    t = np.arange(len(g))
    idx = np.clip(t[:, None] - np.arange(window)[None], 0, None)        # [T, K]: now, 1 frame ago, ...
    past = g[:, legs][idx]                                               # [T, K, L, 3]
    origin, lat, fwd = _frame(g[:, thighs])
    return _place(past, origin, lat, fwd).reshape(len(g), -1).astype(np.float32)


# ------------------------------------------------------------------ the network
class ContactNet:
    """The saved MLP: raw features -> contact probabilities [.., 2]."""

    def __init__(self, meta: dict, arrays: dict, path: str = ""):
        self.meta, self.path = meta, path
        self.window = int(meta["window"])
        self.skeleton = infer.skeleton_of(meta)
        self.mean, self.std = arrays["x_mean"], arrays["x_std"]
        n = int(meta["layers"])
        self.layers = [(arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(n)]
        want = self.window * 3 * len(leg_joints(self.skeleton)[0])
        if self.layers[0][0].shape[0] != want or self.mean.shape != (want,):
            raise ArtefactError(f"{path}: damaged contact model (its input is {self.layers[0][0].shape[0]} "
                                      f"wide, the window of {self.window} frames needs {want})")

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        h = (np.asarray(x, np.float32) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = infer._silu(h)
        return 1.0 / (1.0 + np.exp(-np.clip(h, -60.0, 60.0)))


_LOADED: dict = {}


def load(path, skeleton=None) -> ContactNet:
    """A saved contact model (checked: format, every array finite, the
    skeleton when given: a mismatch is a ValueError naming the file)."""
    path = str(path)
    key = (os.path.abspath(path), os.path.getmtime(path) if os.path.exists(path) else None,
           skeleton.signature() if skeleton is not None else None)
    if key not in _LOADED:
        meta, arrays = infer.load_artefact(path, skeleton, fmt=FORMAT, version=FORMAT_VERSION,
                                           what="foot-contact model", train=TRAIN_COMMAND)
        _LOADED[key] = ContactNet(meta, arrays, path)
    return _LOADED[key]


def for_skeleton(skeleton, path=None):
    """The shipped (or `path`'s) contact model when it reads this skeleton,
    else None (no file, or another rig's: the caller keeps the height rule)."""
    path = str(path or DEFAULT_WEIGHTS)
    if not os.path.exists(path):
        return None
    net = load(path)
    return net if net.skeleton.signature() == skeleton.signature() else None


class LearnedContacts:
    """Causal contacts of one predicted pose a frame, from the network
    (hysteresis on its probability: a foot lands above `on`, lifts below `off`)."""

    def __init__(self, net: ContactNet, on: float = 0.5, off: float = 0.5):
        if not 0.0 < off <= on < 1.0:
            raise ValueError(f"contacts: thresholds on {on}, off {off}: need 0 < off <= on < 1")
        self.net, self.on, self.off = net, float(on), float(off)
        self.legs, self.thighs = leg_joints(net.skeleton)
        self.past = None
        self.state = np.zeros(2, bool)
        self.probability = np.zeros(2)

    def reset(self) -> None:
        self.past = None
        self.state[:] = False

    def step(self, gpos: np.ndarray) -> np.ndarray:
        """Global joint positions of the pose [J, 3] (at least up to the
        toes) -> [2] bool, left and right as the data's contacts."""
        g = np.asarray(gpos, np.float64)
        now = g[self.legs]
        if self.past is None:
            self.past = np.repeat(now[None], self.net.window, 0)
        else:
            self.past = np.roll(self.past, 1, axis=0)
            self.past[0] = now
        origin, lat, fwd = _frame(g[self.thighs])
        x = _place(self.past, origin, lat, fwd).reshape(-1)
        self.probability = self.net.probabilities(x)
        self.state = np.where(self.state, self.probability > self.off, self.probability > self.on)
        return self.state.copy()


# ------------------------------------------------------------------ training
def _clip_inputs(clips, data, window):
    """(features, the data's contacts) of predicted clips [(clip, frames, rot, pos)]."""
    from anim import quat
    xs, ys = [], []
    for _, frames, rot, pos in clips:
        xs.append(features(quat.fk(rot, pos, data.skeleton.parents)[1], data.skeleton, window))
        ys.append(data.contacts[frames])
    return np.concatenate(xs), np.concatenate(ys).astype(np.float32)


def fit(x: np.ndarray, y: np.ndarray, hidden: int = 128, epochs: int = 6, batch: int = 512, lr: float = 1e-3,
        seed: int = 0, log=print) -> dict:
    """Binary cross-entropy training of the MLP (torch, CPU); returns its
    arrays (w0.., b0.., x_mean, x_std)."""
    import torch
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mean, std = x.mean(0), x.std(0) + 1e-3
    xt = torch.tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.SiLU(),
                              torch.nn.Linear(hidden, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), lr, weight_decay=1e-5)
    for ep in range(epochs):
        perm = torch.from_numpy(rng.permutation(len(xt)))
        total = 0.0
        for b in range(0, len(xt), batch):
            i = perm[b:b + batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[i]), yt[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(i)
        log(f"  epoch {ep + 1}/{epochs}: loss {total / len(xt):.4f}")
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    out = {"x_mean": mean, "x_std": std}
    for i, m in enumerate(lin):
        out[f"w{i}"] = m.weight.detach().numpy().T.copy()
        out[f"b{i}"] = m.bias.detach().numpy().copy()
    return out


def _score(net, clips, data) -> dict:
    """Precision / recall / F1 on predicted clips: the network frame after
    frame (LearnedContacts) and the height rule (feet.detect)."""
    from anim import quat

    from . import feet as vf
    toes = leg_joints(data.skeleton)[0][:2]
    learned, height, truth = [], [], []
    for _, frames, rot, pos in clips:
        g = quat.fk(rot, pos, data.skeleton.parents)[1]
        det = LearnedContacts(net)
        learned.append(np.stack([det.step(gi) for gi in g]))
        height.append(vf.detect(g[:, toes]))
        truth.append(data.contacts[frames])
    t = np.concatenate(truth)
    return {"learned": vf.contact_accuracy(np.concatenate(learned), t),
            "height": vf.contact_accuracy(np.concatenate(height), t)}


def train(out: str = str(DEFAULT_WEIGHTS), weights: str | None = None, window: int = 10, epochs: int = 6,
          seed: int = 0, progress: bool = True) -> dict:
    """Predict the train split with the VR model (default the shipped
    diffusion), fit the network to the data's contacts there, score it on
    val, save it to `out`. Returns the val scores."""
    from . import evaluate as ve
    t0 = time.perf_counter()
    model = str(weights or ve.DEFAULT_WEIGHTS["diffusion"])
    print(f"contacts: predicting the train split with {model} (frame after frame, as live) ...", flush=True)
    data, _, clips = ve.predict_split(model, "train", progress)
    x, y = _clip_inputs(clips, data, window)
    print(f"contacts: {len(x)} frames of {len(clips)} clips ({time.perf_counter() - t0:.0f} s); training", flush=True)
    arrays = fit(x, y, epochs=epochs, seed=seed)
    meta = {"kind": "contacts", "window": window, "layers": 3, "skeleton": infer.skeleton_meta(data.skeleton),
            "trained_on": {"model": os.path.basename(model), "split": "train", "frames": int(len(x)),
                           "clips": len(clips)},
            "seed": seed, "epochs": epochs, "command": TRAIN_COMMAND}
    net = ContactNet(meta, {k: np.asarray(v, np.float32) for k, v in arrays.items()})
    _, _, val = ve.predict_split(model, "val", progress)
    scores = _score(net, val, data)
    meta["val"] = {k: round(v, 4) for k, v in scores["learned"].items() if k.startswith("contact_") and
                   isinstance(v, float)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    infer.save_artefact(out, meta, arrays, fmt=FORMAT, version=FORMAT_VERSION)
    print(f"contacts: wrote {out} ({time.perf_counter() - t0:.0f} s in all)", flush=True)
    return scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m controllers.vr.contacts",
                                description="The VR avatar's learned foot contacts: train the network on a VR "
                                            "model's predictions of the train split (--train), or score it "
                                            "against the height rule on the val split (--score).")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--train", action="store_true", help="predict the train split and fit the network")
    g.add_argument("--score", action="store_true", help="precision, recall and F1 on the val split")
    p.add_argument("--contacts", default=str(DEFAULT_WEIGHTS),
                   help="the contact model to write (--train) or score (default: the shipped one)")
    p.add_argument("--weights", default=None, help="VR model whose predictions it reads (default: the shipped "
                                                   "diffusion)")
    p.add_argument("--window", type=int, default=10, help="frames of the legs' past it reads (default 10)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.window < 1 or a.epochs < 1:
        p.error("--window and --epochs must be at least 1")
    if a.train:
        scores = train(a.contacts, a.weights, a.window, a.epochs, a.seed)
    else:
        from .evaluate import predict_split
        data, _, val = predict_split(a.weights, "val", True)
        scores = _score(load(a.contacts, data.skeleton), val, data)
    for k, m in scores.items():
        print(f"val, {k}: precision {m['contact_precision']:.3f} recall {m['contact_recall']:.3f} "
              f"F1 {m['contact_f1']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
