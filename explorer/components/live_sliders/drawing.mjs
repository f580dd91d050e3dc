// Decoding and drawing: at most one decode per animation frame, one at a time, painted on
// the canvas; the drag frame rate under the image.

import { dom, setStatus, state, stats } from "./state.mjs";

// Input events can outpace the screen; decoding at most once per animation frame, one decode
// at a time, shows every frame the display can show without queueing decodes behind a fast
// mouse: a move during a decode asks for one more decode, of the newest z, when it ends.
export function scheduleDraw() {
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

export function showFrame(pixels, model, start) {
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
    dom.canvas.width = W;
    dom.canvas.height = H;
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
  dom.canvas.getContext("2d").putImageData(paintCache.image, 0, 0);
}

export function sizeCanvas(args, [, H, W]) {
  const scale = Math.max(1, Math.floor(args.image_px / Math.max(H, W)));
  dom.canvas.style.width = `${scale * W}px`;
  dom.canvas.style.height = `${scale * H}px`;
}

function countDragFrame(time) {
  const drag = state.drag;
  drag.frames += 1;
  if (drag.frames === 1) drag.first = time;
  drag.last = time;
  stats.dragFrames = drag.frames;
  if (drag.frames > 1) {
    stats.lastDragFps = (1000 * (drag.frames - 1)) / (drag.last - drag.first);
    dom.fpsLine.textContent =
      `${stats.lastDragFps.toFixed(0)} frames/s while dragging · ` +
      `${stats.meanDecodeMs.toFixed(2)} ms per decode`;
  }
}
