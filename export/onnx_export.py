"""ONNX export of the engine's networks, each with its normalization inside the
graph so that the engine side feeds raw features and reads raw outputs.

    from export import onnx_export
    written = onnx_export.export_all("out/export/onnx")      # [(path, bytes), ...]

Files (inputs -> outputs; `batch` is a dynamic first dimension):

| file | inputs | outputs |
| --- | --- | --- |
| lmm_decompressor.onnx | features [b, 27] raw, latent [b, 32] | pose [b, P]: the pose vector (layout in metadata) |
| lmm_stepper.onnx | features, latent | features_velocity [b, 27] (raw units / s), latent_velocity [b, 32] |
| lmm_projector.onnx | query [b, 27] raw | features [b, 27] raw, latent [b, 32] |
| vr_mlp.onnx | sparse [b, W, 54] raw | pose [b, 126] raw target features of the window's last frame |
| vr_denoiser.onnx | sparse [b, W, 54] raw, x_t [b, W, 126], t [b] | x0 [b, W, 126], pose [b, 126] raw (x0's last row) |
| vr_sampler.onnx | sparse [b, W, 54] raw | pose [b, 126] raw, window [b, W, 126] raw |
| physics_policy.onnx | observation [b, 694] raw | action [b, 60] (the Gaussian's mean) |

"Raw" means the vectors the Python run time builds before it normalizes
them: the database's feature vector (`Database.features * scale + offset`),
`controllers.vr.data.sparse_features` windows, the physics environment's
observation. The LMM graphs fold in both the database's feature normalization
and each network's own; the VR graphs the sparse and target normalization;
the policy its running-mean normalization and the clip at +-obs_clip.

The VR diffusion sampler exists twice: `vr_sampler.onnx` is DDIM unrolled
(the artefact's online step count, from its fixed starting noise, no
inpainting: AGRoL's sliding window, stateless); the online predictor's
inpainting of the frames already shown is a small loop around
`vr_denoiser.onnx`, written out in `ddim_loop` (the constants it needs, the
DDIM timesteps, alpha-bar, the fixed noise, the target normalization and the
inpaint weight, are in the denoiser's metadata).

Every file's `metadata_props['anim']` is JSON: format 'anim-onnx', version,
network, the weights file it came from, the skeleton signature, and what the
engine needs around the network (LMM: feature groups, pose layout, state
range and initial state in raw units; VR: window, calibration, DDIM
constants; physics: action scale and observation layout sizes).

Opset 15 (IR version 8): Unity's inference engine (Sentis 1.x-2.x) imports
opsets 7 to 15, and Unreal's NNE runs ONNX through ONNX Runtime (NNERuntimeORT),
which loads every opset up to its own. So 15 is the newest opset both load;
every graph here uses only operators both list (MatMul, Add, Sub, Mul, Div,
Elu, Sigmoid, Clip, Reshape, Slice, Concat, Unsqueeze, ReduceMean, Sqrt, Cos,
Sin, Identity); LayerNormalization (opset 17) is written out as ReduceMean /
Sub / Mul / Sqrt / Div.

The graphs are built with the onnx helper API straight from the weight
arrays the Python run time evaluates (numpy for LMM, VR and the physics policy,
whose weights come from JAX), not by tracing torch: the same arrays, the same
arithmetic, no exporter in between, and the policy needs no torch model.
"""

from __future__ import annotations

import json
import os

import numpy as np

from anim.fileio import REPO_ROOT, shown_path

OPSET = 15
IR_VERSION = 8
FORMAT = "anim-onnx"
FORMAT_VERSION = 1

LMM_WEIGHTS = os.path.join(REPO_ROOT, "controllers", "learned", "weights", "lmm-locomotion-normal.npz")
VR_DIFFUSION = os.path.join(REPO_ROOT, "controllers", "vr", "weights", "diffusion.npz")
VR_MLP = os.path.join(REPO_ROOT, "controllers", "vr", "weights", "mlp.npz")


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as e:                   # pragma: no cover - a dev dependency
        raise ImportError("ONNX export needs the onnx package: pip install -e '.[dev]'") from e
    return onnx, helper, numpy_helper


