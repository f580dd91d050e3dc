// Live latent sliders: a Streamlit (components.v1) frontend that decodes in the browser.
//
// The Python side (explorer/components/live_sliders.py) sends the decoder as ONNX only when
// its version changes; ONNX Runtime Web (wasm backend, one thread: the Streamlit page is not
// cross-origin isolated) runs it, loaded from this component's own node_modules (installed
// by `make setup`), never from a CDN. Every `input` event while a thumb moves re-decodes
// here (at most one decode per animation frame), so the image follows the drag. A new
// snapshot's model is loaded and decoded beside the old one and swapped in with its first
// image: the canvas is never blank and never left showing the old weights.
// On release or a keyboard step the latent vector goes back to Python; a model the runtime
// cannot load is reported back too (Python then draws server-side sliders and says why).
// Above each track a small histogram shows where the data's codes go along it (the
// aggregate posterior q) against the N(0, 1) prior; attribute sliders move z along a vector.
//
// The Streamlit component protocol (normally streamlit-component-lib, which needs a build
// step) is a handful of postMessage calls, implemented by hand below.

const ORT_DIR = "./node_modules/onnxruntime-web/dist/";

// ---- Streamlit protocol -------------------------------------------------------------------

function sendToStreamlit(type, data = {}) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

function setComponentValue(value) {
  sendToStreamlit("streamlit:setComponentValue", { value, dataType: "json" });
}

let lastHeight = -1;
function reportHeight() {
  const height = Math.ceil(document.getElementById("root").getBoundingClientRect().height) + 4;
  if (height !== lastHeight) {
    lastHeight = height;
    sendToStreamlit("streamlit:setFrameHeight", { height });
  }
}

// ---- State --------------------------------------------------------------------------------

const instanceId = Math.random().toString(36).slice(2, 10); // tells reports of remounts apart
const state = {
  model: null, // {kind, run(z, batch), ...} (see loadModel), or null until a model arrives
  version: null, // version of the loaded model
  loadingVersion: null, // a version being loaded beside the shown one
  failedVersion: null, // a version the runtime could not load: don't re-ask
  z: new Float64Array(0), // the latent vector being shown; may lie outside the slider range
  lastArgsZ: null, // the z Python sent last time, to spot when Python moves the sliders
  lastReportedZ: null,
  layoutKey: "", // which sliders exist: [D, limit, step, top_dims, ranges, attributes]
  histKey: "", // which histograms are drawn
  attributes: [], // [{name, direction, range, q, p}]: sliders that move z along a direction
  order: [], // the dimensions in display order
  pendingOrder: null, // a new KL order held back while the user is on a slider
  eventSeq: 0,
  event: null, // id of the last user change reported to Python
  request: null, // {id, version, at}: the last weights request
  drawPending: false,
  decoding: false, // a decode is in flight (they run one at a time)
  redraw: false, // z moved while it was: decode again when it ends
  drag: null, // {frames, first, last} while a thumb is held
};

const stats = {
  inputs: 0, // input events from the sliders
  frames: 0, // decoded and drawn images
  lastDecodeMs: 0,
  meanDecodeMs: 0,
  weightsLoads: 0,
  weightsRequests: 0,
  reports: 0,
  version: null,
  dragFrames: 0,
  lastDragFps: 0,
  histogramMs: 0, // time to draw every track's histogram, last time they changed
  backend: null, // "onnxruntime-web" once a model is loaded
  loadMs: 0, // the last model's load (session creation) plus its first decode
  runtimeFetchMs: null, // page load -> ONNX Runtime's module and wasm bytes here
  runtimeReadyMs: null, // page load -> runtime instantiated (a one-node session ran)
  firstFrameAt: null, // Date.now() when the first image was drawn (bench: time to first decode)
  swaps: 0, // models replaced by a newer version
  blankFrames: 0, // frames drawn with no model (should stay 0: the old image stays up)
};
window.__liveDecoderStats = stats; // read by the browser tests and the benchmark

// Decodes per second of the current z without drawing, for bench/live_drag.py: the decoder's
// headroom above the display's frame rate.
window.__liveDecoderThroughput = async (count = 200) => {
  const model = state.model;
  if (!model) return null;
  const z = Float32Array.from(state.z);
  const start = performance.now();
  for (let i = 0; i < count; i++) await model.run(z, 1);
  return (1000 * count) / (performance.now() - start);
};

