// Live training charts: figures kept in the page, updated with only what is new. Line
// figures (every trace a scatter, lines.mjs) and bar figures (one bar trace, bars.mjs) are
// drawn with uPlot: a canvas redraw costs a small fraction of Plotly.react's relayout, and
// the Training view loads no Plotly at all. A figure of any other kind is drawn with Plotly,
// loaded on the first one.
//
// Python (explorer/components/live_charts.py) sends, per place ("slot"), one of
//   {figure: JSON}            a whole figure (first draw, or its layout changed)
//   {traces: [[i, kept, x, y], ...]}   cut trace i to `kept` points and append x, y
//   {text: str} | {image: {src, caption}} | {readouts: [[label, value], ...]} | {clear: true}
// inside {seq, base, ops, interval_ms}. This page also drives the refresh: every
// interval_ms while visible it reports {tick, have, reset}, which reruns the Streamlit
// fragment holding it; hidden, it reports nothing; shown again, it reports at once.
// The Streamlit component protocol is a few postMessage calls, written by hand.

import { BarFigure, isBars } from "./bars.mjs";
import { isLines, LineFigure } from "./lines.mjs";

const CONFIG = { responsive: true, displaylogo: false };
const PLOTLY_SRC = "vendor/plotly.min.js";
const TYPED = {
  i1: Int8Array, u1: Uint8Array, i2: Int16Array, u2: Uint16Array,
  i4: Int32Array, u4: Uint32Array, f4: Float32Array, f8: Float64Array,
};

const figures = {};   // slot -> {data, layout}, the arrays this page owns
const uplotCharts = {}; // slot -> its LineFigure or BarFigure, for the slots drawn with uPlot
let plotlyLoad = null; // the promise of plotly.min.js, once a figure needs it
let have = 0;         // seq of the last update applied
let resetNo = 0;      // bumped to ask for a whole resend
let awaitingWhole = false;
let tickNo = 0;
let intervalMs = 0;
let timer = null;
let frameHeight = 0;
// For tests and benches: what was drawn, per slot.
window.__liveCharts = { have: 0, ticks: 0, resets: 0, updates: {}, points: {} };

function sendToStreamlit(type, data) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

function report() {
  tickNo += 1;
  window.__liveCharts.ticks = tickNo;
  sendToStreamlit("streamlit:setComponentValue", {
    value: { tick: tickNo, have, reset: resetNo },
    dataType: "json",
  });
}

// ------------------------------------------------------------------ ticking

function visible() {
  return document.visibilityState === "visible";
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  if (intervalMs > 0 && visible()) {
    timer = setTimeout(() => {
      timer = null;
      report();
      schedule();
    }, intervalMs);
  }
}

document.addEventListener("visibilitychange", () => {
  if (visible() && intervalMs > 0) report(); // catch up at once
  schedule(); // hidden: the pending tick is cancelled, and none is set
});

// ------------------------------------------------------------------ drawing

// Plotly's base64 typed-array spec -> a plain array we can cut and append to.
function decoded(value) {
  if (value && typeof value === "object" && typeof value.bdata === "string") {
    const bytes = Uint8Array.from(atob(value.bdata), (c) => c.charCodeAt(0));
    return Array.from(new TYPED[value.dtype](bytes.buffer));
  }
  return Array.isArray(value) ? value : [];
}

