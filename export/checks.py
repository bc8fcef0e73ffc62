"""Run the outside clients that check exported files: the Khronos
glTF-Validator and three.js in headless Chromium (node scripts in
`export/web/`, installed by `npm ci` there; `make test` does it).

    problem = checks.web_problem(browser=True)   # None when node, the npm packages and Chromium are there
    report = checks.validate(["out/export/walk.glb"])
    result = checks.browser_sample([{"glb": ..., "animation": ..., "times": [...], "screenshot": "x.png"}])
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

WEB = Path(__file__).resolve().parent / "web"
PACKAGES = ("gltf-validator", "three", "playwright-core")


def node() -> str | None:
    return shutil.which("node")


def chromium() -> str | None:
    """The Chromium binary: $CHROMIUM, else chromium or chromium-browser on PATH."""
    env = os.environ.get("CHROMIUM")
    if env and os.path.exists(env):
        return env
    return shutil.which("chromium") or shutil.which("chromium-browser")


def web_problem(browser: bool = False) -> str | None:
    """Why the web checks cannot run here (None when they can)."""
    if node() is None:
        return "node is not installed (Debian: apt-get install nodejs npm)"
    missing = [p for p in PACKAGES if not (WEB / "node_modules" / p / "package.json").exists()]
    if missing:
        return f"npm packages {', '.join(missing)} are not installed (run `npm ci` in {WEB}; `make test` does)"
    if browser and chromium() is None:
        return "Chromium is not installed (Debian: apt-get install chromium; .ci/run does)"
    return None


def _run(args, timeout: float) -> dict:
    problem = web_problem(browser="check_gltf.mjs" in args[0])
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
