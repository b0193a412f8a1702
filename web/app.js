// The demo page: drives webgrad's WASM module (built into ./pkg by
// `cargo xtask web`) on the browser's WebGPU. All GPU work is awaited.
import init, { Session } from "./pkg/webgrad_web.js";

const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(3));

function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

async function start() {
  if (!navigator.gpu) {
    setStatus("error", "This browser has no WebGPU (navigator.gpu is missing). Use Chrome or Edge 113+, Safari 18+ or Firefox with WebGPU enabled; on Linux start Chrome with --enable-unsafe-webgpu (and --enable-features=Vulkan).");
    return;
  }
  try {
    await init();
  } catch (e) {
    setStatus("error", `Could not load the WebAssembly module (run cargo xtask web): ${e}`);
    return;
  }
  let session;
  try {
    session = await Session.create();
  } catch (e) {
    setStatus("error", `WebGPU is present but no adapter was found: ${e}. Enable hardware acceleration, or start Chrome with --enable-unsafe-webgpu.`);
    return;
  }
  const adapter = JSON.parse(session.adapter());
  setStatus("ready", `WebGPU adapter: ${adapter.name} (${adapter.backend}, ${adapter.device_type})`);
  $("adapter").textContent =
    `Adapter ${adapter.name}; limits in force: ${adapter.max_storage_buffers_per_shader_stage} storage buffers per stage, ` +
    `${adapter.max_storage_buffer_binding_size} bytes per binding, ${adapter.max_compute_workgroups_per_dimension} workgroups per dimension, ` +
    `${adapter.max_compute_invocations_per_workgroup} invocations per workgroup.`;
  setupDifferentiate(session);
  setupTrain(session);
  setupModels(session);
}

// ---------- Part 1: Differentiate ----------

let result = null;
let step = 0;

function variableNames(values) {
  return values.split(",").map((kv) => kv.split("=")[0].trim()).filter((s) => s);
}

function refreshWrt() {
  const sel = $("wrt");
  const keep = sel.value;
  sel.innerHTML = "";
  for (const name of variableNames($("values").value)) {
    const o = document.createElement("option");
    o.value = o.textContent = name;
    sel.appendChild(o);
  }
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

function setupDifferentiate(session) {
  refreshWrt();
  $("values").addEventListener("change", refreshWrt);
  $("expr-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await runDifferentiate(session);
  });
  $("step-next").addEventListener("click", () => showStep(step + 1));
  $("step-back").addEventListener("click", () => showStep(step - 1));
  $("step-all").addEventListener("click", () => showStep(result ? result.steps.length : 0));
  runDifferentiate(session);
}

async function runDifferentiate(session) {
  const expr = $("expr").value;
  const json = await session.differentiate(expr, $("values").value, $("wrt").value || "");
  const r = JSON.parse(json);
  const err = $("error");
  if (!r.ok) {
    const where = r.position === null ? "" : `\n${expr}\n${" ".repeat(r.position)}^ position ${r.position}`;
    err.textContent = `Error: ${r.message}${where}`;
    err.hidden = false;
    return;
  }
  err.hidden = true;
  result = r;
  const grads = r.variables.map((v) => `∂y/∂${v.name} = ${fmt(v.reverse)}`).join(" · ");
  $("summary").textContent = `y = ${fmt(r.y)} · ${grads}`;
  $("summary").dataset.y = r.y;
  $("tangent-head").textContent = `tangent Δv = ∂v/∂${r.wrt}`;
  const body = $("nodes").querySelector("tbody");
  body.innerHTML = "";
  for (const n of r.nodes) {
    const tr = document.createElement("tr");
    tr.dataset.node = n.id;
    tr.innerHTML = `<td>${n.id}</td><td>${n.text}</td><td>${fmt(n.value)}</td><td>${fmt(n.tangent)}</td><td>${fmt(n.adjoint)}</td>`;
    body.appendChild(tr);
  }
  const methods = r.variables
    .map(
      (v) =>
        `<tr><td>∂y/∂${v.name}</td><td>${fmt(v.reverse)}</td><td>${v.symbolic} = ${fmt(v.symbolic_value)}</td>` +
        `<td>${Number(v.numerical).toFixed(5)} (error ${Number(v.numerical_error).toExponential(1)})</td></tr>`,
    )
    .join("");
  $("methods").innerHTML =
    `<table><thead><tr><th></th><th>reverse mode</th><th>symbolic</th><th>central differences (f32)</th></tr></thead><tbody>${methods}</tbody></table>` +
    `<p>Forward mode: the tangent of the output, Δ${r.output} = ${fmt(r.nodes.find((n) => n.id === r.output).tangent)} = ∂y/∂${r.wrt}.</p>` +
    `<p id="memory" data-reverse="${r.reverse_bytes}" data-checkpointed="${r.checkpointed_bytes}">Reverse mode's memory (GPU bytes at its peak, predicted without running): ` +
    `${r.reverse_bytes} bytes keeping the forward values; ${r.checkpointed_bytes} bytes with the expression checkpointed (its values recomputed by the backward pass).</p>`;
  drawGraph(r, null);
  showStep(0);
}

