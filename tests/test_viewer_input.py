"""viewer.input: keyboard / mouse / gamepad mapping from synthetic pygame events (no hardware)."""

import math

import numpy as np
import pygame
import pytest

from viewer.input import (AXIS_LT, AXIS_LX, AXIS_LY, AXIS_RT, AXIS_RX, HELP_LINES, PAD_BACK, PAD_Y,
                          STICK_DEAD_ZONE, STICK_SATURATION, DeviceInput, GamepadKeyboardInput, Pad,
                          radial_dead_zone)

E = pygame.event.Event


class FakeBackend:
    """Stands in for PadBackend: 'opens' pads without hardware."""

    def __init__(self, controller_api=False, controllers=()):
        self.uses_controller_api = controller_api
        self.controllers = set(controllers)
        self.next_id = 100

    def is_controller(self, device_index):
        return device_index in self.controllers

    def open(self, device_index, kind):
        self.next_id += 1
        return Pad(self.next_id, f"pad{device_index}-{kind}", kind)


def key(k, down=True):
    return E(pygame.KEYDOWN if down else pygame.KEYUP, key=k, mod=0)


def make(controller_api=False, controllers=()):
    return GamepadKeyboardInput(FakeBackend(controller_api, controllers))


# ------------------------------------------------------------------ keyboard
def test_wasd_moves_with_unit_diagonals_and_shift_runs():
    inp = make()
    ci = inp.update([], {pygame.K_w})
    np.testing.assert_allclose(ci.move, [0, 1])
    assert not ci.run and ci.device == "keyboard"
    ci = inp.update([], {pygame.K_s, pygame.K_a, pygame.K_LSHIFT})
    np.testing.assert_allclose(ci.move, [-math.sqrt(0.5), -math.sqrt(0.5)], atol=1e-6)
    assert ci.run
    np.testing.assert_allclose(inp.update([], {pygame.K_a, pygame.K_d}).move, [0, 0])


def test_pressed_state_accepts_get_pressed_style_sequences_and_tracks_keys_without_one():
    inp = make()
    pressed = {pygame.K_d: True, pygame.K_w: False}
    np.testing.assert_allclose(inp.update([], pressed).move, [1, 0])
    # None: held keys come from KEYDOWN / KEYUP events
    np.testing.assert_allclose(inp.update([key(pygame.K_w)]).move, [0, 1])
    np.testing.assert_allclose(inp.update([]).move, [0, 1])
    np.testing.assert_allclose(inp.update([key(pygame.K_w, False)]).move, [0, 0])


def test_edges_fire_once_and_strafe_toggles():
    inp = make()
    ci = inp.update([key(pygame.K_TAB), key(pygame.K_g), key(pygame.K_F1)], set())
    assert ci.style_cycle and ci.toggles == {"debug", "help"}
    ci = inp.update([], {pygame.K_TAB, pygame.K_g})   # still held: no new edge
    assert not ci.style_cycle and ci.toggles == set()
    assert inp.update([key(pygame.K_c)], set()).style_cycle
    assert inp.update([key(pygame.K_h)], set()).toggles == {"help"}
    assert inp.update([key(pygame.K_q)], set()).strafe
    assert inp.update([], set()).strafe                 # a toggle, stays on
    assert not inp.update([key(pygame.K_q)], set()).strafe
    names = {pygame.K_f: "push", pygame.K_m: "switch_controller", pygame.K_r: "reset", pygame.K_p: "pause",
             pygame.K_ESCAPE: "quit"}
    for k, name in names.items():
        assert inp.update([key(k)], set()).toggles == {name}
    assert inp.update([E(pygame.QUIT)], set()).toggles == {"quit"}


def test_arrows_look_and_mouse_drag_and_wheel_drive_the_camera():
    inp = make()
    np.testing.assert_allclose(inp.update([], {pygame.K_RIGHT, pygame.K_UP}).look,
                               [math.sqrt(0.5), math.sqrt(0.5)], atol=1e-6)
    motion = E(pygame.MOUSEMOTION, rel=(10, -4), pos=(0, 0), buttons=(1, 0, 0))
    assert not inp.update([motion], set()).orbit.any()          # not dragging
    ci = inp.update([E(pygame.MOUSEBUTTONDOWN, button=1, pos=(0, 0)), motion, motion], set())
    assert ci.orbit[0] < 0 and ci.orbit[1] < 0                   # world follows the mouse
    assert not inp.update([], set()).orbit.any()                 # an impulse, cleared after a poll
    inp.update([E(pygame.MOUSEBUTTONUP, button=1, pos=(0, 0))], set())
    assert not inp.update([motion], set()).orbit.any()
    ci = inp.update([E(pygame.MOUSEWHEEL, x=0, y=1, flipped=False), E(pygame.MOUSEWHEEL, x=0, y=2, flipped=False)],
                    {pygame.K_PAGEUP})
    assert ci.zoom_steps == 3 and ci.zoom_rate == 1


# ------------------------------------------------------------------ dead zone
def test_radial_dead_zone():
    assert not radial_dead_zone([STICK_DEAD_ZONE * 0.99, 0]).any()
    assert not radial_dead_zone([0.1, -0.1]).any()
    np.testing.assert_allclose(np.linalg.norm(radial_dead_zone([0, STICK_SATURATION])), 1.0, atol=1e-6)
    np.testing.assert_allclose(radial_dead_zone([1.0, 1.0]), [math.sqrt(0.5)] * 2, atol=1e-6)  # clipped to 1
    half = STICK_DEAD_ZONE + 0.5 * (STICK_SATURATION - STICK_DEAD_ZONE)
    v = radial_dead_zone([half * 0.6, half * 0.8])
    np.testing.assert_allclose(v, [0.3, 0.4], atol=1e-6)     # rescaled, direction kept
    mags = [np.linalg.norm(radial_dead_zone([r, 0])) for r in np.linspace(0, 1, 21)]
    assert np.all(np.diff(mags) >= 0)