function withPlotly(then) {
  if (window.Plotly) return then();
  plotlyLoad ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = PLOTLY_SRC;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${PLOTLY_SRC}`));
    document.head.append(script);
  });
  plotlyLoad.then(then);
}

function dropUplot(name) {
  uplotCharts[name]?.destroy();
  delete uplotCharts[name];
}

// The uPlot chart class that draws this figure, or null: Plotly's then.
function uplotKind(figure) {
  if (isLines(figure)) return LineFigure;
  return isBars(figure) ? BarFigure : null;
}

function drawPlotly(name) {
  const figure = figures[name];
  if (!figure || uplotCharts[name]) return; // cleared, or a uPlot figure since
  // A new datarevision tells Plotly the arrays changed in place; uirevision keeps the
  // user's zoom and hidden traces across updates.
  figure.layout.datarevision = (figure.layout.datarevision || 0) + 1;
  figure.layout.uirevision = name;
  Plotly.react(document.getElementById(name), figure.data, figure.layout, CONFIG);
}

// rowsOnly: only trace data changed (a `traces` op), so the figure's structure is the same.
function draw(name, rowsOnly = false) {
  const figure = figures[name];
  const element = document.getElementById(name);
  element.hidden = false;
  const Kind = uplotKind(figure);
  const chart = uplotCharts[name];
  if (Kind) {
    if (chart instanceof Kind && (rowsOnly || chart.fits(figure))) {
      chart.update(figure); // a bar count change rebuilds inside
    } else {
      dropUplot(name);
      if (window.Plotly) Plotly.purge(element);
      uplotCharts[name] = new Kind(element, figure, name);
    }
  } else {
    dropUplot(name);
    withPlotly(() => drawPlotly(name));
  }
  window.__liveCharts.points[name] = figure.data.map((t) => t.x.length);
}

function setFigure(name, json) {
  const figure = JSON.parse(json);
  for (const trace of figure.data) {
    trace.x = decoded(trace.x);
    trace.y = decoded(trace.y);
  }
  figures[name] = figure;
  draw(name);
}

function appendRows(name, rows) {
  const figure = figures[name];
  for (const [i, kept, x, y] of rows) {
    const trace = figure.data[i];
    trace.x.length = kept;
    trace.y.length = kept;
    trace.x.push(...x);
    trace.y.push(...y);
  }
  draw(name, true);
}

function clear(name) {
  const element = document.getElementById(name);
  dropUplot(name);
  if (window.Plotly) Plotly.purge(element);
  delete figures[name];
  element.hidden = true;
}

function setText(name, text) {
  const element = document.getElementById(name);
  element.textContent = text;
  element.hidden = !text;
}

function setImage(name, { src, caption }) {
  const element = document.getElementById(name);
  element.querySelector("img").src = src;
  element.querySelector("figcaption").textContent = caption;
  element.hidden = false;
}

// Labelled values side by side (state, step, ...), as plain text.
function setReadouts(name, items) {
  const element = document.getElementById(name);
  if (element.children.length !== items.length) {
    element.replaceChildren(
      ...items.map(() => {
        const box = document.createElement("div");
        box.className = "readout";
        box.append(document.createElement("span"), document.createElement("strong"));
        return box;
      }),
    );
  }
  items.forEach(([label, value], i) => {
    const box = element.children[i];
    box.dataset.label = label;
    box.children[0].textContent = label;
    box.children[1].textContent = value;
  });
  element.hidden = false;
}

function apply(ops) {
  for (const [name, op] of Object.entries(ops)) {
    if (op.figure !== undefined) setFigure(name, op.figure);
    else if (op.traces !== undefined && figures[name]) appendRows(name, op.traces);
    else if (op.text !== undefined) setText(name, op.text);
    else if (op.image !== undefined) setImage(name, op.image);
    else if (op.readouts !== undefined) setReadouts(name, op.readouts);
    else if (op.clear) clear(name);
    const updates = window.__liveCharts.updates;
    updates[name] = (updates[name] || 0) + 1;
  }
}

function fitHeight() {
  const height = document.documentElement.scrollHeight;
  if (height !== frameHeight) {
    frameHeight = height;
    sendToStreamlit("streamlit:setFrameHeight", { height });
  }
}

// ------------------------------------------------------------------ protocol

function onRender(args) {
  if (args.seq !== have) {
    if (args.base === null || args.base === have) {
      apply(args.ops);
      have = args.seq;
      awaitingWhole = false;
      window.__liveCharts.have = have;
    } else if (!awaitingWhole) {
      // An update was missed (or this iframe is new): ask for everything again.
      awaitingWhole = true; // later reports carry the same reset number
      resetNo += 1;
      window.__liveCharts.resets = resetNo;
      report();
    }
  }
  if (args.interval_ms !== intervalMs) {
    intervalMs = args.interval_ms;
    schedule();
  } else if (timer === null) {
    schedule();
  }
  fitHeight();
}

new ResizeObserver(fitHeight).observe(document.getElementById("root"));

window.addEventListener("message", (event) => {
  if (event.data?.type === "streamlit:render") onRender(event.data.args);
});

sendToStreamlit("streamlit:componentReady", { apiVersion: 1 });
