// ONNX Runtime Web (wasm, one thread: the Streamlit page is not cross-origin isolated),
// loaded from this component's own node_modules (installed by `make setup`), never a CDN;
// models as {kind, run(z, batch), release()}.

import { stats } from "./state.mjs";

const ORT_DIR = "./node_modules/onnxruntime-web/dist/";

// The wasm binary (14 MB) also comes gzipped by `make setup` (3.7 MB): Streamlit would gzip
// the plain file at level 9 on every request (seconds of server CPU), but passes a .gz
// through as it is; the browser unzips it natively. Missing, ORT fetches the plain file.
async function fetchWasmBinary() {
  try {
    const response = await fetch(new URL(`${ORT_DIR}ort-wasm-simd-threaded.wasm.gz`, import.meta.url));
    if (!response.ok) return null;
    return await new Response(response.body.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
  } catch {
    return null;
  }
}

// A one-node model (Relu): creating its session at page load instantiates the runtime while
// Streamlit is still sending the first render and the decoder.
const WARM_UP_MODEL = Uint8Array.from(
  atob("CAgSADo2CgwKAXgSAXkiBFJlbHUSBHdhcm1aDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAR"),
  (c) => c.charCodeAt(0),
);

// ONNX Runtime's module, loaded and warmed up once; a missing install rejects with one line.
let ortPromise = null;
export function loadOrt() {
  ortPromise ??= (async () => {
    const start = performance.now();
    const [ort, binary] = await Promise.all([
      import(`${ORT_DIR}ort.wasm.min.mjs`).catch(() => {
        throw new Error("ONNX Runtime Web is not installed (run make setup)");
      }),
      fetchWasmBinary(),
    ]);
    stats.runtimeFetchMs = performance.now() - start;
    ort.env.wasm.numThreads = 1; // no SharedArrayBuffer without cross-origin isolation
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = new URL(ORT_DIR, import.meta.url).href; // these files, no CDN
    if (binary) ort.env.wasm.wasmBinary = binary;
    const warm = await serial(() => ort.InferenceSession.create(WARM_UP_MODEL));
    await serial(() => warm.release());
    stats.runtimeReadyMs = performance.now() - start;
    return ort;
  })();
  return ortPromise;
}

// Runtime calls one at a time: a new model loads while the old one still decodes drag frames.
let runtimeQueue = Promise.resolve();
function serial(task) {
  const result = runtimeQueue.then(task);
  runtimeQueue = result.catch(() => {});
  return result;
}

async function loadOnnx(spec, bytes) {
  const ort = await loadOrt();
  const session = await serial(() =>
    ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" }),
  );
  const [C, H, W] = spec.image_shape;
  const D = spec.latent_dim;
  return {
    kind: "onnxruntime-web",
    // z: Float32Array (batch * D) -> Float32Array (batch * C * H * W) in [0, 1]
    run: (z, batch) =>
      serial(async () => {
        const feeds = { [spec.input]: new ort.Tensor("float32", z, [batch, D]) };
        const out = (await session.run(feeds))[spec.output];
        if (out.data.length !== batch * C * H * W) {
          throw new Error(`the model gives ${out.dims.join("x")}, expected ${batch}x${C}x${H}x${W}`);
        }
        return out.data;
      }),
    release: () => serial(() => session.release()),
  };
}

// The decoder Python sent (spec: its ONNX signature and shapes; bytes: the ONNX model).
export async function loadModel(spec, bytes) {
  const inner = await loadOnnx(spec, bytes);
  return { ...inner, version: spec.version, latentDim: spec.latent_dim, imageShape: spec.image_shape };
}

// ONNX Runtime's errors wrap the reason in its C++ source location and signature: keep the
// reason ("Fatal error: x:Op is not a registered function/op", "Unsupported model IR version").
export function runtimeMessage(error) {
  return String(error?.message ?? error)
    .replace(/^.*?ERROR_MESSAGE: /s, "")
    .replace(/^\S+\.(cc|h):\d+ [^(]*\([^)]*\) /, "")
    .split("\n")[0]
    .slice(0, 240);
}