class _Graph:
    """A small builder over onnx.helper: every call adds one node and returns
    its output's name."""

    def __init__(self, name: str):
        self.name = name
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.k = 0

    def _name(self, base: str) -> str:
        self.k += 1
        return f"{base}_{self.k}"

    def input(self, name: str, shape, dtype=None) -> str:
        onnx, helper, _ = _onnx()
        self.inputs.append(helper.make_tensor_value_info(name, dtype or onnx.TensorProto.FLOAT, list(shape)))
        return name

    def output(self, x: str, name: str, shape) -> str:
        onnx, helper, _ = _onnx()
        self.op("Identity", x, out=name)
        self.outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(shape)))
        return name

    def const(self, a, base: str = "c", dtype=np.float32) -> str:
        _, _, numpy_helper = _onnx()
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(a, dtype), name))
        return name

    def op(self, kind: str, *inputs: str, out: str | None = None, **attrs) -> str:
        _, helper, _ = _onnx()
        out = out or self._name(kind.lower())
        self.nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    # -- layers
    def linear(self, x, w, b, base="fc"):
        """x @ w + b with w [in, out]."""
        return self.op("Add", self.op("MatMul", x, self.const(w, base + "_w")), self.const(b, base + "_b"))

    def silu(self, x):
        return self.op("Mul", x, self.op("Sigmoid", x))

    def elu(self, x):
        return self.op("Elu", x, alpha=1.0)

    def affine_in(self, x, mean, std):
        """(x - mean) / std."""
        return self.op("Div", self.op("Sub", x, self.const(mean, "mean")), self.const(std, "std"))

    def affine_out(self, x, mean, std):
        """x * std + mean."""
        return self.op("Add", self.op("Mul", x, self.const(std, "std")), self.const(mean, "mean"))

    def layer_norm(self, x, g, b, eps=1e-5):
        """LayerNorm over the last axis, in opset-15 operators."""
        m = self.op("ReduceMean", x, axes=[-1], keepdims=1)
        d = self.op("Sub", x, m)
        v = self.op("ReduceMean", self.op("Mul", d, d), axes=[-1], keepdims=1)
        s = self.op("Sqrt", self.op("Add", v, self.const(np.float32(eps), "eps")))
        return self.linear_scale(self.op("Div", d, s), g, b)

    def linear_scale(self, x, g, b):
        return self.op("Add", self.op("Mul", x, self.const(g, "ln_g")), self.const(b, "ln_b"))

    def slice_last(self, x, start, stop):
        return self.op("Slice", x, self.const([start], "s0", np.int64), self.const([stop], "s1", np.int64),
                       self.const([-1], "ax", np.int64))

    def model(self, doc: str, meta: dict):
        onnx, helper, _ = _onnx()
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, initializer=self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="anim-engine",
                              producer_version="0.1.0", doc_string=doc)
        m.ir_version = IR_VERSION
        helper.set_model_props(m, {"anim": json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **meta})})
        onnx.checker.check_model(m, full_check=True)
        return m


# ------------------------------------------------------------------ learned motion matching
def _mlp(g: _Graph, x: str, net: dict, act) -> str:
    h = g.affine_in(x, net["mean_in"], net["std_in"])
    layers = net["layers"]
    for i, (w, b) in enumerate(layers):
        h = g.linear(h, w, b, f"l{i}")
        if i < len(layers) - 1:
            h = act(h)
    return g.affine_out(h, net["mean_out"], net["std_out"])


