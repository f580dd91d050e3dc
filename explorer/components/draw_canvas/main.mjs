// Drawing canvas: a Streamlit (components.v1) frontend for drawing your own input image.
//
// Pointer events cover mouse, pen and touch alike. Each stroke is drawn on a black square;
// when the pen lifts, the whole drawing goes back to Python as a PNG data URL, which
// vae_core.user_image then preprocesses exactly like an upload. The Streamlit component
// protocol is a handful of postMessage calls, implemented by hand (no build step).

function sendToStreamlit(type, data = {}) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const statusLine = document.getElementById("status");
const instanceId = Math.random().toString(36).slice(2, 10); // tells remounts apart
const state = { strokes: 0, lineWidth: 18, last: null, drawing: false, size: 0, clearToken: null };
window.__drawCanvasStats = state; // read by the browser tests

let lastHeight = -1;
function reportHeight() {
  const height = Math.ceil(document.getElementById("root").getBoundingClientRect().height) + 4;
  if (height !== lastHeight) {
    lastHeight = height;
    sendToStreamlit("streamlit:setFrameHeight", { height });
  }
}

function blank() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
}

function point(event) {
  // Canvas pixels, whatever CSS size the canvas is shown at.
  const box = pad.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * pad.width) / box.width,
    ((event.clientY - box.top) * pad.height) / box.height,
  ];
}

function segment(from, to) {
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "#fff";
  ctx.lineWidth = state.lineWidth;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
}

function send(png) {
  state.strokes += 1;
  const value = { event: `${instanceId}:${state.strokes}`, png };
  sendToStreamlit("streamlit:setComponentValue", { value, dataType: "json" });
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  state.drawing = true;
  state.last = point(event);
  segment(state.last, state.last); // a tap leaves a dot
});

pad.addEventListener("pointermove", (event) => {
  if (!state.drawing) return;
  const next = point(event);
  segment(state.last, next);
  state.last = next;
});

function endStroke() {
  if (!state.drawing) return;
  state.drawing = false;
  statusLine.textContent = "sent; keep drawing or clear";
  send(pad.toDataURL("image/png"));
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", () => {
  blank();
  statusLine.textContent = "cleared";
  send(null);
});

function onRender(args) {
  const size = Math.max(64, Math.min(512, Number(args.size) || 224));
  state.lineWidth = Math.max(1, Number(args.line_width) || 18);
  if (size !== state.size) {
    state.size = size;
    pad.width = size; // resizing a canvas wipes it: only when the size changes
    pad.height = size;
    pad.style.width = `${size}px`; // one canvas pixel per CSS pixel
    pad.style.height = `${size}px`;
    blank();
  }
  reportHeight();
}

window.addEventListener("message", (event) => {
  if (event.data?.type === "streamlit:render") onRender(event.data.args);
});

new ResizeObserver(reportHeight).observe(document.getElementById("root"));
sendToStreamlit("streamlit:componentReady", { apiVersion: 1 });
