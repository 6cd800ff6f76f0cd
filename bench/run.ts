/**
 * `npm run bench`: every scenario in one run, with its peers and the machine's limits, as one report.
 *
 * 1. The machine's limits with ggml's own kernels (bench/lib/limits.ts): peak matrix multiply per weight type and
 *    memory bandwidth.
 * 2. The scenarios, each its own script in its own processes (their peers built or found first, their random-weight
 *    models of the real 2B shapes generated and cached under bench/.models/ the first time):
 *    - `llm.js`: the language model vs llama-bench, q8_0 and q4_k_m, at an empty context and at 8k (`--quick`: q8_0,
 *      empty context);
 *    - `vision-encoder.js --sizes 448x448`: the vision encoder vs llama.cpp's CLIP encoder (same ViT), and the LLM
 *      prefill of the same image;
 *    - `video-pipeline.js --kinds screen`: a question about a 60-s 720p screen recording with and without Differential
 *      Frame Pruning (`--quick`: its first 10 s);
 *    - `stream.js --quick`: live-stream smoke run (full run only).
 * 3. A summary — ours, llama.cpp, and the limit, as ratios — computed from the scenarios' JSON and the shapes read
 *    from the model files (FLOP and byte formulas in bench/lib/limits.ts and bench/README.md), then every scenario's
 *    own tables. Written to bench/results/<date>-<cpu>[-quick].md and .json (a second run of the same day gets
 *    `-2`, `-3`: nothing is overwritten).
 *
 *   npm run bench [-- --quick] [-- --threads N] [-- --only limits,llm,vision,video,stream] [-- --no-llama-cpp]
 *   node bench/.models/js/bench/run.js --from bench/results/<run>.json   # renders a saved run's report again
 *
 * Full run about 45 minutes on 2 cores once the peers and models exist (building llama-bench and the mtmd driver
 * takes about 10 minutes and generating the 2B-shape models about 5 the first time); `--quick` about 5 minutes.
 */
import "./lib/env.js";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readGguf } from "../lib/gguf/reader.js";
import { REPO_ROOT } from "./lib/env.js";
import {
    decodeBytes, encoderFlops, ensureLimitsDriver, measureLimits, peakGflops, prefillFlops,
    type LlmShape, type MachineLimits, type VitShape,
} from "./lib/limits.js";
import { argList, argNumber, fmt, hasFlag, log, machineInfo, markdownTable, type MachineInfo, median, usageError } from "./lib/report.js";

const SCENARIOS = ["limits", "llm", "vision", "video", "stream"] as const;
type Scenario = (typeof SCENARIOS)[number];

interface ScenarioRun {
    name: Scenario;
    script: string;
    args: string[];
    wallMs: number;
    /** The script's own Markdown tables (its stdout without the results line). */
    tables: string;
    resultsPath?: string;
    results?: any; // each script's own JSON
    error?: string;
}