function drawGraph(r, current) {
  const svg = $("graph");
  const W = 460, H = 300;
  const maxDepth = Math.max(...r.nodes.map((n) => n.depth));
  const columns = {};
  for (const n of r.nodes) (columns[n.depth] ||= []).push(n);
  const pos = {};
  for (const [d, col] of Object.entries(columns)) {
    col.forEach((n, i) => {
      pos[n.id] = { x: 40 + (maxDepth ? (d / maxDepth) * (W - 80) : W / 2 - 40), y: ((i + 1) * H) / (col.length + 1) };
    });
  }
  let s = `<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#888"/></marker></defs>`;
  for (const n of r.nodes) {
    for (const i of n.inputs) {
      const a = pos[i], b = pos[n.id];
      const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
      s += `<line x1="${a.x + (dx / len) * 22}" y1="${a.y + (dy / len) * 22}" x2="${b.x - (dx / len) * 22}" y2="${b.y - (dy / len) * 22}" stroke="#888" marker-end="url(#arrow)"/>`;
    }
  }
  for (const n of r.nodes) {
    const p = pos[n.id];
    const fill = n.op === "input" ? "#dbeafe" : n.op === "const" ? "#eee" : "#fef3c7";
    const stroke = n.id === current ? "#d00" : "#555";
    s += `<g data-node="${n.id}"><circle cx="${p.x}" cy="${p.y}" r="20" fill="${fill}" stroke="${stroke}" stroke-width="${n.id === current ? 3 : 1}"/>`;
    s += `<text x="${p.x}" y="${p.y - 3}" text-anchor="middle">${n.id}</text>`;
    s += `<text x="${p.x}" y="${p.y + 11}" text-anchor="middle" font-size="10">${n.op === "input" || n.op === "const" ? n.text : n.op}</text></g>`;
  }
  svg.innerHTML = s;
}

function showStep(k) {
  if (!result) return;
  step = Math.max(0, Math.min(k, result.steps.length));
  const body = $("steps").querySelector("tbody");
  body.innerHTML = "";
  result.steps.forEach((st, i) => {
    const tr = document.createElement("tr");
    tr.dataset.node = st.node;
    tr.dataset.partials = st.partials.length;
    if (i === step - 1) tr.className = "current";
    if (i >= step) tr.className = "pending";
    const parts = st.partials
      .map((p) => (p.from === null ? `seed ${fmt(p.value)}` : `Δ${st.node}→${p.from} = ${fmt(p.value)}`))
      .join(" + ");
    tr.innerHTML = i < step ? `<td>Δ${st.node}</td><td>${parts}</td><td>${fmt(st.sum)}</td>` : `<td>Δ${st.node}</td><td>…</td><td>…</td>`;
    body.appendChild(tr);
  });
  $("step-count").textContent = `step ${step} of ${result.steps.length}`;
  drawGraph(result, step > 0 ? result.steps[step - 1].node : null);
}

// ---------- Part 2: Train ----------

const EXTENT = 1.15;
const COLORS = [[230, 80, 60], [60, 140, 230], [70, 180, 90]];

