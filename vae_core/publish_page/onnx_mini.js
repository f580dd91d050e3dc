// A small interpreter of the ONNX ops a VAE decoder exported by vae_core/export.py uses
// (vae_core.publish.PAGE_OPS lists them; keep the two in step). Float32 weights, float64
// activations: it rounds less than PyTorch's float32, never more.
//
//   const model = OnnxMini.load(graph);        // graph: vae_core.publish.decoder_graph(...)
//   const image = OnnxMini.run(model, z);      // Float32Array (C*H*W) in [0, 1], CHW order
"use strict";
const OnnxMini = (() => {
  const size = (shape) => shape.reduce((a, b) => a * b, 1);

  function bytesFromBase64(b64) {
    const binary = atob(b64);
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  }

  function load(graph) {
    const floats = new Float32Array(bytesFromBase64(graph.weights_b64).buffer);
    if (floats.length !== graph.num_floats) {
      throw new Error(`decoder weights hold ${floats.length} floats, expected ${graph.num_floats}`);
    }
    const constants = {};
    for (const [name, t] of Object.entries(graph.tensors)) {
      const data = t.ints ? Float64Array.from(t.ints) : floats.subarray(t.offset, t.offset + t.length);
      constants[name] = { shape: t.shape, data };
    }
    for (const node of graph.nodes) {
      if (!OPS[node.op]) throw new Error(`the page cannot run the ONNX op ${node.op}`);
    }
    return { graph, constants };
  }

  // numpy-style broadcasting for the element-wise binary ops
  function broadcast(a, b, f) {
    const rank = Math.max(a.shape.length, b.shape.length);
    const pad = (s) => Array(rank - s.length).fill(1).concat(s);
    const sa = pad(a.shape), sb = pad(b.shape);
    const shape = sa.map((d, i) => (d === 1 ? sb[i] : d));
    const strides = (s) => {
      const st = Array(rank).fill(0);
      let acc = 1;
      for (let i = rank - 1; i >= 0; i--) { st[i] = s[i] === 1 ? 0 : acc; acc *= s[i]; }
      return st;
    };
    const ta = strides(sa), tb = strides(sb);
    const n = size(shape);
    const out = new Float64Array(n);
    const idx = Array(rank).fill(0);
    for (let k = 0; k < n; k++) {
      let ia = 0, ib = 0;
      for (let d = 0; d < rank; d++) { ia += idx[d] * ta[d]; ib += idx[d] * tb[d]; }
      out[k] = f(a.data[ia], b.data[ib]);
      for (let d = rank - 1; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
    }
    return { shape, data: out };
  }

  const unary = (f) => ([x]) => {
    const out = new Float64Array(x.data.length);
    for (let i = 0; i < out.length; i++) out[i] = f(x.data[i]);
    return { shape: x.shape, data: out };
  };

  function matmul(A, B, M, K, N, transA, transB) {
    const out = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          acc += (transA ? A[k * M + m] : A[m * K + k]) * (transB ? B[n * K + k] : B[k * N + n]);
        }
        out[m * N + n] = acc;
      }
    }
    return out;
  }

  function gemm([a, b, c], attrs) {
    const transA = attrs.transA || 0, transB = attrs.transB || 0;
    const alpha = attrs.alpha ?? 1, beta = attrs.beta ?? 1;
    const [M, K] = transA ? [a.shape[1], a.shape[0]] : a.shape;
    const N = transB ? b.shape[0] : b.shape[1];
    const out = { shape: [M, N], data: matmul(a.data, b.data, M, K, N, transA, transB) };
    if (alpha !== 1) for (let i = 0; i < out.data.length; i++) out.data[i] *= alpha;
    if (!c) return out;
    return broadcast(out, c, (x, y) => x + beta * y);
  }

  function matmulOp([a, b]) {
    if (b.shape.length !== 2) throw new Error("MatMul: only a 2-D right operand is supported");
    const [K, N] = b.shape;
    const M = a.data.length / K;
    return { shape: [...a.shape.slice(0, -1), N], data: matmul(a.data, b.data, M, K, N, 0, 0) };
  }

  function reshape([x, s], attrs) {
    const shape = Array.from(s.data, (d, i) => (d === 0 && !attrs.allowzero ? x.shape[i] : d));
    const known = shape.reduce((a, d) => (d === -1 ? a : a * d), 1);
    return { shape: shape.map((d) => (d === -1 ? x.data.length / known : d)), data: x.data };
  }

  function flatten([x], attrs) {
    const axis = attrs.axis ?? 1;
    return { shape: [size(x.shape.slice(0, axis)), size(x.shape.slice(axis))], data: x.data };
  }

  function clip([x, lo, hi], attrs) {
    const min = lo ? lo.data[0] : attrs.min ?? -Infinity;
    const max = hi ? hi.data[0] : attrs.max ?? Infinity;
    return unary((v) => Math.min(max, Math.max(min, v)))([x]);
  }

  function convAttrs(attrs, k) {
    if (attrs.auto_pad && attrs.auto_pad !== "NOTSET") throw new Error("auto_pad is not supported");
    const [kh, kw] = attrs.kernel_shape || k;
    const [sh, sw] = attrs.strides || [1, 1];
    const [dh, dw] = attrs.dilations || [1, 1];
    const [pt, pl, pb, pr] = attrs.pads || [0, 0, 0, 0];
    return { kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, group: attrs.group || 1 };
  }

  // Scatter form: every input pixel adds its kernel-weighted value to the output patch it
  // covers. Weight (C_in, C_out / group, kh, kw).
  function convTranspose([x, w, b], attrs) {
    if (attrs.output_shape) throw new Error("ConvTranspose output_shape is not supported");
    const [N, Ci, H, W] = x.shape;
    const g = convAttrs(attrs, w.shape.slice(2));
    const [op_h, op_w] = attrs.output_padding || [0, 0];
    const cog = w.shape[1], Co = cog * g.group, cig = Ci / g.group;
    const Ho = g.sh * (H - 1) + op_h + (g.kh - 1) * g.dh + 1 - g.pt - g.pb;
    const Wo = g.sw * (W - 1) + op_w + (g.kw - 1) * g.dw + 1 - g.pl - g.pr;
    const out = new Float64Array(N * Co * Ho * Wo);
    for (let n = 0; n < N; n++) {
      for (let co = 0; co < Co; co++) {
        out.fill(b ? b.data[co] : 0, ((n * Co + co) * Ho) * Wo, ((n * Co + co + 1) * Ho) * Wo);
      }
      for (let ci = 0; ci < Ci; ci++) {
        const grp = Math.floor(ci / cig);
        for (let iy = 0; iy < H; iy++) {
          for (let ix = 0; ix < W; ix++) {
            const v = x.data[((n * Ci + ci) * H + iy) * W + ix];
            if (v === 0) continue; // most inputs, after a ReLU
            for (let c = 0; c < cog; c++) {
              const co = grp * cog + c;
              const wBase = (ci * cog + c) * g.kh * g.kw;
              const oBase = (n * Co + co) * Ho * Wo;
              for (let ky = 0; ky < g.kh; ky++) {
                const oy = iy * g.sh - g.pt + ky * g.dh;
                if (oy < 0 || oy >= Ho) continue;
                for (let kx = 0; kx < g.kw; kx++) {
                  const ox = ix * g.sw - g.pl + kx * g.dw;
                  if (ox < 0 || ox >= Wo) continue;
                  out[oBase + oy * Wo + ox] += v * w.data[wBase + ky * g.kw + kx];
                }
              }
            }
          }
        }
      }
    }
    return { shape: [N, Co, Ho, Wo], data: out };
  }

  // Weight (C_out, C_in / group, kh, kw).
  function conv([x, w, b], attrs) {
    const [N, Ci, H, W] = x.shape;
    const g = convAttrs(attrs, w.shape.slice(2));
    const Co = w.shape[0], cig = w.shape[1], cog = Co / g.group;
    const Ho = Math.floor((H + g.pt + g.pb - ((g.kh - 1) * g.dh + 1)) / g.sh) + 1;
    const Wo = Math.floor((W + g.pl + g.pr - ((g.kw - 1) * g.dw + 1)) / g.sw) + 1;
    const out = new Float64Array(N * Co * Ho * Wo);
    for (let n = 0; n < N; n++) {
      for (let co = 0; co < Co; co++) {
        const grp = Math.floor(co / cog);
        for (let oy = 0; oy < Ho; oy++) {
          for (let ox = 0; ox < Wo; ox++) {
            let acc = b ? b.data[co] : 0;
            for (let c = 0; c < cig; c++) {
              const ci = grp * cig + c;
              for (let ky = 0; ky < g.kh; ky++) {
                const iy = oy * g.sh - g.pt + ky * g.dh;
                if (iy < 0 || iy >= H) continue;
                for (let kx = 0; kx < g.kw; kx++) {
                  const ix = ox * g.sw - g.pl + kx * g.dw;
                  if (ix < 0 || ix >= W) continue;
                  acc += x.data[((n * Ci + ci) * H + iy) * W + ix] * w.data[((co * cig + c) * g.kh + ky) * g.kw + kx];
                }
              }
            }
            out[((n * Co + co) * Ho + oy) * Wo + ox] = acc;
          }
        }
      }
    }
    return { shape: [N, Co, Ho, Wo], data: out };
  }

  const OPS = {
    Gemm: gemm,
    MatMul: matmulOp,
    Add: ([a, b]) => broadcast(a, b, (x, y) => x + y),
    Sub: ([a, b]) => broadcast(a, b, (x, y) => x - y),
    Mul: ([a, b]) => broadcast(a, b, (x, y) => x * y),
    Div: ([a, b]) => broadcast(a, b, (x, y) => x / y),
    Relu: unary((v) => (v > 0 ? v : 0)),
    LeakyRelu: (xs, attrs) => unary((v) => (v > 0 ? v : (attrs.alpha ?? 0.01) * v))(xs),
    Sigmoid: unary((v) => 1 / (1 + Math.exp(-v))),
    Tanh: unary(Math.tanh),
    Clip: clip,
    Reshape: reshape,
    Flatten: flatten,
    Identity: ([x]) => x,
    ConvTranspose: convTranspose,
    Conv: conv,
  };

  /** z: latent_dim numbers -> Float32Array of the image, (C*H*W), CHW order. */
  function run(model, z) {
    const { graph, constants } = model;
    const env = Object.create(constants);
    env[graph.input] = { shape: [1, z.length], data: Float64Array.from(z) };
    for (const node of graph.nodes) {
      const inputs = node.in.map((name) => (name === "" ? undefined : env[name]));
      env[node.out[0]] = OPS[node.op](inputs, node.attrs);
    }
    return Float32Array.from(env[graph.output].data);
  }

  return { load, run };
})();
