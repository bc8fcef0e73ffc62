"""Run the outside clients that check the engine's web-facing outputs: the
Khronos glTF-Validator and three.js in headless Chromium for exported files,
and the WebXR page in headless Chromium with Meta's `iwer` WebXR emulator as
the headset (node scripts in `export/web/`, installed by `npm ci` there;
`make test` does it).

    problem = checks.web_problem(browser=True)   # None when node, the npm packages and Chromium are there
    report = checks.validate(["out/export/walk.glb"])
    result = checks.browser_sample([{"glb": ..., "animation": ..., "times": [...], "screenshot": "x.png"}])
    result = checks.webxr_session(bridge.page_url, seconds=5, reload_seconds=3, screenshot="vr.png")
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

WEB = Path(__file__).resolve().parent / "web"
PACKAGES = ("gltf-validator", "three", "playwright-core", "iwer")
# the npm packages each node script needs, and whether it drives Chromium
SCRIPTS = {"validate.mjs": (("gltf-validator",), False),
           "check_gltf.mjs": (("three", "playwright-core"), True),
           "webxr_session.mjs": (("playwright-core", "iwer"), True)}


def node() -> str | None:
    return shutil.which("node")


def chromium() -> str | None:
    """The Chromium binary: $CHROMIUM, else chromium or chromium-browser on PATH."""
    env = os.environ.get("CHROMIUM")
    if env and os.path.exists(env):
        return env
    return shutil.which("chromium") or shutil.which("chromium-browser")


def web_problem(browser: bool = False, packages=PACKAGES) -> str | None:
    """Why the web checks (needing these npm `packages`, and Chromium with
    `browser`) cannot run here (None when they can)."""
    if node() is None:
        return "node is not installed (Debian: apt-get install nodejs npm)"
    missing = [p for p in packages if not (WEB / "node_modules" / p / "package.json").exists()]
    if missing:
        return f"npm packages {', '.join(missing)} are not installed (run `npm ci` in {WEB}; `make test` does)"
    if browser and chromium() is None:
        return "Chromium is not installed (Debian: apt-get install chromium; .ci/run does)"
    return None


def _run(args, timeout: float) -> dict:
    packages, browser = SCRIPTS[args[0]]
    problem = web_problem(browser, packages)
    if problem:
        raise RuntimeError(problem)
    r = subprocess.run([node(), *args], cwd=WEB, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"node {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout)


def validate(paths, timeout: float = 120) -> dict:
    """{path: {numErrors, numWarnings, numInfos, numHints, messages, info}} from
    the Khronos glTF-Validator."""
    paths = [str(Path(p).resolve()) for p in paths]
    out = _run(["validate.mjs", *paths], timeout)
    return {p: out[p] for p in paths}


def browser_sample(jobs: list[dict], timeout: float = 180) -> dict:
    """Load each job's .glb in three.js in headless Chromium (one browser for
    all jobs), play job['animation'] and report the skin joints' world
    positions at job['times']; a job with 'screenshot' (a PNG path) also
    renders the character at 'screenshot_time'. Returns {'browser': version,
    'results': [{'joints', 'positions' [T][J][3], 'animations', 'duration', ...}],
    'console': [page errors]}."""
    jobs = [dict(j, glb=str(Path(j["glb"]).resolve()),
                 screenshot=str(Path(j["screenshot"]).resolve()) if j.get("screenshot") else None) for j in jobs]
    for j in jobs:
        if j["screenshot"]:
            os.makedirs(os.path.dirname(j["screenshot"]), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"chromium": chromium(), "jobs": jobs}, f)
    try:
        return _run(["check_gltf.mjs", f.name], timeout)
    finally:
        os.unlink(f.name)


def webxr_session(url: str, seconds: float = 5.0, reload_seconds: float = 0.0, screenshot=None,
                  bad_message: str | None = None, timeout: float = 120) -> dict:
    """Open the WebXR page at `url` (a running bridge's page_url) in headless
    Chromium with the iwer emulator as the headset (webxr_session.mjs: its
    scripted head and controller motion), enter VR and stream for `seconds`;
    then a screenshot (a PNG path), `bad_message` sent through the page's own
    socket, and with `reload_seconds` a reload of the page and that much more
    streaming. Returns {'browser', 'phases': [{'history', 'skeleton', 'status',
    'errors', 'panel'}], 'console': [page errors]} (history: each avatar the
    page received with the pose it was made from, WebXR axes)."""
    if screenshot:
        screenshot = str(Path(screenshot).resolve())
        os.makedirs(os.path.dirname(screenshot), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"chromium": chromium(), "url": url, "seconds": seconds, "reload_seconds": reload_seconds,
                   "screenshot": screenshot, "bad_message": bad_message}, f)
    try:
        return _run(["webxr_session.mjs", f.name], timeout)
    finally:
        os.unlink(f.name)
