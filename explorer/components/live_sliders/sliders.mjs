// The slider DOM: one range input per latent dimension (in KL order, the lower-KL ones in a
// <details>) and one per attribute vector, each with a histogram of the aggregate posterior q
// against the N(0, 1) prior above its track; their input, commit and drag events.

import { scheduleDraw } from "./drawing.mjs";
import { sendValue } from "./protocol.mjs";
import { dom, instanceId, state, stats } from "./state.mjs";

const SVG_NS = "http://www.w3.org/2000/svg";

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

export function buildSliders(args) {
  dom.slidersBox.replaceChildren();
  dom.moreBox.replaceChildren();
  dom.attrBox.replaceChildren();
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
    dom.attrBox.append(box);
  });
  dom.attrSection.hidden = state.attributes.length === 0;
}

// ---- Histograms above the tracks ----------------------------------------------------------

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

export function drawHistograms(args) {
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

// ---- Order and labels ---------------------------------------------------------------------

// The first `top` boxes in the grid, the rest in the <details> below it.
function placeBoxes(boxes, top) {
  const cut = top ?? boxes.length;
  dom.slidersBox.append(...boxes.slice(0, cut));
  dom.moreBox.append(...boxes.slice(cut));
  const rest = boxes.length - Math.min(cut, boxes.length);
  dom.more.hidden = rest === 0;
  dom.more.querySelector("summary").textContent = `${rest} more dimensions (lower KL)`;
}

function allBoxes() {
  return dom.panel.querySelectorAll(".dim[data-dim]");
}

function attrBoxes() {
  return dom.panel.querySelectorAll(".dim[data-attr]");
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
  return state.drag !== null || dom.panel.contains(document.activeElement);
}

function setOrder(order, top) {
  state.pendingOrder = null;
  if (order.every((d, i) => d === state.order[i])) return;
  const boxes = new Map([...allBoxes()].map((box) => [Number(box.dataset.dim), box]));
  placeBoxes(order.map((d) => boxes.get(d)), top);
  state.order = order;
}

export function requestOrder(order, top) {
  if (userOnSliders()) state.pendingOrder = { order, top };
  else setOrder(order, top);
}

function applyPendingOrder() {
  const pending = state.pendingOrder;
  if (pending && !userOnSliders()) setOrder(pending.order, pending.top);
}

export function updateLabels(args) {
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

// ---- Values -------------------------------------------------------------------------------

function showValue(box, value) {
  const input = box.querySelector("input");
  const text = value.toFixed(2);
  if (input !== document.activeElement || !state.drag) input.value = String(value); // clamped
  input.setAttribute("aria-valuetext", text);
  box.querySelector("output").textContent = text;
}

// Every slider shows z: a dimension its coordinate, an attribute the projection z . v.
export function showZ() {
  for (const box of allBoxes()) showValue(box, state.z[Number(box.dataset.dim)]);
  showAttributes();
}

function showAttributes() {
  for (const box of attrBoxes()) {
    const attribute = state.attributes[Number(box.dataset.attr)];
    if (attribute.direction.length === state.z.length) showValue(box, dot(state.z, attribute.direction));
  }
}

export function setDisabled(disabled) {
  for (const input of dom.panel.querySelectorAll("input")) input.disabled = disabled;
}

// ---- Events -------------------------------------------------------------------------------

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

// `change` fires on release after a drag and after every keyboard step: z goes to Python.
function onSliderCommit() {
  state.eventSeq += 1;
  state.event = `${instanceId}:${state.eventSeq}`;
  state.lastReportedZ = Array.from(state.z);
  sendValue();
}

function startDrag() {
  state.drag = { frames: 0, first: 0, last: 0 };
}

window.addEventListener("pointerup", () => {
  state.drag = null;
  applyPendingOrder();
});
dom.panel.addEventListener("focusout", () => setTimeout(applyPendingOrder, 0)); // focus settled
