#!/usr/bin/env node
// Builds the native addon from source: fetches the pinned llama.cpp (scripts/llama-source.mjs), runs cmake-js, and
// puts the result in build/Release, where node-gyp-build looks after prebuilds/: vidllama.node, the shared core it links
// (libvidllama-llama, libvidllama-ggml, libvidllama-ggml-base) and ggml's backend modules (libggml-cpu-<variant> for
// every CPU variant, libggml-vulkan, …), which native/llm/backend.cpp loads from the addon's own folder at run time.
//
// binding.gyp calls this script, so `node-gyp rebuild` (node-gyp-build's install fallback, @electron/rebuild,
// prebuildify) also builds the real addon.
//
// Options (or environment variables):
//   --gpu cpu|LIST                VIDLLAMA_GPU    GPU backend modules built besides the CPU variants: cpu (none, the
//                                                 default) or a comma list of cuda, metal, vulkan
//   --native                      VIDLLAMA_NATIVE=1  -march=native, one CPU module for this machine instead of every
//                                                 variant (faster to build); never for prebuilds
//   --debug                                       Debug build
//   --cmake-arg -DX=Y             VIDLLAMA_CMAKE_ARGS="-DX=Y -DZ=W"  extra CMake definitions
//   --jobs N                      VIDLLAMA_JOBS   parallel compile jobs (default: number of CPUs)
//   --build-dir DIR               VIDLLAMA_BUILD_DIR  a separate build tree; the addon is then DIR/addon/vidllama.node
//                                 with its libraries (load it with VIDLLAMA_ADDON_PATH) instead of build/Release

import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureLlamaSource } from "./llama-source.mjs";

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(packageRoot, "package.json"));

function parseArgs(argv) {
    const options = {
        gpu: process.env.VIDLLAMA_GPU || "cpu",
        native: process.env.VIDLLAMA_NATIVE === "1",
        debug: false,
        cmakeArgs: (process.env.VIDLLAMA_CMAKE_ARGS || "").split(/\s+/).filter(Boolean),
        jobs: Number(process.env.VIDLLAMA_JOBS) || availableParallelism(),
        buildDir: process.env.VIDLLAMA_BUILD_DIR || undefined,
    };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === "--gpu") options.gpu = argv[++i];
        else if (arg === "--native") options.native = true;
        else if (arg === "--debug") options.debug = true;
        else if (arg === "--cmake-arg") options.cmakeArgs.push(argv[++i]);
        else if (arg === "--jobs") options.jobs = Number(argv[++i]);
        else if (arg === "--build-dir") options.buildDir = argv[++i];
        else if (arg === "--out") {
            i++; // passed by binding.gyp; the output location is fixed (build/Release)
            options.viaNodeGyp = true;
        }
        else throw new Error(`unknown option ${arg}`);
    }
    const gpus = String(options.gpu).split(",").map((g) => g.trim()).filter(Boolean);
    if (gpus.length === 0 || gpus.some((g) => !["cpu", "cuda", "metal", "vulkan"].includes(g)) || (gpus.includes("cpu") && gpus.length > 1)) {
        throw new Error(`--gpu must be cpu or a comma list of cuda, metal and vulkan, not "${options.gpu}"`);
    }
    options.gpus = gpus;
    return options;
}

/** The files of the addon's folder: the addon itself and the shared libraries and backend modules beside it. */
const LIBRARY_FILE = /^(vidllama\.node|(lib)?(vidllama-)?(ggml|llama)[\w.-]*\.(so|dll|dylib))$/;

function outputFiles(dir) {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile() && LIBRARY_FILE.test(e.name)).map((e) => e.name);
}

async function main() {
    const options = parseArgs(process.argv.slice(2));
    const llamaDir = await ensureLlamaSource();
    // Outside build/ so that `node-gyp rebuild` (which deletes build/) keeps the CMake tree and rebuilds incrementally.
    const buildDir = options.buildDir ? resolve(options.buildDir) : join(packageRoot, "build-cmake");
    const cmakeJs = require.resolve("cmake-js/bin/cmake-js");
    const args = [
        cmakeJs, "build",
        "--directory", packageRoot,
        "--out", buildDir,
        "--config", options.debug ? "Debug" : "Release",
        "--parallel", String(options.jobs),
        `--CDVIDLLAMA_GPU=${options.gpus.join(";")}`,
        `--CDVIDLLAMA_NATIVE=${options.native ? "ON" : "OFF"}`,
        `--CDVIDLLAMA_LLAMA_CPP_DIR=${llamaDir}`,
        ...options.cmakeArgs.map((a) => (a.startsWith("-D") ? `--CD${a.slice(2)}` : a)),
    ];
    process.stderr.write(`[vidllama] building the addon (gpu: ${options.gpu}${options.native ? ", native CPU" : ""})\n`);
    const started = Date.now();
    const result = spawnSync(process.execPath, args, { cwd: packageRoot, stdio: "inherit" });
    if (result.status !== 0) {
        throw new Error(`cmake-js failed (exit ${result.status ?? result.signal}); see the output above`);
    }
    const builtDir = join(buildDir, "addon"); // CMakeLists.txt's VIDLLAMA_OUTPUT_DIR
    const built = existsSync(builtDir) ? outputFiles(builtDir) : [];
    if (!built.includes("vidllama.node")) throw new Error(`the build finished but no vidllama.node was found in ${builtDir}`);
    const outDir = options.buildDir ? builtDir : join(packageRoot, "build", "Release");
    mkdirSync(outDir, { recursive: true });
    // A module left from an earlier build (another GPU list, --native) must not be loaded with this build's core.
    for (const stale of outputFiles(outDir)) if (!built.includes(stale)) rmSync(join(outDir, stale));
    let bytes = 0;
    for (const name of built) {
        if (outDir !== builtDir) copyFileSync(join(builtDir, name), join(outDir, name));
        bytes += statSync(join(outDir, name)).size;
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const modules = built.filter((n) => /ggml-(cpu|cuda|vulkan|metal)/.test(n)).map((n) => n.replace(/^(lib)?ggml-|\.(so|dll|dylib)$/g, ""));
    process.stderr.write(`[vidllama] built ${join(outDir, "vidllama.node")} with ${built.length - 1} libraries ` +
        `(${(bytes / 1e6).toFixed(1)} MB; backends: ${modules.join(", ")}) in ${seconds} s\n`);
    // Installed as a dependency (built from source because no prebuild fits): the object files are not needed again.
    if (options.viaNodeGyp && packageRoot.split(/[\\/]/).includes("node_modules") && !options.buildDir) {
        rmSync(buildDir, { recursive: true, force: true });
    }
}

main().catch((err) => {
    process.stderr.write(`[vidllama] build failed: ${err.message}\n`);
    process.exit(1);
});

