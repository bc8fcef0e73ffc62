"""Input devices -> `DeviceInput`: a gamepad (hot-pluggable) with keyboard and mouse fallback.

Mapping (also `HELP_LINES`, shown on screen with F1 / H):

    action               keyboard / mouse                  gamepad (SDL GameController layout)
    move                 W A S D                           left stick
    run (hold)           Shift                             right trigger (or A held)
    strafe               Q toggles                         left trigger held (or Q still toggles)
    orbit camera         arrow keys, left/right-mouse drag right stick
    zoom                 mouse wheel, PageUp / PageDown    shoulders: RB in, LB out
    cycle style          Tab or C                          Y
    switch controller    M                                 X
    push the character   F                                 B
    kinematic ghost      K toggles                         left stick click
    debug drawing        G                                 Back / View
    help overlay         F1 or H                           Start / Menu
    reset                R                                 right stick click
    pause                P                                 -
    quit                 Esc, closing the window           -

Dead zones (stick values are in [-1, 1], SDL's raw ints divided by 32767):
radial, `STICK_DEAD_ZONE = 0.20` inner and `STICK_SATURATION = 0.95` outer on
both sticks: a stick deflected by r becomes (r - 0.20) / (0.95 - 0.20) clipped to
[0, 1] along the same direction, so the direction is kept, small drift reads
as exactly zero and the edge reaches 1. Triggers count as held past
`TRIGGER_THRESHOLD = 0.30`.

Hot-plugging: a pad plugged in mid-run (CONTROLLERDEVICEADDED, or
JOYDEVICEADDED for a device SDL has no controller mapping for) takes over as
the active device; when the active pad is unplugged (…DEVICEREMOVED), the most
recently added remaining pad takes over, else the keyboard. The keyboard and
mouse always work too: while a pad's left stick rests in its dead zone, WASD
moves.

Reading devices and mapping them are kept apart: `GamepadKeyboardInput.update`
takes a list of pygame events and the pressed-keys state (anything indexable
by key code, e.g. `pygame.key.get_pressed()`, or a set of key codes; None =
track KEYDOWN/KEYUP), so tests feed synthetic events. The only hardware access
is opening a pad when it is plugged in, done by a `PadBackend` (replaceable).
Pad axes and buttons are tracked from events, never polled.

Conventions: `move` and `look` have x = right, y = forward/up (SDL's stick y,
positive downwards, is flipped). `move` is relative to the camera:
`DeviceInput.move_world()` turns it into a world-space ground direction using
`camera_yaw` (which the app fills in each tick); see viewer/camera.py.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

STICK_DEAD_ZONE = 0.20
STICK_SATURATION = 0.95
TRIGGER_THRESHOLD = 0.30
MOUSE_ORBIT_RADIANS_PER_PIXEL = 0.006

HELP_LINES = [  # tab-separated columns (the renderer aligns them)
    "controls\tkeyboard / mouse\tgamepad",
    "move\tW A S D\tleft stick",
    "run (hold)\tShift\tright trigger or A",
    "strafe\tQ toggles\tleft trigger (hold)",
    "orbit camera\tarrow keys, mouse drag\tright stick",
    "zoom\twheel, PageUp / PageDown\tRB in, LB out",
    "cycle style\tTab or C\tY",
    "switch controller\tM\tX",
    "push\tF\tB",
    "kinematic ghost\tK\tleft stick click",
    "debug drawing\tG\tBack",
    "help\tF1 or H\tStart",
    "reset\tR\tright stick click",
    "pause\tP\t",
    "quit\tEsc\t",
]

# edge-triggered actions: key -> toggle name (style cycling has its own field)
KEY_TOGGLES = {
    pygame.K_g: "debug",
    pygame.K_F1: "help",
    pygame.K_h: "help",
    pygame.K_f: "push",
    pygame.K_k: "ghost",
    pygame.K_m: "switch_controller",
    pygame.K_r: "reset",
    pygame.K_p: "pause",
    pygame.K_ESCAPE: "quit",
}
STYLE_KEYS = (pygame.K_TAB, pygame.K_c)
STRAFE_KEY = pygame.K_q
RUN_KEYS = (pygame.K_LSHIFT, pygame.K_RSHIFT)

# SDL GameController layout (pygame.CONTROLLER_BUTTON_*), the same numbers on every pad SDL knows
PAD_A, PAD_B, PAD_X, PAD_Y, PAD_BACK, PAD_GUIDE, PAD_START = 0, 1, 2, 3, 4, 5, 6
PAD_LSTICK, PAD_RSTICK, PAD_LB, PAD_RB = 7, 8, 9, 10
PAD_TOGGLES = {PAD_BACK: "debug", PAD_START: "help", PAD_B: "push", PAD_X: "switch_controller",
               PAD_RSTICK: "reset", PAD_LSTICK: "ghost"}
PAD_STYLE_BUTTON = PAD_Y
# axes: left x, left y, right x, right y, left trigger, right trigger
AXIS_LX, AXIS_LY, AXIS_RX, AXIS_RY, AXIS_LT, AXIS_RT = 0, 1, 2, 3, 4, 5
# Raw joystick API (a device SDL has no controller mapping for): the usual XInput-style order.
JOYSTICK_AXES = {0: AXIS_LX, 1: AXIS_LY, 3: AXIS_RX, 4: AXIS_RY, 2: AXIS_LT, 5: AXIS_RT}
JOYSTICK_BUTTONS = {0: PAD_A, 1: PAD_B, 2: PAD_X, 3: PAD_Y, 4: PAD_LB, 5: PAD_RB,
                    6: PAD_BACK, 7: PAD_START, 9: PAD_LSTICK, 10: PAD_RSTICK}


@dataclass
class DeviceInput:
    """What the user asks for this tick (device independent).

    move:   [2] desired movement, x = right, y = forward, |move| <= 1, camera relative.
    look:   [2] camera orbit rate in [-1, 1] (x = turn right, y = orbit up).
    run, strafe: held states.
    style_cycle: True on the tick the style-cycle button went down (edge).
    toggles: edge-triggered actions this tick: 'debug', 'help', 'push',
             'switch_controller', 'reset', 'pause', 'quit'.
    device: 'keyboard' or the active pad's name.
    camera_yaw: yaw of the camera (radians, viewer/camera.py); the app fills it in.
    zoom_rate: [-1, 1] held zoom (+ = closer); zoom_steps: mouse-wheel notches this frame;
    orbit: [2] radians of mouse-drag orbit this frame (camera only; controllers ignore these).
    """

    move: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    look: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    run: bool = False
    strafe: bool = False
    style_cycle: bool = False
    toggles: set = field(default_factory=set)
    device: str = "keyboard"
    camera_yaw: float = 0.0
    zoom_rate: float = 0.0
    zoom_steps: float = 0.0
    orbit: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))

    def move_world(self) -> np.ndarray:
        """`move` as a world-space ground vector [3] (x, 0, z), same length as `move`."""
        s, c = math.sin(self.camera_yaw), math.cos(self.camera_yaw)
        fwd = np.array([s, 0.0, c], np.float32)
        right = np.array([-c, 0.0, s], np.float32)
        return (self.move[0] * right + self.move[1] * fwd).astype(np.float32)

    @classmethod
    def from_control(cls, c) -> "DeviceInput":
        """A stand-in for a scripted `anim.control.ControlInput` (for the HUD and
        debug drawing): with camera_yaw = 0, move_world() gives back c.move."""
        tracked = any(getattr(c, k, None) is not None for k in ("head", "left_hand", "right_hand"))
        return cls(move=np.array([-c.move[0], c.move[1]], np.float32), run=bool(c.run),
                   strafe=c.facing is not None, toggles=set(c.actions),
                   device="VR script" if tracked else "script")

    def to_control(self, styles=(), current_style=None, facing_yaw=None):
        """The device-independent `anim.control.ControlInput` a controller takes:
        `move` in world axes (through the camera yaw); while strafing, the
        facing is held at `facing_yaw` (default: the camera's forward); a style
        cycle press picks the style after `current_style` in `styles`."""
        from anim.control import ControlInput

        mw = self.move_world()
        facing = None
        if self.strafe:
            yaw = self.camera_yaw if facing_yaw is None else facing_yaw
            facing = np.array([math.sin(yaw), math.cos(yaw)], np.float32)
        style = None
        if self.style_cycle and len(styles) > 0:
            styles = list(styles)
            i = styles.index(current_style) + 1 if current_style in styles else 0
            style = styles[i % len(styles)]
        return ControlInput(move=np.array([mw[0], mw[2]], np.float32), facing=facing, run=self.run,
                            style=style, actions=frozenset(self.toggles))

    def without_edges(self) -> "DeviceInput":
        """The same held state with this tick's edges cleared (for extra ticks in one frame)."""
        return DeviceInput(self.move.copy(), self.look.copy(), self.run, self.strafe, False, set(),
                            self.device, self.camera_yaw, self.zoom_rate, 0.0, np.zeros(2, np.float32))


def radial_dead_zone(v, inner: float = STICK_DEAD_ZONE, outer: float = STICK_SATURATION) -> np.ndarray:
    """Stick [2] -> [2]: zero inside `inner`, rescaled so `outer` and beyond read 1, direction kept."""
    v = np.asarray(v, np.float64)
    r = float(np.hypot(v[0], v[1]))
    if r <= inner:
        return np.zeros(2, np.float32)
    scaled = min((r - inner) / (outer - inner), 1.0)
    return (v / r * scaled).astype(np.float32)


def keyboard_vector(held, neg_x, pos_x, neg_y, pos_y) -> np.ndarray:
    """Four held keys -> [2] with unit length on diagonals."""
    v = np.array([float(held(pos_x)) - float(held(neg_x)), float(held(pos_y)) - float(held(neg_y))])
    n = np.hypot(*v)
    return (v / n if n > 1 else v).astype(np.float32)


def _normalize_axis(value) -> float:
    """Controller events carry SDL ints (-32768..32767); joystick events floats in [-1, 1]."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = value / 32767.0
    return float(min(max(value, -1.0), 1.0))


@dataclass
class Pad:
    """An opened pad. kind: 'controller' (SDL GameController) or 'joystick' (raw, JOYSTICK_* maps)."""

    instance_id: int
    name: str
    kind: str
    handle: object = None
    axes: dict = field(default_factory=dict)      # logical axis -> value in [-1, 1]
    buttons: set = field(default_factory=set)     # logical buttons held


class PadBackend:
    """Opens pads through pygame: SDL's GameController API where available
    (`pygame._sdl2.controller`), else the joystick API. Replace it in tests."""

    def __init__(self):
        self.controller = None
        try:
            pygame.joystick.init()
        except pygame.error:
            pass
        try:
            from pygame._sdl2 import controller

            controller.init()
            self.controller = controller
        except Exception:  # noqa: BLE001 - older pygame, or SDL without GameController
            self.controller = None

    @property
    def uses_controller_api(self) -> bool:
        return self.controller is not None

    def is_controller(self, device_index: int) -> bool:
        try:
            return bool(self.controller and self.controller.is_controller(device_index))
        except Exception:  # noqa: BLE001
            return False

    def open(self, device_index: int, kind: str) -> Pad | None:
        try:
            if kind == "controller":
                c = self.controller.Controller(device_index)
                joy = c.as_joystick()
                return Pad(joy.get_instance_id(), c.name or "gamepad", "controller", c)
            joy = pygame.joystick.Joystick(device_index)
            joy.init()
            return Pad(joy.get_instance_id(), joy.get_name() or "joystick", "joystick", joy)
        except Exception:  # noqa: BLE001 - unplugged again before we got to it
            return None


class GamepadKeyboardInput:
    """Keyboard + mouse + hot-pluggable gamepads -> DeviceInput.

        inp = GamepadKeyboardInput()
        each frame: ci = inp.update(pygame.event.get(), pygame.key.get_pressed())
    """

    def __init__(self, backend: PadBackend | None = None):
        self.backend = backend if backend is not None else PadBackend()
        self.pads: dict[int, Pad] = {}       # instance id -> pad, in plug-in order
        self.active: int | None = None       # instance id of the active pad, None = keyboard
        self.strafe_toggle = False
        self._held_keys: set[int] = set()
        self._dragging = False
        self._edges_toggles: set[str] = set()
        self._edge_style = False
        self._orbit = np.zeros(2, np.float32)
        self._zoom_steps = 0.0

    # ------------------------------------------------------------ device state
    @property
    def device(self) -> str:
        pad = self.pads.get(self.active) if self.active is not None else None
        return pad.name if pad else "keyboard"

    def _add_pad(self, device_index: int, kind: str):
        pad = self.backend.open(device_index, kind)
        if pad is None:
            return
        if pad.kind == "joystick":  # triggers rest at -1 on the raw joystick API
            pad.axes.setdefault(AXIS_LT, -1.0)
            pad.axes.setdefault(AXIS_RT, -1.0)
        self.pads.pop(pad.instance_id, None)
        self.pads[pad.instance_id] = pad
        self.active = pad.instance_id  # a newly plugged pad takes over

    def _remove_pad(self, instance_id: int):
        self.pads.pop(instance_id, None)
        if self.active == instance_id:
            self.active = next(reversed(self.pads)) if self.pads else None

    def _pad_for(self, event, kind) -> Pad | None:
        pad = self.pads.get(getattr(event, "instance_id", None))
        return pad if pad is not None and pad.kind == kind else None

    def _pad_button(self, pad: Pad, button: int, down: bool):
        if down:
            pad.buttons.add(button)
            if pad.instance_id != self.active:  # pressing a button on another pad switches to it
                self.active = pad.instance_id
            if button == PAD_STYLE_BUTTON:
                self._edge_style = True
            elif button in PAD_TOGGLES:
                self._edges_toggles.add(PAD_TOGGLES[button])
        else:
            pad.buttons.discard(button)

    # ------------------------------------------------------------------ events
    def process_events(self, events) -> None:
        """Fold a list of pygame events into the state (edges accumulate until the next `poll`)."""
        for e in events:
            t = e.type
            if t == pygame.QUIT:
                self._edges_toggles.add("quit")
            elif t == pygame.KEYDOWN:
                self._held_keys.add(e.key)
                if e.key in STYLE_KEYS:
                    self._edge_style = True
                elif e.key == STRAFE_KEY:
                    self.strafe_toggle = not self.strafe_toggle
                elif e.key in KEY_TOGGLES:
                    self._edges_toggles.add(KEY_TOGGLES[e.key])
            elif t == pygame.KEYUP:
                self._held_keys.discard(e.key)
            elif t == pygame.MOUSEBUTTONDOWN and getattr(e, "button", 0) in (1, 3):
                self._dragging = True
            elif t == pygame.MOUSEBUTTONUP and getattr(e, "button", 0) in (1, 3):
                self._dragging = False
            elif t == pygame.MOUSEMOTION and self._dragging:
                dx, dy = e.rel
                # the world follows the mouse: drag right, the camera orbits left; drag down, it orbits up
                self._orbit += np.float32([-dx, dy]) * MOUSE_ORBIT_RADIANS_PER_PIXEL
            elif t == pygame.MOUSEWHEEL:
                self._zoom_steps += float(e.y)
            # ---- hot-plug
            elif t == pygame.CONTROLLERDEVICEADDED:
                self._add_pad(e.device_index, "controller")
            elif t == pygame.JOYDEVICEADDED:
                # With the GameController API on, mapped pads arrive as CONTROLLERDEVICEADDED too.
                if not (self.backend.uses_controller_api and self.backend.is_controller(e.device_index)):
                    self._add_pad(e.device_index, "joystick")
            elif t in (pygame.CONTROLLERDEVICEREMOVED, pygame.JOYDEVICEREMOVED):
                self._remove_pad(e.instance_id)
            # ---- pad state
            elif t == pygame.CONTROLLERAXISMOTION:
                pad = self._pad_for(e, "controller")
                if pad is not None:
                    pad.axes[e.axis] = _normalize_axis(e.value)
            elif t in (pygame.CONTROLLERBUTTONDOWN, pygame.CONTROLLERBUTTONUP):
                pad = self._pad_for(e, "controller")
                if pad is not None:
                    self._pad_button(pad, e.button, t == pygame.CONTROLLERBUTTONDOWN)
            elif t == pygame.JOYAXISMOTION:
                pad = self._pad_for(e, "joystick")
                if pad is not None and e.axis in JOYSTICK_AXES:
                    pad.axes[JOYSTICK_AXES[e.axis]] = _normalize_axis(e.value)
            elif t in (pygame.JOYBUTTONDOWN, pygame.JOYBUTTONUP):
                pad = self._pad_for(e, "joystick")
                if pad is not None and e.button in JOYSTICK_BUTTONS:
                    self._pad_button(pad, JOYSTICK_BUTTONS[e.button], t == pygame.JOYBUTTONDOWN)

    # ------------------------------------------------------------------ sample
    def poll(self, pressed=None) -> DeviceInput:
        """The DeviceInput for now; clears the accumulated edges and impulses."""
        if pressed is None:
            held_set = self._held_keys

            def held(k):
                return k in held_set
        elif isinstance(pressed, (set, frozenset, dict)):
            def held(k):
                return bool(k in pressed and (pressed[k] if isinstance(pressed, dict) else True))
        else:
            def held(k):
                try:
                    return bool(pressed[k])
                except (IndexError, KeyError):
                    return False

        move = keyboard_vector(held, pygame.K_a, pygame.K_d, pygame.K_s, pygame.K_w)
        look = keyboard_vector(held, pygame.K_LEFT, pygame.K_RIGHT, pygame.K_DOWN, pygame.K_UP)
        run = any(held(k) for k in RUN_KEYS)
        strafe = self.strafe_toggle
        zoom_rate = float(held(pygame.K_PAGEUP)) - float(held(pygame.K_PAGEDOWN))

        pad = self.pads.get(self.active) if self.active is not None else None
        if pad is not None:
            ax = pad.axes
            trig = (lambda a: (ax.get(a, -1.0) + 1.0) / 2.0) if pad.kind == "joystick" else \
                (lambda a: max(ax.get(a, 0.0), 0.0))
            stick_move = radial_dead_zone([ax.get(AXIS_LX, 0.0), -ax.get(AXIS_LY, 0.0)])
            stick_look = radial_dead_zone([ax.get(AXIS_RX, 0.0), -ax.get(AXIS_RY, 0.0)])
            if np.any(stick_move):
                move = stick_move
            if np.any(stick_look):
                look = stick_look
            run = run or trig(AXIS_RT) > TRIGGER_THRESHOLD or PAD_A in pad.buttons
            strafe = strafe or trig(AXIS_LT) > TRIGGER_THRESHOLD
            zoom_rate += float(PAD_RB in pad.buttons) - float(PAD_LB in pad.buttons)

        ci = DeviceInput(move=move, look=look, run=run, strafe=strafe, style_cycle=self._edge_style,
                          toggles=set(self._edges_toggles), device=self.device,
                          zoom_rate=float(np.clip(zoom_rate, -1, 1)), zoom_steps=self._zoom_steps,
                          orbit=self._orbit.copy())
        self._edges_toggles.clear()
        self._edge_style = False
        self._orbit[:] = 0.0
        self._zoom_steps = 0.0
        return ci

    def update(self, events, pressed=None) -> DeviceInput:
        """process_events(events) then poll(pressed)."""
        self.process_events(events)
        return self.poll(pressed)
