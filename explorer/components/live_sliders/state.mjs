// What the live sliders' modules share: the component's state, the counters the browser
// tests and bench/live_sliders.py read, and the page's elements (index.html).

export const instanceId = Math.random().toString(36).slice(2, 10); // tells reports of remounts apart

export const state = {
  model: null, // {kind, run(z, batch), ...} (see runtime.mjs loadModel), or null until one arrives
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

export const stats = {
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
  runtimeFetchMs: null, // page load -> ONNX Runtime's module here (the wasm streams in later)
  runtimeReadyMs: null, // page load -> runtime instantiated (a one-node session ran)
  firstFrameAt: null, // Date.now() when the first image was drawn (bench: time to first decode)
  swaps: 0, // models replaced by a newer version
  blankFrames: 0, // frames drawn with no model (should stay 0: the old image stays up)
};

const byId = (id) => document.getElementById(id);
export const dom = {
  root: byId("root"),
  canvas: byId("image"),
  statusLine: byId("status"),
  fpsLine: byId("fps"),
  panel: byId("panel"), // all the sliders
  slidersBox: byId("sliders"), // the top (highest-KL) dimensions
  more: byId("more"), // <details> holding the rest
  moreBox: byId("more-sliders"),
  attrSection: byId("attributes"),
  attrBox: byId("attr-sliders"),
};

export function setStatus(text, isError = false) {
  dom.statusLine.textContent = text;
  dom.statusLine.classList.toggle("error", isError);
}
