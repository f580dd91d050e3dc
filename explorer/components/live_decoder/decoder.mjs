// The VAE decoder in plain JavaScript, run from a `vae_core.export.decoder_payload` spec.
//
// One ES module with no dependencies, so the same file runs in the browser (the live-drag
// component imports it) and in Node (the parity test checks it against PyTorch).
//
//   const model = loadPayload(payload);          // or loadPayload(spec, weightBytes)
//   const pixels = decode(model, z);             // Float32Array (C*H*W) in [0, 1], CHW order

export const PAYLOAD_FORMAT = 1;

// Float32Array over `bytes` (the little-endian float32 buffer); copies when unaligned,
// because a typed-array view must start on a 4-byte boundary.
function floatsFromBytes(bytes) {
  const u8 = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  if (u8.byteOffset % 4 === 0 && u8.byteLength % 4 === 0) {
    return new Float32Array(u8.buffer, u8.byteOffset, u8.byteLength / 4);
  }
  return new Float32Array(u8.slice().buffer);
}

function bytesFromBase64(b64) {
  const binary = atob(b64); // atob exists in browsers and in Node >= 16
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function tensor(weights, offsets, name, expectedLength) {
  const entry = offsets[name];
  if (!entry) throw new Error(`payload has no weights named ${name}`);
  const [start, length] = entry;
  if (length !== expectedLength || start + length > weights.length) {
    throw new Error(`${name}: expected ${expectedLength} floats at ${start}, got ${length}`);
  }
  return weights.subarray(start, start + length);
}

// Bind each op to its weights and check that shapes chain from (D) to (C, H, W).
function compileOps(spec, weights) {
  let size = spec.latent_dim;
  const ops = [];
  for (const layer of spec.layers) {
    const op = { ...layer, inSize: size };
    if (layer.op === "linear") {
      if (layer.in !== size) throw new Error(`linear expects ${layer.in} inputs, has ${size}`);
      op.weight = tensor(weights, spec.offsets, layer.w, layer.in * layer.out);
      op.bias = tensor(weights, spec.offsets, layer.b, layer.out);
      size = layer.out;
    } else if (layer.op === "conv_transpose2d") {
      const [H, W] = layer.in_hw;
      if (layer.in_ch * H * W !== size) throw new Error(`conv_transpose2d input size mismatch`);
      const k = layer.kernel;
      op.weight = tensor(weights, spec.offsets, layer.w, layer.in_ch * layer.out_ch * k * k);
      op.bias = tensor(weights, spec.offsets, layer.b, layer.out_ch);
      size = layer.out_ch * layer.out_hw[0] * layer.out_hw[1];
    } else if (layer.op === "reshape") {
      if (layer.shape.reduce((a, b) => a * b, 1) !== size) throw new Error(`bad reshape`);
    } else if (!["relu", "sigmoid", "clamp01"].includes(layer.op)) {
      throw new Error(`unknown decoder op ${layer.op}`);
    }
    op.outSize = size;
    // Float64 activations: the math then rounds less than PyTorch's float32, never more.
    op.buffer = new Float64Array(size);
    ops.push(op);
  }
  return { ops, size };
}

/** Parse a payload once: weights from `weightBytes` (Uint8Array/ArrayBuffer) or base64. */
export function loadPayload(spec, weightBytes = null) {
  if (spec.format !== PAYLOAD_FORMAT) {
    throw new Error(`payload format ${spec.format}, this decoder reads ${PAYLOAD_FORMAT}`);
  }
  const bytes = weightBytes ?? bytesFromBase64(spec.weights_b64);
  const weights = floatsFromBytes(bytes);
  if (spec.num_floats !== undefined && weights.length !== spec.num_floats) {
    throw new Error(`payload has ${weights.length} floats, spec says ${spec.num_floats}`);
  }
  const [C, H, W] = spec.image_shape;
  const { ops, size } = compileOps(spec, weights);
  if (size !== C * H * W) throw new Error(`decoder gives ${size} values, image is ${C}x${H}x${W}`);
  return {
    version: spec.version,
    latentDim: spec.latent_dim,
    imageShape: [C, H, W],
    ops,
    input: new Float64Array(spec.latent_dim),
    output: new Float32Array(size),
  };
}

function linear(op, x, y) {
  const { weight, bias } = op;
  const n = op.in;
  for (let j = 0; j < op.out; j++) {
    let acc = bias[j];
    const row = j * n;
    for (let i = 0; i < n; i++) acc += weight[row + i] * x[i];
    y[j] = acc;
  }
}

// Scatter form of the transposed convolution: every input pixel adds its kernel-weighted
// value to a k x k patch of the output. Zero inputs (most of them, after a ReLU) are skipped.
function convTranspose2d(op, x, y) {
  const { weight, bias, kernel: k, stride: s, padding: p, in_ch: cin, out_ch: cout } = op;
  const [H, W] = op.in_hw;
  const [Ho, Wo] = op.out_hw;
  const plane = Ho * Wo;
  for (let co = 0; co < cout; co++) y.fill(bias[co], co * plane, (co + 1) * plane);
  for (let ci = 0; ci < cin; ci++) {
    for (let iy = 0; iy < H; iy++) {
      for (let ix = 0; ix < W; ix++) {
        const v = x[(ci * H + iy) * W + ix];
        if (v === 0) continue;
        for (let co = 0; co < cout; co++) {
          const wBase = (ci * cout + co) * k * k; // weight (in_ch, out_ch, k, k)
          const oBase = co * plane;
          for (let ky = 0; ky < k; ky++) {
            const oy = iy * s - p + ky;
            if (oy < 0 || oy >= Ho) continue;
            for (let kx = 0; kx < k; kx++) {
              const ox = ix * s - p + kx;
              if (ox < 0 || ox >= Wo) continue;
              y[oBase + oy * Wo + ox] += v * weight[wBase + ky * k + kx];
            }
          }
        }
      }
    }
  }
}

function elementwise(op, x, y) {
  const n = op.outSize;
  if (op.op === "relu") for (let i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
  else if (op.op === "sigmoid") for (let i = 0; i < n; i++) y[i] = 1 / (1 + Math.exp(-x[i]));
  else if (op.op === "clamp01") for (let i = 0; i < n; i++) y[i] = Math.min(1, Math.max(0, x[i]));
  else y.set(x.subarray(0, n)); // reshape: the data is already in row-major (C, H, W) order
}

/** z: array of latentDim numbers -> Float32Array (C*H*W) in [0, 1]; reused between calls. */
export function decode(model, z) {
  if (z.length !== model.latentDim) {
    throw new Error(`z has ${z.length} values, the decoder takes ${model.latentDim}`);
  }
  let x = model.input;
  for (let i = 0; i < z.length; i++) x[i] = z[i];
  for (const op of model.ops) {
    if (op.op === "linear") linear(op, x, op.buffer);
    else if (op.op === "conv_transpose2d") convTranspose2d(op, x, op.buffer);
    else elementwise(op, x, op.buffer);
    x = op.buffer;
  }
  model.output.set(x);
  return model.output;
}
