// ONNX Runtime Web (wasm, one thread: the Streamlit page is not cross-origin isolated),
// loaded from this component's own node_modules (installed by `make setup`; the wasm binary
// through the app's route, below), never a CDN;
// models as {kind, run(z, batch), release()}.

import { stats } from "./state.mjs";

const ORT_DIR = "./node_modules/onnxruntime-web/dist/";

// The app serves the wasm binary (14 MB) gzipped (3.7 MB) with Content-Encoding: gzip from a
// route of its own (explorer/ort_files.py), beside this component's URL
// ({base}/component/NAME/index.html): the browser unzips it as it arrives and compiles it
// while it streams, and keeps the compiled code for the next visit. index.html preloads it.
const WASM_ROUTE = new URL("../../_vae/ort-wasm-simd-threaded.wasm", document.baseURI).href;

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
    const ort = await import(`${ORT_DIR}ort.wasm.min.mjs`).catch(() => {
      throw new Error("ONNX Runtime Web is not installed (run make setup)");
    });
    stats.runtimeFetchMs = performance.now() - start;
    ort.env.wasm.numThreads = 1; // no SharedArrayBuffer without cross-origin isolation
    ort.env.wasm.proxy = false;
    // these files, no CDN: the Emscripten glue beside the module, the binary from the route
    const glue = new URL(`${ORT_DIR}ort-wasm-simd-threaded.mjs`, import.meta.url).href;
    ort.env.wasm.wasmPaths = { mjs: glue, wasm: WASM_ROUTE };
    const warm = await serial(() => ort.InferenceSession.create(WARM_UP_MODEL)).catch(explainStart);
    await serial(() => warm.release());
    stats.runtimeReadyMs = performance.now() - start;
    return ort;
  })();
  return ortPromise;
}

// A page served without the route (its script run alone, not explorer/app.py) gets
// Streamlit's own HTML page there, and the wasm compiler's words about it: say what is
// missing instead.
async function explainStart(error) {
  const route = await fetch(WASM_ROUTE, { method: "HEAD" }).catch(() => null);
  if (!route || route.headers.get("content-type") === "application/wasm") throw error;
  throw new Error("the app serves no ONNX Runtime wasm route: run it with streamlit run explorer/app.py");
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