// Decode a batch of latents [[z0...], ...] with the loaded model: the browser parity test.
// Whether nothing is queued or decoding: a test's snapshot of the canvas is then final.
window.__liveDecoderIdle = () => !state.drawPending && !state.decoding && !state.loadingVersion;

window.__liveDecoderDecode = async (latents) => {
  const model = state.model;
  if (!model) throw new Error("no model loaded");
  return Array.from(await model.run(Float32Array.from(latents.flat()), latents.length));
};

const canvas = document.getElementById("image");
const statusLine = document.getElementById("status");
const fpsLine = document.getElementById("fps");
const panel = document.getElementById("panel"); // all the sliders
const slidersBox = document.getElementById("sliders"); // the top (highest-KL) dimensions
const more = document.getElementById("more"); // <details> holding the rest
const moreBox = document.getElementById("more-sliders");
const attrSection = document.getElementById("attributes");
const attrBox = document.getElementById("attr-sliders");

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

// ---- Models -------------------------------------------------------------------------------

// The wasm binary (14 MB) also comes gzipped by `make setup` (3.7 MB): Streamlit would gzip
// the plain file at level 9 on every request (seconds of server CPU), but passes a .gz
// through as it is; the browser unzips it natively. Missing, ORT fetches the plain file.
async function fetchWasmBinary() {
  try {
    const response = await fetch(new URL(`${ORT_DIR}ort-wasm-simd-threaded.wasm.gz`, import.meta.url));
    if (!response.ok) return null;
    return await new Response(response.body.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
  } catch {
    return null;
  }
}

// A one-node model (Relu): creating its session at page load instantiates the runtime while
// Streamlit is still sending the first render and the decoder.
const WARM_UP_MODEL = Uint8Array.from(
  atob("CAgSADo2CgwKAXgSAXkiBFJlbHUSBHdhcm1aDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAR"),
  (c) => c.charCodeAt(0),
);

// ONNX Runtime's module, loaded and warmed up once; a missing install rejects with one line.
let ortPromise = null;
function loadOrt() {
  ortPromise ??= (async () => {
    const start = performance.now();
    const [ort, binary] = await Promise.all([
      import(`${ORT_DIR}ort.wasm.min.mjs`).catch(() => {
        throw new Error("ONNX Runtime Web is not installed (run make setup)");
      }),
      fetchWasmBinary(),
    ]);
    stats.runtimeFetchMs = performance.now() - start;
    ort.env.wasm.numThreads = 1; // no SharedArrayBuffer without cross-origin isolation
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = new URL(ORT_DIR, import.meta.url).href; // these files, no CDN
    if (binary) ort.env.wasm.wasmBinary = binary;
    const warm = await serial(() => ort.InferenceSession.create(WARM_UP_MODEL));
    await serial(() => warm.release());
    stats.runtimeReadyMs = performance.now() - start;
    return ort;
  })();
  return ortPromise;
}

// Runtime calls one at a time: a new model loads while the old one still decodes drag frames.
let runtimeQueue = Promise.resolve();
function serial(task) {
  const result = runtimeQueue.then(task);
  runtimeQueue = result.catch(() => {});
  return result;
}

async function loadOnnx(spec, bytes) {
  const ort = await loadOrt();
  const session = await serial(() =>
    ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" }),
  );
  const [C, H, W] = spec.image_shape;
  const D = spec.latent_dim;
  return {
    kind: "onnxruntime-web",
    // z: Float32Array (batch * D) -> Float32Array (batch * C * H * W) in [0, 1]
    run: (z, batch) =>
      serial(async () => {
        const feeds = { [spec.input]: new ort.Tensor("float32", z, [batch, D]) };
        const out = (await session.run(feeds))[spec.output];
        if (out.data.length !== batch * C * H * W) {
          throw new Error(`the model gives ${out.dims.join("x")}, expected ${batch}x${C}x${H}x${W}`);
        }
        return out.data;
      }),
    release: () => serial(() => session.release()),
  };
}

async function loadModel(spec, bytes) {
  const inner = await loadOnnx(spec, bytes);
  return { ...inner, version: spec.version, latentDim: spec.latent_dim, imageShape: spec.image_shape };
}

function currentZ(latentDim) {
  return state.z.length === latentDim ? Float32Array.from(state.z) : new Float32Array(latentDim);
}

// Load a model beside the shown one, decode the current z with it, then swap both in at once.
async function swapIn(spec, bytes, args) {
  const start = performance.now();
  state.loadingVersion = spec.version;
  let model = null;
  try {
    model = await loadModel(spec, bytes);
    const pixels = await model.run(currentZ(model.latentDim), 1); // also proves it runs here
    if (state.loadingVersion !== spec.version) return model.release(); // a newer one came
    const old = state.model;
    Object.assign(state, { model, version: spec.version, loadingVersion: null, request: null });
    Object.assign(stats, { version: spec.version, backend: model.kind, loadMs: performance.now() - start });
    stats.weightsLoads += 1;
    if (old) {
      stats.swaps += 1;
      old.release();
    }
    setStatus("");
    sizeCanvas(args, model.imageShape);
    showFrame(pixels, model, start);
    scheduleDraw(); // z may have moved while the model loaded
  } catch (error) {
    if (model) model.release();
    rejectModel(spec, error);
  }
}

// ONNX Runtime's errors wrap the reason in its C++ source location and signature: keep the
// reason ("Fatal error: x:Op is not a registered function/op", "Unsupported model IR version").
function runtimeMessage(error) {
  return String(error?.message ?? error)
    .replace(/^.*?ERROR_MESSAGE: /s, "")
    .replace(/^\S+\.(cc|h):\d+ [^(]*\([^)]*\) /, "")
    .split("\n")[0]
    .slice(0, 240);
}

function rejectModel(spec, error) {
  state.loadingVersion = null;
  state.failedVersion = spec.version;
  const message = runtimeMessage(error);
  setStatus(`cannot decode in the browser: ${message}`, true);
  sendValue({ error: message, signature: spec.signature ?? null });
}

// Load the model when it came with this render; ask Python for it when it didn't and we
// don't hold this version (a fresh iframe after a remount, or a rerun that was cut short).
function syncWeights(args) {
  const known = [state.version, state.loadingVersion, state.failedVersion];
  if (known.includes(args.version)) return;
  if (args.decoder && args.model) {
    swapIn(args.decoder, args.model, args);
    return;
  }
  const now = performance.now();
  const waiting = state.request && state.request.version === args.version;
  if (waiting && now - state.request.at < 3000) return;
  state.request = { id: `${instanceId}:w${stats.weightsRequests + 1}`, version: args.version, at: now };
  stats.weightsRequests += 1;
  if (!state.model) setStatus("loading the model…");
  sendValue();
}

// ---- Sliders ------------------------------------------------------------------------------

function formatKl(kl) {
  return kl === null || kl === undefined ? null : Number(kl).toFixed(2);
}

function describeDim(d, kl, inactive) {
  const klText = formatKl(kl);
  let label = `latent dimension ${d}`;
  if (klText !== null) label += `, KL ${klText} nats`;
  if (inactive) label += ", inactive";
  return label;
}

// [lo, hi] of dimension d's slider: its own range when histograms came with one.
function dimRange(args, d) {
  return args.histograms ? args.histograms.ranges[d] : [-args.limit, args.limit];
}

// One labelled range input with an (empty) histogram above its track.
function sliderBox(id, [lo, hi], step) {
  const box = document.createElement("div");
  box.className = "dim";
  const label = document.createElement("label");
  label.htmlFor = id;
  const name = document.createElement("span");
  name.className = "name";
  const value = document.createElement("output");
  value.htmlFor = id;
  label.append(name, value);
  const hist = document.createElementNS(SVG_NS, "svg");
  hist.classList.add("hist");
  hist.setAttribute("aria-hidden", "true");
  const input = document.createElement("input");
  Object.assign(input, { type: "range", id, min: lo, max: hi, step });
  input.addEventListener("change", () => onSliderCommit());
  input.addEventListener("pointerdown", startDrag);
  box.append(label, hist, input);
  return box;
}

function buildSliders(args) {
  slidersBox.replaceChildren();
  moreBox.replaceChildren();
  attrBox.replaceChildren();
  const boxes = [];
  for (const d of args.order) {
    const box = sliderBox(`z${d}`, dimRange(args, d), args.step);
    box.dataset.dim = String(d);
    const input = box.querySelector("input");
    input.addEventListener("input", () => onSliderInput(d, input));
    boxes.push(box);
  }
  placeBoxes(boxes, args.top_dims);
  state.attributes = args.attributes ?? [];
  state.attributes.forEach((attribute, i) => {
    const box = sliderBox(`a${i}`, attribute.range, args.step);
    box.dataset.attr = String(i);
    box.classList.add("attr");
    box.querySelector(".name").textContent = attribute.name; // text, never HTML
    const input = box.querySelector("input");
    input.setAttribute("aria-label", `attribute ${attribute.name}: position of z along it`);
    input.addEventListener("input", () => onAttributeInput(i, input));
    attrBox.append(box);
  });
  attrSection.hidden = state.attributes.length === 0;
}

// ---- Histograms above the tracks ----------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";

// Bars of q and a line of the prior p, both densities over the slider's range, scaled
// together so their heights compare. The viewBox is bins wide and 1 high; CSS stretches it.
function drawHistogram(svg, q, p) {
  const top = Math.max(...q, ...p, 1e-9);
  const bins = q.length;
  let bars = "";
  for (let i = 0; i < bins; i++) bars += `M${i} 1V${(1 - q[i] / top).toFixed(3)}H${i + 1}V1Z`;
  const line = p.map((v, i) => `${i + 0.5},${(1 - v / top).toFixed(3)}`).join(" ");
  svg.setAttribute("viewBox", `0 0 ${bins} 1`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.innerHTML =
    `<path class="q" d="${bars}"/>` +
    `<polyline class="p" points="${line}" vector-effect="non-scaling-stroke"/>`;
}

function drawHistograms(args) {
  const key = JSON.stringify([args.histograms, state.attributes.map((a) => [a.q, a.p])]);
  if (key === state.histKey) return;
  state.histKey = key;
  const start = performance.now();
  for (const box of allBoxes()) {
    const svg = box.querySelector("svg.hist");
    const d = Number(box.dataset.dim);
    svg.hidden = !args.histograms;
    if (args.histograms) drawHistogram(svg, args.histograms.q[d], args.histograms.p[d]);
  }
  for (const box of attrBoxes()) {
    const attribute = state.attributes[Number(box.dataset.attr)];
    drawHistogram(box.querySelector("svg.hist"), attribute.q, attribute.p);
  }
  stats.histogramMs = performance.now() - start;
}

// The first `top` boxes in the grid, the rest in the <details> below it.
function placeBoxes(boxes, top) {
  const cut = top ?? boxes.length;
  slidersBox.append(...boxes.slice(0, cut));
  moreBox.append(...boxes.slice(cut));
  const rest = boxes.length - Math.min(cut, boxes.length);
  more.hidden = rest === 0;
  more.querySelector("summary").textContent = `${rest} more dimensions (lower KL)`;
}

function allBoxes() {
  return panel.querySelectorAll(".dim[data-dim]");
}

function attrBoxes() {
  return panel.querySelectorAll(".dim[data-attr]");
}

function dot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i];
  return sum;
}

