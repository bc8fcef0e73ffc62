"""viewer: offscreen rendering (EGL, no display), camera, the headless runner.

Renders at 320x240 on whatever OpenGL there is (Mesa llvmpipe on a CPU box)
and checks pixels against where the camera projects the scene.
"""

import os
import sys

if sys.platform.startswith("linux"):
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # offscreen without a display server

import math

import numpy as np
import pytest

from viewer.camera import Camera, FollowSettings, project, update_follow
from viewer.renderer import Renderer
from viewer.scene import CharacterDraw, Scene, default_bone_radii

W, H = 320, 240

# a standing stick figure, global positions (Y up, facing +Z)
PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 2, 10, 11, 2, 13, 14])
STAND = np.array([
    [0.0, 0.95, 0.0],                                       # 0 hips
    [0.0, 1.20, 0.0], [0.0, 1.45, 0.0], [0.0, 1.70, 0.0],   # 1 spine, 2 chest, 3 head
    [0.10, 0.90, 0.0], [0.10, 0.48, 0.0], [0.10, 0.07, 0.0],     # 4-6 left leg (+X)
    [-0.10, 0.90, 0.0], [-0.10, 0.48, 0.0], [-0.10, 0.07, 0.0],  # 7-9 right leg
    [0.20, 1.42, 0.0], [0.22, 1.15, 0.0], [0.23, 0.90, 0.0],     # 10-12 left arm
    [-0.20, 1.42, 0.0], [-0.22, 1.15, 0.0], [-0.23, 0.90, 0.0],  # 13-15 right arm
], np.float32)
FEET = [6, 9]


def camera():
    return Camera(target=np.array([0.0, 0.9, 0.0], np.float32), yaw=0.5, pitch=0.25, distance=3.5)


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(W, H, offscreen=True)
    yield r
    r.close()


def render(renderer, **scene):
    scene.setdefault("camera", camera())
    renderer.draw_frame(Scene(**scene))
    return renderer.read_pixels().astype(np.int32)


def px(p):
    return int(round(p[0])), int(round(p[1]))


def changed_near(a, b, xy, radius=1, tol=12):
    x, y = px(xy)
    win = np.s_[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1]
    return np.abs(a[win] - b[win]).max() > tol


@pytest.fixture(scope="module")
def ground(renderer):
    return render(renderer)


def test_readback_is_an_image_with_sky_above_ground(renderer, ground):
    img = renderer.read_pixels()
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    sky, floor = ground[2].mean(0), ground[-3].mean(0)
    assert sky[2] > sky[0] + 15            # bluish sky at the top
    assert abs(floor - sky).max() > 20     # the checkerboard ground at the bottom
    # the checkerboard: both square colours appear near the bottom
    row = ground[-20, :, 0]
    assert row.max() - row.min() > 30


def test_character_pixels_appear_where_the_joints_project(renderer, ground):
    pos = STAND + np.float32([0.3, 0.0, 0.5])
    img = render(renderer, characters=[CharacterDraw(pos, PARENTS)])
    uv, inside = project(camera(), pos, W, H)
    assert inside.all()
    for j in (0, 1, 2, 3, 5, 8):  # hips, spine, chest, head, knees
        assert changed_near(img, ground, uv[j]), f"joint {j} not drawn at {uv[j]}"
    hips = img[px(uv[0])[1], px(uv[0])[0]]
    assert hips[0] > hips[2] + 30  # the body's orange, not sky or grey ground
    # the head is above the hips on screen (upright), and far from the image's other side
    assert uv[3][1] < uv[0][1] - 20


def test_character_off_screen_leaves_the_image_unchanged(renderer, ground):
    cam = camera()
    behind = cam.eye() - 6.0 * cam.forward() * np.float32([1, 0, 1])
    pos = STAND + np.float32([behind[0], 0.0, behind[2]])
    _, inside = project(cam, pos, W, H)
    assert not inside.any()
    img = render(renderer, characters=[CharacterDraw(pos, PARENTS, contacts=np.ones(len(PARENTS), bool))])
    assert np.array_equal(img, ground)


