"""Sparse-VR full-body prediction: tracked head and hands in, full pose out,
in the style of AGRoL (Du et al., "Avatars Grow Legs", CVPR 2023).

    data.py       windows of the corpus: the 54-D sparse signal in the head's
                  heading frame, 126-D pose targets, the split by clip (split.json)
    models.py     the AGRoL-style MLP diffusion denoiser and the MLP regressor (torch)
    schedule.py   the cosine schedule and DDIM respacing (numpy)
    infer.py      numpy run-time inference (one fused numba kernel for the online
                  window) and the saved artefact (.npz, versioned, skeleton-checked)
    baselines.py  the motion-matching baseline (kd-tree over the training frames)
    train.py      python -m controllers.vr.train --model {diffusion,mlp} --out DIR
    evaluate.py   python -m controllers.vr.evaluate: AGRoL's metrics, latency, foot skating
    styles.py     leave-one-style-out: the split without a style, `anim eval vr --leave-out-style`
    controller.py VRController: the Controller protocol over any of the predictors
    cli.py        add_vr_parsers(subparsers): `anim train vr`, `anim eval vr`
    weights/      shipped models (see weights/README.md for the commands)

Input devices live in viewer/vr_input.py (trace replay, WebXR bridge, OpenXR).
"""
