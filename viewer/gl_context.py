"""Where the OpenGL context comes from: a pygame window, or offscreen.

Three kinds of context, all OpenGL 3.3 core (Mesa llvmpipe, any desktop GPU):

- `WindowContext`: a pygame window (`pygame.OPENGL`), for the live viewer.
- `EGLContext`: no window at all. EGL on Mesa's *surfaceless* platform
  (`EGL_PLATFORM_SURFACELESS_MESA`), else the EGL *device* platform (headless
  NVIDIA), else the default EGL display; the renderer draws into its own
  framebuffer object. Needs only the EGL and GL runtime libraries, e.g. on
  Debian/Ubuntu `libegl1 libegl-mesa0 libgl1-mesa-dri libgl1` (libglvnd + Mesa;
  Mesa brings the llvmpipe software rasterizer when there is no GPU). No X
  server, no Xvfb.
- `HiddenWindowContext`: a hidden pygame window plus a framebuffer object, the
  offscreen fallback where PyOpenGL is not on its EGL platform (macOS, Windows,
  a Linux desktop session).

PyOpenGL picks its platform (GLX, EGL, WGL, CGL) once, when `OpenGL.GL` is first
imported, from `PYOPENGL_PLATFORM`. `choose_platform()` (called on import of
this module, before OpenGL) sets `PYOPENGL_PLATFORM=egl` on a Linux machine
with no display (`DISPLAY` and `WAYLAND_DISPLAY` unset), which is what makes
headless rendering work on a bare CI box or a server. A value already in the
environment always wins.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings


def choose_platform() -> str | None:
    """Set PYOPENGL_PLATFORM=egl on a display-less Linux box (before OpenGL is imported)."""
    if "PYOPENGL_PLATFORM" in os.environ:
        return os.environ["PYOPENGL_PLATFORM"]
    if "OpenGL.platform" in sys.modules:  # too late to choose: someone imported OpenGL.GL first
        return None
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") \
            and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ["PYOPENGL_PLATFORM"] = "egl"
        return "egl"
    return None


choose_platform()


def pyopengl_uses_egl() -> bool:
    """True when PyOpenGL is loaded on its EGL platform (GL entry points through libOpenGL/EGL)."""
    from OpenGL import platform

    return type(platform.PLATFORM).__name__.lower().startswith("egl")


class GLContextError(RuntimeError):
    pass


# --------------------------------------------------------------------------- EGL
_EGL_PLATFORM_SURFACELESS_MESA = 0x31DD
_EGL_PLATFORM_DEVICE_EXT = 0x313F
_egl_display = None  # one EGLDisplay per process, initialized once


def _egl_get_display():
    global _egl_display
    if _egl_display is not None:
        return _egl_display
    from OpenGL import EGL

    candidates = []
    try:
        from OpenGL.EGL.EXT.platform_base import eglGetPlatformDisplayEXT

        candidates.append(("surfaceless", lambda: eglGetPlatformDisplayEXT(
            _EGL_PLATFORM_SURFACELESS_MESA, EGL.EGL_DEFAULT_DISPLAY, None)))

        def device_display():
            from OpenGL.EGL.EXT.device_base import eglQueryDevicesEXT

            devices = (EGL.EGLDeviceEXT * 8)()
            n = EGL.EGLint()
            if not eglQueryDevicesEXT(8, devices, ctypes.pointer(n)) or n.value < 1:
                return None
            return eglGetPlatformDisplayEXT(_EGL_PLATFORM_DEVICE_EXT, devices[0], None)

        candidates.append(("device", device_display))
    except Exception:  # noqa: BLE001 - the extension wrappers are optional
        pass
    candidates.append(("default", lambda: EGL.eglGetDisplay(EGL.EGL_DEFAULT_DISPLAY)))

    errors = []
    for name, get in candidates:
        try:
            dpy = get()
            if not dpy:
                errors.append(f"{name}: no display")
                continue
            major, minor = EGL.EGLint(), EGL.EGLint()
            if EGL.eglInitialize(dpy, ctypes.pointer(major), ctypes.pointer(minor)):
                _egl_display = dpy
                return dpy
            errors.append(f"{name}: eglInitialize failed")
        except Exception as e:  # noqa: BLE001 - try the next platform
            errors.append(f"{name}: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise GLContextError("no EGL display could be initialized (" + "; ".join(errors) + "). "
                         "Install the EGL/GL runtime: e.g. apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri")


class EGLContext:
    """A windowless OpenGL 3.3 core context (the renderer draws into an FBO)."""

    offscreen = True

    def __init__(self, width: int, height: int):
        from OpenGL import EGL

        self.width, self.height = width, height
        self._EGL = EGL
        dpy = self.display = _egl_get_display()
        if not EGL.eglBindAPI(EGL.EGL_OPENGL_API):
            raise GLContextError("eglBindAPI(EGL_OPENGL_API) failed")
        attrs = (EGL.EGLint * 11)(EGL.EGL_SURFACE_TYPE, EGL.EGL_PBUFFER_BIT,
                                  EGL.EGL_RENDERABLE_TYPE, EGL.EGL_OPENGL_BIT,
                                  EGL.EGL_RED_SIZE, 8, EGL.EGL_DEPTH_SIZE, 24, EGL.EGL_NONE, 0, 0)
        config = EGL.EGLConfig()
        n = EGL.EGLint()
        EGL.eglChooseConfig(dpy, attrs, ctypes.pointer(config), 1, ctypes.pointer(n))
        if n.value < 1:
            config = EGL.EGLConfig()  # EGL_NO_CONFIG_KHR (EGL_KHR_no_config_context)
        self.context = None
        for ctx_attrs in ([EGL.EGL_CONTEXT_MAJOR_VERSION, 3, EGL.EGL_CONTEXT_MINOR_VERSION, 3,
                           EGL.EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL.EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
                           EGL.EGL_NONE],
                          [EGL.EGL_NONE]):
            try:
                ctx = EGL.eglCreateContext(dpy, config, EGL.EGL_NO_CONTEXT,
                                           (EGL.EGLint * len(ctx_attrs))(*ctx_attrs))
            except Exception:  # noqa: BLE001 - try the plainer request
                ctx = None
            if ctx:
                self.context = ctx
                break
        if not self.context:
            raise GLContextError("eglCreateContext failed (no OpenGL 3.3 context)")
        self.surface = EGL.EGL_NO_SURFACE
        try:
            ok = EGL.eglMakeCurrent(dpy, self.surface, self.surface, self.context)
        except Exception:  # noqa: BLE001 - no EGL_KHR_surfaceless_context: use a 1x1 pbuffer
            ok = False
        if not ok:
            pb = (EGL.EGLint * 5)(EGL.EGL_WIDTH, 1, EGL.EGL_HEIGHT, 1, EGL.EGL_NONE)
            self.surface = EGL.eglCreatePbufferSurface(dpy, config, pb)
            if not EGL.eglMakeCurrent(dpy, self.surface, self.surface, self.context):
                raise GLContextError("eglMakeCurrent failed")

    def make_current(self):
        self._EGL.eglMakeCurrent(self.display, self.surface, self.surface, self.context)

    def swap(self):
        pass

    def resize(self, width, height):
        self.width, self.height = width, height

    def close(self):
        EGL = self._EGL
        if self.context:
            EGL.eglMakeCurrent(self.display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT)
            if self.surface != EGL.EGL_NO_SURFACE:
                EGL.eglDestroySurface(self.display, self.surface)
            EGL.eglDestroyContext(self.display, self.context)
            self.context = None


# ------------------------------------------------------------------- pygame window
def _pygame_gl_window(width, height, title, hidden, samples, vsync, resizable):
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if pyopengl_uses_egl():
        # PyOpenGL on EGL only sees EGL contexts: have SDL make its X11 window's context with EGL too
        # (Wayland windows use EGL anyway).
        os.environ.setdefault("SDL_VIDEO_X11_FORCE_EGL", "1")
    import pygame

    pygame.display.init()
    gl = pygame.display.gl_set_attribute
    gl(pygame.GL_CONTEXT_MAJOR_VERSION, 3)
    gl(pygame.GL_CONTEXT_MINOR_VERSION, 3)
    gl(pygame.GL_CONTEXT_PROFILE_MASK, pygame.GL_CONTEXT_PROFILE_CORE)
    if sys.platform == "darwin":
        gl(pygame.GL_CONTEXT_FLAGS, pygame.GL_CONTEXT_FORWARD_COMPATIBLE_FLAG)
    gl(pygame.GL_DEPTH_SIZE, 24)
    flags = pygame.OPENGL | pygame.DOUBLEBUF
    if hidden:
        flags |= pygame.HIDDEN
    if resizable:
        flags |= pygame.RESIZABLE
    last = None
    for ms in ([samples, 0] if samples else [0]):
        gl(pygame.GL_MULTISAMPLEBUFFERS, 1 if ms else 0)
        gl(pygame.GL_MULTISAMPLESAMPLES, ms)
        try:
            try:
                with warnings.catch_warnings():  # "regular vsync for OpenGL not available": fine
                    warnings.simplefilter("ignore")
                    surf = pygame.display.set_mode((width, height), flags, vsync=1 if vsync else 0)
            except pygame.error:
                surf = pygame.display.set_mode((width, height), flags)
            pygame.display.set_caption(title)
            return surf
        except pygame.error as e:
            last = e
    raise GLContextError(f"could not open an OpenGL 3.3 window: {last}")


class WindowContext:
    """The live viewer's window; draws to the default framebuffer."""

    offscreen = False

    def __init__(self, width, height, title="anim viewer", samples=4, vsync=True):
        self.width, self.height = width, height
        self.surface = _pygame_gl_window(width, height, title, False, samples, vsync, True)

    def make_current(self):
        pass

    def swap(self):
        import pygame

        pygame.display.flip()

    def resize(self, width, height):
        self.width, self.height = width, height

    def close(self):
        import pygame

        pygame.display.quit()


class HiddenWindowContext(WindowContext):
    """Offscreen where EGL is not PyOpenGL's platform: a hidden window, drawing into an FBO."""

    offscreen = True

    def __init__(self, width, height):
        self.width, self.height = width, height
        self.surface = _pygame_gl_window(64, 64, "anim viewer (offscreen)", True, 0, False, False)

    def swap(self):
        pass


def create_context(width, height, offscreen, title="anim viewer", samples=4, vsync=True):
    if not offscreen:
        return WindowContext(width, height, title, samples, vsync)
    if pyopengl_uses_egl():
        return EGLContext(width, height)
    return HiddenWindowContext(width, height)
