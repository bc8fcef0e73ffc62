"""What the sparse-VR tests share: the small real-data selection (two
test-split clips, a walk and a run of bandai-namco-2's normal style, among
the takes chosen), whether the corpus is there, and the shipped diffusion
weights with the marks that skip without them."""

import os

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
