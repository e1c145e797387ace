// The review page: pages of the server's review queue, a three.js view of each mesh, three sliders.
// Every answer is POSTed to /api/review, which writes DATASET/calibration.jsonl and the table.
import * as THREE from "three";
import { OrbitControls } from "/static/vendor/OrbitControls.js";

const DIMS = ["alignment", "realism", "fidelity"];
const PAGE = 20;
const LABELS = { 1: "preferred", 0: "dispreferred", "-1": "middle (left out)" };
const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
let reviewer = params.get("reviewer") || "";
let state = null;          // /api/state
let page = { offset: -1, items: [] };
let pos = 0;               // position in the queue
let active = 0;            // index of the highlighted dimension
let view = null;           // three.js scene objects

function fmt(v) { return v === null || v === undefined ? "-" : Number(v).toFixed(2); }

async function api(path, opts) {
  const r = await fetch(path, opts);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function setStatus(text) { $("status").textContent = text; }

// ---- the 3D view -------------------------------------------------------------------------
function initView() {
  const el = $("viewer");
  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  } catch (e) {
    el.querySelector(".msg").textContent = "no WebGL in this browser: " + e.message;
    return null;
  }
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  renderer.setSize(el.clientWidth, el.clientHeight);
  el.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xfafafa);
  const camera = new THREE.PerspectiveCamera(35, el.clientWidth / el.clientHeight, 0.01, 100);
  camera.position.set(2.2, 1.6, 3.2);  // y up, objects in [-1, 1]^3
  scene.add(new THREE.HemisphereLight(0xffffff, 0x666666, 1.6));
  const sun = new THREE.DirectionalLight(0xffffff, 1.8);
  sun.position.set(3, 5, 4);
  scene.add(sun);
  scene.add(new THREE.GridHelper(2.4, 12, 0xcccccc, 0xe4e4e4).translateY(-1.0));
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;
  const loop = () => { controls.update(); renderer.render(scene, camera); requestAnimationFrame(loop); };
  loop();
  // follow the viewer's box (a window resize, or a scrollbar appearing when the agreement table opens)
  new ResizeObserver(() => {
    renderer.setSize(el.clientWidth, el.clientHeight);
    camera.aspect = el.clientWidth / el.clientHeight;
    camera.updateProjectionMatrix();
  }).observe(el);
  return { scene, camera, controls, renderer, mesh: null };
}

async function showMesh(id) {
  window.__meshReady = false;
  if (!view) return;
  const m = await api("/api/mesh?id=" + encodeURIComponent(id));
  if (view.mesh) { view.scene.remove(view.mesh); view.mesh.geometry.dispose(); }
  const g = new THREE.BufferGeometry();
  g.setAttribute("position", new THREE.Float32BufferAttribute(m.vertices, 3));
  g.setIndex(m.faces);
  g.computeVertexNormals();
  const mat = new THREE.MeshStandardMaterial({ color: 0x8fb0d8, flatShading: true, side: THREE.DoubleSide, roughness: 0.7 });
  view.mesh = new THREE.Mesh(g, mat);
  view.scene.add(view.mesh);
  view.el = $("viewer").querySelector(".msg");
  if (view.el) view.el.remove();
  window.__meshReady = true;
  window.__meshFaces = m.faces.length / 3;
}

// ---- the item panel ----------------------------------------------------------------------
function current() { return page.items[pos - page.offset]; }

async function ensurePage(p) {
  const off = Math.floor(p / PAGE) * PAGE;
  if (off === page.offset) return;
  page = await api(`/api/items?offset=${off}&limit=${PAGE}&reviewer=${encodeURIComponent(reviewer)}`);
}

function renderDims(values) {
  $("dims").innerHTML = "";
  DIMS.forEach((d, k) => {
    const row = document.createElement("div");
    row.className = "dim" + (k === active ? " active" : "");
    row.innerHTML = `<span>${d}</span><input type="range" min="0" max="5" step="0.5" id="in-${d}" data-testid="in-${d}">` +
      `<output id="out-${d}"></output>`;
    $("dims").appendChild(row);
    const input = row.querySelector("input");
    input.value = values[d] ?? 2.5;
    row.querySelector("output").textContent = Number(input.value).toFixed(1);
    input.addEventListener("input", () => { row.querySelector("output").textContent = Number(input.value).toFixed(1); });
    input.addEventListener("focus", () => { active = k; highlight(); });
  });
}

function highlight() { document.querySelectorAll(".dim").forEach((el, k) => el.classList.toggle("active", k === active)); }

function setDim(k, v) {
  const input = $("in-" + DIMS[k]);
  input.value = v;
  $("out-" + DIMS[k]).textContent = Number(v).toFixed(1);
}

