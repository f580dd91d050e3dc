// The published page: reads the inline payload (vae_core.publish.build_payload) and draws the
// run card, the KL-sorted sliders, the scatter, the interpolation strip and the prior grid.
// Everything is computed here; nothing is fetched.
(() => {
  const P = JSON.parse(document.getElementById("payload").textContent);
  const $ = (id) => document.getElementById(id);
  const D = P.latent_dim;
  const [C, H, W] = P.image_shape;
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#bab0ac"];
  const colour = (k) => PALETTE[k % 10] ?? "#888";
  const floats = (b64) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  };
  const mu = floats(P.mu_b64);
  const coords = floats(P.scatter.coords_b64);
  const codeOf = (i) => Array.from(mu.subarray(i * D, (i + 1) * D));

  const page = { ready: false, decodes: 0, firstDecodeMs: null, errors: [] };
  window.vaePage = page;
  let model = null;
  if (P.decoder) {
    try {
      model = OnnxMini.load(P.decoder);
    } catch (e) {
      P.no_decode_reason = `live decoding is off: ${e.message}`;
    }
  }
  page.decode = (z) => Array.from(OnnxMini.run(model, z));

  // ---- run card --------------------------------------------------------------------------
  const card = P.card;
  $("title").textContent = `VAE explorer: ${card.name}`;
  const fmt = (v, d = 2) => (typeof v === "number" ? v.toFixed(d) : "–");
  const rows = [
    ["Dataset", card.dataset], ["Model", `${card.model} (${card.likelihood})`],
    ["Latent size", String(card.latent_dim)], ["Beta", fmt(card.beta, 3)],
    ["Epochs", `${card.epochs} of ${card.epochs_planned}`],
    ["Test ELBO", card.test_elbo == null ? "not evaluated" : `${fmt(card.test_elbo)} nats`],
    ["Snapshot step", String(card.step)], ["Points", String(P.points)],
  ];
  for (const [k, v] of rows) {
    const div = document.createElement("div");
    div.innerHTML = "<dt></dt><dd></dd>";
    div.firstChild.textContent = k;
    div.lastChild.textContent = v;
    $("card").append(div);
  }
  if (!model) {
    $("no-decode").hidden = false;
    $("no-decode").textContent = `${P.no_decode_reason}. The map and the test images still work; ` +
      "the decoded image, interpolation and prior samples need the decoder.";
    for (const id of ["decoded", "reset", "random", "interp-section", "prior-section"]) $(id).hidden = true;
  }

  // ---- images ----------------------------------------------------------------------------
  function paint(canvas, pixels) {
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(W, H);
    const plane = H * W;
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) {
        img.data[i * 4 + c] = Math.round(255 * pixels[(C === 1 ? 0 : c) * plane + i]);
      }
      img.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  const decodeInto = (canvas, z) => paint(canvas, OnnxMini.run(model, z));

  const sprite = new Image();
  const spriteReady = new Promise((resolve) => { sprite.onload = resolve; });
  sprite.src = `data:image/png;base64,${P.sprite.png_b64}`;
  function drawThumb(canvas, i) {
    const cols = P.sprite.columns;
    canvas.width = W;
    canvas.height = H;
    canvas.getContext("2d").drawImage(sprite, (i % cols) * W, Math.floor(i / cols) * H, W, H, 0, 0, W, H);
  }

  // ---- sliders ---------------------------------------------------------------------------
  const z = new Array(D).fill(0);
  const hist = P.histograms;
  const sliders = {};
  let pending = false;
  function redraw() {
    if (pending || !model) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      const t0 = performance.now();
      decodeInto($("decoded"), z);
      page.decodes += 1;
      $("decode-time").textContent = `decoded in ${(performance.now() - t0).toFixed(1)} ms`;
      if (page.firstDecodeMs === null) {
        page.firstDecodeMs = performance.now();
        setTimeout(drawPrior); // the grid's 16 decodes wait until the sliders' image is up
      }
      drawScatter();
    });
  }
  function drawTrack(canvas, d) {
    const rect = canvas.getBoundingClientRect();
    const w = Math.max(1, Math.round(rect.width)), h = 30;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    const q = hist.q[d], p = hist.p[d];
    const top = Math.max(...q, ...p) || 1;
    const bw = w / q.length;
    ctx.fillStyle = P.active[d] ? "rgba(58,110,232,0.28)" : "rgba(160,90,0,0.18)";
    q.forEach((v, i) => { const bh = (v / top) * (h - 4); ctx.fillRect(i * bw, h - bh, bw - 0.5, bh); });
    ctx.strokeStyle = "rgba(30,36,48,0.55)";
    ctx.beginPath();
    p.forEach((v, i) => { const y = h - (v / top) * (h - 4); i ? ctx.lineTo((i + 0.5) * bw, y) : ctx.moveTo((i + 0.5) * bw, y); });
    ctx.stroke();
  }
  for (const d of P.kl_order) {
    const [lo, hi] = hist.ranges[d];
    const row = document.createElement("div");
    row.className = `slider${P.active[d] ? "" : " inactive"}`;
    row.innerHTML = `<label for="z${d}">z<sub>${d}</sub><small>KL ${P.kl_per_dim[d].toFixed(2)}</small></label>` +
      `<div class="track"><canvas aria-hidden="true"></canvas><input type="range" id="z${d}" ` +
      `min="${lo}" max="${hi}" step="${((hi - lo) / 200).toPrecision(3)}" value="0"></div><output>0.00</output>`;
    const input = row.querySelector("input"), out = row.querySelector("output");
    input.addEventListener("input", () => {
      z[d] = Number(input.value);
      out.textContent = z[d].toFixed(2);
      redraw();
    });
    sliders[d] = { input, out, canvas: row.querySelector("canvas") };
    $("sliders").append(row);
  }
  if (P.kl_order.length < D) {
    $("more-dims").hidden = false;
    $("more-dims").textContent = `${D - P.kl_order.length} dimensions with the least KL have no ` +
      "slider; they keep the value of the loaded code.";
  }
  const drawTracks = () => { for (const d of P.kl_order) drawTrack(sliders[d].canvas, d); };
  function setCode(code) {
    code.forEach((v, d) => { z[d] = v; });
    for (const d of P.kl_order) {
      sliders[d].input.value = z[d];
      sliders[d].out.textContent = z[d].toFixed(2);
    }
    redraw();
  }
  page.code = () => z.slice();

  // seeded N(0, 1) draws (mulberry32 + Box-Muller): a reseed is reproducible
  function normals(seed, n) {
    let a = seed >>> 0;
    const uniform = () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
    };
    return Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()));
  }
  let randomSeed = 1;
  $("reset").addEventListener("click", () => setCode(new Array(D).fill(0)));
  $("random").addEventListener("click", () => setCode(normals(randomSeed++ * 7919, D)));

  // ---- scatter ---------------------------------------------------------------------------
  const canvas = $("scatter");
  const N = P.points;
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (let i = 0; i < N; i++) {
    xmin = Math.min(xmin, coords[2 * i]); xmax = Math.max(xmax, coords[2 * i]);
    ymin = Math.min(ymin, coords[2 * i + 1]); ymax = Math.max(ymax, coords[2 * i + 1]);
  }
  const span = Math.max(xmax - xmin, ymax - ymin) || 1;
  const cx = (xmin + xmax) / 2, cy = (ymin + ymax) / 2;
  const S = canvas.width, pad = 14;
  const toPx = (x, y) => [pad + ((x - cx) / span + 0.5) * (S - 2 * pad), pad + (0.5 - (y - cy) / span) * (S - 2 * pad)];
  function project(code) { // the sliders' point on the map: PCA or identity views only
    if (P.scatter.method === "pca") {
      const { components, mean } = P.scatter;
      return components.map((row) => row.reduce((s, v, d) => s + v * (code[d] - mean[d]), 0));
    }
    if (P.scatter.method === "identity") return [code[0], D > 1 ? code[1] : 0];
    return null;
  }
  const picked = [];
  const methodName = { pca: "PCA of the codes", tsne: "t-SNE of the codes", identity: "the codes themselves" };
  $("scatter-hint").textContent = `${N} test images by their posterior means, placed by ` +
    `${methodName[P.scatter.method] || P.scatter.method}. Hover a point to see the image; click to load ` +
    "its code into the sliders (and as an interpolation end).";
  function drawScatter() {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, S, S);
    for (let i = 0; i < N; i++) {
      const [x, y] = toPx(coords[2 * i], coords[2 * i + 1]);
      ctx.fillStyle = colour(P.labels[i]);
      ctx.globalAlpha = 0.7;
      ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
    }
    ctx.globalAlpha = 1;
    ctx.lineWidth = 2;
    picked.forEach((i, k) => {
      const [x, y] = toPx(coords[2 * i], coords[2 * i + 1]);
      ctx.strokeStyle = "#111";
      ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.stroke();
      ctx.fillStyle = "#111";
      ctx.fillText("AB"[k], x + 8, y - 6);
    });
    if (picked.length === 2 && P.scatter.method !== "tsne") {
      const a = toPx(coords[2 * picked[0]], coords[2 * picked[0] + 1]);
      const b = toPx(coords[2 * picked[1]], coords[2 * picked[1] + 1]);
      ctx.setLineDash([4, 4]); ctx.beginPath(); ctx.moveTo(...a); ctx.lineTo(...b); ctx.stroke(); ctx.setLineDash([]);
    }
    const here = model ? project(z) : null;
    if (here) {
      const [x, y] = toPx(here[0], here[1]);
      ctx.strokeStyle = "#d0021b";
      ctx.beginPath(); ctx.moveTo(x - 7, y); ctx.lineTo(x + 7, y); ctx.moveTo(x, y - 7); ctx.lineTo(x, y + 7); ctx.stroke();
    }
  }
  function nearest(event) {
    const rect = canvas.getBoundingClientRect();
    const scale = S / rect.width;
    const mx = (event.clientX - rect.left) * scale, my = (event.clientY - rect.top) * scale;
    let best = -1, bestD = (10 * scale) ** 2;
    for (let i = 0; i < N; i++) {
      const [x, y] = toPx(coords[2 * i], coords[2 * i + 1]);
      const d2 = (x - mx) ** 2 + (y - my) ** 2;
      if (d2 < bestD) { best = i; bestD = d2; }
    }
    return best;
  }
  page.pointOnScreen = (i) => { // for tests: where point i is drawn, in client pixels
    const rect = canvas.getBoundingClientRect();
    const [x, y] = toPx(coords[2 * i], coords[2 * i + 1]);
    return [rect.left + (x * rect.width) / S, rect.top + (y * rect.width) / S];
  };
  canvas.addEventListener("mousemove", (event) => {
    const i = nearest(event);
    const tip = $("tooltip");
    if (i < 0) { tip.hidden = true; return; }
    drawThumb($("thumb"), i);
    $("tip-label").textContent = `#${i} ${P.class_names[P.labels[i]] ?? P.labels[i]}`;
    const wrap = canvas.parentElement.getBoundingClientRect();
    const left = Math.min(event.clientX - wrap.left + 12, wrap.width - 100);
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${event.clientY - wrap.top + 12}px`;
    tip.hidden = false;
  });
  canvas.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  canvas.addEventListener("click", (event) => {
    const i = nearest(event);
    if (i < 0) return;
    if (picked.length === 2) picked.length = 0;
    picked.push(i);
    setCode(codeOf(i));
    drawStrip();
  });
  const classes = [...new Set(P.labels)].sort((a, b) => a - b);
  for (const k of classes) {
    const li = document.createElement("li");
    li.innerHTML = "<span></span>";
    li.firstChild.style.background = colour(k);
    li.append(P.class_names[k] ?? String(k));
    $("legend").append(li);
  }

  // ---- interpolation and prior samples ---------------------------------------------------
  function drawStrip() {
    const strip = $("strip");
    strip.textContent = "";
    if (picked.length < 2 || !model) return;
    const [a, b] = picked.map(codeOf);
    const steps = Number($("interp-steps").value);
    $("interp-hint").textContent = `From #${picked[0]} to #${picked[1]}, ${steps} steps (linear).`;
    for (let s = 0; s < steps; s++) {
      const t = s / (steps - 1);
      const c = document.createElement("canvas");
      decodeInto(c, a.map((v, d) => (1 - t) * v + t * b[d]));
      strip.append(c);
    }
  }
  $("interp-steps").addEventListener("input", drawStrip);

  let seed = 1;
  function drawPrior() {
    if (!model) return;
    const T = Number($("temperature").value);
    $("temperature-value").textContent = T.toFixed(2);
    const grid = $("prior-grid");
    grid.textContent = "";
    const eps = normals(seed * 104729, 16 * D);
    for (let k = 0; k < 16; k++) {
      const c = document.createElement("canvas");
      decodeInto(c, eps.slice(k * D, (k + 1) * D).map((v) => T * v));
      grid.append(c);
    }
  }
  $("temperature").addEventListener("input", drawPrior);
  $("reseed").addEventListener("click", () => { seed += 1; drawPrior(); });

  window.addEventListener("error", (e) => page.errors.push(String(e.message)));
  window.addEventListener("resize", () => drawTracks());
  drawTracks();
  drawScatter();
  redraw();
  spriteReady.then(() => { page.ready = true; });
})();