def test_blob_shadow_and_contacts_darken_the_ground_beside_the_feet(renderer, ground):
    cam = camera()
    beside = STAND[FEET[0]] * np.float32([1, 0, 1]) + np.float32([0.12, 0.0, 0.0])
    uv, inside = project(cam, beside[None], W, H)
    x, y = px(uv[0])
    no_shadow = render(renderer, characters=[CharacterDraw(STAND, PARENTS, shadow=False)])
    assert np.array_equal(no_shadow[y, x], ground[y, x]), "the probe pixel must show bare ground"
    shadow = render(renderer, characters=[CharacterDraw(STAND, PARENTS)])
    contacts = np.zeros(len(PARENTS), bool)
    contacts[FEET] = True
    contact = render(renderer, characters=[CharacterDraw(STAND, PARENTS, contacts=contacts)])
    assert shadow[y, x].sum() < ground[y, x].sum() - 15
    assert contact[y, x].sum() < shadow[y, x].sum() - 15


def test_ghost_is_translucent(renderer, ground):
    pos = STAND + np.float32([0.3, 0.0, 0.5])
    uv, _ = project(camera(), pos[1:2], W, H)
    x, y = px(uv[0])
    opaque = render(renderer, characters=[CharacterDraw(pos, PARENTS, color=(0.2, 0.4, 1.0), shadow=False)])
    ghost = render(renderer, characters=[CharacterDraw(pos, PARENTS, color=(0.2, 0.4, 1.0), alpha=0.4,
                                                       shadow=False)])
    g, o, b = ghost[y, x], opaque[y, x], ground[y, x]
    assert np.abs(g - o).max() > 15 and np.abs(g - b).max() > 15
    assert np.all(np.minimum(o, b) - 3 <= g) and np.all(g <= np.maximum(o, b) + 3)  # a blend of the two


def test_debug_lines_and_points_appear_where_drawn(renderer, ground):
    a, b = np.float32([-1.5, 0.3, 1.5]), np.float32([1.5, 0.3, 1.5])
    line = np.stack([a, (a + b) / 2, b])
    img = render(renderer, lines=[(line, (0.0, 1.0, 0.0))])
    uv, inside = project(camera(), line, W, H)
    assert inside.all()
    for t in (0.25, 0.5, 0.75):
        p = uv[0] + (uv[2] - uv[0]) * t
        x, y = px(p)
        win = img[y - 1:y + 2, x - 1:x + 2]
        assert (win[..., 1] - win[..., 0] > 60).any(), f"no green line pixel near {p}"
    assert np.array_equal(img[:40], ground[:40])  # nothing elsewhere (the sky band)

    dot = np.float32([0.0, 0.5, -1.0])
    img = render(renderer, points=[(dot, (1.0, 0.0, 1.0), 0.08)])
    (x, y), = [px(p) for p in project(camera(), dot[None], W, H)[0]]
    assert img[y, x, 1] < img[y, x, 0] - 40 and changed_near(img, ground, (x, y))


