"""The live window and the headless capture: input -> the runtime loop's tick -> draw.

    run_live(controller, parents)                       # a window, gamepad/keyboard, 60 Hz ticks
    run_headless(controller, parents, script, 5.0, "out/capture")   # PNGs + contact sheet, no display

The controller is any stage (`anim.control.Controller`: `reset(pose)`,
`step(control_input, dt) -> pose`), ticked through the one runtime loop
(`anim.loop.Loop`), the pose having `.rotations [J, 4]`, `.positions [J, 3]`
(local; joint 0's position is the root in world space), optional `.contacts`
(bool per joint, or per entry of `contact_joints`) and `.info`, an
`anim.skeleton.PoseInfo`: the HUD shows its clip, frame, style, ms (the
stage's own time per tick), note, status and hud lines; debug drawing (G)
its debug_lines and debug_points; its ghost is drawn translucent (the
kinematic target under physics).

Both windows tick the loop at a fixed 60 Hz; the live one renders as fast
as vsync allows (catching up at most `MAX_TICKS_PER_FRAME` ticks per frame).
Edge-triggered inputs (style cycle, toggles) reach the controller on the first
tick of a frame only. The viewer handles 'help', 'debug', 'pause', 'reset',
'quit' and 'switch_controller' (when given several controllers) itself; every
toggle is also passed on to the controller in `DeviceInput.toggles` (e.g. 'push');
'ghost' (K / left stick click) shows or hides the pose's ghost.
"""

from __future__ import annotations

import collections
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from anim.loop import Loop
from viewer.camera import Camera, FollowSettings, update_follow
from viewer.input import HELP_LINES, DeviceInput
from anim.skeleton import PoseInfo
from viewer.scene import CharacterDraw, Scene

TICK_HZ = 60
MAX_TICKS_PER_FRAME = 4
TRAIL_SECONDS = 2.0
CHARACTER_COLOR = (0.86, 0.52, 0.30)
GHOST_COLOR = (0.35, 0.55, 0.95)


def _default_fk():
    from anim.quat import fk

    return fk


def joint_contacts(contacts, num_joints, contact_joints=None):
    """A pose's contacts as bool [J]: per joint already, or one flag per joint of
    `contact_joints` (e.g. the feet); None when unknown."""
    if contacts is None:
        return None
    c = np.asarray(contacts, bool).reshape(-1)
    if len(c) == num_joints:
        return c
    if contact_joints is not None and len(contact_joints) == len(c):
        out = np.zeros(num_joints, bool)
        out[list(contact_joints)] = c
        return out
    return None


