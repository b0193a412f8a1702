// The bench page: runs each workload group of webgrad's bench through the
// WASM module and prints a table and the JSON lines. `?quick=1&autorun=1`
// runs everything once at load (the headless browser test does).
import init, { Session } from "./pkg/webgrad_web.js";

const $ = (id) => document.getElementById(id);

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function addRow(line) {
  const j = JSON.parse(line);
  const skip = new Set(["workload", "ms", "gflops", "adapter", "backend"]);
  const size = Object.entries(j).filter(([k]) => !skip.has(k)).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ");
  const tr = document.createElement("tr");
  for (const cell of [j.workload, size, j.ms.toFixed(3), j.gflops === undefined ? "–" : j.gflops.toFixed(1)]) {
    const td = document.createElement("td");
    td.textContent = cell;
    tr.appendChild(td);
  }
  $("results").querySelector("tbody").appendChild(tr);
  $("json").textContent += line + "\n";
}

async function run(session, quick) {
  $("start").disabled = true;
  $("results").querySelector("tbody").innerHTML = "";
  $("json").textContent = "";
  // `?groups=attention,gpt` runs only those groups.
  const only = new URLSearchParams(location.search).get("groups");
  const groups = session.bench_groups().filter((g) => !only || only.split(",").includes(g));
  try {
    for (const [i, group] of groups.entries()) {
      setStatus("running", `Running ${group} (${i + 1} of ${groups.length})…`);
      const lines = await session.bench(group, quick);
      for (const line of lines.split("\n").filter((l) => l.length > 0)) addRow(line);
    }
    setStatus("done", `Done on ${JSON.parse(session.adapter()).name}.`);
  } catch (e) {
    setStatus("error", `The benchmark failed: ${e}`);
  }
  $("start").disabled = false;
}

async function start() {
  if (!navigator.gpu) {
    setStatus("error", "This browser has no WebGPU (navigator.gpu is missing). Use Chrome or Edge 113+, Safari 18+ or Firefox with WebGPU enabled.");
    return;
  }
  await init();
  let session;
  try {
    session = await Session.create();
  } catch (e) {
    setStatus("error", `No WebGPU adapter: ${e}`);
    return;
  }
  const adapter = JSON.parse(session.adapter());
  setStatus("ready", `WebGPU adapter: ${adapter.name} (${adapter.backend}, ${adapter.device_type}).`);
  $("start").disabled = false;
  $("start").addEventListener("click", () => run(session, $("quick").checked));
  const params = new URLSearchParams(location.search);
  if (params.get("quick") === "1") $("quick").checked = true;
  if (params.get("autorun") === "1") run(session, $("quick").checked);
}

start();
