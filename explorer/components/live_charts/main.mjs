// Live training charts: figures kept in the page, updated with only what is new. Line
// figures (every trace a scatter, lines.mjs) and bar figures (one bar trace, bars.mjs) are
// drawn with uPlot: a canvas redraw costs a small fraction of Plotly.react's relayout, and
// the Training view loads no Plotly at all. A figure of any other kind is drawn with Plotly,
// loaded on the first one.
//
// This page fetches its updates itself from the app's route (explorer/live_feed.py):
//   GET url?feed=TOKEN&have=SEQ  ->  {seq, base, ops, interval_ms, rerun}
// every interval_ms while visible, none while hidden, one at once when shown again or when
// Streamlit renders the component with a new feed generation. `ops` hold, per place ("slot"):
//   {figure: JSON}            a whole figure (first draw, or its layout changed)
//   {traces: [[i, kept, x, y], ...]}   cut trace i to `kept` points and append x, y
//   {text: str} | {image: {src, caption}} | {readouts: [[label, value], ...]} | {clear: true}
// and apply on top of update `base` (null: on nothing, a whole resend). With `rerun`, the
// Streamlit page around this frame is out of date: setting the component's value reruns
// the fragment holding it. The Streamlit component protocol is a few postMessage calls,
// written by hand.

import { BarFigure, isBars } from "./bars.mjs";
import { isLines, LineFigure } from "./lines.mjs";

const CONFIG = { responsive: true, displaylogo: false };
const PLOTLY_SRC = "vendor/plotly.min.js";
const TYPED = {
  i1: Int8Array, u1: Uint8Array, i2: Int16Array, u2: Uint16Array,
  i4: Int32Array, u4: Uint32Array, f4: Float32Array, f8: Float64Array,
};

const figures = {};   // slot -> {data, layout}, the arrays this page owns
const shown = new Set(); // the slots drawn now
const uplotCharts = {}; // slot -> its LineFigure or BarFigure, for the slots drawn with uPlot
let plotlyLoad = null; // the promise of plotly.min.js, once a figure needs it
let have = 0;         // seq of the last update applied
let feed = null;      // {feed, url, generation}: where to fetch, from Streamlit's arguments
let fetching = false; // one fetch at a time
let fetchAgain = false; // asked for while one was on its way
let rerunNo = 0;
let rerunAt = -Infinity; // performance.now() of the last rerun asked for
let retryInMs = 0;    // > 0: fetch again this soon, to ask for a rerun that had to wait
const RERUN_GAP_MS = 1000;
const RETRY_MS = 2000; // after a failed fetch, even for a run that is not polled
let intervalMs = 0;
let timer = null;
let frameHeight = 0;
// For tests and benches: fetches made, what was drawn per slot, reruns asked for.
window.__liveCharts = { have: 0, ticks: 0, reruns: 0, updates: {}, points: {} };

function sendToStreamlit(type, data) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

function askRerun() {
  rerunNo += 1;
  rerunAt = performance.now();
  window.__liveCharts.reruns = rerunNo;
  sendToStreamlit("streamlit:setComponentValue", { value: { rerun: rerunNo }, dataType: "json" });
}

// A page that changes with every row (an alarm's newest step, the caching progress) would
// otherwise rerun as fast as rows come: at most one rerun a RERUN_GAP_MS; a later one waits,
// and the fetch that ends the wait asks again only if the page is still out of date.
function rerunOrWait() {
  const wait = rerunAt + RERUN_GAP_MS - performance.now();
  if (wait <= 0) askRerun();
  else retryInMs = wait;
}

// ------------------------------------------------------------------ fetching

function visible() {
  return document.visibilityState === "visible";
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  const waits = [intervalMs, retryInMs].filter((ms) => ms > 0);
  retryInMs = 0;
  if (waits.length && visible()) timer = setTimeout(fetchUpdate, Math.min(...waits));
}

async function fetchUpdate() {
  clearTimeout(timer);
  timer = null;
  if (!feed) return;
  if (fetching) {
    fetchAgain = true;
    return;
  }
  fetching = true;
  window.__liveCharts.ticks += 1;
  try {
    const query = new URLSearchParams({ feed: feed.feed, have: String(have) });
    const response = await fetch(`${feed.url}?${query}`, { cache: "no-store" });
    if (response.ok) onUpdate(await response.json());
    else if (response.status === 404) await onMissing(response);
    else retryInMs = RETRY_MS; // the server could not answer now: ask again soon
  } catch (error) {
    console.warn("live charts: fetch failed, trying again", error); // the server restarts...
    retryInMs = RETRY_MS;
  } finally {
    fetching = false;
  }
  if (fetchAgain) {
    fetchAgain = false;
    fetchUpdate();
  } else {
    schedule();
  }
}

document.addEventListener("visibilitychange", () => {
  if (visible() && intervalMs > 0) fetchUpdate(); // catch up at once
  else schedule(); // hidden: the pending tick is cancelled, and none is set
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
    if (op.clear) shown.delete(name);
    else shown.add(name);
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

function onUpdate(update) {
  // The server sends a whole resend (base null) whenever `have` is not what it last sent.
  if (update.seq !== have && (update.base === null || update.base === have)) {
    if (update.base === null) {
      for (const name of shown) if (!(name in update.ops)) clear(name); // gone meanwhile
    }
    apply(update.ops);
    have = update.seq;
    window.__liveCharts.have = have;
  }
  intervalMs = update.interval_ms;
  if (update.rerun) rerunOrWait();
  fitHeight();
}

async function onMissing(response) {
  const body = await response.json().catch(() => null);
  if (body?.error === "unknown feed") {
    rerunOrWait(); // dropped while unused (or the server restarted): the rerun publishes it
  } else {
    setText("health", "The live charts' route is not served here: start the app with "
      + "`streamlit run explorer/app.py`.");
    intervalMs = 0;
  }
}

function onRender(args) {
  const next = { feed: args.feed, url: args.url, generation: args.generation };
  const changed = !feed || Object.keys(next).some((k) => next[k] !== feed[k]);
  if (feed && next.feed !== feed.feed) have = 0; // another feed: nothing it sent is here
  feed = next;
  if (changed) fetchUpdate(); // the page was drawn again: what it shows may have changed too
  fitHeight();
}

new ResizeObserver(fitHeight).observe(document.getElementById("root"));

window.addEventListener("message", (event) => {
  if (event.data?.type === "streamlit:render") onRender(event.data.args);
});

sendToStreamlit("streamlit:componentReady", { apiVersion: 1 });