def lmm_models(path: str = LMM_WEIGHTS, skeleton=None) -> dict:
    """{'lmm_decompressor': ModelProto, 'lmm_stepper': ..., 'lmm_projector': ...}
    from a learned-motion-matching weights file (`controllers.learned.weights`)."""
    from controllers.learned import weights as W
    w = W.load(path, skeleton)
    a, meta = w.arrays, w.meta
    nf, nl = int(meta["num_features"]), int(meta["latent"])
    off, scale = a["features_offset"], a["features_scale"]
    raw = lambda x: x[:nf] * scale + off                                   # noqa: E731
    common = {"source": shown_path(path),
              "skeleton": meta["skeleton"]["signature"], "fps": meta["fps"],
              "feature_groups": meta["feature_groups"], "trajectory_frames": meta["trajectory_frames"],
              "pose_layout": meta["layout"], "num_features": nf, "latent": nl,
              "features_offset": off.tolist(), "features_scale": scale.tolist(),
              "state_min": {"features": raw(a["state_min"]).tolist(), "latent": a["state_min"][nf:].tolist()},
              "state_max": {"features": raw(a["state_max"]).tolist(), "latent": a["state_max"][nf:].tolist()},
              "init": {"features": (a["init_features"] * scale + off).tolist(), "latent": a["init_latent"].tolist()}}
    out = {}

    def state_input(g):
        f = g.input("features", ["batch", nf])
        lat = g.input("latent", ["batch", nl])
        return g.op("Concat", g.affine_in(f, off, scale), lat, axis=1)

    g = _Graph("lmm_decompressor")
    y = _mlp(g, state_input(g), w.net("decompressor"), g.elu)
    npose = w.net("decompressor")["layers"][-1][0].shape[1]
    g.output(y, "pose", ["batch", npose])
    out["lmm_decompressor"] = g.model(
        "Learned motion matching decompressor: (features raw, latent) -> the pose vector "
        "(metadata pose_layout: character-space positions of moving joints, 6D rotations, velocities, "
        "angular velocities, root velocity and angular velocity, contacts).",
        {"network": "lmm_decompressor", **common})

    g = _Graph("lmm_stepper")
    d = _mlp(g, state_input(g), w.net("stepper"), g.elu)
    g.output(g.op("Mul", g.slice_last(d, 0, nf), g.const(scale, "scale")), "features_velocity", ["batch", nf])
    g.output(g.slice_last(d, nf, nf + nl), "latent_velocity", ["batch", nl])
    out["lmm_stepper"] = g.model(
        "Learned motion matching stepper: (features raw, latent) -> their rates of change per second "
        "(features in raw units); the run time steps state += dt * rate, kept within metadata "
        "state_min/state_max.", {"network": "lmm_stepper", **common})

    g = _Graph("lmm_projector")
    q = g.input("query", ["batch", nf])
    y = _mlp(g, g.affine_in(q, off, scale), w.net("projector"), g.elu)
    g.output(g.affine_out(g.slice_last(y, 0, nf), off, scale), "features", ["batch", nf])
    g.output(g.slice_last(y, nf, nf + nl), "latent", ["batch", nl])
    out["lmm_projector"] = g.model(
        "Learned motion matching projector: a raw query feature vector -> the (features raw, latent) "
        "state of its nearest database frame.", {"network": "lmm_projector", **common})
    return out


# ------------------------------------------------------------------ sparse VR
def _vr_meta(pred, path) -> dict:
    m = pred.meta
    return {"source": shown_path(path), "skeleton": m["skeleton"]["signature"], "window": pred.window,
            "sparse_features": 54, "target_features": int(pred.y_mean.shape[0]),
            "calibration": m["calibration"], "head_forward": pred.head_forward.tolist(),
            "skeleton_names": m["skeleton"]["names"]}


def vr_mlp_model(path: str = VR_MLP, skeleton=None):
    from controllers.vr import infer
    pred = infer.load_predictor(path, skeleton)
    if pred.kind != "mlp":
        raise ValueError(f"{path}: a {pred.kind} VR model, not the MLP baseline")
    w = pred.window
    g = _Graph("vr_mlp")
    x = g.affine_in(g.input("sparse", ["batch", w, 54]), pred.x_mean, pred.x_std)
    h = g.op("Reshape", x, g.const([-1, w * 54], "shape", np.int64))
    for i, (wt, b) in enumerate(pred.layers):
        h = g.silu(g.linear(h, wt, b, f"l{i}"))
    y = g.affine_out(g.linear(h, pred.Wo, pred.bo, "out"), pred.y_mean, pred.y_std)
    g.output(y, "pose", ["batch", int(pred.y_mean.shape[0])])
    return g.model("Sparse-VR MLP baseline: a raw window of head and hand features -> the raw target "
                   "features of its last frame.", {"network": "vr_mlp", **_vr_meta(pred, path)})


