"""What the sparse-VR tests share: the small real-data selection (two
test-split clips, a walk and a run of bandai-namco-2's normal style, among
the takes chosen), whether the corpus is there, and the shipped diffusion
weights with the marks that skip without them."""

import os

import numpy as np
import pytest

import mocap_data
from controllers.vr import data as vd
from controllers.vr import evaluate as ve

HAVE_DATA = any(True for _ in mocap_data.datasets())
SHIPPED = ve.DEFAULT_WEIGHTS["diffusion"]
SMALL = vd.VRDataConfig(tags=(("dataset", "bandai-namco-2"), ("content", ("walk", "run")), ("style", "normal"),
                              ("take", ("002", "003", "005", "018"))), cache_dir="")
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="the mocap corpus (../shared/mocap or $ANIM_MOCAP_DIR) is absent")
needs_shipped = [needs_data, pytest.mark.skipif(not os.path.exists(SHIPPED), reason="shipped diffusion weights absent")]


def predict_test_clips(data):
    """(the shipped diffusion predictor, [(frames, rot, pos)] of each test
    clip of `data`), predicted frame after frame as the live controller does."""
    from controllers.vr import infer
    pred = infer.load_predictor(str(SHIPPED), data.skeleton)
    hf = np.asarray(pred.head_forward, np.float32)
    clips = data.clips("test", mirrored=False)
    ys, ths = ve._predict_lockstep(pred, data, clips, hf)
    out = []
    for c in clips:
        frames = np.arange(data.starts[c], data.stops[c])
        rot, pos = vd.poses_from_features(ys[c], ths[c], data.dev_p[frames, 0], data.skeleton)
        out.append((frames, rot, pos))
    return pred, out
