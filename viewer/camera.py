"""The orbit/follow camera: a few numbers, the matrices they make, and the follow update.

Conventions (DESIGN.md): Y up, metres, radians; the character's forward is +Z.

    yaw    rotation of the camera about the target around +Y. yaw = 0 puts the
           camera behind a character that faces +Z, looking along +Z. Increasing
           yaw swings the camera's view direction from +Z towards +X.
    pitch  elevation of the camera above the target's horizontal plane
           (0 = level, pi/2 = straight down).
    distance from the camera to the target.

The view direction is `forward = (sin yaw cos pitch, -sin pitch, cos yaw cos pitch)`;
the screen's right is `right = (-cos yaw, 0, sin yaw)` (for a character seen
from behind, its left +X is on the screen's left). A stick pushed forward means
`forward` flattened onto the ground: see `DeviceInput.move_world`.

Matrices are row-major numpy float32 (column vectors: p_clip = P @ V @ p).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Camera:
    target: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.9, 0.0], np.float32))
    yaw: float = 0.0
    pitch: float = 0.3
    distance: float = 4.0
    fov_y: float = math.radians(45.0)
    near: float = 0.05
    far: float = 200.0

    def forward(self) -> np.ndarray:
        cy, sy, cp, sp = math.cos(self.yaw), math.sin(self.yaw), math.cos(self.pitch), math.sin(self.pitch)
        return np.array([sy * cp, -sp, cy * cp], np.float32)

    def right(self) -> np.ndarray:
        return np.array([-math.cos(self.yaw), 0.0, math.sin(self.yaw)], np.float32)

    def eye(self) -> np.ndarray:
        return np.asarray(self.target, np.float32) - self.distance * self.forward()

    def view_matrix(self) -> np.ndarray:
        return look_at(self.eye(), np.asarray(self.target, np.float32))

    def projection_matrix(self, aspect: float) -> np.ndarray:
        return perspective(self.fov_y, aspect, self.near, self.far)

    def view_projection(self, aspect: float) -> np.ndarray:
        return self.projection_matrix(aspect) @ self.view_matrix()


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    f = target - eye
    f /= max(np.linalg.norm(f), 1e-9)
    s = np.cross(f, up)
    if np.linalg.norm(s) < 1e-6:  # looking straight up or down
        s = np.cross(f, (0.0, 0.0, 1.0))
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m.astype(np.float32)


def perspective(fov_y, aspect, near, far) -> np.ndarray:
    f = 1.0 / math.tan(fov_y / 2)
    m = np.zeros((4, 4), np.float64)
    m[0, 0] = f / aspect
    m[1, 1] = f
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m.astype(np.float32)


def project(camera: Camera, points, width: int, height: int):
    """World points [..., 3] to pixel coordinates [..., 2] (x right, y down, origin
    at the top-left of the image as `Renderer.read_pixels` returns it), and a mask
    [...] of the points in front of the camera and inside the image."""
    p = np.asarray(points, np.float64)
    vp = camera.view_projection(width / height).astype(np.float64)
    h = p @ vp[:3, :3].T + vp[:3, 3]
    w = p @ vp[3, :3] + vp[3, 3]
    ndc = h[..., :2] / np.where(np.abs(w) < 1e-9, 1e-9, w)[..., None]
    px = np.stack([(ndc[..., 0] + 1) * 0.5 * width, (1 - ndc[..., 1]) * 0.5 * height], -1)
    inside = (w > camera.near) & (px[..., 0] >= 0) & (px[..., 0] < width) & (px[..., 1] >= 0) & (px[..., 1] < height)
    return px, inside


@dataclass(frozen=True)
class FollowSettings:
    """How the camera follows and orbits (defaults tuned for a ~1.7 m character)."""

    halflife: float = 0.2           # s; the target closes half its gap to the character in this time
    target_height: float = 0.9      # m; the target sits this high above the ground under the root
    orbit_speed: float = 2.5        # rad/s at full stick / arrow key
    zoom_speed: float = 1.5         # log-distance change per second at full zoom rate
    zoom_step: float = 0.1          # log-distance change per mouse-wheel notch
    min_distance: float = 1.0
    max_distance: float = 25.0
    min_pitch: float = -0.2
    max_pitch: float = 1.45


def update_follow(camera: Camera, root_position, dt: float, control=None,
                  settings: FollowSettings = FollowSettings()) -> Camera:
    """Move `camera` (in place, and return it): the target follows the root
    (horizontally, damped, at `target_height`), and the control input's camera
    fields orbit and zoom it (`look` and `zoom_rate` are rates in [-1, 1];
    `orbit` (radians) and `zoom_steps` (wheel notches) are this frame's impulses)."""
    root = np.asarray(root_position, np.float64)
    goal = np.array([root[0], settings.target_height, root[2]])
    a = 1.0 - math.exp(-math.log(2.0) * dt / max(settings.halflife, 1e-6))
    target = np.asarray(camera.target, np.float64)
    camera.target = (target + (goal - target) * a).astype(np.float32)
    if control is not None:
        look = np.asarray(getattr(control, "look", (0.0, 0.0)), np.float64)
        orbit = np.asarray(getattr(control, "orbit", (0.0, 0.0)), np.float64)
        # Stick/arrow right turns the view right (yaw down); up raises the camera.
        camera.yaw -= look[0] * settings.orbit_speed * dt + orbit[0]
        camera.pitch += look[1] * settings.orbit_speed * dt + orbit[1]
        log_d = math.log(camera.distance)
        log_d -= getattr(control, "zoom_rate", 0.0) * settings.zoom_speed * dt
        log_d -= getattr(control, "zoom_steps", 0.0) * settings.zoom_step
        camera.distance = math.exp(log_d)
    camera.yaw = (camera.yaw + math.pi) % (2 * math.pi) - math.pi
    camera.pitch = min(max(camera.pitch, settings.min_pitch), settings.max_pitch)
    camera.distance = min(max(camera.distance, settings.min_distance), settings.max_distance)
    return camera