def _encode(g: _Graph, pred, x: str) -> str:
    """DiffusionPredictor.encode: the normalized sparse window's contribution [b, W, D]."""
    h = g.linear(x, pred.Wc, pred.bc, "c_in")
    if pred.g_fc:
        (w0, b0), (w1, b1), (w2, b2) = pred.g_fc
        flat = g.op("Reshape", x, g.const([-1, pred.window * 54], "shape", np.int64))
        gg = g.silu(g.linear(flat, w0, b0, "g0"))
        gg = g.silu(g.linear(gg, w1, b1, "g1"))
        gg = g.linear(gg, w2, b2, "g2")
        h = g.op("Add", h, g.op("Unsqueeze", gg, g.const([1], "axis", np.int64)))
    for g0, b0, wt, bt, g1, b1, wf, bf in pred.c_blocks:
        y = g.op("Add", g.op("MatMul", g.const(wt, "fc_time_w"), g.layer_norm(h, g0, b0)), g.const(bt, "fc_time_b"))
        h = g.op("Add", h, g.silu(y))
        h = g.op("Add", h, g.silu(g.linear(g.layer_norm(h, g1, b1), wf, bf, "fc")))
    return g.op("Add", h, g.const(pred.bx, "x_in_b"))


def _denoise(g: _Graph, pred, xt: str, hc: str, embs: list) -> str:
    """DiffusionPredictor.denoise with per-block embeddings embs (names, [D] or [b, 1, D])."""
    h = g.op("Add", g.op("MatMul", xt, g.const(pred.Wx, "x_in_w")), hc)
    for (g0, b0, wt, bt, g1, b1, wf, bf), e in zip(pred.blocks, embs):
        h = g.op("Add", h, e)
        y = g.op("Add", g.op("MatMul", g.const(wt, "fc_time_w"), g.layer_norm(h, g0, b0)), g.const(bt, "fc_time_b"))
        h = g.op("Add", h, g.silu(y))
        h = g.op("Add", h, g.silu(g.linear(g.layer_norm(h, g1, b1), wf, bf, "fc")))
    return g.linear(h, pred.Wo, pred.bo, "out")


def _last_row_raw(g: _Graph, pred, x0: str) -> str:
    w = pred.window
    last = g.op("Slice", x0, g.const([w - 1], "s0", np.int64), g.const([w], "s1", np.int64),
                g.const([1], "ax", np.int64))
    last = g.op("Reshape", last, g.const([-1, int(pred.y_mean.shape[0])], "shape", np.int64))
    return g.affine_out(last, pred.y_mean, pred.y_std)


def _diffusion_predictor(path, skeleton=None):
    from controllers.vr import infer
    pred = infer.load_predictor(path, skeleton, inpaint=0)
    if pred.kind != "diffusion":
        raise ValueError(f"{path}: a {pred.kind} VR model, not the diffusion denoiser")
    return pred


def ddim_constants(pred) -> dict:
    """What the loop around vr_denoiser.onnx needs (`ddim_loop`), JSON-able."""
    return {"timesteps": [int(t) for t in pred.timesteps], "alpha_bar": [float(a) for a in pred.ab],
            "noise": pred.noise.tolist(), "inpaint_weight": pred.inpaint_weight,
            "y_mean": pred.y_mean.tolist(), "y_std": pred.y_std.tolist()}


def vr_denoiser_model(path: str = VR_DIFFUSION, skeleton=None):
    pred = _diffusion_predictor(path, skeleton)
    w, ny = pred.window, int(pred.y_mean.shape[0])
    a = {k: v for k, v in np.load(path).items() if k != "meta"}
    lat = int(pred.cfg["latent"])
    g = _Graph("vr_denoiser")
    x = g.affine_in(g.input("sparse", ["batch", w, 54]), pred.x_mean, pred.x_std)
    xt = g.input("x_t", ["batch", w, ny])
    t = g.input("t", ["batch"])
    half = lat // 2
    freqs = np.exp(-np.log(10000.0) * np.arange(half, dtype=np.float32) / half).astype(np.float32)
    ang = g.op("Mul", g.op("Unsqueeze", t, g.const([1], "axis", np.int64)), g.const(freqs, "freqs"))
    e = g.op("Concat", g.op("Cos", ang), g.op("Sin", ang), axis=1)
    f32 = lambda k: a[k].astype(np.float32)                                  # noqa: E731
    e = g.linear(g.silu(g.linear(e, f32("t_fc0.weight").T, f32("t_fc0.bias"), "t_fc0")),
                 f32("t_fc1.weight").T, f32("t_fc1.bias"), "t_fc1")
    se = g.silu(e)
    embs = [g.op("Unsqueeze", g.linear(se, f32(f"blocks.{b}.emb_fc.weight").T, f32(f"blocks.{b}.emb_fc.bias"),
                                       f"emb{b}"), g.const([1], "axis", np.int64))
            for b in range(len(pred.blocks))]
    x0 = _denoise(g, pred, xt, _encode(g, pred, x), embs)
    g.output(x0, "x0", ["batch", w, ny])
    g.output(_last_row_raw(g, pred, x0), "pose", ["batch", ny])
    return g.model("Sparse-VR diffusion denoiser (AGRoL-style MLP): a raw sparse window, the noised "
                   "normalized target window x_t and the diffusion timestep t -> the predicted clean "
                   "normalized window x0 (and its last row in raw units). The DDIM loop around it: "
                   "export.onnx_export.ddim_loop; its constants are in metadata 'ddim'.",
                   {"network": "vr_denoiser", **_vr_meta(pred, path), "ddim": ddim_constants(pred)})


