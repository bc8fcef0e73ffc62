"""The OpenGL renderer: capsule characters, checkerboard ground, blob shadows,
debug lines and points, HUD text. OpenGL 3.3 core, runs on Mesa llvmpipe.

    r = Renderer(1280, 720, offscreen=True)   # or offscreen=False: a pygame window
    r.draw_frame(scene)                       # scene: viewer.scene.Scene
    img = r.read_pixels()                     # uint8 [H, W, 3], row 0 = top of the image
    r.close()

Offscreen, the picture goes into a framebuffer object of a windowless EGL
context (see `viewer.gl_context`): no display, no X server. Live, into the
window's back buffer; `present()` swaps it to the screen.

Passes per frame: shadow mask (every bone's soft smear straight down and a
darker spot under each contacting joint, drawn top-down with max blending into
a 256^2 texture around the characters) -> clear (sky colour) -> ground
(filtered checkerboard, 1 m squares on Y = 0, darkened by the mask, distance
fog) -> opaque characters (instanced spheres at joints and
cylinders along bones, i.e. capsules) -> debug points and lines -> ghosts
(depth pre-pass, then one blended layer) -> HUD and help text (pygame.font
rendered to a texture).
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from viewer import gl_context  # noqa: F401 - chooses PyOpenGL's platform before OpenGL is imported
from viewer.camera import Camera, project  # noqa: F401 - re-exported
from viewer.scene import CharacterDraw, Scene, default_bone_radii  # noqa: F401 - re-exported

SKY_COLOR = (0.66, 0.74, 0.82)
GROUND_LIGHT = (0.80, 0.80, 0.78)
GROUND_DARK = (0.58, 0.60, 0.62)
SUN_DIRECTION = (0.45, 0.80, -0.40)  # towards the light
SHADOW_MAP_SIZE = 256  # texels across the shadow mask
HUD_FONT_SIZE = 20
HELP_FONT_SIZE = 22

_MESH_VS = """
#version 330 core
layout(location=0) in vec3 a_pos;
layout(location=1) in vec3 a_nrm;
layout(location=2) in vec4 i_m0;
layout(location=3) in vec4 i_m1;
layout(location=4) in vec4 i_m2;
layout(location=5) in vec4 i_m3;
layout(location=6) in vec4 i_color;
uniform mat4 u_viewproj;
out vec3 v_nrm;
out vec3 v_world;
out vec4 v_color;
void main() {
    mat4 m = mat4(i_m0, i_m1, i_m2, i_m3);
    vec4 w = m * vec4(a_pos, 1.0);
    v_world = w.xyz;
    v_nrm = mat3(m) * a_nrm;
    v_color = i_color;
    gl_Position = u_viewproj * w;
}
"""

_MESH_FS = """
#version 330 core
in vec3 v_nrm;
in vec3 v_world;
in vec4 v_color;
uniform vec3 u_sun;
uniform vec3 u_eye;
uniform vec3 u_sky;
out vec4 o_color;
void main() {
    vec3 n = normalize(v_nrm);
    vec3 v = normalize(u_eye - v_world);
    if (dot(n, v) < 0.0) n = -n;
    float diff = max(dot(n, u_sun), 0.0);
    vec3 hemi = mix(vec3(0.30, 0.28, 0.26), u_sky, 0.5 + 0.5 * n.y);
    float ao = mix(0.55, 1.0, smoothstep(0.0, 0.35, v_world.y));
    vec3 h = normalize(u_sun + v);
    float spec = pow(max(dot(n, h), 0.0), 32.0) * 0.25;
    float rim = pow(1.0 - max(dot(n, v), 0.0), 3.0) * 0.15;
    vec3 c = v_color.rgb * (0.65 * hemi * ao + 0.75 * diff * vec3(1.0, 0.97, 0.92)) + spec + rim;
    o_color = vec4(c, v_color.a);
}
"""

_GROUND_VS = """
#version 330 core
layout(location=0) in vec2 a_xz;
uniform mat4 u_viewproj;
uniform vec2 u_center;
out vec3 v_world;
void main() {
    v_world = vec3(a_xz.x + u_center.x, 0.0, a_xz.y + u_center.y);
    gl_Position = u_viewproj * vec4(v_world, 1.0);
}
"""

_GROUND_FS = """
#version 330 core
in vec3 v_world;
uniform vec3 u_eye;
uniform vec3 u_sky;
uniform vec3 u_light;
uniform vec3 u_dark;
uniform sampler2D u_shadow;        // top-down shadow mask (R = darkening)
uniform vec4 u_shadow_rect;        // (x0, z0, 1 / size, 1 / size) of the mask in world XZ
uniform vec2 u_fog;                // fog start, end distance
out vec4 o_color;
void main() {
    vec2 p = v_world.xz;
    // box-filtered checkerboard (1 m squares): no moire towards the horizon
    vec2 w = fwidth(p) + 1e-4;
    vec2 i = 2.0 * (abs(fract((p - 0.5 * w) * 0.5) - 0.5) - abs(fract((p + 0.5 * w) * 0.5) - 0.5)) / w;
    float checker = 0.5 - 0.5 * i.x * i.y;
    vec3 col = mix(u_light, u_dark, checker);
    vec2 uv = (p - u_shadow_rect.xy) * u_shadow_rect.zw;
    if (all(greaterThan(uv, vec2(0.0))) && all(lessThan(uv, vec2(1.0))))
        col *= 1.0 - texture(u_shadow, uv).r;
    float fog = smoothstep(u_fog.x, u_fog.y, distance(u_eye, v_world));
    o_color = vec4(mix(col, u_sky, fog), 1.0);
}
"""

# Shadow mask: one instanced quad per blob (a bone's smear, or a contact spot),
# drawn top-down into a small texture with GL_MAX blending (overlaps don't add up).
_SHADOW_VS = """
#version 330 core
layout(location=0) in vec2 a_corner;    // (0|1, 0|1)
layout(location=1) in vec4 i_seg;       // a.x, a.z, b.x, b.z
layout(location=2) in vec2 i_rs;        // radius, strength
uniform vec4 u_rect;                    // x0, z0, 1 / size, 1 / size
out vec2 v_p;
flat out vec4 v_seg;
flat out vec2 v_rs;
void main() {
    vec2 lo = min(i_seg.xy, i_seg.zw) - i_rs.x, hi = max(i_seg.xy, i_seg.zw) + i_rs.x;
    v_p = mix(lo, hi, a_corner);
    v_seg = i_seg;
    v_rs = i_rs;
    gl_Position = vec4((v_p - u_rect.xy) * u_rect.zw * 2.0 - 1.0, 0.0, 1.0);
}
"""

_SHADOW_FS = """
#version 330 core
in vec2 v_p;
flat in vec4 v_seg;
flat in vec2 v_rs;
out vec4 o_color;
void main() {
    vec2 a = v_seg.xy, ab = v_seg.zw - v_seg.xy;
    float t = clamp(dot(v_p - a, ab) / max(dot(ab, ab), 1e-8), 0.0, 1.0);
    float d = length(v_p - a - ab * t);
    o_color = vec4(v_rs.y * (1.0 - smoothstep(0.2 * v_rs.x, v_rs.x, d)));
}
"""

_LINE_VS = """
#version 330 core
layout(location=0) in vec3 a_pos;
layout(location=1) in vec4 a_color;
uniform mat4 u_viewproj;
out vec4 v_color;
void main() {
    v_color = a_color;
    gl_Position = u_viewproj * vec4(a_pos, 1.0);
    gl_Position.z -= 0.0008 * gl_Position.w;   // win depth ties with the ground and bones
}
"""

_LINE_FS = """
#version 330 core
in vec4 v_color;
out vec4 o_color;
void main() { o_color = v_color; }
"""

_TEXT_VS = """
#version 330 core
layout(location=0) in vec2 a_pos;   // pixels, origin top-left
layout(location=1) in vec2 a_uv;
uniform vec2 u_screen;
out vec2 v_uv;
void main() {
    v_uv = a_uv;
    gl_Position = vec4(a_pos.x / u_screen.x * 2.0 - 1.0, 1.0 - a_pos.y / u_screen.y * 2.0, 0.0, 1.0);
}
"""

_TEXT_FS = """
#version 330 core
in vec2 v_uv;
uniform sampler2D u_tex;
out vec4 o_color;
void main() { o_color = texture(u_tex, v_uv); }
"""


# ------------------------------------------------------------------------ meshes
def _sphere_mesh(n_lon=20, n_lat=12):
    """Unit sphere: (vertices [V, 6] position+normal, triangle indices [T*3]), CCW outside."""
    verts = []
    for i in range(n_lat + 1):
        th = math.pi * i / n_lat
        for j in range(n_lon + 1):
            ph = 2 * math.pi * j / n_lon
            p = (math.sin(th) * math.cos(ph), math.cos(th), math.sin(th) * math.sin(ph))
            verts.append(p + p)
    idx = []
    for i in range(n_lat):
        for j in range(n_lon):
            a, b = i * (n_lon + 1) + j, (i + 1) * (n_lon + 1) + j
            idx += [a, b, a + 1, a + 1, b, b + 1]
    return _fix_winding(np.array(verts, np.float32), np.array(idx, np.uint32))


def _cylinder_mesh(n=20):
    """Unit open cylinder, radius 1 around +Y from y = 0 to y = 1."""
    verts = []
    for y in (0.0, 1.0):
        for j in range(n + 1):
            ph = 2 * math.pi * j / n
            c, s = math.cos(ph), math.sin(ph)
            verts.append((c, y, s, c, 0.0, s))
    idx = []
    for j in range(n):
        a, b = j, n + 1 + j
        idx += [a, b, a + 1, a + 1, b, b + 1]
    return _fix_winding(np.array(verts, np.float32), np.array(idx, np.uint32))


def _fix_winding(verts, idx):
    """Make every triangle counter-clockwise seen from outside (along its vertex normals)."""
    tri = idx.reshape(-1, 3).copy()
    p = verts[:, :3][tri]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    nrm = verts[:, 3:][tri].sum(1)
    flip = (n * nrm).sum(1) < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    return verts, tri.reshape(-1)


def capsule_instances(a, b, radius):
    """Model matrices (column-major, [N, 16]) of unit cylinders from a [N,3] to b [N,3]."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    r = np.asarray(radius, np.float32).reshape(-1, 1)
    ab = b - a
    length = np.linalg.norm(ab, axis=1, keepdims=True)
    d = ab / np.maximum(length, 1e-9)
    helper = np.where(np.abs(d[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]).astype(np.float32)
    u = np.cross(helper, d)
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
    w = np.cross(u, d)
    m = np.zeros((len(a), 4, 4), np.float32)  # m[:, col, row]: column-major
    m[:, 0, :3] = u * r
    m[:, 1, :3] = ab
    m[:, 2, :3] = w * r
    m[:, 3, :3] = a
    m[:, 3, 3] = 1.0
    return m.reshape(-1, 16)


def sphere_instances(centers, radius):
    c = np.asarray(centers, np.float32).reshape(-1, 3)
    r = np.broadcast_to(np.asarray(radius, np.float32), (len(c),))
    m = np.zeros((len(c), 4, 4), np.float32)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = r
    m[:, 3, :3] = c
    m[:, 3, 3] = 1.0
    return m.reshape(-1, 16)


def _rgba(color, alpha=1.0):
    c = tuple(float(x) for x in color)
    return c if len(c) == 4 else c + (float(alpha),)


def character_geometry(ch: CharacterDraw):
    """(sphere instances [N, 20], cylinder instances [M, 20]) for one character:
    16 floats of model matrix then RGBA."""
    pos = np.asarray(ch.positions, np.float32)
    parents = np.asarray(ch.parents)
    radii = default_bone_radii(parents) if ch.radii is None else np.asarray(ch.radii, np.float32)
    mask = parents >= 0
    if ch.bone_mask is not None:
        mask &= np.asarray(ch.bone_mask, bool)
    bones = np.nonzero(mask)[0]
    if len(bones):
        seg = pos[bones] - pos[parents[bones]]
        bones = bones[np.linalg.norm(seg, axis=1) > 1e-4]
    # each joint's sphere is as wide as the thickest capsule meeting it
    joint_r = np.zeros(len(pos), np.float32)
    np.maximum.at(joint_r, bones, radii[bones])
    np.maximum.at(joint_r, parents[bones], radii[bones])
    used = joint_r > 0
    if not used.any():  # a lone joint (or a skeleton with only zero-length bones)
        used[:] = True
        joint_r[:] = radii.max() if len(radii) else 0.05
    body = _rgba(ch.color, ch.alpha)
    joint = (body[0] * 0.82, body[1] * 0.82, body[2] * 0.82, body[3])
    spheres = np.concatenate([sphere_instances(pos[used], joint_r[used]),
                              np.tile(np.float32(joint), (int(used.sum()), 1))], 1)
    cyl = np.concatenate([capsule_instances(pos[parents[bones]], pos[bones], radii[bones]),
                          np.tile(np.float32(body), (len(bones), 1))], 1)
    return spheres.astype(np.float32), cyl.astype(np.float32)


def shadow_segments(ch: CharacterDraw):
    """Blob-shadow segments for one character: [N, 8] = (a.x, a.z, b.x, b.z, radius, strength, 0, 0).
    Each bone casts a soft smear straight down that widens and fades with height."""
    pos = np.asarray(ch.positions, np.float32)
    parents = np.asarray(ch.parents)
    radii = default_bone_radii(parents) if ch.radii is None else np.asarray(ch.radii, np.float32)
    mask = parents >= 0
    if ch.bone_mask is not None:
        mask &= np.asarray(ch.bone_mask, bool)
    bones = np.nonzero(mask)[0]
    if len(bones) == 0:
        bones = np.arange(len(pos))
        a = b = pos
    else:
        a, b = pos[parents[bones]], pos[bones]
    h = np.clip(np.minimum(a[:, 1], b[:, 1]), 0.0, None)
    radius = radii[bones] * 1.6 + 0.06 + 0.12 * h
    strength = 0.42 * np.clip(1.0 - h / 2.5, 0.0, 1.0) * float(ch.alpha)
    out = np.zeros((len(bones), 8), np.float32)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = a[:, 0], a[:, 2], b[:, 0], b[:, 2]
    out[:, 4], out[:, 5] = radius, strength
    return out


def contact_spots(ch: CharacterDraw):
    """Darker spots under the joints in contact, as zero-length shadow segments [N, 8]."""
    if ch.contacts is None:
        return np.zeros((0, 8), np.float32)
    c = np.asarray(ch.contacts, bool)
    pos = np.asarray(ch.positions, np.float32)[c]
    out = np.zeros((len(pos), 8), np.float32)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = pos[:, 0], pos[:, 2], pos[:, 0], pos[:, 2]
    out[:, 4], out[:, 5] = 0.2, 0.6 * float(ch.alpha)
    return out


# ---------------------------------------------------------------------- renderer
class _Uniforms(dict):
    """Uniform locations by name; -1 (a no-op for glUniform*) for one the compiler removed."""

    def __missing__(self, key):
        return -1


class Renderer:
    """Draws a `Scene`. offscreen=True: no window (EGL surfaceless, or a hidden
    pygame window where EGL is not available), read back with `read_pixels`.
    offscreen=False: opens the pygame window; call `present()` after `draw_frame`.

    samples: MSAA samples (0 = off). Offscreen defaults to 0 (llvmpipe pays per sample).
    """

    def __init__(self, width: int = 1280, height: int = 720, offscreen: bool = True,
                 title: str = "anim viewer", samples: int | None = None, vsync: bool = True):
        from viewer.gl_context import create_context

        self.width, self.height, self.offscreen = int(width), int(height), bool(offscreen)
        self.samples = (0 if offscreen else 4) if samples is None else int(samples)
        self.ctx = create_context(self.width, self.height, self.offscreen, title, self.samples, vsync)
        from OpenGL import GL

        self.GL = GL
        self._closed = False
        self._fonts = {}
        self._text_cache = {}
        self.gl_version = GL.glGetString(GL.GL_VERSION).decode()
        self.gl_renderer = GL.glGetString(GL.GL_RENDERER).decode()
        self._init_gl()
        self._fbo = None
        if self.offscreen:
            self._make_fbo()

    # ----------------------------------------------------------------- GL setup
    def _program(self, vs, fs):
        GL = self.GL

        def compile_(src, kind):
            sh = GL.glCreateShader(kind)
            GL.glShaderSource(sh, src)
            GL.glCompileShader(sh)
            if not GL.glGetShaderiv(sh, GL.GL_COMPILE_STATUS):
                raise RuntimeError("shader compile failed: " + GL.glGetShaderInfoLog(sh).decode())
            return sh

        prog = GL.glCreateProgram()
        shaders = [compile_(vs, GL.GL_VERTEX_SHADER), compile_(fs, GL.GL_FRAGMENT_SHADER)]
        for sh in shaders:
            GL.glAttachShader(prog, sh)
        GL.glLinkProgram(prog)
        if not GL.glGetProgramiv(prog, GL.GL_LINK_STATUS):
            raise RuntimeError("shader link failed: " + GL.glGetProgramInfoLog(prog).decode())
        for sh in shaders:
            GL.glDeleteShader(sh)
        names = _Uniforms()
        n = GL.glGetProgramiv(prog, GL.GL_ACTIVE_UNIFORMS)
        for k in range(n):
            name = GL.glGetActiveUniform(prog, k)[0].decode().split("[")[0]
            names[name] = GL.glGetUniformLocation(prog, name)
        return prog, names

    def _attrib(self, loc, size, stride, offset, divisor=0):
        GL = self.GL
        GL.glEnableVertexAttribArray(loc)
        GL.glVertexAttribPointer(loc, size, GL.GL_FLOAT, GL.GL_FALSE, stride, ctypes.c_void_p(offset))
        if divisor:
            GL.glVertexAttribDivisor(loc, divisor)

    def _mesh_vao(self, verts, idx):
        GL = self.GL
        vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(vao)
        vbo, ibo, inst = GL.glGenBuffers(3)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, verts.nbytes, verts, GL.GL_STATIC_DRAW)
        self._attrib(0, 3, 24, 0)
        self._attrib(1, 3, 24, 12)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, ibo)
        GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, idx.nbytes, idx, GL.GL_STATIC_DRAW)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, inst)
        for k in range(5):  # 4 matrix columns + colour
            self._attrib(2 + k, 4, 80, 16 * k, divisor=1)
        GL.glBindVertexArray(0)
        return {"vao": vao, "inst": inst, "count": len(idx), "bufs": (vbo, ibo, inst)}

    def _init_gl(self):
        GL = self.GL
        self.mesh_prog, self.mesh_u = self._program(_MESH_VS, _MESH_FS)
        self.ground_prog, self.ground_u = self._program(_GROUND_VS, _GROUND_FS)
        self.line_prog, self.line_u = self._program(_LINE_VS, _LINE_FS)
        self.text_prog, self.text_u = self._program(_TEXT_VS, _TEXT_FS)
        self.sphere = self._mesh_vao(*_sphere_mesh())
        self.cylinder = self._mesh_vao(*_cylinder_mesh())

        # ground: one big quad (+-100 m) recentred under the camera target every frame
        half = 100.0
        quad = np.array([[-half, -half], [half, -half], [half, half],
                         [-half, -half], [half, half], [-half, half]], np.float32)
        self.ground_vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(self.ground_vao)
        self.ground_vbo = GL.glGenBuffers(1)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.ground_vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, quad.nbytes, quad, GL.GL_STATIC_DRAW)
        self._attrib(0, 2, 8, 0)

        self.line_vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(self.line_vao)
        self.line_vbo = GL.glGenBuffers(1)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.line_vbo)
        self._attrib(0, 3, 28, 0)
        self._attrib(1, 4, 28, 12)

        self.text_vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(self.text_vao)
        self.text_vbo = GL.glGenBuffers(1)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.text_vbo)
        self._attrib(0, 2, 16, 0)
        self._attrib(1, 2, 16, 8)
        GL.glBindVertexArray(0)
        self.text_tex = {}

        # the shadow mask: a small single-channel texture with its own FBO
        self.shadow_prog, self.shadow_u = self._program(_SHADOW_VS, _SHADOW_FS)
        self.shadow_vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(self.shadow_vao)
        corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
        self.shadow_vbo, self.shadow_inst = GL.glGenBuffers(2)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.shadow_vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, corners.nbytes, corners, GL.GL_STATIC_DRAW)
        self._attrib(0, 2, 8, 0)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.shadow_inst)
        self._attrib(1, 4, 32, 0, divisor=1)
        self._attrib(2, 2, 32, 16, divisor=1)
        GL.glBindVertexArray(0)
        self.shadow_tex = GL.glGenTextures(1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.shadow_tex)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_R8, SHADOW_MAP_SIZE, SHADOW_MAP_SIZE, 0,
                        GL.GL_RED, GL.GL_UNSIGNED_BYTE, None)
        for p, v in ((GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR), (GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR),
                     (GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE), (GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)):
            GL.glTexParameteri(GL.GL_TEXTURE_2D, p, v)
        self.shadow_fbo = GL.glGenFramebuffers(1)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.shadow_fbo)
        GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D, self.shadow_tex, 0)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)

        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LEQUAL)
        GL.glFrontFace(GL.GL_CCW)
        GL.glCullFace(GL.GL_BACK)
        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        self.wide_lines = False
        try:
            GL.glLineWidth(2.0)
            self.wide_lines = GL.glGetError() == GL.GL_NO_ERROR
        except Exception:  # noqa: BLE001 - forward-compatible contexts refuse wide lines
            self.wide_lines = False

    def _make_fbo(self):
        GL = self.GL
        if self._fbo is not None:
            GL.glDeleteFramebuffers(len(self._fbo["fbos"]), self._fbo["fbos"])
            GL.glDeleteRenderbuffers(len(self._fbo["rbs"]), self._fbo["rbs"])

        def fbo(samples):
            f = GL.glGenFramebuffers(1)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, f)
            color, depth = GL.glGenRenderbuffers(2)
            for rb, fmt, att in ((color, GL.GL_RGBA8, GL.GL_COLOR_ATTACHMENT0),
                                 (depth, GL.GL_DEPTH_COMPONENT24, GL.GL_DEPTH_ATTACHMENT)):
                GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, rb)
                if samples:
                    GL.glRenderbufferStorageMultisample(GL.GL_RENDERBUFFER, samples, fmt, self.width, self.height)
                else:
                    GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, fmt, self.width, self.height)
                GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, att, GL.GL_RENDERBUFFER, rb)
            status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
            if status != GL.GL_FRAMEBUFFER_COMPLETE:
                raise RuntimeError(f"framebuffer incomplete: 0x{int(status):x}")
            return f, [color, depth]

        draw, rbs = fbo(self.samples)
        resolve, rbs2 = (fbo(0) if self.samples else (draw, []))
        self._fbo = {"draw": draw, "resolve": resolve, "fbos": sorted({draw, resolve}), "rbs": rbs + rbs2}

    def resize(self, width, height):
        self.width, self.height = int(width), int(height)
        self.ctx.resize(self.width, self.height)
        if self.offscreen:
            self._make_fbo()

    # ------------------------------------------------------------------ drawing
    def draw_frame(self, scene: Scene) -> None:
        GL = self.GL
        self.ctx.make_current()
        shadow_rect = self._draw_shadow_mask(scene)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._fbo["draw"] if self.offscreen else 0)
        GL.glViewport(0, 0, self.width, self.height)
        GL.glDepthMask(GL.GL_TRUE)
        GL.glColorMask(GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE)
        GL.glClearColor(*SKY_COLOR, 1.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDisable(GL.GL_BLEND)

        cam = scene.camera
        vp = cam.view_projection(self.width / self.height)
        eye = cam.eye()
        self._draw_ground(scene, vp, eye, cam, shadow_rect)

        opaque = [c for c in scene.characters if c.alpha >= 0.999]
        ghosts = [c for c in scene.characters if c.alpha < 0.999]
        GL.glEnable(GL.GL_CULL_FACE)
        for ch in opaque:
            self._draw_instances(*character_geometry(ch), vp, eye)
        if scene.points:
            inst = [np.concatenate([sphere_instances(p, s)[0], np.float32(_rgba(c))])
                    for p, c, s in scene.points]
            self._draw_instances(np.array(inst, np.float32), None, vp, eye)
        self._draw_lines(scene.lines, vp)
        for ch in ghosts:  # depth pre-pass, then one blended layer: no inner surfaces show through
            geo = character_geometry(ch)
            GL.glColorMask(GL.GL_FALSE, GL.GL_FALSE, GL.GL_FALSE, GL.GL_FALSE)
            self._draw_instances(*geo, vp, eye)
            GL.glColorMask(GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE, GL.GL_TRUE)
            GL.glEnable(GL.GL_BLEND)
            GL.glBlendFunc(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)
            GL.glDepthMask(GL.GL_FALSE)
            GL.glDepthFunc(GL.GL_EQUAL)
            self._draw_instances(*geo, vp, eye)
            GL.glDepthFunc(GL.GL_LEQUAL)
            GL.glDepthMask(GL.GL_TRUE)
            GL.glDisable(GL.GL_BLEND)
        GL.glDisable(GL.GL_CULL_FACE)

        if scene.hud_lines:
            self._draw_text_panel("hud", scene.hud_lines, HUD_FONT_SIZE, anchor="topleft")
        if scene.help_lines:
            self._draw_text_panel("help", scene.help_lines, HELP_FONT_SIZE, anchor="center")

    def _draw_shadow_mask(self, scene):
        """Render every blob into the top-down shadow texture; returns its world rect
        (x0, z0, 1/size, 1/size), or None when nothing casts a shadow."""
        GL = self.GL
        blobs = [shadow_segments(c) for c in scene.characters if c.shadow]
        blobs += [contact_spots(c) for c in scene.characters]
        blobs = [b for b in blobs if len(b)]
        if not blobs:
            return None
        blobs = np.ascontiguousarray(np.concatenate(blobs), np.float32)
        pts = np.concatenate([blobs[:, 0:2], blobs[:, 2:4]])
        r = float(blobs[:, 4].max())
        lo, hi = pts.min(0) - r, pts.max(0) + r
        size = float(max(hi[0] - lo[0], hi[1] - lo[1], 1.0)) * 1.05
        center = (lo + hi) / 2
        rect = (float(center[0] - size / 2), float(center[1] - size / 2), 1.0 / size, 1.0 / size)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.shadow_fbo)
        GL.glViewport(0, 0, SHADOW_MAP_SIZE, SHADOW_MAP_SIZE)
        GL.glClearColor(0.0, 0.0, 0.0, 0.0)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendEquation(GL.GL_MAX)
        GL.glUseProgram(self.shadow_prog)
        GL.glUniform4f(self.shadow_u["u_rect"], *rect)
        GL.glBindVertexArray(self.shadow_vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.shadow_inst)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, blobs.nbytes, blobs, GL.GL_STREAM_DRAW)
        GL.glDrawArraysInstanced(GL.GL_TRIANGLE_STRIP, 0, 4, len(blobs))
        GL.glBindVertexArray(0)
        GL.glBlendEquation(GL.GL_FUNC_ADD)
        GL.glDisable(GL.GL_BLEND)
        GL.glEnable(GL.GL_DEPTH_TEST)
        return rect

    def _draw_ground(self, scene, vp, eye, cam, shadow_rect):
        GL = self.GL
        u = self.ground_u
        GL.glUseProgram(self.ground_prog)
        GL.glUniformMatrix4fv(u["u_viewproj"], 1, GL.GL_TRUE, vp)
        target = np.asarray(cam.target, np.float32)
        GL.glUniform2f(u["u_center"], float(np.floor(target[0])), float(np.floor(target[2])))
        GL.glUniform3f(u["u_eye"], *map(float, eye))
        GL.glUniform3f(u["u_sky"], *SKY_COLOR)
        GL.glUniform3f(u["u_light"], *GROUND_LIGHT)
        GL.glUniform3f(u["u_dark"], *GROUND_DARK)
        GL.glUniform2f(u["u_fog"], 18.0, 70.0)
        GL.glUniform4f(u["u_shadow_rect"], *(shadow_rect or (1e6, 1e6, 1e-6, 1e-6)))
        GL.glUniform1i(u["u_shadow"], 1)
        GL.glActiveTexture(GL.GL_TEXTURE1)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.shadow_tex)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glDisable(GL.GL_CULL_FACE)
        GL.glBindVertexArray(self.ground_vao)
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 6)

    def _draw_instances(self, spheres, cylinders, vp, eye):
        GL = self.GL
        GL.glUseProgram(self.mesh_prog)
        u = self.mesh_u
        GL.glUniformMatrix4fv(u["u_viewproj"], 1, GL.GL_TRUE, vp)
        sun = np.asarray(SUN_DIRECTION, np.float32)
        GL.glUniform3f(u["u_sun"], *map(float, sun / np.linalg.norm(sun)))
        GL.glUniform3f(u["u_eye"], *map(float, eye))
        GL.glUniform3f(u["u_sky"], *SKY_COLOR)
        for mesh, inst in ((self.sphere, spheres), (self.cylinder, cylinders)):
            if inst is None or len(inst) == 0:
                continue
            inst = np.ascontiguousarray(inst, np.float32)
            GL.glBindVertexArray(mesh["vao"])
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, mesh["inst"])
            GL.glBufferData(GL.GL_ARRAY_BUFFER, inst.nbytes, inst, GL.GL_STREAM_DRAW)
            GL.glDrawElementsInstanced(GL.GL_TRIANGLES, mesh["count"], GL.GL_UNSIGNED_INT,
                                       ctypes.c_void_p(0), len(inst))
        GL.glBindVertexArray(0)

    def _draw_lines(self, lines, vp):
        if not lines:
            return
        GL = self.GL
        data = []
        for pts, color in lines:
            pts = np.asarray(pts, np.float32).reshape(-1, 3)
            if len(pts) < 2:
                continue
            seg = np.repeat(pts, 2, axis=0)[1:-1]  # a b b c c d ... -> GL_LINES pairs
            col = np.tile(np.float32(_rgba(color)), (len(seg), 1))
            data.append(np.concatenate([seg, col], 1))
        if not data:
            return
        data = np.ascontiguousarray(np.concatenate(data), np.float32)
        GL.glUseProgram(self.line_prog)
        GL.glUniformMatrix4fv(self.line_u["u_viewproj"], 1, GL.GL_TRUE, vp)
        GL.glBindVertexArray(self.line_vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.line_vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, data.nbytes, data, GL.GL_STREAM_DRAW)
        if self.wide_lines:
            GL.glLineWidth(2.0)
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)
        GL.glDrawArrays(GL.GL_LINES, 0, len(data))
        GL.glDisable(GL.GL_BLEND)
        GL.glBindVertexArray(0)

    # --------------------------------------------------------------------- text
    def _font(self, size):
        if size not in self._fonts:
            import pygame.font

            if not pygame.font.get_init():
                pygame.font.init()
            self._fonts[size] = pygame.font.Font(None, size)  # pygame's bundled freesansbold.ttf
        return self._fonts[size]

    def _text_texture(self, key, lines, size):
        """Render lines to an RGBA texture (cached while the text is unchanged).
        Tabs split a line into columns, aligned across all lines."""
        cached = self._text_cache.get(key)
        lines = tuple(str(s) for s in lines)
        if cached and cached[0] == lines:
            return cached[1:]
        import pygame

        font = self._font(size)
        pad, gap, col_gap = 8, 2, 24
        rows = [line.split("\t") for line in lines]
        ncol = max(len(r) for r in rows)
        widths = [0] * ncol
        for r in rows:
            for k, cell in enumerate(r):
                widths[k] = max(widths[k], font.size(cell)[0])
        line_h = font.get_linesize()
        w = sum(widths) + col_gap * (ncol - 1) + 2 * pad
        h = len(rows) * (line_h + gap) - gap + 2 * pad
        surf = pygame.Surface((w, h), pygame.SRCALPHA)
        surf.fill((18, 20, 24, 170))
        for i, r in enumerate(rows):
            x, y = pad, pad + i * (line_h + gap)
            for k, cell in enumerate(r):
                if cell:
                    surf.blit(font.render(cell, True, (0, 0, 0)), (x + 1, y + 1))
                    surf.blit(font.render(cell, True, (240, 240, 240)), (x, y))
                x += widths[k] + col_gap
        data = pygame.image.tobytes(surf, "RGBA")
        GL = self.GL
        tex = self.text_tex.get(key)
        if tex is None:
            tex = self.text_tex[key] = GL.glGenTextures(1)
            GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
            for p, v in ((GL.GL_TEXTURE_MIN_FILTER, GL.GL_NEAREST), (GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST),
                         (GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE), (GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)):
                GL.glTexParameteri(GL.GL_TEXTURE_2D, p, v)
        GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, w, h, 0, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, data)
        self._text_cache[key] = (lines, tex, w, h)
        return tex, w, h

    def _draw_text_panel(self, key, lines, size, anchor):
        GL = self.GL
        tex, w, h = self._text_texture(key, lines, size)
        if anchor == "topleft":
            x0, y0 = 10, 10
        else:
            x0, y0 = (self.width - w) // 2, (self.height - h) // 2
        x1, y1 = x0 + w, y0 + h
        quad = np.array([[x0, y0, 0, 0], [x1, y0, 1, 0], [x1, y1, 1, 1],
                         [x0, y0, 0, 0], [x1, y1, 1, 1], [x0, y1, 0, 1]], np.float32)
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)
        GL.glUseProgram(self.text_prog)
        GL.glUniform2f(self.text_u["u_screen"], float(self.width), float(self.height))
        GL.glUniform1i(self.text_u["u_tex"], 0)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
        GL.glBindVertexArray(self.text_vao)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.text_vbo)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, quad.nbytes, quad, GL.GL_STREAM_DRAW)
        GL.glDrawArrays(GL.GL_TRIANGLES, 0, 6)
        GL.glBindVertexArray(0)
        GL.glDisable(GL.GL_BLEND)
        GL.glEnable(GL.GL_DEPTH_TEST)

    # ----------------------------------------------------------------- readback
    def read_pixels(self) -> np.ndarray:
        """The last drawn frame as uint8 [H, W, 3], row 0 at the top."""
        GL = self.GL
        self.ctx.make_current()
        if self.offscreen:
            if self.samples:
                GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._fbo["draw"])
                GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, self._fbo["resolve"])
                GL.glBlitFramebuffer(0, 0, self.width, self.height, 0, 0, self.width, self.height,
                                     GL.GL_COLOR_BUFFER_BIT, GL.GL_NEAREST)
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._fbo["resolve"])
        else:
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
            GL.glReadBuffer(GL.GL_BACK)
        data = GL.glReadPixels(0, 0, self.width, self.height, GL.GL_RGB, GL.GL_UNSIGNED_BYTE)
        if not isinstance(data, np.ndarray):
            data = np.frombuffer(data, np.uint8)
        return np.ascontiguousarray(data.reshape(self.height, self.width, 3)[::-1])

    def finish(self):
        """Block until the GPU (or llvmpipe) has finished the frame (for timing)."""
        self.GL.glFinish()

    def present(self):
        """Live window: show the frame (swap buffers). Offscreen: nothing."""
        self.ctx.swap()

    def close(self):
        if not self._closed:
            self._closed = True
            try:
                self.ctx.close()
            except Exception:  # noqa: BLE001 - closing at interpreter exit
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