async function go(p) {
  if (!state || p < 0 || p >= state.items) return;
  await ensurePage(p);
  pos = p;
  const it = current();
  $("position").textContent = `item ${p + 1} / ${state.items}`;
  $("item-id").textContent = it.id;
  $("prompt").textContent = it.prompt || "";
  $("caption").textContent = it.caption && it.caption !== it.prompt ? "caption: " + it.caption : "";
  const lab = `<b class="label${it.label}">${LABELS[it.label]}</b>`;
  $("meta").innerHTML = `${lab} &middot; source ${it.source} / ${it.split} &middot; ${it.n_faces ?? "?"} faces` +
    `<br><small>score source <b>${it.score_source}</b>: ${it.provenance || ""} &middot; reviews: ${it.reviews}` +
    `${it.mine ? " (yours saved)" : ""}</small>`;
  const rows = ["alignment", "realism", "fidelity", "overall"].map((d) =>
    `<tr><td>${d}</td><td>${fmt(it.machine[d])}</td><td>${fmt(it.scores[d])}</td><td>${it.mine ? fmt(it.mine[d]) : "-"}</td></tr>`);
  $("scores").innerHTML = "<tr><th></th><th>machine</th><th>now</th><th>yours</th></tr>" + rows.join("");
  $("details").textContent = typeof it.details === "string" ? it.details : JSON.stringify(it.details, null, 1);
  active = 0;
  renderDims(it.mine || it.machine || {});
  setStatus(it.mine ? "you reviewed this item already; saving again replaces your answer" : "");
  try { await showMesh(it.id); } catch (e) { setStatus("mesh: " + e.message); }
}

async function save(values) {
  const it = current();
  const body = { id: it.id, reviewer };
  // "accept" takes the machine's value where it has one (the geometric scorer has no alignment): the slider's elsewhere
  DIMS.forEach((d) => { body[d] = values && values[d] !== undefined && values[d] !== null ? values[d] : Number($("in-" + d).value); });
  try {
    const res = await api("/api/review", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    it.mine = res.record.human;
    Object.assign(it.scores, res.item);
    it.label = res.item.label;
    await refreshState();
    setStatus(`saved ${it.id}: overall ${fmt(res.item.overall)}, ${LABELS[res.item.label]}`);
    $("status").dataset.saved = it.id;
    if (pos + 1 < state.items) { await go(pos + 1); setStatus(`saved ${it.id}`); }
  } catch (e) {
    setStatus("not saved: " + e.message);
  }
}

async function refreshState() {
  state = await api("/api/state?reviewer=" + encodeURIComponent(reviewer));
  $("dataset").textContent = state.dataset;
  $("progress").textContent = `${state.answered} answered by ${state.reviewer} of ${state.items}`;
}

async function showAgreement() {
  const ag = await api("/api/agreement");
  const rows = Object.keys(ag.machine_vs_human).map((d) => {
    const m = ag.machine_vs_human[d], b = ag.between_reviewers[d];
    return `<tr><td>${d}</td><td>${m.n}</td><td>${fmt(m.spearman)}</td><td>${fmt(m.mae)}</td><td>${b.n}</td><td>${fmt(b.spearman)}</td><td>${fmt(b.mae)}</td></tr>`;
  });
  $("agreement").innerHTML = "<h4>Agreement</h4><table><tr><th></th><th>n</th><th>Spearman machine-human</th><th>MAE</th>" +
    "<th>pairs</th><th>Spearman reviewers</th><th>MAE</th></tr>" + rows.join("") + "</table>" +
    "<small>reviewers: " + (Object.entries(ag.reviewers).map(([k, v]) => `${k} (${v})`).join(", ") || "none") + "</small>";
}

document.addEventListener("keydown", (e) => {
  if (e.target && e.target.id === "reviewer") return;
  if (e.key >= "0" && e.key <= "5") { setDim(active, Number(e.key)); active = (active + 1) % DIMS.length; highlight(); e.preventDefault(); }
  else if (e.key === "Tab") { active = (active + 1) % DIMS.length; highlight(); e.preventDefault(); }
  else if (e.key === "Enter") { save(); e.preventDefault(); }
  else if (e.key === "a") { save(current().machine); }
  else if (e.key === "ArrowRight") { go(pos + 1); }
  else if (e.key === "ArrowLeft") { go(pos - 1); }
});

async function start() {
  const s0 = await api("/api/state" + (reviewer ? "?reviewer=" + encodeURIComponent(reviewer) : ""));
  reviewer = s0.reviewer;
  $("reviewer").value = reviewer;
  await refreshState();
  view = initView();
  await go(Math.min(state.position, state.items - 1));  // resume where this reviewer stopped
  $("prev").onclick = () => go(pos - 1);
  $("next").onclick = () => go(pos + 1);
  $("save").onclick = () => save();
  $("accept").onclick = () => save(current().machine);
  $("show-agreement").onclick = showAgreement;
  $("reviewer").onchange = async () => {
    reviewer = $("reviewer").value.trim() || reviewer;
    history.replaceState(null, "", "?reviewer=" + encodeURIComponent(reviewer));
    page = { offset: -1, items: [] };
    await refreshState();
    await go(Math.min(state.position, state.items - 1));
  };
  window.__appReady = true;
}

start().catch((e) => setStatus("error: " + e.message));