@dataclass
class ViewerState:
    """Everything the loops keep between frames (no GL here)."""

    controllers: list
    names: list
    parents: np.ndarray
    fk: object
    initial_pose: object = None
    contact_joints: tuple | None = None
    radii: np.ndarray | None = None
    bone_mask: np.ndarray | None = None
    camera: Camera = field(default_factory=Camera)
    guard: object = None             # the loop's input guard (None: anim.loop.Loop's default InputGuard)
    follow: FollowSettings = field(default_factory=FollowSettings)
    current: int = 0
    pose: object = None
    global_positions: np.ndarray | None = None
    show_help: bool = False
    show_debug: bool = False
    show_ghost: bool = True
    paused: bool = False
    quit: bool = False
    last_input: DeviceInput = field(default_factory=DeviceInput)
    trail: list = field(default_factory=list)
    fps: float = 0.0
    tick_ms: float = 0.0
    ticks: int = 0
    tick_ms_total: float = 0.0
    loop: Loop | None = None

    @property
    def controller(self):
        return self.controllers[self.current]

    def reset(self):
        for c in self.controllers:
            c.reset(self.initial_pose)
        self.loop = Loop(self.controller, guard=self.guard)
        self.pose, self.global_positions, self.trail = self.initial_pose, None, []
        if self.pose is not None:
            self._update_globals()

    def _update_globals(self):
        _, gpos = self.fk(np.asarray(self.pose.rotations), np.asarray(self.pose.positions), self.parents)
        self.global_positions = np.asarray(gpos, np.float32)

    def handle_toggles(self, ci: DeviceInput):
        t = ci.toggles
        if "quit" in t:
            self.quit = True
        if "help" in t:
            self.show_help = not self.show_help
        if "debug" in t:
            self.show_debug = not self.show_debug
        if "ghost" in t:
            self.show_ghost = not self.show_ghost
        if "pause" in t:
            self.paused = not self.paused
        if "reset" in t:
            self.reset()
        if "switch_controller" in t and len(self.controllers) > 1:
            self.current = (self.current + 1) % len(self.controllers)
            self.loop.stage = self.controller
            self.controller.reset(self.pose if self.pose is not None else self.initial_pose)

    def tick(self, ci, dt: float):
        """One tick of the runtime loop. `ci` is a device's `DeviceInput`
        (converted here: camera-relative stick to world, strafe facing, style
        cycling) or an `anim.control.ControlInput` given as is (scripted input)."""
        t0 = time.perf_counter()
        if isinstance(ci, DeviceInput):
            c = self.controller
            ci = ci.to_control(getattr(c, "styles", ()), getattr(c, "style", None))
        if self.loop is None:
            self.loop = Loop(self.controller, guard=self.guard)
        pose = self.loop.tick(ci)
        wall_ms = (time.perf_counter() - t0) * 1e3
        info = getattr(pose, "info", None)
        self.tick_ms = float(info.ms) if info is not None and info.ms else wall_ms
        self.ticks += 1
        self.tick_ms_total += wall_ms
        self.pose = pose
        self._update_globals()
        self.trail.append(self.global_positions[0].copy())
        del self.trail[:-int(TRAIL_SECONDS * TICK_HZ)]

    def update_camera(self, ci: DeviceInput, dt: float):
        root = self.global_positions[0] if self.global_positions is not None else self.camera.target
        update_follow(self.camera, root, dt, ci, self.follow)

    def scene(self, extra_hud=()) -> Scene:
        scene = Scene(camera=self.camera)
        if self.global_positions is None:
            return scene
        pose = self.pose
        info = getattr(pose, "info", None) or PoseInfo()
        j = len(self.parents)
        scene.characters.append(CharacterDraw(
            self.global_positions, self.parents, CHARACTER_COLOR,
            contacts=joint_contacts(getattr(pose, "contacts", None), j, self.contact_joints),
            radii=self.radii, bone_mask=self.bone_mask))
        ghost = info.ghost
        if ghost is not None and self.show_ghost:
            _, gpos = self.fk(np.asarray(ghost.rotations), np.asarray(ghost.positions), self.parents)
            scene.characters.append(CharacterDraw(np.asarray(gpos, np.float32), self.parents, GHOST_COLOR,
                                                  alpha=0.4, radii=self.radii, bone_mask=self.bone_mask))
        if self.show_debug:
            if len(self.trail) > 1:
                trail = np.array(self.trail, np.float32) * np.float32([1, 0, 1]) + np.float32([0, 0.01, 0])
                scene.lines.append((trail, (0.15, 0.35, 0.9)))
            root = self.global_positions[0] * np.float32([1, 0, 1]) + np.float32([0, 0.01, 0])
            mw = self.last_input.move_world()
            if np.any(mw):
                scene.lines.append((np.stack([root, root + mw]), (0.95, 0.2, 0.2)))
            scene.lines.extend(info.debug_lines)
            scene.points.extend(info.debug_points)
        ci = self.last_input
        hud = [f"{self.fps:5.1f} fps    controller {self.tick_ms:.2f} ms/tick",
               f"clip {info.clip or '-'}    frame {'-' if info.frame is None else info.frame}",
               f"style {info.style or '-'}",
               f"input {ci.device}" + ("    run" if ci.run else "") + ("    strafe" if ci.strafe else "")]
        if len(self.controllers) > 1:
            hud.append(f"controller {self.names[self.current]} ({self.current + 1}/{len(self.controllers)}, M)")
        if info.note:
            hud.append(str(info.note))
        if info.status:
            hud.append(f"status: {info.status}")
        hud.extend(info.hud)
        if self.paused:
            hud.append("PAUSED (P)")
        hud.extend(extra_hud)
        hud.append("F1 / H: help")
        scene.hud_lines = hud
        if self.show_help:
            scene.help_lines = HELP_LINES
        return scene


def _make_state(controller, parents, initial_pose, contact_joints, radii, bone_mask, fk, camera):
    if isinstance(controller, dict):
        names, controllers = list(controller), list(controller.values())
    elif isinstance(controller, (list, tuple)):
        controllers = list(controller)
        names = [type(c).__name__ for c in controllers]
    else:
        controllers, names = [controller], [type(controller).__name__]
    first = controllers[0]
    st = ViewerState(controllers, names, np.asarray(parents), fk or _default_fk(), initial_pose,
                     contact_joints if contact_joints is not None else getattr(first, "contact_joints", None),
                     radii if radii is not None else getattr(first, "radii", None), bone_mask,
                     camera or Camera())
    st.reset()
    return st