/** Runs a compiled benchmark script; its stderr (progress) passes through. */
async function runScript(name: Scenario, script: string, args: string[]): Promise<ScenarioRun> {
    const path = fileURLToPath(new URL(`./${script}`, import.meta.url));
    log(`\n== ${name}: node ${script} ${args.join(" ")}`);
    const started = performance.now();
    const child = spawn(process.execPath, [path, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    const code = await new Promise<number | null>((resolve, reject) => {
        child.on("error", reject);
        child.on("close", resolve);
    });
    const wallMs = performance.now() - started;
    const m = /^results: (.+)$/m.exec(stdout);
    const tables = stdout.replace(/^results: .+$/m, "").trim();
    if (code !== 0 || !m) return { name, script, args, wallMs, tables, error: `exit ${code}${m ? "" : ", no results line"}` };
    return { name, script, args, wallMs, tables, resultsPath: m[1]!, results: JSON.parse(readFileSync(m[1]!, "utf8")) };
}

/** ViT shapes from a projector file. */
async function vitShapeOf(path: string): Promise<VitShape> {
    const g = await readGguf(path);
    const num = (k: string) => {
        const v = g.getNumber(k);
        if (v === undefined) throw new Error(`${path} has no ${k}`);
        return v;
    };
    const type = g.getString("clip.projector_type");
    const merge = type === "videollama3" ? (g.getNumber("videollama3.image.merge_size") ?? 1) : type === "qwen2vl_merger" || type === "qwen2.5vl_merger" ? 2 : 1;
    const projector = g.tensors
        .filter((t) => t.name.startsWith("mm.") && t.name.endsWith(".weight") && t.shape.length === 2)
        .map((t) => [t.shape[0]!, t.shape[1]!] as [number, number]);
    // A 2×2 merge concatenates 4 patches before the projector: its first matrix sees N/4 rows of 4·d.
    return { layers: num("clip.vision.block_count"), width: num("clip.vision.embedding_length"), ffn: num("clip.vision.feed_forward_length"), patch: num("clip.vision.patch_size"), projector, projectorTokensPerPatch: 1 / (merge * merge) };
}

/** Language-model shapes and tensor bytes from a text model file. */
async function llmShapeOf(path: string): Promise<{ shape: LlmShape; weightBytes: number }> {
    const g = await readGguf(path);
    const arch = g.architecture ?? "llama";
    const num = (k: string) => {
        const v = g.getNumber(`${arch}.${k}`);
        if (v === undefined) throw new Error(`${path} has no ${arch}.${k}`);
        return v;
    };
    const embd = g.tensors.find((t) => t.name === "token_embd.weight");
    return {
        shape: { layers: num("block_count"), width: num("embedding_length"), heads: num("attention.head_count"), kvHeads: num("attention.head_count_kv"), ffn: num("feed_forward_length"), vocab: embd?.shape[1] ?? 0 },
        weightBytes: g.fileSize - g.dataOffset,
    };
}

function cpuSlug(cpu: string): string {
    const s = cpu.toLowerCase().replace(/\(r\)|\(tm\)|cpu|processor|@.*$/g, " ").replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
    return s.split("-").slice(0, 4).join("-") || "cpu";
}

function uniquePath(dir: string, base: string): string {
    for (let i = 1; ; i++) {
        const name = i === 1 ? base : `${base}-${i}`;
        if (!existsSync(join(dir, `${name}.md`)) && !existsSync(join(dir, `${name}.json`))) return join(dir, name);
    }
}

/** Writes the report of a run: Markdown (summary first, then each scenario's tables) and JSON (everything). */
async function writeReport(o: {
    base: string;
    quick: boolean;
    threads: number;
    started: Date;
    finished: Date;
    machine: ReturnType<typeof machineInfo>;
    limits: MachineLimits | undefined;
    limitsNote: string | undefined;
    runs: ScenarioRun[];
}): Promise<string> {
    const { quick, threads, started, finished, machine, limits, limitsNote, runs } = o;
    const summary = await summarize(runs, limits);
    const minutes = (finished.getTime() - started.getTime()) / 60000;
    const md = [
        `# vidllama bench${quick ? " --quick" : ""}: ${started.toISOString().slice(0, 10)}`,
        "",
        `${machine.cpu}, ${machine.cpus} logical CPUs, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}; ${addonLine(machine.addon)}; ${threads} threads; load average ${machine.loadAverage} at the start.`,
        `Run ${started.toISOString().slice(11, 16)}–${finished.toISOString().slice(11, 16)} UTC (${minutes.toFixed(1)} min). Random weights of the real VideoLLaMA3-2B shapes; peers built from the pinned llama.cpp source with the addon's ggml options, in the same run.`,
        "",
        "## Ours vs llama.cpp vs the limit",
        "",
        summary.table,
        "",
        summary.notes,
        "",
        ...(limits ? ["## The machine's limits (ggml's kernels)", "", limitsTable(limits), ""] : limitsNote ? [`Limits not measured: ${limitsNote}`, ""] : []),
        ...runs.flatMap((r) => [`## ${r.name}: \`node bench/.models/js/bench/${r.script} ${r.args.join(" ")}\` (${(r.wallMs / 60000).toFixed(1)} min)`, "", r.error ? `**failed: ${r.error}**` : r.tables, ""]),
    ].join("\n");
    writeFileSync(`${o.base}.md`, `${md}\n`);
    writeFileSync(
        `${o.base}.json`,
        `${JSON.stringify({ benchmark: "all", quick, date: started.toISOString(), finished: finished.toISOString(), machine, threads, limits, limitsNote, summary: summary.rows, scenarios: runs }, null, 2)}\n`,
    );
    return md;
}

/** `--from bench/results/X.json`: renders a saved run's report again (after a change of the summary's rules). */
async function rerender(path: string): Promise<void> {
    if (!path.endsWith(".json") || !existsSync(path)) usageError(`--from needs a bench/results/*.json file, got ${JSON.stringify(path)}`);
    const saved = JSON.parse(readFileSync(path, "utf8")) as {
        quick: boolean;
        date: string;
        finished: string;
        machine: ReturnType<typeof machineInfo>;
        threads: number;
        limits?: MachineLimits;
        limitsNote?: string;
        scenarios: ScenarioRun[];
    };
    const base = path.slice(0, -".json".length);
    // Reports written before the JSON kept each scenario's tables: take them from the Markdown file.
    if (saved.scenarios.some((r) => r.tables === undefined) && existsSync(`${base}.md`)) {
        const old = readFileSync(`${base}.md`, "utf8");
        for (const r of saved.scenarios) {
            if (r.tables !== undefined) continue;
            const start = old.indexOf(`## ${r.name}: `);
            const body = start < 0 ? "" : old.slice(old.indexOf("\n", start) + 1);
            const end = body.search(/^## /m);
            r.tables = (end < 0 ? body : body.slice(0, end)).trim();
        }
    }
    const md = await writeReport({
        base, quick: saved.quick, threads: saved.threads, started: new Date(saved.date), finished: new Date(saved.finished),
        machine: saved.machine, limits: saved.limits, limitsNote: saved.limitsNote, runs: saved.scenarios,
    });
    process.stdout.write(`${md}\n\nrewritten: ${base}.md, ${base}.json\n`);
}

async function main(): Promise<void> {
    const from = process.argv.indexOf("--from");
    if (from > 0) return rerender(process.argv[from + 1] ?? "");
    const quick = hasFlag("quick");
    const threads = argNumber("threads", 2, 1, 1024);
    const only = argList<Scenario>("only", quick ? ["limits", "llm", "vision", "video"] : [...SCENARIOS], SCENARIOS);
    const noPeers = hasFlag("no-llama-cpp") ? ["--no-llama-cpp"] : [];
    const started = new Date();
    const machine = machineInfo();
    log(`vidllama bench${quick ? " --quick" : ""}: ${machine.cpu}, ${machine.cpus} CPUs, ${machine.memoryGiB} GiB, load ${machine.loadAverage}; threads ${threads}; ${only.join(", ")}`);

    let limits: MachineLimits | undefined;
    let limitsNote: string | undefined;
    const runs: ScenarioRun[] = [];
    if (only.includes("limits")) {
        log("\n== limits: ggml matrix multiply per type, memory bandwidth");
        const t0 = performance.now();
        const driver = ensureLimitsDriver(log);
        if ("path" in driver) limits = await measureLimits(driver.path, threads, quick ? 3 : 5);
        else log(`limits skipped: ${(limitsNote = driver.skipped)}`);
        log(`   (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
    const t = ["--threads", String(threads)];
    const plan: Array<[Scenario, string, string[]]> = [
        ["llm", "llm.js", quick ? ["--quick", ...t, ...noPeers] : ["--long", ...t, ...noPeers]],
        ["vision", "vision-encoder.js", quick ? ["--quick", ...t, ...noPeers] : ["--sizes", "448x448", ...t, ...noPeers]],
        ["video", "video-pipeline.js", quick ? ["--quick", "--kinds", "screen", ...t] : ["--kinds", "screen", ...t]],
        ["stream", "stream.js", ["--quick", ...t]],
    ];
    for (const [name, script, args] of plan) {
        if (!only.includes(name)) continue;
        const run = await runScript(name, script, args);
        if (run.error) log(`${name} failed: ${run.error}`);
        runs.push(run);
    }
    const finished = new Date();

    const dir = join(REPO_ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    const base = uniquePath(dir, `${started.toISOString().slice(0, 10)}-${cpuSlug(machine.cpu)}${quick ? "-quick" : ""}`);
    const md = await writeReport({ base, quick, threads, started, finished, machine, limits, limitsNote, runs });
    process.stdout.write(`${md}\n\nwritten: ${base}.md, ${base}.json\n`);
    if (runs.some((r) => r.error)) process.exitCode = 1;
}

function limitsTable(l: MachineLimits): string {
    return [
        markdownTable(
            ["weight type", "mul_mat M×K × K×N", "best ms", "GFLOP/s"],
            l.matmul.map((m) => [m.type, `${m.M}×${m.K} × ${m.K}×${m.N}`, m.bestMs.toFixed(1), m.gflops.toFixed(1)]),
        ),
        "",
        markdownTable(
            ["memory", "GB/s"],
            [[`plain read of 1 GiB, ${l.threads} threads`, l.readGbPerS.toFixed(1)], ...l.matVec.map((m) => [`ggml mat × vec, ${m.type}, ${(m.bytes / 2 ** 20).toFixed(0)} MiB of weights`, m.gbPerS.toFixed(1)])]),
    ].join("\n");
}

interface SummaryRow {
    work: string;
    ours: string;
    peer: string;
    ratio: number;
    achieved: string;
    limit: string;
    fraction: number;
}

/** The machine's memory bandwidth: the best of the plain read and ggml's matrix × vector streaming. */
function bandwidthLimit(limits: MachineLimits | undefined): { gbPerS: number; how: string } | undefined {
    if (!limits) return undefined;
    let best = { gbPerS: limits.readGbPerS, how: "plain read" };
    for (const m of limits.matVec) if (m.gbPerS > best.gbPerS) best = { gbPerS: m.gbPerS, how: `ggml ${m.type} mat × vec` };
    return best;
}

async function summarize(runs: ScenarioRun[], limits: MachineLimits | undefined): Promise<{ table: string; notes: string; rows: SummaryRow[] }> {
    const rows: SummaryRow[] = [];
    const bandwidth = bandwidthLimit(limits);
    const notes: string[] = [];
    const llm = runs.find((r) => r.name === "llm")?.results;
    if (llm) {
        const shapes = new Map<string, Promise<{ shape: LlmShape; weightBytes: number }>>(); // one read per model file
        for (const row of llm.rows as any[]) {
            const path = await modelPathFor(row.type);
            if (!shapes.has(path)) shapes.set(path, llmShapeOf(path));
            const { shape, weightBytes } = await shapes.get(path)!;
            const depth = row.depth as number;
            const tokens = median(row.ours.promptTokens);
            const pre = median(row.ours.prefillTokensPerSecond);
            const dec = median(row.ours.decodeTokensPerSecond);
            const lp = row.llamaPrefill?.avgTs as number | undefined;
            const ld = row.llamaDecode?.avgTs as number | undefined;
            const peakType = row.type === "q4_k_m" ? "q4_K" : row.type === "q8_0" ? "q8_0" : "f16";
            const peak = limits ? peakGflops(limits, peakType) : undefined;
            const gflops = (prefillFlops(shape, tokens, depth) / tokens) * pre / 1e9;
            const at = depth === 0 ? "empty context" : `at ${depth} tokens`;
            rows.push({
                work: `prefill ${tokens} tokens, ${row.type}, ${at}`,
                ours: `${pre.toFixed(1)} t/s`,
                peer: lp ? `${lp.toFixed(1)} t/s (llama-bench pp512)` : "–",
                ratio: lp ? pre / lp : NaN,
                achieved: `${gflops.toFixed(0)} GFLOP/s`,
                limit: peak ? `${peak.toFixed(0)} GFLOP/s (${peakType} mul_mat)` : "–",
                fraction: peak ? gflops / peak : NaN,
            });
            const decodeDepth = median(row.ours.decodeStartDepth ?? [depth]) + 64; // the middle of the 128 tokens
            const gbps = (decodeBytes(shape, weightBytes, decodeDepth) * dec) / 1e9;
            rows.push({
                work: `decode 128 tokens, ${row.type}, ${at}`,
                ours: `${dec.toFixed(2)} t/s`,
                peer: ld ? `${ld.toFixed(2)} t/s (llama-bench tg128)` : "–",
                ratio: ld ? dec / ld : NaN,
                achieved: `${gbps.toFixed(1)} GB/s`,
                limit: bandwidth ? `${bandwidth.gbPerS.toFixed(1)} GB/s (${bandwidth.how})` : "–",
                fraction: bandwidth ? gbps / bandwidth.gbPerS : NaN,
            });
        }
        notes.push(
            "Prefill FLOP/s = prefillFlops(shape, n, depth) × (t/s) / n; decode bytes/s = (tensor data of the file + K/V cache of the context) × t/s (bench/README.md, \"The limit\"). Both decodes start at the depth (ours after a ~10-token prompt).",
        );
    }
    const vision = runs.find((r) => r.name === "vision")?.results;
    if (vision) {
        for (const row of vision.rows as any[]) {
            const v = row.vision;
            const shape = await vitShapeOf(vision.mmprojs[row.mmprojType]);
            const ms = median(v.runs as number[]);
            const flops = encoderFlops(shape, v.tokens);
            const peak = limits ? peakGflops(limits, row.mmprojType === "q4_k" ? "q4_K" : row.mmprojType) : undefined;
            const gflops = flops / (ms / 1000) / 1e9;
            let peer = "–";
            let ratio = NaN;
            if (row.llamaCpp) {
                const lPatches = row.llamaCpp.tokens * 4;
                const lMs = median(row.llamaCpp.runs as number[]);
                ratio = lMs / lPatches / (ms / v.tokens);
                peer = `${fmt.ms(lMs)} ms for ${lPatches} patches (llama.cpp CLIP)`;
                const lShape = await vitShapeOf(vision.qwen2vlMmprojs[row.mmprojType]);
                notes.push(`llama.cpp's CLIP encoder on the same ViT reaches ${(encoderFlops(lShape, lPatches) / (lMs / 1000) / 1e9).toFixed(0)} GFLOP/s (its Qwen2-VL-style projector counted with its own shapes); time per patch, ours / theirs: ${fmt.ratio(1 / ratio)} (the issue's goal: ≤ 0.9).`);
            }
            rows.push({
                work: `vision encoder, ${v.size.width}×${v.size.height} (${v.tokens} patches), ${row.mmprojType} projector`,
                ours: `${fmt.ms(ms)} ms`,
                peer,
                ratio,
                achieved: `${gflops.toFixed(0)} GFLOP/s`,
                limit: peak ? `${peak.toFixed(0)} GFLOP/s (${row.mmprojType} mul_mat)` : "–",
                fraction: peak ? gflops / peak : NaN,
            });
        }
        notes.push("Encoder FLOPs = encoderFlops(shape, patches): patch embedding, Q/K/V/O, FFN and QKᵀ/A·V per layer, and the projector (bench/README.md).");
    }
    const video = runs.find((r) => r.name === "video")?.results;
    if (video) {
        for (const p of video.prompts as any[]) {
            const r = p.result;
            const mode = r.prune ? (r.changedOnly ? "on, encoder on changed blocks only" : "on") : "off";
            rows.push({
                work: `video question, ${p.kind} clip ${video.scale.end} s, pruning ${mode} (${r.media.keptTokens} / ${r.media.tokens} tokens)`,
                ours: `encode ${fmt.s(r.timings.encodeMs)} s + prefill ${fmt.s(r.timings.prefillMs)} s; first token ${fmt.s(r.timings.promptMs)} s`,
                peer: "–",
                ratio: NaN,
                achieved: "–",
                limit: "–",
                fraction: NaN,
            });
        }
        const d = video.deviation;
        if (d) {
            notes.push(
                `Encoder on changed blocks only (screen clip, first ${d.options.end ?? 60} s): ${(d.exactEncodeMs / d.changedOnlyEncodeMs).toFixed(2)}× faster than the exact encoder (${fmt.s(d.exactEncodeMs)} → ${fmt.s(d.changedOnlyEncodeMs)} s, ${fmt.pct(d.patchesComputed / d.patches)} of the patches computed); kept tokens' embeddings within ${d.relRms.toExponential(2)} relative RMS of the exact ones (worst frame ${d.maxFrameRelRms.toExponential(2)}, random weights).`,
            );
        }
    }
    const table = markdownTable(
        ["work", "vidllama", "llama.cpp, same run", "speed, vidllama / llama.cpp", "achieved", "limit", "fraction of the limit"],
        rows.map((r) => [r.work, r.ours, r.peer, fmt.ratio(r.ratio), r.achieved, r.limit, fmt.pct(r.fraction)]),
    );
    return { table, notes: notes.join("\n\n"), rows };
}

/** The cached text model of a type (the llm scenario generated it). */
async function modelPathFor(type: string): Promise<string> {
    const { ensureTextModel } = await import("./lib/models.js");
    return ensureTextModel(type as "q8_0" | "q4_k_m" | "f16");
}

await main();

/** The addon in a results header: its CPU variant and GPU modules (older saved runs: the one backend compiled in). */
function addonLine(addon: MachineInfo["addon"]): string {
    const features = addon.cpuFeatures.join(", ");
    if (addon.cpuVariant === undefined) return `addon ${addon.gpuBackend ?? "?"} build (${features})`;
    const gpus = addon.gpuModules?.length ? `, GPU modules ${addon.gpuModules.join(", ")}` : ", no GPU modules";
    return `addon with CPU variant ${addon.cpuVariant || "none"} (${features})${gpus}`;
}
