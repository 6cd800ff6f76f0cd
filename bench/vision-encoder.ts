/**
 * Vision encoder speed and memory with the real VideoLLaMA3-2B shapes (random weights, mmproj f16), through the
 * public API: `loadVision({ mmproj, threads })` → `vision.encode(image)`.
 *
 * For each image size (448×448 and 1280×720 by default; `--sizes 1920x1080` adds minutes) one child process loads
 * the projector, warms up with one 448×448 encode, then times encodes of the size (3 at 448×448, 2 at 720p, 1 above;
 * a JPEG decoded as part of each call). It reports visual tokens (= 14-px patches: images use merge size 1), ms per
 * image, tokens/s, the CPU share it got (CPU time / (wall × threads): other work on the machine lowers it), the
 * encoder's compute buffer (`vision.computeBytes()`) and the process's peak RSS (VmHWM).
 *
 * Peers, measured in the same run:
 * - llama.cpp's own CLIP encoder (tools/mtmd) on a Qwen2-VL-style projector with the same ViT shapes, same image
 *   size, same threads (bench/lib/llama-cpp.ts builds a small driver outside the repository): ms per 14-px patch,
 *   vidllama / llama.cpp.
 * - the language model's prefill of the same image through the Session API (`loadModel({ model, mmproj })`,
 *   `session.prompt([image, "…"], { maxTokens: 1 })`, `timings.prefillMs` — the prompt's LLM part, without the
 *   encoding, which `timings.encodeMs` reports): encoder ms/token : LLM prefill ms/token.
 *
 *   node bench/.models/js/bench/vision-encoder.js [--quick] [--reps N] [--threads 2] [--sizes 448x448,1280x720]
 *       [--mmproj-types f16,q8_0,q4_k] [--text-type q8_0|f16] [--no-peer] [--no-llama-cpp] [--llama-cpp-prefill]
 * --mmproj-types: projector types to time (default f16), each against llama.cpp's CLIP with the same type (the
 * converter's per-tensor rule, e.g. SigLIP's FFN-down rows of 4304 stay f16); the LLM prefill peer uses the first.
 * --quick: 448×448 only, one timed run. --llama-cpp-prefill: the driver also times libllama's prefill of as many
 * embeddings as llama.cpp's encoder produced (a cross-check of the Session prefill).
 */
import { BENCH_GPU } from "./lib/env.js";
import { Image } from "../lib/decode/Image.js";
import { loadModel } from "../lib/Model.js";
import { loadVision } from "../lib/Vision.js";
import { memorySample, reportResult, runChild, type MemorySample } from "./lib/child.js";
import { ensureImage } from "./lib/media.js";
import { ensureMtmdDriver, runMtmd, type MtmdResult } from "./lib/llama-cpp.js";
import { ensureMmproj, ensureQwen2vlMmproj, ensureTextModel, TEXT_TYPES, type TextType } from "./lib/models.js";
import { MMPROJ_OUTPUT_TYPES, type MmprojOutputType } from "../lib/convert/quant-rules.js";
import { argChoice, argList, argNumber, argValue, fmt, hasFlag, log, machineInfo, markdownTable, median, saveResults, usageError } from "./lib/report.js";

interface VisionCaseResult {
    image: string;
    source: { width: number; height: number };
    size: { width: number; height: number };
    tokens: number;
    threads: number;
    loadMs: number;
    warmupMs: number;
    /** Timed encodes, ms each. */
    runs: number[];
    /** CPU time of this process during each timed encode, ms (user + system, all threads). */
    cpuMs: number[];
    computeBytes: number;
    weightsBytes: number;
    memoryAfterLoad: MemorySample;
    memoryEnd: MemorySample;
}

interface PrefillCaseResult {
    image: string;
    threads: number;
    contextSize: number;
    batchSize: number;
    loadMs: number;
    /** Tokens of the image alone. */
    imageTokens: number;
    /** Tokens evaluated by the prompt (image + template text). */
    promptTokens: number;
    promptMs: number;
    /** CPU time of this process during the prompt, ms. */
    promptCpuMs: number;
    /** The prompt's timings (PromptResult.timings). */
    timings: Record<string, number>;
    /** The language model's part of the prompt (`timings.prefillMs`): image embeddings and template text, ms. */
    prefillMs: number;
    /** The vision encoder's part of the prompt (`timings.encodeMs`), ms. */
    encodeMs: number;
    memoryEnd: MemorySample;
}

const WARMUP_IMAGE = [448, 448] as const;

