"""Run-time inference of the sparse-VR predictors in numpy (no torch), and their
saved artefact.

Artefact (one .npz): 'meta' (JSON bytes: format 'anim-vr-model', version, kind,
model config, window, skeleton names/parents/offsets and signature, device
calibration, head forward axis, seed, training record) plus the network
weights under their torch state-dict names and the normalization arrays
x_mean, x_std [54], y_mean, y_std [126]. Loading checks the format, version
and (when given) the skeleton: a mismatch is an error, never a wrong pose.

Every predictor maps raw sparse windows [B, W, 54] (controllers.vr.data
features) to the current frame's raw target features [B, 126].
"""

from __future__ import annotations

import json
import os

import numpy as np

from anim.fileio import ArtefactError, atomic_write, read_npz

FORMAT = "anim-vr-model"
FORMAT_VERSION = 1


# ------------------------------------------------------------- artefact
def save_artefact(path: str, meta: dict, arrays: dict, half: bool = False, fmt: str = FORMAT,
                  version: int = FORMAT_VERSION) -> None:
    """Write meta + arrays to one .npz, atomically (temporary file, rename).
    half: store the arrays as float16 (the shipped copies: half the size;
    loading turns them back into float32). fmt, version: the artefact kind
    (the learned foot contacts are one too: controllers.vr.contacts)."""
    meta = {"format": fmt, "version": version, **meta, "float16": bool(half)}
    dtype = np.float16 if half else np.float32
    with atomic_write(path) as f:
        np.savez(f, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                 **{k: np.asarray(v, np.float32).astype(dtype) for k, v in arrays.items()})


def load_artefact(path: str, skeleton=None, fmt: str = FORMAT, version: int = FORMAT_VERSION,
                  what: str = "VR model", train: str = "python -m controllers.vr.train") -> tuple[dict, dict]:
    """(meta, float32 arrays) of a saved VR model (or another artefact kind:
    fmt, version, what it is called in errors, the command that trains one).
    The archive's CRC-32 of every member is checked as it is read; the meta
    must parse and every array be finite. A damaged, truncated or foreign
    file is an ArtefactError (a ValueError) naming it; a missing one a
    FileNotFoundError."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such {what} (train one: {train})")
    stored = read_npz(path, f"{what} file")
    if "meta" not in stored:
        raise ArtefactError(f"{path}: not an {fmt} file (no 'meta')")
    try:
        meta = json.loads(stored.pop("meta").tobytes())
        if not isinstance(meta, dict):
            raise ValueError("meta is not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise ArtefactError(f"{path}: damaged {what} (meta: {e})") from None
    if meta.get("format") != fmt or meta.get("version") != version:
        raise ArtefactError(f"{path}: {meta.get('format')} v{meta.get('version')}, this code reads "
                            f"{fmt} v{version}: retrain it")
    arrays = {}
    for k, v in stored.items():
        if v.dtype.kind != "f":
            raise ArtefactError(f"{path}: damaged {what} (array {k!r} has dtype {v.dtype})")
        a = v.astype(np.float32)
        if not np.isfinite(a).all():
            raise ArtefactError(f"{path}: damaged {what} ({k} holds NaN or infinite values)")
        arrays[k] = a
    for k in ("x_std", "y_std"):
        if k in arrays and (arrays[k] <= 0).any():
            raise ArtefactError(f"{path}: damaged {what} ({k} has values <= 0)")
    try:
        sig = meta["skeleton"]["signature"]
    except (KeyError, TypeError):
        raise ArtefactError(f"{path}: damaged {what} (no skeleton in meta)") from None
    if skeleton is not None and skeleton.signature() != sig:
        raise ValueError(f"{path}: trained for skeleton {sig!r}, not {skeleton.signature()!r}")
    return meta, arrays


def skeleton_of(meta: dict):
    from anim.skeleton import Skeleton
    sk = meta["skeleton"]
    return Skeleton(tuple(sk["names"]), np.array(sk["parents"]), np.array(sk["offsets"], np.float32))


def skeleton_meta(skeleton) -> dict:
    return {"names": list(skeleton.names), "parents": skeleton.parents.tolist(),
            "offsets": skeleton.offsets.tolist(), "signature": skeleton.signature()}


# ------------------------------------------------------------- numpy layers
def _silu(x):
    return x / (1.0 + np.exp(-np.maximum(x, -80.0)))


def _layer_norm(x, g, b, eps=1e-5):
    m = x.mean(-1, keepdims=True)
    d = x - m
    v = (d * d).mean(-1, keepdims=True)
    return d / np.sqrt(v + eps) * g + b


def _timestep_embedding(t: int, dim: int) -> np.ndarray:
    half = dim // 2
    freqs = np.exp(-np.log(10000.0) * np.arange(half, dtype=np.float32) / half)
    a = float(t) * freqs
    return np.concatenate([np.cos(a), np.sin(a)]).astype(np.float32)


class Predictor:
    """Common part: normalization, skeleton, calibration."""

    kind = "?"

    def __init__(self, meta: dict, arrays: dict):
        self.meta = meta
        self.window = int(meta["window"])
        self.skeleton = skeleton_of(meta)
        self.calibration = meta["calibration"]
        self.head_forward = np.asarray(meta["head_forward"], np.float32)
        self.x_mean, self.x_std = arrays["x_mean"], arrays["x_std"]
        self.y_mean, self.y_std = arrays["y_mean"], arrays["y_std"]

    def reset(self):
        pass

    def predict(self, sparse: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        """Raw sparse windows [B, W, 54] -> raw current-frame target [B, 126].
        theta [B]: the windows' heading angles (used by a stateful predictor to
        carry its previous estimate into the new window's frame)."""
        x = ((np.asarray(sparse, np.float32) - self.x_mean) / self.x_std).astype(np.float32)
        return self._predict(x, theta) * self.y_std + self.y_mean