# ------------------------------------------------------------------------- live
def run_live(controller, skeleton_parents, *, width=1280, height=720, input_device=None,
             initial_pose=None, contact_joints=None, radii=None, bone_mask=None, fk=None,
             camera: Camera | None = None, title="anim viewer", max_seconds=None, vsync=True,
             max_fps=240) -> dict:
    """Open a window and run until Esc / closed (or `max_seconds`).

    controller: one controller, or a list / {name: controller} to switch between with M / X.
    input_device: anything with `update(events, pressed) -> DeviceInput`
                  (default: `GamepadKeyboardInput()`).
    max_fps: a frame-rate cap for when the driver ignores vsync (no busy-spinning at 2000 fps).
    Returns {frames, ticks, wall_s, fps, controller_ms_mean}.
    """
    import pygame

    from viewer.input import GamepadKeyboardInput
    from viewer.renderer import Renderer

    pygame.display.init()
    pygame.font.init()
    st = _make_state(controller, skeleton_parents, initial_pose, contact_joints, radii, bone_mask, fk, camera)
    try:
        renderer = Renderer(width, height, offscreen=False, title=title, vsync=vsync)
    except Exception as e:
        raise RuntimeError(f"run_live: could not open an OpenGL window ({e}); "
                           "without a display use run_headless (python -m viewer --headless DIR)") from e
    device = input_device if input_device is not None else GamepadKeyboardInput()
    dt = 1.0 / TICK_HZ
    acc, frames, start = 0.0, 0, time.perf_counter()
    last = start
    recent = collections.deque(maxlen=240)  # frame timestamps for the HUD's fps
    clock = pygame.time.Clock()
    try:
        while not st.quit:
            clock.tick(max_fps)  # only bites where vsync is unavailable
            now = time.perf_counter()
            frame_dt = min(now - last, 0.25)
            last = now
            recent.append(now)
            while len(recent) > 2 and now - recent[0] > 1.0:
                recent.popleft()
            if len(recent) > 1 and now > recent[0]:
                st.fps = (len(recent) - 1) / (now - recent[0])
            events = pygame.event.get()
            for e in events:
                if e.type == pygame.VIDEORESIZE and e.w > 0 and e.h > 0:
                    renderer.resize(e.w, e.h)
            ci = device.update(events, pygame.key.get_pressed())
            ci.camera_yaw = st.camera.yaw
            st.last_input = ci
            st.handle_toggles(ci)
            if not st.paused:
                acc += frame_dt
                n = 0
                tick_input = ci
                while acc >= dt and n < MAX_TICKS_PER_FRAME:
                    st.tick(tick_input, dt)
                    tick_input = ci.without_edges()
                    acc -= dt
                    n += 1
                if n == MAX_TICKS_PER_FRAME:
                    acc = min(acc, dt)  # too slow to keep up: drop time rather than spiral
            st.update_camera(ci, frame_dt)
            renderer.draw_frame(st.scene())
            renderer.present()
            frames += 1
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                break
    finally:
        renderer.close()
        pygame.quit()
    wall = time.perf_counter() - start
    return {"frames": frames, "ticks": st.ticks, "wall_s": wall, "fps": frames / max(wall, 1e-9),
            "controller_ms_mean": st.tick_ms_total / max(st.ticks, 1)}


# --------------------------------------------------------------------- headless
def save_png(image: np.ndarray, path: str) -> str:
    """uint8 [H, W, 3] -> PNG file (via pygame.image; no display needed)."""
    import pygame

    surf = pygame.image.frombuffer(np.ascontiguousarray(image).tobytes(), (image.shape[1], image.shape[0]), "RGB")
    from anim.fileio import atomic_write

    with atomic_write(path) as f:
        pygame.image.save(surf, f, "frame.png")        # the name hint picks PNG
    return path


