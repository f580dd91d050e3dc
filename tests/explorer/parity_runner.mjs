// Decode latents with the browser decoder in Node, for tests/explorer/test_live_decoder_parity.py.
//
// Usage: node parity_runner.mjs <path to decoder.mjs> < {"payload": {...}, "latents": [[...], ...]}
// Prints {"images": [[...], ...]}: one flat (C*H*W) array per latent.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const { loadPayload, decode } = await import(pathToFileURL(process.argv[2]).href);
const { payload, latents } = JSON.parse(readFileSync(0, "utf8"));
const model = loadPayload(payload);
const images = latents.map((z) => Array.from(decode(model, z)));
process.stdout.write(JSON.stringify({ images }));
