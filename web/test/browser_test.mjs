// Browser test of web/index.html: serves web/ on 127.0.0.1, drives Debian's
// Chromium headless with WebGPU (SwiftShader) through puppeteer-core, and
// checks the three parts of the page as a user would see them. Saves a
// screenshot of each part in web/test/output/.
//
//   node browser_test.mjs        (after `cargo xtask web --build-only`)
//
// Prints "N passed, N failed" and exits non-zero on any failure.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import puppeteer from "puppeteer-core";

const here = dirname(fileURLToPath(import.meta.url));
const webDir = join(here, "..");
const outDir = join(here, "output");
mkdirSync(outDir, { recursive: true });

let passed = 0, failed = 0;
function check(name, ok, detail = "") {
  if (ok) { passed++; console.log(`ok    ${name}`); }
  else { failed++; console.log(`FAIL  ${name} ${detail}`); }
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function waitForServer(port) {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((r) => {
      const c = net.connect(port, "127.0.0.1", () => { c.end(); r(true); });
      c.on("error", () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the static server did not start");
}

const port = await freePort();
const server = spawn("python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1"], { cwd: webDir, stdio: "ignore" });
const profile = mkdtempSync(join(tmpdir(), "webgrad-chromium-"));
let browser;
try {
  await waitForServer(port);
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: "new",
    userDataDir: profile,
    args: [
      "--headless=new", "--enable-unsafe-webgpu", "--no-sandbox", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
      "--enable-features=Vulkan", "--use-angle=swiftshader", "--window-size=1100,1400",
    ],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 1400 });
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(`http://127.0.0.1:${port}/index.html`);

  // An adapter was found.
  await page.waitForFunction(() => document.getElementById("status").dataset.state !== "loading", { timeout: 60000 });
  const status = await page.$eval("#status", (e) => [e.dataset.state, e.textContent]);
  check("a WebGPU adapter was found", status[0] === "ready", status[1]);

  // The lecture's example, computed on the GPU.
  await page.waitForFunction(() => document.getElementById("summary").textContent.includes("y ="), { timeout: 60000 });
  const summary = await page.$eval("#summary", (e) => e.textContent);
  check("y = 11.652", summary.includes("y = 11.652"), summary);
  check("∂y/∂x1 = 5.5", summary.includes("∂y/∂x1 = 5.500"), summary);
  check("∂y/∂x2 = 1.716", summary.includes("∂y/∂x2 = 1.716"), summary);
  const memory = await page.$eval("#memory", (e) => [Number(e.dataset.reverse), Number(e.dataset.checkpointed), e.textContent]);
  check("the reverse pass's memory is shown, with and without checkpointing", memory[0] > 0 && memory[1] > 0 && Number.isInteger(memory[0]), memory[2]);

  // Step the reverse pass until v2 has been visited: two partial adjoints.
  const total = await page.$$eval("#steps tbody tr", (rows) => rows.length);
  for (let i = 0; i < total; i++) await page.click("#step-next");
  const v2 = await page.$eval('#steps tbody tr[data-node="v2"]', (tr) => [tr.dataset.partials, tr.textContent]);
  check("stepping the reverse pass shows v2 receiving two partial adjoints", v2[0] === "2" && (v2[1].match(/Δv2→/g) || []).length === 2, v2[1]);
  await page.$eval("#differentiate", (e) => e.scrollIntoView());
  await page.screenshot({ path: join(outDir, "differentiate.png"), fullPage: false });

  // A malformed expression shows a positioned error; a corrected one works again.
  await page.$eval("#expr", (e) => { e.value = "ln(x1) + * x2"; });
  await page.click("#run");
  await page.waitForFunction(() => !document.getElementById("error").hidden, { timeout: 30000 });
  const error = await page.$eval("#error", (e) => e.textContent);
  check("a malformed expression shows its error and position", /position 9/.test(error) && error.includes("^"), error);
  await page.$eval("#expr", (e) => { e.value = "x1*x2 + sin(x1)"; });
  await page.click("#run");
  await page.waitForFunction(() => document.getElementById("error").hidden, { timeout: 30000 });
  const again = await page.$eval("#summary", (e) => e.textContent);
  const want = (10 + Math.sin(2)).toFixed(3);
  check("a corrected expression works again", again.includes(`y = ${want}`) && again.includes("∂y/∂x2 = 2.000"), again);

  // A domain error gives NaN (shown as –) on every adapter, not 0.
  await page.$eval("#expr", (e) => { e.value = "log(x1)"; });
  await page.$eval("#values", (e) => { e.value = "x1=-1"; });
  await page.click("#run");
  await page.waitForFunction(() => document.getElementById("summary").textContent.startsWith("y = –"), { timeout: 30000 }).catch(() => {});
  const domain = await page.$eval("#summary", (e) => e.textContent);
  check("log(−1) is NaN in the page, not a number", domain.startsWith("y = –"), domain);
  await page.$eval("#values", (e) => { e.value = "x1=2, x2=5"; });

  // A GPU error is returned by the realize that caused it, not a later call.
  const scoped = await page.evaluate(async () => {
    const m = await import("./pkg/webgrad_web.js");
    const s = await m.Session.create();
    try { return await s.error_scope_check(); } catch (e) { return `failed: ${e}`; }
  });
  check("a GPU error is reported by the realize that caused it", scoped.startsWith("ok: "), scoped);

  // NaN, infinities and domain errors follow the documented rules (docs/numerics.md) here too
  // (the values are numpy's and the f64 reference's).
  const special = await page.evaluate(async () => {
    const m = await import("./pkg/webgrad_web.js");
    const s = await m.Session.create();
    try { return await s.special_values(); } catch (e) { return `failed: ${e}`; }
  });
  const wantSpecial = [
    "powf(NaN, 3) = NaN", "pow(1, NaN) = 1.0", "pow(-0, -inf) = inf", "pow(-2, 0.5) = NaN",
    "tanh(NaN) = NaN", "relu(NaN) = NaN", "max([1, NaN, 3]) = NaN", "ne(NaN, NaN) = 1.0",
    "eq(NaN, NaN) = 0.0", "sqrt(-1) = NaN", "log(-1) = NaN", "log(0) = -inf", "0/0 = NaN",
    "mean([]) = NaN",
  ];
  const gotSpecial = special.split("\n");
  const wrong = wantSpecial.filter((w, i) => gotSpecial[i] !== w);
  check("NaN, infinities and domain errors follow the documented rules (docs/numerics.md)", wrong.length === 0 && gotSpecial.length === wantSpecial.length,
    `expected ${wrong.join("; ")}; got ${special.replace(/\n/g, "; ")}`);

  // Train: 200 steps lower the loss.
  await page.click("#start");
  await page.waitForFunction(() => Number(document.getElementById("steps-done").textContent) >= 200, { timeout: 180000 });
  await page.click("#pause");
  const first = await page.$eval("#loss-first", (e) => Number(e.textContent));
  const last = await page.$eval("#loss", (e) => Number(e.textContent));
  check("200 training steps lower the loss", last < first * 0.8, `first ${first}, last ${last}`);
  await page.$eval("#train", (e) => e.scrollIntoView());
  await new Promise((r) => setTimeout(r, 300));
  await page.screenshot({ path: join(outDir, "train.png"), fullPage: false });

  // Models: the CNN trains in the page; a drawn stroke gives ten
  // probabilities that sum to 1 and a saliency map of 64 pixels.
  await page.$eval("#models", (e) => e.scrollIntoView());
  await page.click("#cnn-train");
  await page.waitForFunction(() => document.getElementById("cnn-progress").dataset.done === "true", { timeout: 600000 });
  const accuracy = await page.$eval("#cnn-accuracy", (e) => Number(e.dataset.accuracy));
  const precision = await page.$eval("#cnn-precision-note", (e) => [e.dataset.precision, e.textContent, e.dataset.nativeF16]);
  check("the page trains the CNN in 16 bits and says so", precision[0] === "bf16" && precision[1].includes("bf16"), precision[1]);
  const native = precision[2] === "true";
  check("the page says whether it reads f16 natively", precision[2] !== undefined && precision[1].includes(native ? "read f16 values as native f16" : "decoded with integer arithmetic"), `${precision[2]}: ${precision[1]}`);
  check("300 training steps of the CNN in bf16 reach 90% test accuracy", accuracy >= 0.9, `accuracy ${accuracy}`);
  const box = await page.$eval("#draw", (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; });
  // A "1": one vertical stroke down the middle.
  await page.mouse.move(box[0] + box[2] * 0.5, box[1] + box[3] * 0.15);
  await page.mouse.down();
  for (let i = 1; i <= 20; i++) await page.mouse.move(box[0] + box[2] * 0.5, box[1] + box[3] * (0.15 + 0.7 * i / 20));
  await page.mouse.up();
  await page.waitForFunction(() => document.getElementById("saliency").dataset.size === "64", { timeout: 60000 });
  const probs = await page.$eval("#probs", (e) => [Number(e.dataset.sum), Number(e.dataset.count), Number(e.dataset.top)]);
  check("a drawn stroke gives ten probabilities that sum to 1", probs[1] === 10 && Math.abs(probs[0] - 1) < 1e-3, `sum ${probs[0]}, count ${probs[1]}`);
  const saliency = await page.$eval("#saliency", (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let colored = 0;
    for (let i = 0; i < d.length; i += 4) colored += d[i] !== 255 || d[i + 1] !== 255 || d[i + 2] !== 255 ? 1 : 0;
    return [c.dataset.size, colored];
  });
  check("the saliency map has 64 pixels, not all zero", saliency[0] === "64" && saliency[1] > 0, `size ${saliency[0]}, colored ${saliency[1]}`);
  const input = await page.$eval("#digit-input", (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) lit += d[i] > 0 ? 1 : 0;
    return lit;
  });
  check("the stroke shows in the 8×8 input", input > 0, `lit ${input}`);
  await new Promise((r) => setTimeout(r, 300));
  await (await page.$("#models")).screenshot({ path: join(outDir, "models.png") });

  // The bench page runs every workload once (quick) and reports a finite time for each.
  const bench = await browser.newPage();
  bench.on("console", (m) => { if (m.type() === "error") consoleErrors.push(`bench: ${m.text()}`); });
  bench.on("pageerror", (e) => consoleErrors.push(`bench: ${e}`));
  await bench.goto(`http://127.0.0.1:${port}/bench.html?quick=1&autorun=1`);
  await bench.waitForFunction(() => ["done", "error"].includes(document.getElementById("status").dataset.state), { timeout: 900000 });
  const benchStatus = await bench.$eval("#status", (e) => [e.dataset.state, e.textContent]);
  const benchLines = (await bench.$eval("#json", (e) => e.textContent)).split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
  const f32 = ["matmul_fwd_bwd", "matmul_fwd_bwd", "matmul_fwd_bwd", "elementwise_chain_1m", "mlp_sgd_step", "chain_1000_ops", "conv2d_fwd_bwd", "cnn_adam_step", "gpt_adamw_step"];
  // The precision group: a matmul and the two model steps in bf16, then in f16.
  const sixteen = ["bf16", "f16"].flatMap((p) => ["matmul_fwd_bwd", "cnn_adam_step", "gpt_adamw_step"].map((w) => [w, p]));
  const workloads = [...f32.map((w) => [w, undefined]), ...sixteen];
  // The attention group: the transformer's step at context 256 and 1024, fused then composed.
  const attention = [256, 1024].flatMap((t) => ["fused", "composed"].map((a) => [t, a]));
  const expected = workloads.length + attention.length;
  check("the bench page reports a finite time for every workload, in f32, bf16 and f16, and attention fused and composed",
    benchStatus[0] === "done" && benchLines.length === expected &&
      benchLines.slice(0, workloads.length).every((j, i) => j.workload === workloads[i][0] && j.precision === workloads[i][1] && Number.isFinite(j.ms) && j.ms > 0) &&
      benchLines.slice(workloads.length).every((j, i) => j.workload === "gpt_attention_step" && j.context === attention[i][0] && j.attention === attention[i][1] && Number.isFinite(j.ms) && j.ms > 0),
    `${benchStatus[1]} ${benchLines.map((j) => `${j.workload}${j.precision ? ` (${j.precision})` : ""}${j.attention ? ` (${j.attention}, T ${j.context})` : ""} ${j.ms} ms`).join("; ")}`);
  await bench.screenshot({ path: join(outDir, "bench.png"), fullPage: true });
  await bench.close();

  check("the browser console has no errors", consoleErrors.length === 0, consoleErrors.join(" | "));
} catch (e) {
  check("the browser test ran to the end", false, String(e && e.stack || e));
} finally {
  if (browser) await browser.close();
  server.kill();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
