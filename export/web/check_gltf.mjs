// Load exported .glb files in three.js inside headless Chromium and report
// joint world positions (the page is page.html; files are served to it by
// request interception, so no server runs).
// Usage: node check_gltf.mjs JOBS.json > RESULT.json
// JOBS.json: {"chromium": "/usr/bin/chromium" (optional),
//             "jobs": [{"glb": PATH, "animation": NAME, "times": [s, ...],
//                       "screenshot": PNG PATH or null, "screenshot_time": s, "label": TEXT,
//                       "view": [x, z] camera direction from the character (optional)}]}
// RESULT: {"browser": version, "results": [page.sample() output per job], "console": [errors]}
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const spec = JSON.parse(await readFile(process.argv[2], "utf8"));
const exe = spec.chromium || process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath: exe, headless: true,
  args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
});
const types = { ".html": "text/html", ".js": "text/javascript", ".glb": "model/gltf-binary" };
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 960, height: 640 } });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.route("http://anim.test/**", async (route) => {
    const url = new URL(route.request().url());
    let file;
    if (url.pathname === "/page.html") file = path.join(here, "page.html");
    else if (url.pathname.startsWith("/three/")) file = path.join(here, "node_modules", url.pathname);
    else if (url.pathname.startsWith("/files/")) file = spec.jobs[Number(url.pathname.slice(7).split(".")[0])].glb;
    if (!file) return route.fulfill({ status: 404, body: "not found" });
    try {
      const body = await readFile(file);
      return route.fulfill({ status: 200, body, contentType: types[path.extname(file)] || "application/octet-stream" });
    } catch (e) {
      return route.fulfill({ status: 404, body: String(e) });
    }
  });
  await page.goto("http://anim.test/page.html");
  await page.waitForFunction(() => window.ready === true, null, { timeout: 30000 });
  const results = [];
  for (const [i, job] of spec.jobs.entries()) {
    const r = await page.evaluate(([u, a, t]) => window.sample(u, a, t), [`http://anim.test/files/${i}.glb`, job.animation, job.times]);
    if (job.screenshot) {
      await page.evaluate(([t, l, v]) => window.pose(t, l, v),
        [job.screenshot_time || 0, job.label || job.animation, job.view || null]);
      await page.screenshot({ path: job.screenshot });
    }
    results.push(r);
  }
  process.stdout.write(JSON.stringify({ browser: browser.version(), results, console: errors }) + "\n");
} finally {
  await browser.close();
}