class DiffusionPredictor(Predictor):
    """DDIM sampling of the AGRoL-style denoiser in numpy (batch any size)."""

    kind = "diffusion"

    def __init__(self, meta, arrays, sample_steps: int | None = None, noise_scale: float | None = None,
                 inpaint_weight: float | None = None):
        super().__init__(meta, arrays)
        # how hard the shown past holds after the first DDIM step: its rows are
        # set to the noised known frames at the first step, then blended with
        # this weight (1: set at every step; less lets the model revise the
        # past it was shown, which lowers the error and raises the jitter);
        # the artefact's online_inpaint_weight, else 1
        self.inpaint_weight = float(meta.get("online_inpaint_weight", 1.0) if inpaint_weight is None
                                    else inpaint_weight)
        from .schedule import cosine_alpha_bar, ddim_timesteps
        cfg = meta["config"]
        self.cfg = cfg
        w = {k: v for k, v in arrays.items()}
        f32 = np.float32
        self.Wx, self.bx = w["x_in.weight"].T.copy(), w["x_in.bias"]
        self.Wc, self.bc = w["c_in.weight"].T.copy(), w["c_in.bias"]
        self.g_fc = [(w[f"g_fc.{i}.weight"].T.copy(), w[f"g_fc.{i}.bias"]) for i in range(3)] \
            if cfg.get("global_cond", 0) else []
        self.c_blocks = []
        for b in range(cfg.get("cond_blocks", 0)):
            p = f"c_blocks.{b}."
            self.c_blocks.append((w[p + "norm0.weight"], w[p + "norm0.bias"], w[p + "fc_time.weight"],
                                  w[p + "fc_time.bias"][:, None], w[p + "norm1.weight"], w[p + "norm1.bias"],
                                  w[p + "fc.weight"].T.copy(), w[p + "fc.bias"]))
        self.Wo, self.bo = w["out.weight"].T.copy(), w["out.bias"]
        self.blocks = []
        for b in range(cfg["blocks"]):
            p = f"blocks.{b}."
            self.blocks.append((w[p + "norm0.weight"], w[p + "norm0.bias"], w[p + "fc_time.weight"],
                                w[p + "fc_time.bias"][:, None], w[p + "norm1.weight"], w[p + "norm1.bias"],
                                w[p + "fc.weight"].T.copy(), w[p + "fc.bias"]))
        steps = sample_steps or meta.get("online_steps") or cfg["sample_steps"]
        self.timesteps = ddim_timesteps(cfg["diffusion_steps"], steps)
        ab = cosine_alpha_bar(cfg["diffusion_steps"])
        self.ab = [float(ab[t]) for t in self.timesteps]
        # per step and block: emb_fc(SiLU(embed(t))), constant for fixed steps
        self.step_emb = []
        for t in self.timesteps:
            e = _timestep_embedding(t, cfg["latent"])
            e = _silu(e @ w["t_fc0.weight"].T + w["t_fc0.bias"]) @ w["t_fc1.weight"].T + w["t_fc1.bias"]
            se = _silu(e)
            self.step_emb.append([(se @ w[f"blocks.{b}.emb_fc.weight"].T + w[f"blocks.{b}.emb_fc.bias"]).astype(f32)
                                  for b in range(cfg["blocks"])])
        # the starting point of sampling: the fixed noise times noise_scale
        # (the artefact's online_noise; 0: DDIM from zeros, deterministic and
        # nearest the conditional mean; artefacts without the key: 1)
        self.noise_scale = float(meta.get("online_noise", 1.0) if noise_scale is None else noise_scale)
        self.noise = (arrays["noise"] * self.noise_scale).astype(f32)

    def denoise(self, x_t: np.ndarray, hc: np.ndarray, step: int) -> np.ndarray:
        h = x_t @ self.Wx + hc
        for (g0, b0, wt, bt, g1, b1, wf, bf), e in zip(self.blocks, self.step_emb[step]):
            h = h + e
            y = wt @ _layer_norm(h, g0, b0) + bt
            h = h + _silu(y)
            h = h + _silu(_layer_norm(h, g1, b1) @ wf + bf)
        return h @ self.Wo + self.bo

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The sparse signal's contribution (+ the x_t projection's bias) [..., W, D]."""
        h = x @ self.Wc + self.bc
        if self.g_fc:
            (w0, b0_), (w1, b1_), (w2, b2_) = self.g_fc
            g = _silu(x.reshape(x.shape[:-2] + (-1,)) @ w0 + b0_)
            g = _silu(g @ w1 + b1_)
            h = h + (g @ w2 + b2_)[..., None, :]
        for g0, b0, wt, bt, g1, b1, wf, bf in self.c_blocks:
            h = h + _silu(wt @ _layer_norm(h, g0, b0) + bt)
            h = h + _silu(_layer_norm(h, g1, b1) @ wf + bf)
        return (h + self.bx).astype(np.float32)

    def sample_window(self, x: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
        """Normalized sparse [B, W, 54] -> normalized x0 [B, W, 126]: DDIM (eta 0)
        from the fixed noise. With `known` [B, K, 126] (K < W), the K frames
        before the current one (rows W-1-K .. W-2) are inpainted: before every
        step they are set to the known frames noised to that step (with the
        same fixed noise); after the first step, blended in with
        inpaint_weight."""
        hc = self.encode(x)
        xt = np.broadcast_to(self.noise, (x.shape[0],) + self.noise.shape)
        k = 0 if known is None else known.shape[1]
        a, b = self.window - 1 - k, self.window - 1
        x0 = xt
        for i in range(len(self.timesteps)):
            ab = self.ab[i]
            if k:
                xt = xt.copy()
                kn = np.float32(np.sqrt(ab)) * known + np.float32(np.sqrt(1 - ab)) * self.noise[a:b]
                w = np.float32(1.0 if i == 0 else self.inpaint_weight)
                xt[:, a:b] = kn if w == 1 else w * kn + (1 - w) * xt[:, a:b]
            x0 = self.denoise(xt, hc, i)
            if i + 1 == len(self.timesteps):
                break
            ab_prev = self.ab[i + 1]
            eps = (xt - np.float32(np.sqrt(ab)) * x0) * np.float32(1 / np.sqrt(1 - ab))
            xt = np.float32(np.sqrt(ab_prev)) * x0 + np.float32(np.sqrt(1 - ab_prev)) * eps
        return x0

    # -- online continuity: the window's past frames inpainted with the frames
    #    already shown (re-expressed in the new window's heading frame)
    inpaint = 0               # frames of the past inpainted (0: off; at most W-1)
    stateful = False          # set with inpaint: predict() rows are streams advancing one frame per call

    def set_inpaint(self, frames: int) -> "DiffusionPredictor":
        self.inpaint = int(min(max(frames, 0), self.window - 1))
        self.stateful = self.inpaint > 0
        self.reset()
        return self

    def reset(self):
        self._shown = None          # [B, n, 126] raw target features of the frames shown, oldest first
        self._shown_theta = None

    def _known(self, theta):
        """Normalized known past [B, K, 126] in the frames of `theta`, or None."""
        shown = getattr(self, "_shown", None)
        if not self.inpaint or shown is None or theta is None or len(theta) > len(shown):
            return None
        n = len(theta)            # streams that ended drop off the end of the batch
        y = shown[:n, -self.inpaint:].copy()
        d = self._shown_theta[:n] - np.asarray(theta, np.float32)
        c, s_ = np.cos(d)[:, None], np.sin(d)[:, None]
        for k in (0, 3):          # the hips' 6D columns, rotated by the change of heading
            x_, z_ = y[..., k].copy(), y[..., k + 2].copy()
            y[..., k] = c * x_ + s_ * z_
            y[..., k + 2] = -s_ * x_ + c * z_
        if y.shape[1] < self.inpaint:
            return None
        return ((y - self.y_mean) / self.y_std).astype(np.float32)

    def _predict(self, x, theta=None):
        known = self._known(theta)
        if x.shape[0] == 1 and self.use_numba:
            x0 = self._sample_one(x[0], None if known is None else known[0], full=False)[None]
        else:
            x0 = self.sample_window(x, known)
        if self.inpaint and theta is not None:
            last = x0[:, -1:] * self.y_std + self.y_mean
            if known is None:     # a first frame: the past is the first frame repeated
                hist = np.repeat(last, self.inpaint, axis=1)
            else:
                hist = np.concatenate([known * self.y_std + self.y_mean, last], axis=1)[:, 1:]
            self._shown, self._shown_theta = hist.astype(np.float32), np.asarray(theta, np.float32).copy()
        return x0[:, -1]

    # -- one window, the online case: the whole DDIM loop in one numba kernel
    use_numba = True

    def _fused(self):
        """Block weights stacked, LayerNorm affines folded into the linears that follow."""
        if getattr(self, "_fused_w", None) is None:
            g0 = np.stack([b[0] for b in self.blocks])
            wt = np.stack([b[2] for b in self.blocks])
            c0 = np.stack([(b[2].sum(1)[:, None] * b[1][None, :] + b[3]) for b in self.blocks])
            wf = np.stack([b[4][:, None] * b[6] for b in self.blocks])
            bf = np.stack([b[5] @ b[6] + b[7] for b in self.blocks])
            e = np.stack([np.stack(s) for s in self.step_emb])
            ab = np.array(self.ab, np.float32)
            self._fused_w = tuple(np.ascontiguousarray(a, np.float32) for a in
                                  (self.Wx, self.Wo, self.bo, g0, wt, c0, wf, bf, e, ab, self.noise,
                                   np.array([self.inpaint_weight])))
        return self._fused_w

    def _sample_one(self, x: np.ndarray, known: np.ndarray | None = None, full: bool = True) -> np.ndarray:
        """One normalized window [W, 54] -> normalized x0 [W, 126] (numba);
        known [K, 126]: inpainted past frames; full=False: only the last row."""
        w = self._fused()
        known = np.zeros((0, w[-2].shape[1]), np.float32) if known is None else np.ascontiguousarray(known, np.float32)
        hc = np.ascontiguousarray(self.encode(np.asarray(x, np.float32)), np.float32)
        return _ddim_one_kernel()(hc, *w, known, full)


def _ddim_one(hc, wx, wo, bo, g0, wt, c0, wf, bf, e, ab, noise, iw, known, full):
    """DDIM sampling of one window from the fixed `noise`: the encoded sparse
    signal hc [W, D] -> x0 [W, 126]; the len(known) frames before the last
    one inpainted (set at the first step, blended in with iw[0] after).
    Same arithmetic as DiffusionPredictor.sample_window. Rows that the next
    step overwrites (inpainted frames) and, unless `full`, every row but the
    last at the final step are left out (their x0 rows are then undefined)."""
    nw, nd = hc.shape[0], wx.shape[1]
    nb = g0.shape[0]
    steps = e.shape[0]
    nk = known.shape[0]
    nout = noise.shape[1]
    xt = noise.copy()
    x0 = np.zeros_like(noise)
    n = np.empty((nw, nd), np.float32)
    k0 = nw - 1 - nk                 # first inpainted row
    for s in range(steps):
        if nk > 0:
            qa, qb = np.float32(np.sqrt(ab[s])), np.float32(np.sqrt(1.0 - ab[s]))
            w = np.float32(1.0) if s == 0 else iw[0]
            for i in range(nk):
                for k in range(nout):
                    xt[k0 + i, k] = w * (qa * known[i, k] + qb * noise[k0 + i, k]) + (1 - w) * xt[k0 + i, k]
        h = np.dot(xt, wx)
        h += hc
        for b in range(nb):
            for i in range(nw):
                m = np.float32(0.0)
                for j in range(nd):
                    h[i, j] += e[s, b, j]
                    m += h[i, j]
                m /= nd
                v = np.float32(0.0)
                for j in range(nd):
                    d = h[i, j] - m
                    v += d * d
                r = np.float32(1.0) / np.sqrt(v / nd + np.float32(1e-5))
                for j in range(nd):
                    n[i, j] = (h[i, j] - m) * r
            y = np.dot(wt[b], n)
            for i in range(nw):
                m = np.float32(0.0)
                for j in range(nd):
                    u = y[i, j] * g0[b, j] + c0[b, i, j]
                    h[i, j] += u / (np.float32(1.0) + np.exp(-u))
                    m += h[i, j]
                m /= nd
                v = np.float32(0.0)
                for j in range(nd):
                    d = h[i, j] - m
                    v += d * d
                r = np.float32(1.0) / np.sqrt(v / nd + np.float32(1e-5))
                for j in range(nd):
                    n[i, j] = (h[i, j] - m) * r
            y = np.dot(n, wf[b])
            for i in range(nw):
                for j in range(nd):
                    u = y[i, j] + bf[b, j]
                    h[i, j] += u / (np.float32(1.0) + np.exp(-u))
        last = s + 1 == steps
        # rows the next step overwrites (the inpainted ones, when they are
        # all the past) need no output
        first_row = 0 if (last and full) else (nw - 1 if last else (nk if (k0 == 0 and iw[0] == 1) else 0))
        x0[first_row:] = np.dot(h[first_row:], wo)
        for i in range(first_row, nw):
            for k in range(nout):
                x0[i, k] += bo[k]
        if last:
            return x0
        a, a_prev = ab[s], ab[s + 1]
        sa, s1a = np.float32(np.sqrt(a)), np.float32(1.0 / np.sqrt(1.0 - a))
        sp, s1p = np.float32(np.sqrt(a_prev)), np.float32(np.sqrt(1.0 - a_prev))
        for i in range(first_row, nw):
            for k in range(nout):
                eps = (xt[i, k] - sa * x0[i, k]) * s1a
                xt[i, k] = sp * x0[i, k] + s1p * eps
    return x0


_ddim_compiled = None


def _ddim_one_kernel():
    global _ddim_compiled
    if _ddim_compiled is None:
        from numba import njit
        _ddim_compiled = njit(cache=True, fastmath=True)(_ddim_one)
    return _ddim_compiled


class MLPPredictor(Predictor):
    kind = "mlp"

    def __init__(self, meta, arrays):
        super().__init__(meta, arrays)
        n = meta["config"]["layers"]
        self.layers = [(arrays[f"hidden.{i}.weight"].T.copy(), arrays[f"hidden.{i}.bias"]) for i in range(n)]
        self.Wo, self.bo = arrays["out.weight"].T.copy(), arrays["out.bias"]

    def _predict(self, x, theta=None):
        h = x.reshape(x.shape[0], -1)
        for w, b in self.layers:
            h = _silu(h @ w + b)
        return h @ self.Wo + self.bo


def load_predictor(path: str, skeleton=None, inpaint: int | None = None, **kwargs) -> Predictor:
    """A numpy predictor from a saved artefact (diffusion or mlp). Diffusion:
    `inpaint` past frames of each window are inpainted with the frames already
    shown (default: all W-1; 0: AGRoL's plain sliding window, stateless);
    `sample_steps` overrides the DDIM steps (default: the artefact's
    online_steps, else its config's sample_steps); `noise_scale` the scale of
    the fixed starting noise (default: the artefact's online_noise, else 1);
    `inpaint_weight` how hard the shown past holds after the first step
    (default: the artefact's online_inpaint_weight, else 1)."""
    meta, arrays = load_artefact(path, skeleton)
    kind = meta.get("kind")
    if kind not in ("diffusion", "mlp"):
        raise ArtefactError(f"{path}: unknown VR model kind {kind!r}")
    try:
        if kind == "diffusion":
            p = DiffusionPredictor(meta, arrays, **kwargs)
            p.set_inpaint(p.window - 1 if inpaint is None else inpaint)
        else:
            p = MLPPredictor(meta, arrays)
        # a neutral window through every layer: their shapes must chain
        probe = np.zeros((1, p.window) + p.x_mean.shape[-1:], np.float32)
        if kind == "diffusion":      # one denoising step (a whole sampling costs ~0.5 s)
            if p.noise.shape != (p.window,) + p.y_mean.shape[-1:]:
                raise ValueError(f"noise has shape {p.noise.shape}")
            out = p.denoise(p.noise[None], p.encode(probe), 0)[:, -1]
        else:
            out = p._predict(probe)
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ArtefactError(f"{path}: damaged VR model (its layers do not fit together: "
                            f"{type(e).__name__}: {e})") from None
    if out.shape != (1,) + p.y_mean.shape[-1:] or not np.isfinite(out).all():
        raise ArtefactError(f"{path}: damaged VR model (a neutral window gives an output of shape "
                            f"{out.shape}, finite: {bool(np.isfinite(out).all())})")
    return p
