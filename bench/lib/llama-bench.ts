/**
 * llama.cpp's own `llama-bench`, the peer of the language-model benchmark, built from the pinned source
 * (deps/llama.cpp) OUTSIDE the repository (`VIDLLAMA_BENCH_LLAMA_TOOLS`, default /tmp/vidllama-llama-tools) with
 * the same ggml build options as the addon: every `GGML_*` switch is copied from the addon's CMake cache
 * (build-cmake/CMakeCache.txt: no OpenMP, backends as modules with every CPU variant), so llama-bench loads the CPU
 * variant the addon loads on this machine (both take the highest ggml_backend_score) and a ratio compares the
 * runtimes, not the kernels' compile flags. Building takes about 15 minutes on 2 cores (the 14 x86 CPU variants);
 * nothing of it is committed.
 *
 * @module
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./env.js";
import { LLAMA_TOOLS_DIR } from "./llama-cpp.js";

const BUILD_VERSION = "2";

/** The `GGML_*` boolean options of the addon's build, as `-DGGML_X=ON|OFF`. */
function addonGgmlOptions(cache: string): string[] {
    const out: string[] = [];
    for (const line of readFileSync(cache, "utf8").split("\n")) {
        const m = /^(GGML_[A-Z0-9_]+):BOOL=(ON|OFF|TRUE|FALSE|1|0)$/i.exec(line.trim());
        if (m) out.push(`-D${m[1]}=${/^(ON|TRUE|1)$/i.test(m[2]!) ? "ON" : "OFF"}`);
    }
    return out;
}

/** Builds llama-bench when needed; its path, or why it cannot be built. */
export function ensureLlamaBench(log: (line: string) => void): { path: string } | { skipped: string } {
    const cache = join(process.env.VIDLLAMA_BENCH_LLAMA_LIBS ?? join(REPO_ROOT, "build-cmake"), "CMakeCache.txt");
    if (!existsSync(cache)) return { skipped: `no addon build cache at ${cache} (run npm run build:native)` };
    const llama = join(REPO_ROOT, "deps", "llama.cpp");
    if (!existsSync(join(llama, "tools", "llama-bench", "llama-bench.cpp"))) return { skipped: `${llama} has no tools/llama-bench` };
    const build = join(LLAMA_TOOLS_DIR, "llama-bench-build");
    const binary = join(build, "bin", "llama-bench");
    const options = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=ON", // GGML_BACKEND_DL (copied below) needs it
        "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",
        "-DLLAMA_BUILD_COMMON=ON",
        "-DLLAMA_BUILD_TOOLS=ON",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_SERVER=OFF",
        "-DLLAMA_OPENSSL=OFF",
        ...addonGgmlOptions(cache),
    ];
    const stamp = join(build, "vidllama-stamp");
    const wanted = [BUILD_VERSION, readFileSync(join(llama, "CMakeLists.txt"), "utf8").length, ...options].join("\n");
    if (existsSync(binary) && existsSync(stamp) && readFileSync(stamp, "utf8") === wanted) return { path: binary };
    mkdirSync(build, { recursive: true });
    log(`building llama.cpp's llama-bench in ${build} with the addon's GGML options (about 15 minutes) ...`);
    try {
        execFileSync("cmake", ["-S", llama, "-B", build, "-G", "Ninja", ...options], { stdio: ["ignore", "ignore", "inherit"] });
        execFileSync("nice", ["-n", "10", "cmake", "--build", build, "--target", "llama-bench", "-j", "2"], { stdio: ["ignore", "ignore", "inherit"] });
    } catch (err) {
        return { skipped: `building llama-bench failed: ${(err as Error).message.split("\n")[0]}` };
    }
    writeFileSync(stamp, wanted);
    return { path: binary };
}

/** One llama-bench test (`-o json` entry). */
export interface LlamaBenchResult {
    nPrompt: number;
    nGen: number;
    nDepth: number;
    nBatch: number;
    nUbatch: number;
    threads: number;
    /** Tokens per second, mean and standard deviation over the repetitions. */
    avgTs: number;
    stddevTs: number;
    /** Every repetition's tokens per second. */
    samplesTs: number[];
}

/**
 * Runs llama-bench on `model`: `-p P -n G -d D` gives a prefill test (when P > 0) and a decode test (when G > 0) at
 * depth D in one process; llama-bench fills the depth once and restores that state for every repetition and test.
 */
export async function runLlamaBench(
    binary: string,
    model: string,
    test: { prompt: number; gen: number; depth: number; threads: number; reps: number; batch: number; ubatch: number },
): Promise<LlamaBenchResult[]> {
    const args = [
        "-m", model,
        "-p", String(test.prompt),
        "-n", String(test.gen),
        "-d", String(test.depth),
        "-t", String(test.threads),
        "-r", String(test.reps),
        "-b", String(test.batch),
        "-ub", String(test.ubatch),
        "-ngl", "0",
        "-o", "json",
    ];
    const stdout = await new Promise<string>((resolve, reject) => {
        const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (err += d.toString()));
        child.on("error", reject);
        child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`llama-bench exited ${code}: ${err.slice(-2000)}`))));
    });
    const rows = JSON.parse(stdout) as Array<Record<string, unknown>>;
    return rows.map((r) => ({
        nPrompt: Number(r.n_prompt),
        nGen: Number(r.n_gen),
        nDepth: Number(r.n_depth ?? 0),
        nBatch: Number(r.n_batch),
        nUbatch: Number(r.n_ubatch),
        threads: Number(r.n_threads),
        avgTs: Number(r.avg_ts),
        stddevTs: Number(r.stddev_ts),
        samplesTs: (r.samples_ts as number[] | undefined) ?? [],
    }));
}