async function visionChild(mmproj: string, imagePath: string, threads: number, reps: number): Promise<void> {
    let started = performance.now();
    await using vision = await loadVision({ mmproj, threads });
    const loadMs = performance.now() - started;
    const memoryAfterLoad = memorySample();
    started = performance.now();
    await vision.encode(Image.fromFile(ensureImage(...WARMUP_IMAGE)));
    const warmupMs = performance.now() - started;
    const runs: number[] = [];
    const cpuMs: number[] = [];
    let last;
    for (let i = 0; i < reps; i++) {
        const cpu = process.cpuUsage();
        started = performance.now();
        last = await vision.encode(Image.fromFile(imagePath)); // a new Image each time: the JPEG is decoded every run
        runs.push(performance.now() - started);
        const used = process.cpuUsage(cpu);
        cpuMs.push((used.user + used.system) / 1000);
        log(`    encode ${i + 1}/${reps}: ${fmt.ms(runs.at(-1)!)} ms, ${last.tokens} tokens, CPU share ${fmt.pct(cpuMs.at(-1)! / runs.at(-1)! / threads)}`);
    }
    const decoded = await Image.fromFile(imagePath).decode();
    const result: VisionCaseResult = {
        image: imagePath,
        source: { width: decoded.width, height: decoded.height },
        size: last!.size,
        tokens: last!.tokens,
        threads,
        loadMs,
        warmupMs,
        runs,
        cpuMs,
        computeBytes: vision.computeBytes(),
        weightsBytes: vision.info.weightsBytes,
        memoryAfterLoad,
        memoryEnd: memorySample(),
    };
    reportResult(result);
}

async function prefillChild(model: string, mmproj: string, imagePath: string, threads: number): Promise<void> {
    let started = performance.now();
    await using m = await loadModel({ model, mmproj, threads, gpu: BENCH_GPU });
    const loadMs = performance.now() - started;
    const decoded = await Image.fromFile(imagePath).decode();
    const imageTokens = m.family!.imageGeometry(decoded.width, decoded.height, m.visionInfo!).tokens;
    const contextSize = Math.ceil((imageTokens + 256) / 256) * 256;
    {
        // Warm-up: a short prompt touches every weight of the (memory-mapped) language model.
        await using warm = await m.createSession({ contextSize: 256, threads });
        await warm.prompt("Hello", { maxTokens: 2, temperature: 0 });
    }
    await using session = await m.createSession({ contextSize, threads });
    log(`    prompt with ${imageTokens} image tokens (context ${contextSize}) ...`);
    const cpu = process.cpuUsage();
    const r = await session.prompt([Image.fromFile(imagePath), "Describe this image."], { maxTokens: 1, temperature: 0 });
    const used = process.cpuUsage(cpu);
    const result: PrefillCaseResult = {
        image: imagePath,
        threads,
        contextSize: session.contextSize,
        batchSize: 512,
        loadMs,
        imageTokens,
        promptTokens: r.promptTokens.length,
        promptMs: r.timings.promptMs,
        promptCpuMs: (used.user + used.system) / 1000,
        timings: { ...r.timings },
        prefillMs: r.timings.prefillMs,
        encodeMs: r.timings.encodeMs,
        memoryEnd: memorySample(),
    };
    reportResult(result);
}

