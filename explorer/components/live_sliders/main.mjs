// Live latent sliders: a Streamlit (components.v1) frontend that decodes in the browser.
//
// The Python side (explorer/components/live_sliders.py) sends the decoder as ONNX only when
// its version changes; ONNX Runtime Web runs it (runtime.mjs). Every `input` event while a
// thumb moves re-decodes here (drawing.mjs: at most one decode per animation frame), so the
// image follows the drag. A new snapshot's model is loaded and decoded beside the old one
// and swapped in with its first image: the canvas is never blank and never left showing the
// old weights. On release or a keyboard step the latent vector goes back to Python
// (protocol.mjs); a model the runtime cannot load is reported back too (Python then draws
// server-side sliders and says why). The sliders, their histograms of the aggregate
// posterior q against the N(0, 1) prior, and the attribute sliders are sliders.mjs's;
// bench.mjs holds the hooks the browser tests and the benchmark read.
//
// This module: each render from Streamlit -> the weights, the sliders' layout, z.

import "./bench.mjs";
import { scheduleDraw, showFrame, sizeCanvas } from "./drawing.mjs";
import { connect, reportHeight, sendValue } from "./protocol.mjs";
import { loadModel, loadOrt, runtimeMessage } from "./runtime.mjs";
import {
  buildSliders,
  drawHistograms,
  requestOrder,
  setDisabled,
  showZ,
  updateLabels,
} from "./sliders.mjs";
import { instanceId, setStatus, state, stats } from "./state.mjs";

// ---- Models -------------------------------------------------------------------------------

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

function rejectModel(spec, error) {
  state.loadingVersion = null;
  state.failedVersion = spec.version;
  const message = runtimeMessage(error);
  setStatus(`cannot decode in the browser: ${message}`, true);
  sendValue({ error: message, signature: spec.signature ?? null });
}

// Load the model when it came with this render; ask Python for it when it didn't and we
// don't hold this version (a fresh iframe after a remount, or a rerun that was cut short).
let retryTimer = null;

function syncWeights(args) {
  const known = [state.version, state.loadingVersion, state.failedVersion];
  if (known.includes(args.version)) return clearTimeout(retryTimer);
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
  // Ask again if no answer comes: an answer can be lost (a rerun cut short), and the
  // reruns after it, with the same arguments, render nothing here that would ask again.
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => syncWeights(args), 3100);
}

// ---- z from Python ------------------------------------------------------------------------

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
  setDisabled(Boolean(disabled));
  if (state.model) {
    sizeCanvas(args, state.model.imageShape);
    scheduleDraw();
  }
  reportHeight();
}

connect(onRender);
loadOrt().catch(() => {}); // start fetching the runtime while Streamlit sends the first render
