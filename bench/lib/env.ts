/**
 * Where things are when a benchmark runs: the repository root (found from this file, also when it runs compiled from
 * bench/.models/js/), the model cache bench/.models/, and the native addon.
 *
 * Import this module first: compiled benchmarks live outside lib/, so lib/native/load.ts cannot find the addon by
 * itself; this points `VIDLLAMA_ADDON_PATH` at the repository's own build (node-gyp-build's order: build/Release,
 * then prebuilds/) unless it is already set.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRepoRoot(): string {
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
        const pkg = join(dir, "package.json");
        if (existsSync(pkg)) {
            try {
                if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "vidllama") return dir;
            } catch {
                // not ours; keep looking
            }
        }
        const parent = dirname(dir);
        if (parent === dir) throw new Error(`cannot find the vidllama repository above ${fileURLToPath(import.meta.url)}`);
        dir = parent;
    }
}

/** The repository root (holds package.json, lib/, deps/). */
export const REPO_ROOT = findRepoRoot();
/** Generated models, media and results (git-ignored). */
export const MODELS_DIR = join(REPO_ROOT, "bench", ".models");
/** Benchmark media (images, videos). */
export const MEDIA_DIR = join(MODELS_DIR, "media");
/** JSON results of each run. */
export const RESULTS_DIR = join(MODELS_DIR, "results");

if (!process.env.VIDLLAMA_ADDON_PATH) {
    const require = createRequire(import.meta.url);
    try {
        const nodeGypBuild = require(join(REPO_ROOT, "node_modules", "node-gyp-build")) as { resolve(dir: string): string };
        process.env.VIDLLAMA_ADDON_PATH = nodeGypBuild.resolve(REPO_ROOT);
    } catch {
        // leave it unset: lib/native/load.ts reports the missing build with its usual explanation
    }
}

/**
 * Where the benchmarks run models: `--gpu <where>` (the `gpu` option's values: cpu, cuda, vulkan, metal, auto) or
 * VIDLLAMA_BENCH_GPU; the CPU by default, since the committed figures are CPU figures. Set in the environment here so
 * that the child processes of a benchmark inherit it.
 */
const gpuFlag = process.argv.indexOf("--gpu");
if (gpuFlag > 0 && process.argv[gpuFlag + 1]) {
    process.env.VIDLLAMA_BENCH_GPU = process.argv[gpuFlag + 1];
    process.argv.splice(gpuFlag, 2); // not a flag of the benchmark itself
}
export const BENCH_GPU = (process.env.VIDLLAMA_BENCH_GPU ?? "cpu") as "cpu" | "auto" | "cuda" | "metal" | "vulkan";