// A new KL order moves the existing slider boxes (built once per layout). While a slider
// has focus or a thumb is held, the move waits: a slider jumping away under the pointer or
// the arrow keys would lose the user's place.
function userOnSliders() {
  return state.drag !== null || panel.contains(document.activeElement);
}

function setOrder(order, top) {
  state.pendingOrder = null;
  if (order.every((d, i) => d === state.order[i])) return;
  const boxes = new Map([...allBoxes()].map((box) => [Number(box.dataset.dim), box]));
  placeBoxes(order.map((d) => boxes.get(d)), top);
  state.order = order;
}

function requestOrder(order, top) {
  if (userOnSliders()) state.pendingOrder = { order, top };
  else setOrder(order, top);
}

function applyPendingOrder() {
  const pending = state.pendingOrder;
  if (pending && !userOnSliders()) setOrder(pending.order, pending.top);
}

function updateLabels(args) {
  for (const box of allBoxes()) {
    const d = Number(box.dataset.dim);
    const kl = args.kl ? args.kl[d] : null;
    const inactive = kl !== null && kl < args.inactive_below;
    box.classList.toggle("inactive", inactive);
    const klText = formatKl(kl);
    box.querySelector(".name").innerHTML =
      `z${d}` + (klText === null ? "" : ` <span class="kl">· KL ${klText}</span>`);
    box.querySelector("input").setAttribute("aria-label", describeDim(d, kl, inactive));
  }
}