def test_hud_and_help_text_appear_in_their_regions(renderer, ground):
    img = render(renderer, hud_lines=["60.0 fps", "clip walk  frame 12"])
    diff = np.abs(img - ground).max(-1)
    assert diff[8:50, 8:120].max() > 60                     # text panel top-left
    assert diff[H // 2:, W // 2:].max() == 0                # nothing else changed
    img = render(renderer, help_lines=["help\tkeys", "move\tW A S D"])
    diff = np.abs(img - ground).max(-1)
    assert diff[H // 2 - 10:H // 2 + 10, W // 2 - 30:W // 2 + 30].max() > 60
    assert diff[:20, :20].max() == 0


def test_camera_conventions():
    cam = Camera(target=np.zeros(3, np.float32), yaw=0.0, pitch=0.0, distance=5.0)
    np.testing.assert_allclose(cam.eye(), [0, 0, -5], atol=1e-6)       # behind a +Z-facing character
    (left, right), inside = project(cam, np.float32([[1, 0, 0], [-1, 0, 0]]), W, H)
    assert inside.all() and left[0] < W / 2 < right[0]                # its left (+X) on the screen's left
    up, _ = project(cam, np.float32([[0, 1, 0]]), W, H)
    assert up[0, 1] < H / 2
    _, inside = project(cam, np.float32([[0, 0, -10]]), W, H)          # behind the camera
    assert not inside.any()
    cam.yaw = math.pi / 2
    np.testing.assert_allclose(cam.forward(), [1, 0, 0], atol=1e-6)


def test_follow_camera_closes_half_the_gap_per_halflife_and_clamps():
    s = FollowSettings(halflife=0.2, target_height=1.0)
    cam = Camera(target=np.float32([0, 1, 0]))
    for _ in range(12):
        update_follow(cam, [2.0, 0.0, 0.0], 0.2 / 12, settings=s)
    np.testing.assert_allclose(cam.target, [1.0, 1.0, 0.0], atol=1e-4)

    class Stick:
        look = np.float32([1.0, 1.0])
        orbit = np.zeros(2, np.float32)
        zoom_rate, zoom_steps = 0.0, 100.0
    update_follow(cam, [2.0, 0.0, 0.0], 1.0, Stick(), s)
    assert cam.yaw < 0 and cam.pitch == s.max_pitch and cam.distance == s.min_distance


def test_default_bone_radii_are_thicker_at_the_trunk():
    r = default_bone_radii(PARENTS)
    assert np.all((r >= 0.035) & (r <= 0.07))
    assert r[1] > r[5] > r[6]  # spine > shin > foot


def test_demo_walker_stands_upright_on_the_ground():
    from anim.quat import fk

    from viewer.demo_pose import DemoWalker
    from viewer.input import DeviceInput

    w = DemoWalker()
    lows = []
    for k in range(90):
        ci = DeviceInput(move=np.float32([0.0, 1.0]))
        pose = w.step(ci.to_control(), 1 / 60)
        _, g = fk(pose.rotations, pose.positions, w.parents)
        lows.append(g[list(w.contact_joints), 1].min())
        assert pose.contacts is not None and pose.contacts.any()
    head, hips = g[w.skeleton.index("HeadTop")], g[0]
    assert head[1] > hips[1] + 0.5
    np.testing.assert_allclose(lows, 0.07, atol=1e-4)   # the lower foot stays on the ground
    assert g[0, 2] > 1.5                                # walked forward along +Z (camera yaw 0)
    assert pose.info.clip is not None and pose.info.frame is not None and pose.info.style and pose.info.ms >= 0


def test_run_headless_writes_frames_and_a_contact_sheet(tmp_path, renderer):
    import pygame

    from viewer.app import run_headless
    from viewer.demo_pose import DemoWalker
    from viewer.input import DeviceInput

    def script(t):
        return DeviceInput(move=np.float32([0.0, 1.0]), run=t > 0.5,
                            toggles={"debug"} if t == 0 else set())

    w = DemoWalker()
    stats = run_headless(w, w.parents, script, 1.0, str(tmp_path), frames_to_save=[0.0, 0.5, 0.99],
                         render_every=10, renderer=renderer)
    assert stats["ticks"] == 60 and stats["frames"] >= 6 and stats["fps"] > 0 and stats["render_fps"] > 0
    assert len(stats["saved"]) == 3
    for p in stats["saved"]:
        assert pygame.image.load(p).get_size() == (W, H)
    sheet = pygame.image.load(stats["contact_sheet"])
    assert sheet.get_size() == (2 * W, 2 * H)
    # the saved frames differ (the character moved, the HUD counted frames)
    a = pygame.surfarray.array3d(pygame.image.load(stats["saved"][0])).astype(int)
    b = pygame.surfarray.array3d(pygame.image.load(stats["saved"][-1])).astype(int)
    assert np.abs(a - b).max() > 50


def test_joint_contacts_maps_foot_flags_onto_joints():
    from viewer.app import joint_contacts

    assert joint_contacts(None, 5) is None
    np.testing.assert_array_equal(joint_contacts([True, False], 5, (3, 4)), [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(joint_contacts(np.ones(5, bool), 5), np.ones(5, bool))
    assert joint_contacts([True, False], 5) is None


def test_hud_shows_the_controllers_note():
    """A controller's Pose.info.note (e.g. motion matching asked to strafe
    beyond its data) becomes a HUD line; without one the HUD has none."""
    from anim.quat import fk

    from viewer.app import ViewerState
    from viewer.demo_pose import DemoWalker
    from viewer.input import DeviceInput

    w = DemoWalker()
    state = ViewerState([w], ["walker"], w.parents, fk)
    state.tick(DeviceInput(move=np.float32([0.0, 1.0])), 1 / 60)
    plain = state.scene().hud_lines
    state.pose.info.note = "database has 3 s of side steps: forward steps moved, feet re-planted"
    assert "database has 3 s of side steps: forward steps moved, feet re-planted" in state.scene().hud_lines
    assert not any("side steps" in line for line in plain)
