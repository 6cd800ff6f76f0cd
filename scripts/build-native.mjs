#!/usr/bin/env node
// Builds the native addon from source: fetches the pinned llama.cpp (scripts/llama-source.mjs), runs cmake-js, and
// puts the result at build/Release/vidllama.node, where node-gyp-build looks after prebuilds/.
//
// binding.gyp calls this script, so `node-gyp rebuild` (node-gyp-build's install fallback, @electron/rebuild,
// prebuildify) also builds the real addon.
//
// Options (or environment variables):
//   --gpu cpu|cuda|metal|vulkan   VIDLLAMA_GPU    backend compiled in besides the CPU (default cpu)
//   --native                      VIDLLAMA_NATIVE=1  -march=native; for your own machine only, never for prebuilds
//   --debug                                       Debug build
//   --cmake-arg -DX=Y             VIDLLAMA_CMAKE_ARGS="-DX=Y -DZ=W"  extra CMake definitions
//   --jobs N                      VIDLLAMA_JOBS   parallel compile jobs (default: number of CPUs)
//   --build-dir DIR               VIDLLAMA_BUILD_DIR  a separate build tree; the addon is then DIR/vidllama.node
//                                 (load it with VIDLLAMA_ADDON_PATH) instead of build/Release/vidllama.node

import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
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
    if (!["cpu", "cuda", "metal", "vulkan"].includes(options.gpu)) {
        throw new Error(`--gpu must be cpu, cuda, metal or vulkan, not "${options.gpu}"`);
    }
    return options;
}

function findBuiltAddon(dir) {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) {
            const found = findBuiltAddon(path);
            if (found) return found;
        } else if (entry.name === "vidllama.node") return path;
    }
    return undefined;
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
        `--CDVIDLLAMA_GPU=${options.gpu}`,
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
    const built = findBuiltAddon(buildDir);
    if (!built) throw new Error(`the build finished but no vidllama.node was found under ${buildDir}`);
    const outDir = options.buildDir ? buildDir : join(packageRoot, "build", "Release");
    mkdirSync(outDir, { recursive: true });
    const target = join(outDir, "vidllama.node");
    if (resolve(built) !== resolve(target)) copyFileSync(built, target);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(`[vidllama] built ${target} (${(statSync(target).size / 1e6).toFixed(1)} MB) in ${seconds} s\n`);
    // Installed as a dependency (built from source because no prebuild fits): the object files are not needed again.
    if (options.viaNodeGyp && packageRoot.split(/[\\/]/).includes("node_modules") && !options.buildDir) {
        rmSync(buildDir, { recursive: true, force: true });
    }
}

main().catch((err) => {
    process.stderr.write(`[vidllama] build failed: ${err.message}\n`);
    process.exit(1);
});