function showValue(box, value) {
  const input = box.querySelector("input");
  const text = value.toFixed(2);
  if (input !== document.activeElement || !state.drag) input.value = String(value); // clamped
  input.setAttribute("aria-valuetext", text);
  box.querySelector("output").textContent = text;
}

// Every slider shows z: a dimension its coordinate, an attribute the projection z . v.
function showZ() {
  for (const box of allBoxes()) showValue(box, state.z[Number(box.dataset.dim)]);
  showAttributes();
}

function showAttributes() {
  for (const box of attrBoxes()) {
    const attribute = state.attributes[Number(box.dataset.attr)];
    if (attribute.direction.length === state.z.length) showValue(box, dot(state.z, attribute.direction));
  }
}

function sameZ(a, b) {
  return a !== null && b !== null && a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) < 1e-9);
}

// Python moves the sliders (reset, random sample, a point picked in the scatter) by sending
// a different z; an echo of what we reported, or an unchanged z, leaves the user's drag alone.
// So does a z from a rerun that started before Python saw our newest change (args.ack is
// the last event Python applied): quick key presses would otherwise be undone by the
// rerun of an earlier press, and the next press would start from the old value.
function syncZ(args) {
  const z = args.z.map(Number);
  const pythonBehind = state.event !== null && args.ack !== state.event;
  const fromPython =
    !pythonBehind && !sameZ(z, state.lastArgsZ) && !sameZ(z, state.lastReportedZ);
  if (fromPython || state.z.length !== z.length) {
    state.z = Float64Array.from(z);
    showZ();
    scheduleDraw();
  }
  state.lastArgsZ = z;
}

