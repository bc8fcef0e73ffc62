// Run the engine's WebXR page (viewer/webxr/index.html, served by a running
// bridge) in headless Chromium with Meta's `iwer` WebXR emulator standing in
// for a headset: the emulated headset and controllers follow a scripted
// motion, the page enters VR, streams the poses to the bridge and draws the
// avatar the engine sends back. iwer is injected into the page from
// node_modules by an init script (the page never loads it itself, and nothing
// is fetched from the network). After `seconds`, a screenshot; then (with
// "reload") the page is reloaded, enters VR again and streams for
// `reload_seconds` more.
// Usage: node webxr_session.mjs SPEC.json > RESULT.json
// SPEC: {"url": page URL, "chromium": path (optional), "seconds": s, "reload_seconds": s,
//        "screenshot": PNG path, "bad_message": text sent through the page's socket (optional)}
// RESULT: {"browser", "phases": [{"history", "skeleton", "status", "errors", "panel"}], "console"}
//   history: the page's window.anim.history (each avatar with the pose it was made from)
//   panel: the page's own text for the connection state, latency, stream and errors
// The motion (WebXR axes, metres, t in seconds from the page's load): the head
// at 1.45 m (the predictor's mocap actor's head height; a user of another
// height is the calibration's business) sways 0.25 m side to side (period 4 s)
// turning up to 20 degrees, the controllers are held 0.5 m below it, 0.22 m to
// the side and 0.15 m ahead (in the head's heading), and the right one is
// raised to the head (pitching up by 1 rad) and lowered again every 3 s.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const spec = JSON.parse(await readFile(process.argv[2], "utf8"));
const exe = spec.chromium || process.env.CHROMIUM || "/usr/bin/chromium";

function motion() {
  const device = new IWER.XRDevice(IWER.metaQuest3);
  device.installRuntime({ forceInstall: true });   // over headless Chromium's own (deviceless) navigator.xr
  window.__iwerDevice = device;
  const t0 = performance.now();
  function apply() {
    const t = (performance.now() - t0) / 1000;
    const x = 0.25 * Math.sin(2 * Math.PI * t / 4), y = 1.45 + 0.02 * Math.sin(2 * Math.PI * t / 2);
    const yaw = 0.35 * Math.sin(2 * Math.PI * t / 4);
    const qy = Math.sin(yaw / 2), qw = Math.cos(yaw / 2);
    device.position.set(x, y, 0);
    device.quaternion.set(0, qy, 0, qw);
    const raise = 0.5 * (1 - Math.cos(2 * Math.PI * t / 3));
    const c = Math.cos(yaw), s = Math.sin(yaw);
    for (const [hand, side, up, ahead, pitch] of [["left", -0.22, -0.5, -0.15, 0],
                                                   ["right", 0.22, -0.5 + 0.45 * raise, -0.15 - 0.25 * raise, raise]]) {
      const ctl = device.controllers[hand];       // the offset turned by the heading (about +Y)
      ctl.position.set(x + c * side + s * ahead, y + up, -s * side + c * ahead);
      const px = Math.sin(pitch * 0.5), pw = Math.cos(pitch * 0.5);   // pitched up by up to 1 rad, then the heading
      ctl.quaternion.set(qw * px, qy * pw, -qy * px, qw * pw);
    }
    requestAnimationFrame(apply);
  }
  apply();
}

const browser = await chromium.launch({
  executablePath: exe, headless: true,
  args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
});
const errors = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  const context = await browser.newContext({ viewport: { width: 640, height: 480 } });
  await context.addInitScript({ path: path.join(here, "node_modules", "iwer", "build", "iwer.min.js") });
  await context.addInitScript(motion);
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  async function until(fn, what) {      // a timeout says what the page showed
    try {
      await page.waitForFunction(fn, null, { timeout: 15000 });
    } catch (e) {
      const shown = await page.evaluate(() => document.getElementById("panel")?.innerText).catch(() => "?");
      throw new Error(`the page did not get to: ${what} (${e.message.split("\n")[0]})\npage: ${shown}\n`
                      + `console: ${errors.join("\n")}`);
    }
  }
  async function enterAndStream(seconds) {
    await until(() => window.anim && window.anim.status.connected, "connected");
    await until(() => !document.getElementById("enter").disabled, "Enter VR enabled");
    await page.click("#enter");
    await until(() => window.anim.status.xr === "on", "in VR");
    await until(() => window.anim.history.length > 0, "an avatar made from its pose");
    const first = await page.evaluate(() => window.anim.history.length);
    await sleep(seconds * 1000);
    return first;
  }
  async function phase(first) {
    return page.evaluate((first) => ({
      history: window.anim.history.slice(first),
      skeleton: window.anim.skeleton,
      status: window.anim.status,
      errors: window.anim.errors,
      panel: Object.fromEntries(["state", "latency", "stream", "errors"].map((id) => [id, document.getElementById(id).textContent])),
    }), first);
  }

  await page.goto(spec.url);
  const phases = [];
  const first = await enterAndStream(spec.seconds);
  if (spec.screenshot) await page.screenshot({ path: spec.screenshot });
  if (spec.bad_message) {
    await page.evaluate((text) => ws.send(text), spec.bad_message);
    await page.waitForFunction(() => window.anim.errors.length > 0, null, { timeout: 5000 });
  }
  phases.push(await phase(first));
  if (spec.reload_seconds) {
    await page.reload();
    phases.push(await phase(await enterAndStream(spec.reload_seconds)));
  }
  process.stdout.write(JSON.stringify({ browser: browser.version(), phases, console: errors }) + "\n");
} finally {
  await browser.close();
}