def vr_sampler_model(path: str = VR_DIFFUSION, skeleton=None):
    pred = _diffusion_predictor(path, skeleton)
    w, ny = pred.window, int(pred.y_mean.shape[0])
    g = _Graph("vr_sampler")
    x = g.affine_in(g.input("sparse", ["batch", w, 54]), pred.x_mean, pred.x_std)
    hc = _encode(g, pred, x)
    xt = g.const(pred.noise[None], "noise")
    x0 = None
    steps = len(pred.timesteps)
    for i in range(steps):
        embs = [g.const(e, f"emb{i}_{b}") for b, e in enumerate(pred.step_emb[i])]
        x0 = _denoise(g, pred, xt, hc, embs)
        if i + 1 == steps:
            break
        ab, ab_prev = pred.ab[i], pred.ab[i + 1]
        eps = g.op("Mul", g.op("Sub", xt, g.op("Mul", x0, g.const(np.float32(np.sqrt(ab)), "sa"))),
                   g.const(np.float32(1 / np.sqrt(1 - ab)), "s1a"))
        xt = g.op("Add", g.op("Mul", x0, g.const(np.float32(np.sqrt(ab_prev)), "sp")),
                  g.op("Mul", eps, g.const(np.float32(np.sqrt(1 - ab_prev)), "s1p")))
    g.output(_last_row_raw(g, pred, x0), "pose", ["batch", ny])
    g.output(g.affine_out(x0, pred.y_mean, pred.y_std), "window", ["batch", w, ny])
    return g.model(f"Sparse-VR diffusion sampler: DDIM with {steps} steps (timesteps "
                   f"{[int(t) for t in pred.timesteps]}) from the artefact's fixed starting noise, unrolled; a raw "
                   f"sparse window -> the raw target features of its last frame and of the whole window. "
                   f"Stateless (no inpainting of frames already shown).",
                   {"network": "vr_sampler", **_vr_meta(pred, path),
                    "timesteps": [int(t) for t in pred.timesteps]})


def ddim_loop(denoise, sparse: np.ndarray, constants: dict, known: np.ndarray | None = None) -> np.ndarray:
    """The online sampler as a loop around vr_denoiser.onnx (what an engine
    writes in C# or C++; DiffusionPredictor.sample_window in numpy is the
    reference it is tested against).

    denoise(sparse, x_t, t) -> x0: one call of the exported denoiser
    (e.g. `lambda s, x, t: session.run(['x0'], {'sparse': s, 'x_t': x, 't': t})[0]`).
    sparse [B, W, 54] raw; known [B, K, 126] raw target frames already shown
    (in the current window's heading frame), inpainted into the K rows
    before the last; constants: the denoiser's metadata 'ddim'.
    Returns x0 [B, W, 126] normalized (its last row times y_std plus y_mean is the pose)."""
    sparse = np.asarray(sparse, np.float32)
    b = sparse.shape[0]
    noise = np.asarray(constants["noise"], np.float32)
    ab = constants["alpha_bar"]
    ts = constants["timesteps"]
    w = noise.shape[0]
    xt = np.broadcast_to(noise, (b,) + noise.shape).astype(np.float32)
    if known is not None:
        known = ((np.asarray(known, np.float32) - np.asarray(constants["y_mean"], np.float32))
                 / np.asarray(constants["y_std"], np.float32)).astype(np.float32)
    k = 0 if known is None else known.shape[1]
    lo, hi = w - 1 - k, w - 1
    x0 = xt
    for i, t in enumerate(ts):
        if k:
            kn = np.float32(np.sqrt(ab[i])) * known + np.float32(np.sqrt(1 - ab[i])) * noise[lo:hi]
            wgt = np.float32(1.0 if i == 0 else constants["inpaint_weight"])
            xt = xt.copy()
            xt[:, lo:hi] = kn if wgt == 1 else wgt * kn + (1 - wgt) * xt[:, lo:hi]
        x0 = denoise(sparse, xt, np.full(b, t, np.float32))
        if i + 1 == len(ts):
            break
        eps = (xt - np.float32(np.sqrt(ab[i])) * x0) * np.float32(1 / np.sqrt(1 - ab[i]))
        xt = (np.float32(np.sqrt(ab[i + 1])) * x0 + np.float32(np.sqrt(1 - ab[i + 1])) * eps).astype(np.float32)
    return x0