// ---- Decoding and drawing -----------------------------------------------------------------

function onSliderInput(d, input) {
  stats.inputs += 1;
  state.z[d] = Number(input.value);
  const text = state.z[d].toFixed(2);
  input.setAttribute("aria-valuetext", text);
  input.parentElement.querySelector("output").textContent = text;
  showAttributes(); // z's projections onto the attribute vectors moved too
  scheduleDraw();
}

// An attribute slider set to a moves z along its unit vector v until z . v = a.
function onAttributeInput(i, input) {
  stats.inputs += 1;
  const v = state.attributes[i].direction;
  const delta = Number(input.value) - dot(state.z, v);
  for (let d = 0; d < state.z.length; d++) state.z[d] += delta * v[d];
  showZ();
  scheduleDraw();
}

// Input events can outpace the screen; decoding at most once per animation frame, one decode
// at a time, shows every frame the display can show without queueing decodes behind a fast
// mouse: a move during a decode asks for one more decode, of the newest z, when it ends.
function scheduleDraw() {
  if (state.drawPending) return;
  state.drawPending = true;
  requestAnimationFrame(() => {
    state.drawPending = false;
    draw();
  });
}

async function draw() {
  const model = state.model;
  if (!model) {
    if (state.drag) stats.blankFrames += 1;
    return;
  }
  if (state.z.length !== model.latentDim) return;
  if (state.decoding) {
    state.redraw = true;
    return;
  }
  state.decoding = true;
  const start = performance.now();
  try {
    const pixels = await model.run(Float32Array.from(state.z), 1);
    if (model === state.model) showFrame(pixels, model, start); // else: a newer model drew
  } catch (error) {
    setStatus(`decoding failed: ${String(error?.message ?? error).split("\n")[0]}`, true);
  } finally {
    state.decoding = false;
    if (state.redraw) {
      state.redraw = false;
      scheduleDraw();
    }
  }
}

function showFrame(pixels, model, start) {
  paint(pixels, model.imageShape);
  const ms = performance.now() - start;
  stats.frames += 1;
  stats.firstFrameAt ??= Date.now();
  stats.lastDecodeMs = ms;
  stats.meanDecodeMs += (ms - stats.meanDecodeMs) / Math.min(stats.frames, 50);
  if (state.drag) countDragFrame(start);
}

