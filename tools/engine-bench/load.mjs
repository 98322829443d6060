// Loads a GGUF model with llama.cpp (node-llama-cpp's prebuilt CPU binary), creates a context,
// evaluates a short prompt and samples one token; prints one JSON line:
//   {"load_s": …, "first_token_s": …, "mmap": …, "token": …, …}
// load_s runs from just before loadModel to its return; first_token_s from the same start to the
// first sampled token (load + context + prompt evaluation + sampling). The native library is
// loaded (getLlama) before the clock starts; its time is reported as init_s.
//
// Usage: node tools/engine-bench/load.mjs MODEL.gguf [--no-mmap] [--threads N]
//        node tools/engine-bench/load.mjs --init-only   (loads the native library and exits:
//        brings node and llama.cpp's own files back into the page cache after it was dropped)
// node-llama-cpp is imported from MODELFS_ENGINE_DIR (default ~/.cache/modelfs-engine), where
// tools/engine-bench.sh installs tools/engine-bench/package-lock.json.
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const usage = "usage: load.mjs MODEL.gguf [--no-mmap] [--threads N] | load.mjs --init-only";
let useMmap = true;
let initOnly = false;
let threads = 1;
const paths = [];
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === "--no-mmap") useMmap = false;
  else if (a === "--init-only") initOnly = true;
  else if (a === "--threads" && /^[1-9][0-9]*$/.test(process.argv[i + 1] ?? "")) {
    threads = Number(process.argv[++i]);
  } else if (a.startsWith("--")) paths.push(null);
  else paths.push(a);
}
if (paths.length !== (initOnly ? 0 : 1) || paths.includes(null)) {
  console.error(usage);
  process.exit(2);
}

const engineDir =
  process.env.MODELFS_ENGINE_DIR || path.join(os.homedir(), ".cache", "modelfs-engine");
const require = createRequire(path.join(engineDir, "package.json"));
let entry;
try {
  entry = require.resolve("node-llama-cpp");
} catch {
  console.error(`load.mjs: node-llama-cpp is not installed in ${engineDir}`);
  process.exit(2);
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);

const t0 = performance.now();
// The prebuilt CPU binary only: never build llama.cpp from source, never download anything.
const llama = await getLlama({
  build: "never",
  gpu: false,
  skipDownload: true,
  usePrebuiltBinaries: true,
  progressLogs: false,
  logLevel: LlamaLogLevel.error,
});
const tInit = performance.now();
if (initOnly) {
  console.log(
    JSON.stringify({
      init_s: +((tInit - t0) / 1000).toFixed(4),
      binary: llama.buildType,
      llama_cpp: llama.llamaCppRelease.release,
      gpu: llama.gpu,
    }),
  );
  await llama.dispose();
  process.exit(0);
}
const modelPath = path.resolve(paths[0]);

const model = await llama.loadModel({ modelPath, useMmap, gpuLayers: 0 });
const tLoad = performance.now();
// Threads of the prompt evaluation (default 1): it runs after the model's bytes are in memory,
// the same work for every file; one thread keeps it steady when other work shares the cores (more
// spinning ggml threads than free cores wait on each other; node-llama-cpp's default is >= 4).
const context = await model.createContext({ contextSize: 256, batchSize: 64, threads });
const tContext = performance.now();
const sequence = context.getSequence();
const prompt = model.tokenize("the quick brown fox jumps over the lazy dog");
let token;
for await (const t of sequence.evaluate(prompt, { temperature: 0 })) {
  token = t;
  break;
}
const tFirst = performance.now();
if (token === undefined) {
  console.error("load.mjs: no token was sampled");
  process.exit(1);
}

console.log(
  JSON.stringify({
    model: modelPath,
    mmap: model.useMmap,
    init_s: +((tInit - t0) / 1000).toFixed(4),
    load_s: +((tLoad - tInit) / 1000).toFixed(4),
    context_s: +((tContext - tLoad) / 1000).toFixed(4),
    first_token_s: +((tFirst - tInit) / 1000).toFixed(4),
    prompt_tokens: prompt.length,
    threads: context.currentThreads,
    token,
    piece: model.detokenize([token]),
    binary: llama.buildType,
    cpu_math_cores: llama.cpuMathCores,
    gpu: llama.gpu,
  }),
);
await context.dispose();
await model.dispose();
await llama.dispose();