function setupTrain(session) {
  let trainer = session.trainer(1);
  let running = false;
  let busy = null;
  let losses = [];

  const loop = async () => {
    while (running) {
      const loss = await trainer.train(10);
      losses.push(loss);
      $("steps-done").textContent = trainer.steps();
      $("loss").textContent = loss.toFixed(4);
      if (losses.length === 1) $("loss-first").textContent = loss.toFixed(4);
      drawCurve(losses);
      if (losses.length % 5 === 1) await drawRegions(trainer);
      await new Promise((r) => setTimeout(r, 0)); // let the page breathe
    }
  };
  $("start").addEventListener("click", () => {
    if (running) return;
    running = true;
    $("start").disabled = true;
    $("pause").disabled = false;
    busy = loop();
  });
  $("pause").addEventListener("click", async () => {
    running = false;
    await busy;
    $("start").disabled = false;
    $("pause").disabled = true;
    await drawRegions(trainer);
  });
  $("reset").addEventListener("click", async () => {
    running = false;
    await busy;
    trainer = session.trainer(1);
    losses = [];
    $("steps-done").textContent = "0";
    $("loss").textContent = $("loss-first").textContent = "–";
    $("start").disabled = false;
    $("pause").disabled = true;
    drawCurve(losses);
    await drawRegions(trainer);
  });
  drawRegions(trainer);
}