const paintCache = { key: "", image: null };
function paint(pixels, [C, H, W]) {
  const key = `${C}x${H}x${W}`;
  if (paintCache.key !== key) {
    canvas.width = W;
    canvas.height = H;
    paintCache.key = key;
    paintCache.image = new ImageData(W, H);
  }
  const rgba = paintCache.image.data;
  const plane = H * W;
  for (let i = 0; i < plane; i++) {
    // (C, H, W) planes -> interleaved RGBA; greyscale repeats its one channel
    rgba[4 * i] = 255 * pixels[i];
    rgba[4 * i + 1] = 255 * pixels[C === 3 ? plane + i : i];
    rgba[4 * i + 2] = 255 * pixels[C === 3 ? 2 * plane + i : i];
    rgba[4 * i + 3] = 255;
  }
  canvas.getContext("2d").putImageData(paintCache.image, 0, 0);
}

function sizeCanvas(args, [, H, W]) {
  const scale = Math.max(1, Math.floor(args.image_px / Math.max(H, W)));
  canvas.style.width = `${scale * W}px`;
  canvas.style.height = `${scale * H}px`;
}

// ---- Drag frame rate ----------------------------------------------------------------------

function startDrag() {
  state.drag = { frames: 0, first: 0, last: 0 };
}

function countDragFrame(time) {
  const drag = state.drag;
  drag.frames += 1;
  if (drag.frames === 1) drag.first = time;
  drag.last = time;
  stats.dragFrames = drag.frames;
  if (drag.frames > 1) {
    stats.lastDragFps = (1000 * (drag.frames - 1)) / (drag.last - drag.first);
    fpsLine.textContent =
      `${stats.lastDragFps.toFixed(0)} frames/s while dragging · ` +
      `${stats.meanDecodeMs.toFixed(2)} ms per decode`;
  }
}

window.addEventListener("pointerup", () => {
  state.drag = null;
  applyPendingOrder();
});
panel.addEventListener("focusout", () => setTimeout(applyPendingOrder, 0)); // focus settled

// ---- Reporting back to Python -------------------------------------------------------------

function sendValue(extra = {}) {
  stats.reports += 1;
  setComponentValue({
    z: Array.from(state.z),
    event: state.event,
    request: state.request ? state.request.id : null,
    version: state.version,
    ...extra,
  });
}

// `change` fires on release after a drag and after every keyboard step.
function onSliderCommit() {
  state.eventSeq += 1;
  state.event = `${instanceId}:${state.eventSeq}`;
  state.lastReportedZ = Array.from(state.z);
  sendValue();
}

// ---- Render -------------------------------------------------------------------------------

function applyTheme(theme) {
  if (!theme) return;
  const root = document.documentElement.style;
  if (theme.textColor) root.setProperty("--text", theme.textColor);
  if (theme.primaryColor) root.setProperty("--accent", theme.primaryColor);
  if (theme.font) root.setProperty("--font", theme.font);
}

function onRender(args, theme, disabled) {
  applyTheme(theme);
  syncWeights(args);
  const order = args.order ?? args.z.map((_, i) => i);
  const attributes = (args.attributes ?? []).map((a) => [a.name, a.range, a.direction]);
  const ranges = args.histograms ? args.histograms.ranges : null;
  const layoutKey = JSON.stringify([order.length, args.limit, args.step, args.top_dims, ranges, attributes]);
  if (layoutKey !== state.layoutKey) {
    buildSliders({ ...args, order });
    state.layoutKey = layoutKey;
    state.order = order;
    state.pendingOrder = null;
    state.lastArgsZ = null; // new sliders: show Python's z
  } else {
    requestOrder(order, args.top_dims);
  }
  updateLabels(args);
  state.attributes = args.attributes ?? []; // same layout, maybe new histograms
  drawHistograms(args);
  syncZ(args);
  showZ();
  for (const input of panel.querySelectorAll("input")) input.disabled = Boolean(disabled);
  if (state.model) {
    sizeCanvas(args, state.model.imageShape);
    scheduleDraw();
  }
  reportHeight();
}

window.addEventListener("message", (event) => {
  if (event.data?.type === "streamlit:render") {
    onRender(event.data.args, event.data.theme, event.data.disabled);
  }
});

new ResizeObserver(reportHeight).observe(document.getElementById("root"));
sendToStreamlit("streamlit:componentReady", { apiVersion: 1 });
loadOrt().catch(() => {}); // start fetching the runtime while Streamlit sends the first render