def contact_sheet(images, labels=(), max_width=1600, columns=None) -> np.ndarray:
    """A grid of frames (uint8 [H, W, 3] each, same size) with a label in each corner."""
    import pygame

    n = len(images)
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    h, w = images[0].shape[:2]
    scale = min(1.0, max_width / (cols * w))
    tw, th = max(int(w * scale), 1), max(int(h * scale), 1)
    sheet = pygame.Surface((cols * tw, rows * th))
    sheet.fill((30, 30, 30))
    if not pygame.font.get_init():
        pygame.font.init()
    font = pygame.font.Font(None, 22)
    for k, img in enumerate(images):
        surf = pygame.image.frombuffer(np.ascontiguousarray(img).tobytes(), (w, h), "RGB")
        if scale < 1.0:
            surf = pygame.transform.smoothscale(surf, (tw, th))
        x, y = (k % cols) * tw, (k // cols) * th
        sheet.blit(surf, (x, y))
        if k < len(labels):
            sheet.blit(font.render(str(labels[k]), True, (0, 0, 0)), (x + 7, y + th - 21))
            sheet.blit(font.render(str(labels[k]), True, (255, 255, 255)), (x + 6, y + th - 22))
    return np.ascontiguousarray(pygame.surfarray.array3d(sheet).swapaxes(0, 1))


def _save_ticks(frames_to_save, n_ticks, dt):
    if isinstance(frames_to_save, int):
        if frames_to_save <= 0:
            return []
        return sorted({int(round(k)) for k in np.linspace(0, n_ticks - 1, frames_to_save)})
    return sorted({min(max(int(round(t / dt)), 0), n_ticks - 1) for t in frames_to_save})


def run_headless(controller, parents, input_script_fn, seconds: float, out_dir: str, frames_to_save=6, *,
                 width=640, height=360, render_every=1, initial_pose=None, contact_joints=None,
                 radii=None, bone_mask=None, fk=None, camera: Camera | None = None,
                 show_debug=False, renderer=None, prefix="frame") -> dict:
    """Drive the controller from `input_script_fn(t)` (a `DeviceInput`, or an
    `anim.control.ControlInput` in world axes, as `anim run` scripts give) for `seconds`
    at 60 Hz, render offscreen (every `render_every` ticks, and always on the
    saved ones), write the saved frames as PNGs and a contact sheet into out_dir.

    frames_to_save: a count (evenly spaced over the run) or a list of times in seconds.
    Returns timing stats: ticks, frames (rendered), wall_s, fps (rendered frames per
    wall second, the whole loop), render_fps (draw + read back only),
    controller_ms_mean, saved (paths), contact_sheet (path or None).
    """
    from viewer.renderer import Renderer

    st = _make_state(controller, parents, initial_pose, contact_joints, radii, bone_mask, fk, camera)
    st.show_debug = show_debug
    own = renderer is None
    renderer = renderer or Renderer(width, height, offscreen=True)
    dt = 1.0 / TICK_HZ
    n_ticks = max(int(round(seconds * TICK_HZ)), 1)
    save = set(_save_ticks(frames_to_save, n_ticks, dt))
    saved, images, labels = [], [], []
    frames, render_s = 0, 0.0
    os.makedirs(out_dir, exist_ok=True)
    start = time.perf_counter()
    try:
        for k in range(n_ticks):
            t = k * dt
            ci = input_script_fn(t)
            control = ci
            if not isinstance(ci, DeviceInput):      # a scripted anim.control.ControlInput (world axes)
                ci = DeviceInput.from_control(ci)
            ci.camera_yaw = st.camera.yaw if control is ci else 0.0
            st.last_input = ci
            st.handle_toggles(ci)
            if not st.paused:
                st.tick(control, dt)
            st.update_camera(ci, dt)
            if k % render_every == 0 or k in save:
                r0 = time.perf_counter()
                st.fps = frames / render_s if render_s > 0 else 0.0
                renderer.draw_frame(st.scene())
                img = renderer.read_pixels()
                render_s += time.perf_counter() - r0
                frames += 1
                if k in save:
                    path = os.path.join(out_dir, f"{prefix}_{k:05d}.png")
                    saved.append(save_png(img, path))
                    images.append(img)
                    labels.append(f"t = {t:.2f} s")
            if st.quit:
                break
    finally:
        if own:
            renderer.close()
    wall = time.perf_counter() - start
    sheet_path = None
    if images:
        sheet_path = save_png(contact_sheet(images, labels), os.path.join(out_dir, f"{prefix}_contact_sheet.png"))
    return {"ticks": st.ticks, "frames": frames, "wall_s": wall, "fps": frames / max(wall, 1e-9),
            "render_fps": frames / max(render_s, 1e-9), "controller_ms_mean": st.tick_ms_total / max(st.ticks, 1),
            "saved": saved, "contact_sheet": sheet_path, "width": renderer.width, "height": renderer.height}


# ------------------------------------------------------------------------ bench
def benchmark_render(width=1280, height=720, frames=60, samples=0) -> dict:
    """Frames per second of the offscreen renderer on the demo walker (HUD, shadow,
    contacts, debug lines on): draw only (glFinish'ed) and draw + read_pixels."""
    from viewer.demo_pose import DemoWalker
    from viewer.renderer import Renderer

    walker = DemoWalker()
    st = _make_state(walker, walker.parents, None, None, None, None, None, None)
    st.show_debug = True
    ci = DeviceInput(move=np.float32([0.3, 1.0]))
    for _ in range(30):
        st.tick(ci, 1.0 / TICK_HZ)
        st.update_camera(ci, 1.0 / TICK_HZ)
    scene = st.scene()
    with Renderer(width, height, offscreen=True, samples=samples) as r:
        r.draw_frame(scene)
        r.read_pixels()
        t0 = time.perf_counter()
        for _ in range(frames):
            r.draw_frame(scene)
            r.finish()
        draw = (time.perf_counter() - t0) / frames
        t0 = time.perf_counter()
        for _ in range(frames):
            r.draw_frame(scene)
            r.read_pixels()
        read = (time.perf_counter() - t0) / frames
        return {"width": width, "height": height, "samples": samples, "renderer": r.gl_renderer,
                "draw_fps": 1.0 / draw, "draw_read_fps": 1.0 / read, "draw_ms": draw * 1e3, "draw_read_ms": read * 1e3}