# ------------------------------------------------------------------ gamepads
def test_joystick_hotplug_takes_over_and_unplug_falls_back_to_keyboard():
    inp = make()
    inp.update([E(pygame.JOYDEVICEADDED, device_index=0)], set())
    pad = next(iter(inp.pads.values()))
    iid = pad.instance_id
    ci = inp.update([E(pygame.JOYAXISMOTION, instance_id=iid, joy=0, axis=1, value=-1.0)], {pygame.K_d})
    assert ci.device == "pad0-joystick"
    np.testing.assert_allclose(ci.move, [0, 1], atol=1e-6)      # stick up = forward
    assert not ci.run and not ci.strafe                         # raw triggers rest at -1
    # stick drift inside the dead zone: the keyboard moves
    ci = inp.update([E(pygame.JOYAXISMOTION, instance_id=iid, joy=0, axis=1, value=-0.1)], {pygame.K_d})
    np.testing.assert_allclose(ci.move, [1, 0])
    ci = inp.update([E(pygame.JOYAXISMOTION, instance_id=iid, joy=0, axis=5, value=1.0)], set())
    assert ci.run
    ci = inp.update([E(pygame.JOYDEVICEREMOVED, instance_id=iid)], {pygame.K_w})
    assert ci.device == "keyboard" and not ci.run
    np.testing.assert_allclose(ci.move, [0, 1])


def test_game_controller_events_and_buttons():
    inp = make(controller_api=True, controllers={0})
    inp.update([E(pygame.JOYDEVICEADDED, device_index=0)], set())   # the controller API will announce it
    assert inp.device == "keyboard" and not inp.pads
    inp.update([E(pygame.CONTROLLERDEVICEADDED, device_index=0)], set())
    iid = inp.active
    assert inp.device == "pad0-controller"
    ev = [E(pygame.CONTROLLERAXISMOTION, instance_id=iid, axis=AXIS_LX, value=32767),
          E(pygame.CONTROLLERAXISMOTION, instance_id=iid, axis=AXIS_LY, value=0),
          E(pygame.CONTROLLERAXISMOTION, instance_id=iid, axis=AXIS_RX, value=-32768),
          E(pygame.CONTROLLERAXISMOTION, instance_id=iid, axis=AXIS_RT, value=30000),
          E(pygame.CONTROLLERAXISMOTION, instance_id=iid, axis=AXIS_LT, value=2000),
          E(pygame.CONTROLLERBUTTONDOWN, instance_id=iid, button=PAD_Y),
          E(pygame.CONTROLLERBUTTONDOWN, instance_id=iid, button=PAD_BACK),
          # joystick events from a pad handled as a controller are ignored (no double counting)
          E(pygame.JOYAXISMOTION, instance_id=iid, joy=0, axis=1, value=-1.0)]
    ci = inp.update(ev, set())
    np.testing.assert_allclose(ci.move, [1, 0], atol=1e-6)
    np.testing.assert_allclose(ci.look, [-1, 0], atol=1e-6)
    assert ci.run and not ci.strafe and ci.style_cycle and ci.toggles == {"debug"}
    ci = inp.update([E(pygame.CONTROLLERBUTTONUP, instance_id=iid, button=PAD_Y)], set())
    assert not ci.style_cycle and ci.toggles == set()
    # events from an unknown device change nothing
    ci = inp.update([E(pygame.CONTROLLERAXISMOTION, instance_id=999, axis=AXIS_LX, value=-32767)], set())
    np.testing.assert_allclose(ci.move, [1, 0], atol=1e-6)


def test_second_pad_takes_over_then_hands_back():
    inp = make(controller_api=True, controllers={0, 1})
    inp.update([E(pygame.CONTROLLERDEVICEADDED, device_index=0)], set())
    first = inp.active
    inp.update([E(pygame.CONTROLLERDEVICEADDED, device_index=1)], set())
    second = inp.active
    assert second != first and inp.device == "pad1-controller"
    # pressing a button on the first pad makes it active again
    inp.update([E(pygame.CONTROLLERBUTTONDOWN, instance_id=first, button=0)], set())
    assert inp.active == first
    inp.update([E(pygame.CONTROLLERDEVICEREMOVED, instance_id=first)], set())
    assert inp.active == second
    assert inp.update([E(pygame.CONTROLLERDEVICEREMOVED, instance_id=second)], set()).device == "keyboard"


def test_move_world_follows_the_camera_yaw():
    ci = DeviceInput(move=np.float32([0.0, 1.0]))
    np.testing.assert_allclose(ci.move_world(), [0, 0, 1], atol=1e-6)   # yaw 0: forward is +Z
    ci.move = np.float32([1.0, 0.0])
    np.testing.assert_allclose(ci.move_world(), [-1, 0, 0], atol=1e-6)  # right is -X
    ci.camera_yaw = math.pi / 2
    ci.move = np.float32([0.0, 0.5])
    np.testing.assert_allclose(ci.move_world(), [0.5, 0, 0], atol=1e-6)
    e = DeviceInput(style_cycle=True, toggles={"help"}).without_edges()
    assert not e.style_cycle and not e.toggles


def test_help_lines_name_every_key():
    text = "\n".join(HELP_LINES)
    for k in ["W A S D", "Shift", "Q", "Tab", "F1", "G", "mouse", "wheel", "left stick", "right stick"]:
        assert k in text


def test_real_backend_opens_without_hardware():
    pytest.importorskip("pygame._sdl2.controller")
    inp = GamepadKeyboardInput()
    assert inp.update([], set()).device == "keyboard"
