// Hooks on window for the browser tests (tests/e2e/test_live_sliders*_e2e.py) and
// bench/live_sliders.py: the counters, the decoder's throughput, idleness, batch decodes.

import { state, stats } from "./state.mjs";

window.__liveSlidersStats = stats;

// Decodes per second of the current z without drawing: the decoder's headroom above the
// display's frame rate.
window.__liveSlidersThroughput = async (count = 200) => {
  const model = state.model;
  if (!model) return null;
  const z = Float32Array.from(state.z);
  const start = performance.now();
  for (let i = 0; i < count; i++) await model.run(z, 1);
  return (1000 * count) / (performance.now() - start);
};

// Whether nothing is queued or decoding: a test's snapshot of the canvas is then final.
window.__liveSlidersIdle = () => !state.drawPending && !state.decoding && !state.loadingVersion;

// Decode a batch of latents [[z0...], ...] with the loaded model: the browser parity test.
window.__liveSlidersDecode = async (latents) => {
  const model = state.model;
  if (!model) throw new Error("no model loaded");
  return Array.from(await model.run(Float32Array.from(latents.flat()), latents.length));
};