# ------------------------------------------------------------------ physics policy
def physics_policy_model(path: str | None = None, skeleton=None):
    """The physics tracking policy (deterministic: the Gaussian's mean)."""
    from controllers.physics import ppo
    from controllers.physics.cli import SHIPPED_POLICY
    path = path or SHIPPED_POLICY
    pol, h, env_cfg, meta = ppo.load_policy(path, skeleton)
    n_obs, n_act = pol.mean.shape[0], pol.layers[-1][0].shape[1]
    g = _Graph("physics_policy")
    obs = g.input("observation", ["batch", n_obs])
    x = g.op("Mul", g.op("Sub", obs, g.const(pol.mean, "obs_mean")), g.const(pol.inv_std, "obs_inv_std"))
    x = g.op("Clip", x, g.const(np.float32(-pol.clip), "lo"), g.const(np.float32(pol.clip), "hi"))
    for i, (w, b) in enumerate(pol.layers):
        x = g.linear(x, w, b, f"l{i}")
        if i < len(pol.layers) - 1:
            x = g.silu(x)
    g.output(x, "action", ["batch", n_act])
    return g.model("Physics tracking policy (PPO, trained in MJX): the raw observation "
                   "(controllers.physics.env.observation) -> the action (the Gaussian policy's mean); PD "
                   "targets = reference + action_scale * action.",
                   {"network": "physics_policy", "source": shown_path(path), "skeleton": meta.get("skeleton_signature"),
                    "observation": n_obs, "action": n_act, "obs_clip": pol.clip,
                    "action_scale": getattr(env_cfg, "action_scale", None), "env_steps": meta.get("env_steps")})


# ------------------------------------------------------------------ files
NETWORKS = {"lmm": ("lmm_decompressor", "lmm_stepper", "lmm_projector"),
            "vr": ("vr_denoiser", "vr_sampler", "vr_mlp"),
            "physics": ("physics_policy",)}


def save(model, path) -> int:
    """Write one model (atomically); returns its size in bytes."""
    from anim.fileio import atomic_write
    data = model.SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
    return len(data)


def export_all(out_dir: str, which=("lmm", "vr", "physics"), lmm: str = LMM_WEIGHTS,
               vr_diffusion: str = VR_DIFFUSION, vr_mlp: str = VR_MLP, policy: str | None = None,
               echo=None) -> list[tuple[str, int]]:
    """Export the chosen groups of networks as OUT_DIR/NAME.onnx; returns [(path, bytes)]."""
    unknown = [w for w in which if w not in NETWORKS]
    if unknown:
        raise ValueError(f"unknown network group {unknown[0]!r} (known: {', '.join(NETWORKS)})")
    models = {}
    if "lmm" in which:
        models.update(lmm_models(lmm))
    if "vr" in which:
        models["vr_denoiser"] = vr_denoiser_model(vr_diffusion)
        models["vr_sampler"] = vr_sampler_model(vr_diffusion)
        models["vr_mlp"] = vr_mlp_model(vr_mlp)
    if "physics" in which:
        models["physics_policy"] = physics_policy_model(policy)
    written = []
    for name, m in models.items():
        path = os.path.join(out_dir, f"{name}.onnx")
        n = save(m, path)
        written.append((path, n))
        if echo:
            echo(f"  {path}  {n / 1e6:.2f} MB")
    return written


def metadata(path_or_model) -> dict:
    """The 'anim' metadata of an exported model (a path or a ModelProto)."""
    onnx, _, _ = _onnx()
    m = onnx.load(path_or_model) if isinstance(path_or_model, (str, os.PathLike)) else path_or_model
    props = {p.key: p.value for p in m.metadata_props}
    return json.loads(props["anim"])