async function drawRegions(trainer) {
  const res = 60;
  const classes = await trainer.regions(res, EXTENT);
  const c = $("regions"), ctx = c.getContext("2d");
  const cell = c.width / res;
  for (let i = 0; i < res * res; i++) {
    const [r, g, b] = COLORS[classes[i]].map((v) => Math.round((v + 2 * 255) / 3));
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect((i % res) * cell, Math.floor(i / res) * cell, cell + 0.5, cell + 0.5);
  }
  const pts = trainer.points(), labels = trainer.labels();
  for (let i = 0; i < labels.length; i++) {
    const x = ((pts[2 * i] + EXTENT) / (2 * EXTENT)) * c.width;
    const y = ((EXTENT - pts[2 * i + 1]) / (2 * EXTENT)) * c.height;
    ctx.fillStyle = `rgb(${COLORS[labels[i]].join(",")})`;
    ctx.strokeStyle = "#222";
    ctx.beginPath();
    ctx.arc(x, y, 3, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
}

function drawCurve(losses) {
  const c = $("curve"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.strokeStyle = "#999";
  ctx.strokeRect(30, 10, c.width - 40, c.height - 30);
  if (losses.length < 2) return;
  const logs = losses.map((l) => Math.log(Math.max(l, 1e-6)));
  const lo = Math.min(...logs), hi = Math.max(...logs) + 1e-6;
  ctx.strokeStyle = "#2838a0";
  ctx.beginPath();
  logs.forEach((v, i) => {
    const x = 30 + (i / (logs.length - 1)) * (c.width - 40);
    const y = 10 + (1 - (v - lo) / (hi - lo)) * (c.height - 30);
    i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#333";
  ctx.fillText(losses[0].toFixed(3), 2, 18);
  ctx.fillText(losses[losses.length - 1].toFixed(3), 2, c.height - 22);
  ctx.fillText(`${losses.length * 10} steps`, c.width - 70, c.height - 5);
}

// ---------- Part 3: Models ----------

// Reduces the drawing to the data set's 8×8 format: render it into a 32×32
// bitmap (a pixel is on when it is more than half covered), then count the
// on-pixels of each 4×4 block (0..16) and scale by 1/16, as the library does.
function downsample(canvas) {
  const small = document.createElement("canvas");
  small.width = small.height = 32;
  const sctx = small.getContext("2d");
  sctx.drawImage(canvas, 0, 0, 32, 32);
  const data = sctx.getImageData(0, 0, 32, 32).data;
  const pixels = new Float32Array(64);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      if (data[(y * 32 + x) * 4] > 127) pixels[Math.floor(y / 4) * 8 + Math.floor(x / 4)] += 1 / 16;
    }
  }
  return pixels;
}

function drawGrid(canvas, values, color) {
  const ctx = canvas.getContext("2d");
  const cell = canvas.width / 8;
  for (let i = 0; i < 64; i++) {
    ctx.fillStyle = color(values[i]);
    ctx.fillRect((i % 8) * cell, Math.floor(i / 8) * cell, cell, cell);
  }
}

// What the CNN's precision means on this adapter.
function precisionNote(session, precision) {
  const adapter = JSON.parse(session.adapter());
  const stored = precision === "f32"
    ? "Activations in f32."
    : `Activations stored in ${precision}, two per 32-bit word, computed in f32 (parameters and Adam in f32${precision === "f16" ? ", with dynamic loss scaling" : ""}).`;
  const f16 = adapter.native_f16
    ? "This adapter offers shader-f16: matmul, convolution and the other op kernels read f16 values as native f16."
    : adapter.shader_f16
      ? "This adapter offers shader-f16, but it is a CPU adapter: f16 values are decoded with integer arithmetic (faster there, same results)."
      : "This adapter does not offer shader-f16 (native f16): f16 values are decoded with integer arithmetic.";
  return `${stored} ${f16}`;
}

function setupModels(session) {
  let precision = $("cnn-precision").value;
  let cnn = session.cnn(0, precision);
  let trained = false;
  const showPrecision = () => {
    $("cnn-precision-note").textContent = precisionNote(session, precision);
    $("cnn-precision-note").dataset.precision = precision;
    $("cnn-precision-note").dataset.nativeF16 = JSON.parse(session.adapter()).native_f16;
  };
  showPrecision();
  // A new precision starts a new network (until it is trained).
  $("cnn-precision").addEventListener("change", () => {
    precision = $("cnn-precision").value;
    cnn = session.cnn(0, precision);
    trained = false;
    $("cnn-progress").textContent = "not trained yet";
    $("cnn-accuracy").textContent = "–";
    showPrecision();
  });
  const draw = $("draw"), ctx = draw.getContext("2d");
  let pending = null, again = false;

  const clear = () => {
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, draw.width, draw.height);
  };
  clear();

  // Runs the network on the current drawing; drawings made meanwhile are
  // folded into one more run, so the page never queues up GPU work.
  const predict = async () => {
    if (pending) {
      again = true;
      return;
    }
    const pixels = downsample(draw);
    drawGrid($("digit-input"), pixels, (v) => `rgb(${Math.round(255 * v)},${Math.round(255 * v)},${Math.round(255 * v)})`);
    if (!trained) return;
    pending = cnn.predict(pixels);
    const out = JSON.parse(await pending);
    pending = null;
    const scale = Math.max(...out.saliency.map(Math.abs), 1e-12);
    drawGrid($("saliency"), out.saliency, (v) => {
      const t = v / scale;
      return t >= 0 ? `rgb(255,${Math.round(255 * (1 - t))},${Math.round(255 * (1 - t))})` : `rgb(${Math.round(255 * (1 + t))},${Math.round(255 * (1 + t))},255)`;
    });
    $("saliency").dataset.size = out.saliency.length;
    const probs = $("probs");
    probs.innerHTML = "";
    out.probabilities.forEach((p, k) => {
      const row = document.createElement("div");
      row.className = k === out.class ? "bar top" : "bar";
      row.innerHTML = `<span>${k}</span><span style="width:${Math.round(150 * p)}px"></span><span>${(100 * p).toFixed(1)}%</span>`;
      probs.appendChild(row);
    });
    probs.dataset.sum = out.probabilities.reduce((a, b) => a + b, 0);
    probs.dataset.count = out.probabilities.length;
    probs.dataset.top = out.class;
    if (again) {
      again = false;
      predict();
    }
  };

  let drawing = false;
  const at = (e) => {
    const r = draw.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * draw.width, ((e.clientY - r.top) / r.height) * draw.height];
  };
  draw.addEventListener("pointerdown", (e) => {
    drawing = true;
    draw.setPointerCapture(e.pointerId);
    const [x, y] = at(e);
    ctx.beginPath();
    ctx.moveTo(x, y);
  });
  draw.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const [x, y] = at(e);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 28;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineTo(x, y);
    ctx.stroke();
    predict();
  });
  const stop = () => {
    drawing = false;
    predict();
  };
  draw.addEventListener("pointerup", stop);
  draw.addEventListener("pointercancel", stop);
  $("clear").addEventListener("click", () => {
    clear();
    predict();
  });

  $("cnn-train").addEventListener("click", async () => {
    $("cnn-train").disabled = true;
    $("cnn-precision").disabled = true;
    const total = 300;
    for (let done = 0; done < total; done += 10) {
      const loss = await cnn.train(10);
      $("cnn-progress").textContent = `step ${cnn.steps()} of ${total} · loss ${loss.toFixed(4)}`;
      if ((done + 10) % 100 === 0) {
        const acc = await cnn.test_accuracy();
        $("cnn-accuracy").textContent = `${(100 * acc).toFixed(1)}%`;
        $("cnn-accuracy").dataset.accuracy = acc;
      }
      await new Promise((r) => setTimeout(r, 0));
    }
    trained = true;
    $("cnn-progress").dataset.done = "true";
    $("cnn-progress").textContent += " · done: draw a digit";
    $("cnn-train").disabled = false;
    $("cnn-precision").disabled = false;
    predict();
  });
}

start();