async function main(): Promise<void> {
    const quick = hasFlag("quick");
    const threads = argNumber("threads", 2, 1, 1024);
    const reps = argNumber("reps", quick ? 1 : 3, 1, 100);
    const sizes = argValue("sizes", quick ? "448x448" : "448x448,1280x720")
        .split(",")
        .map((s) => {
            const m = /^(\d+)x(\d+)$/.exec(s);
            if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) usageError(`--sizes: "${s}" is not WIDTHxHEIGHT`);
            return [Number(m[1]), Number(m[2])] as [number, number];
        });
    const textType = argChoice<TextType>("text-type", "q8_0", TEXT_TYPES);
    const mmprojTypes = argList<MmprojOutputType>("mmproj-types", ["f16"], MMPROJ_OUTPUT_TYPES);
    const peer = !hasFlag("no-peer");
    const llamaCpp = !hasFlag("no-llama-cpp");
    const llamaCppPrefill = hasFlag("llama-cpp-prefill");
    const started = new Date();
    const machine = machineInfo();
    log(`machine: ${machine.cpu}, ${machine.cpus} CPUs, load ${machine.loadAverage}; threads ${threads}, reps ${reps}`);

    const mmprojs = new Map<MmprojOutputType, string>();
    for (const type of mmprojTypes) mmprojs.set(type, await ensureMmproj({ type }));
    const mmproj = mmprojs.get(mmprojTypes[0]!)!;
    const textModel = peer || llamaCpp ? await ensureTextModel(textType) : undefined;
    let driver: string | undefined;
    const qwen2vlMmprojs = new Map<MmprojOutputType, string>();
    let llamaCppSkipped: string | undefined;
    if (llamaCpp) {
        const d = ensureMtmdDriver(log);
        if ("path" in d) {
            driver = d.path;
            for (const type of mmprojTypes) qwen2vlMmprojs.set(type, await ensureQwen2vlMmproj({ type }));
        } else {
            llamaCppSkipped = d.skipped;
            log(`llama.cpp peer skipped: ${d.skipped}`);
        }
    }

    const rows: Row[] = [];
    for (const [w, h] of sizes) {
        const image = ensureImage(w, h);
        // Sizes above 720p get one timed run: they take minutes on 2 cores.
        const n = w * h > 1280 * 720 ? 1 : w * h > 448 * 448 ? Math.min(reps, 2) : reps;
        for (const type of mmprojTypes) {
            log(`vidllama vision encoder, projector ${type}, ${w}x${h} (${n} timed run${n > 1 ? "s" : ""}) ...`);
            const row: Row = {
                width: w,
                height: h,
                mmprojType: type,
                vision: (await runChild<VisionCaseResult>(import.meta.url, ["vision", mmprojs.get(type)!, image, String(threads), String(n)])).result,
            };
            const peerMmproj = qwen2vlMmprojs.get(type);
            if (driver && peerMmproj && textModel) {
                log(`llama.cpp CLIP encoder (Qwen2-VL-style, same ViT shapes), projector ${type}, ${w}x${h} ...`);
                row.llamaCpp = await runMtmd(driver, textModel, peerMmproj, w, h, threads, n, llamaCppPrefill);
            }
            if (peer && textModel && type === mmprojTypes[0]) {
                log(`LLM prefill peer: session.prompt([image, text]) ${w}x${h} ...`);
                row.prefill = (await runChild<PrefillCaseResult>(import.meta.url, ["prefill", textModel, mmproj, image, String(threads)])).result;
            }
            rows.push(row);
        }
    }

    const encoderTable = markdownTable(
        ["image → resized", "projector", "patches = tokens", "encode ms", "tokens/s", "CPU share", "compute buffer MiB", "peak RSS MiB"],
        rows.map(({ vision: v, mmprojType }) => {
            const ms = median(v.runs);
            return [
                `${v.source.width}×${v.source.height} → ${v.size.width}×${v.size.height}`,
                mmprojType,
                String(v.tokens),
                fmt.ms(ms),
                (v.tokens / (ms / 1000)).toFixed(1),
                fmt.pct(median(v.cpuMs) / ms / v.threads),
                fmt.mib(v.computeBytes),
                fmt.mib(v.memoryEnd.peakRss),
            ];
        }),
    );
    const peerTable = markdownTable(
        ["image", "projector", "vidllama ms/patch (CPU ms/patch)", "llama.cpp CLIP: patches, ms, ms/patch (CPU ms/patch)", "vidllama / llama.cpp per patch: wall (CPU)", "LLM prefill (timings.prefillMs)", "encoder : LLM prefill, ms per token"],
        rows.map(({ vision: v, llamaCpp: l, prefill: p, mmprojType }) => {
            const ms = median(v.runs) / v.tokens;
            const cpu = median(v.cpuMs) / v.tokens;
            const lPatches = l ? l.tokens * 4 : NaN;
            const lMs = l ? median(l.runs) / lPatches : NaN;
            const lCpu = l ? median(l.cpuMs) / lPatches : NaN;
            const llm = p ? p.prefillMs / p.promptTokens : NaN;
            return [
                `${v.source.width}×${v.source.height}`,
                mmprojType,
                `${ms.toFixed(2)} (${cpu.toFixed(2)})`,
                l ? `${lPatches}, ${fmt.ms(median(l.runs))}, ${lMs.toFixed(2)} (${lCpu.toFixed(2)})` : llamaCppSkipped ? "skipped" : "–",
                l ? `${fmt.ratio(ms / lMs)} (${fmt.ratio(cpu / lCpu)})` : "–",
                p ? `${fmt.ms(p.prefillMs)} ms for ${p.promptTokens} tokens = ${llm.toFixed(2)} ms/token` : "–",
                p ? `${ms.toFixed(2)} : ${llm.toFixed(2)} = ${fmt.ratio(ms / llm)}` : "–",
            ];
        }),
    );
    const result = {
        benchmark: "vision-encoder",
        date: started.toISOString(),
        machine,
        threads,
        textType,
        mmprojs: Object.fromEntries(mmprojs),
        textModel,
        qwen2vlMmprojs: Object.fromEntries(qwen2vlMmprojs),
        llamaCppSkipped,
        rows,
    };
    const saved = await saveResults("vision-encoder", result);
    process.stdout.write(`\n${encoderTable}\n\n${peerTable}\n\nresults: ${saved}\n`);
}

interface Row {
    width: number;
    height: number;
    mmprojType: MmprojOutputType;
    vision: VisionCaseResult;
    llamaCpp?: MtmdResult;
    prefill?: PrefillCaseResult;
}

if (process.argv[2] === "--child") {
    const [, , , kind, ...rest] = process.argv;
    if (kind === "vision") await visionChild(rest[0]!, rest[1]!, Number(rest[2]), Number(rest[3]));
    else if (kind === "prefill") await prefillChild(rest[0]!, rest[1]!, rest[2]!, Number(rest[3]));
    else throw new Error(`unknown child case ${kind}`);
} else {
    await main();
}
