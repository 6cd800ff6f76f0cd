/**
 * A question about a 60-second 1280×720 video, end to end, with the real VideoLLaMA3-2B shapes (random weights:
 * mmproj f16, text q8_0) through the public API:
 *   `session.prompt([{ video: await Video.open(path, options), prune }, question], { maxTokens, temperature: 0 })`,
 * split into the stages PromptResult reports — decode (waiting for ffmpeg's frames), encode (preprocessing, DiffFP
 * and the vision encoder), prefill (the language model over the prompt) and generation — with Differential Frame
 * Pruning on (the default) and off (`prune: false`), on two generated clips (bench/lib/media.ts): a
 * screen-recording-like one (static window, typing, cursor) and a camera-like one (everything changes).
 *
 * Stages:
 * 1. decode alone, per video: `Video.open(path)` with the reference sampling (1 fps, up to 180 frames, no
 *    pre-scaling) and `video.frames()`, in its own process (time, CPU, peak RSS). The same pass computes the DiffFP
 *    keep ratio at the reference resolution with a pixel-only re-implementation (Pillow-exact bicubic resize of each
 *    frame to the target size, then the reference's rule: keep a 28×28-pixel token when its mean absolute change
 *    against the previous sampled frame, ×2 on the 0..255 scale, exceeds the threshold 0.1). It needs no model, so the
 *    keep ratio at the real 15,840-token budget comes for free. A second pass at the benchmark's frame size gives the
 *    same ratio computed independently of the encoder, as a cross-check of the prompt's own count.
 * 2. the prompts, each in a fresh process: load, warm up (a short text prompt), then one video prompt.
 *
 * Scale: at the reference budget a 60-s 720p clip is 60 frames × 264 tokens (1,056 patches each) = 15,840 tokens,
 * about half an hour of CPU per prompt on 2 cores. By default the frames are therefore pre-scaled with
 * `Video.open(…, { maxPixels: 256*144 })` (45 tokens/frame, 2,700 tokens, 10,800 patches) — same clip, same 1-fps
 * sampling, same code path, fewer tokens; `--max-pixels 0` runs the reference budget. Encoder and prefill costs per
 * token are measured at full image resolutions by bench/vision-encoder.ts.
 *
 *   node bench/.models/js/bench/video-pipeline.js [--quick] [--max-pixels N] [--seconds S] [--all] [--max-tokens N]
 *       [--threads 2] [--text-type q8_0|f16] [--no-prompts] [--kinds screen,camera]
 * --kinds screen: prompts on the screen clip only (the decode stage still reports both clips' keep ratios).
 * --quick: the first 10 s of each clip; --all: also the camera clip without pruning (its keep ratio is ~1, so it
 * repeats the pruned run); --no-prompts: decode stage only.
 */
import { BENCH_GPU } from "./lib/env.js";
import { Video } from "../lib/decode/Video.js";
import { loadModel } from "../lib/Model.js";
import { loadVision } from "../lib/Vision.js";
import { native } from "../lib/native/load.js";
import { targetSizes } from "../lib/preprocess/resize-rule.js";
import type { PromptResult } from "../lib/Session.js";
import { childrenCpuMs, memorySample, reportResult, runChild, type MemorySample } from "./lib/child.js";
import { ensureVideo, VIDEO_DESCRIPTIONS, VIDEO_KINDS, type VideoKind } from "./lib/media.js";
import { ensureMmproj, ensureTextModel, TEXT_TYPES, type TextType } from "./lib/models.js";
import { argChoice, argList, argNumber, fmt, hasFlag, log, machineInfo, markdownTable, saveResults } from "./lib/report.js";

/** The projector's video settings (docs/gguf-format.md; the generated mmproj has the reference values). */
const PATCH = 14;
const VIDEO_MERGE = 2;
const MIN_TOKENS = 16;
const MAX_TOKENS = 16384;
const DIFF_THRESHOLD = 0.1;
const QUESTION = "What happens in this video? Describe it briefly.";

interface KeepCount {
    /** Frame size after the resize rule. */
    target: { width: number; height: number };
    frames: number;
    tokensPerFrame: number;
    tokens: number;
    kept: number;
}

interface DecodeCaseResult {
    video: string;
    options: { end?: number; maxPixels?: number };
    /** Frame size delivered by ffmpeg. */
    frameSize: { width: number; height: number };
    frames: number;
    /** Time spent waiting for frames from ffmpeg (opening, probing and decoding), ms. */
    decodeMs: number;
    /** The whole pass including the resize and comparison of each frame, ms. */
    passMs: number;
    /** CPU time of this process, ms. */
    cpuMs: number;
    /** CPU time of the ffmpeg/ffprobe children, ms. */
    ffmpegCpuMs: number;
    /** Pixel-only DiffFP keep count at this pass's target size. */
    keep: KeepCount;
    memoryEnd: MemorySample;
}

interface PromptCaseResult {
    video: string;
    prune: boolean;
    /** prune: { encodeChangedOnly: true }: the encoder computed only the kept blocks. */
    changedOnly: boolean;
    options: { end?: number; maxPixels?: number };
    threads: number;
    contextSize: number;
    loadMs: number;
    warmupMs: number;
    timings: PromptResult["timings"];
    cpuMs: number;
    promptTokens: number;
    generatedTokens: number;
    stopReason: string;
    media: {
        tokens: number;
        keptTokens: number;
        frames: number;
        grid: { height: number; width: number };
        warnings: string[];
        encoder: { mode: string; patchesComputed: number; patches: number };
    };
    visionComputeBytes: number;
    memoryEnd: MemorySample;
}

function openOptions(end: number | undefined, maxPixels: number | undefined): { end?: number; maxPixels?: number } {
    return { ...(end !== undefined ? { end } : {}), ...(maxPixels !== undefined ? { maxPixels } : {}) };
}

/** Mean absolute difference test of one 28×28×3 token block: keep iff 2·mean|Δu8| > threshold. */
function keptTokens(prev: Uint8Array, cur: Uint8Array, width: number, height: number, threshold: number): number {
    const block = PATCH * VIDEO_MERGE;
    const gw = width / block;
    const gh = height / block;
    const values = block * block * 3;
    let kept = 0;
    for (let by = 0; by < gh; by++) {
        for (let bx = 0; bx < gw; bx++) {
            let sum = 0;
            for (let y = 0; y < block; y++) {
                let o = ((by * block + y) * width + bx * block) * 3;
                for (let i = 0; i < block * 3; i++, o++) sum += Math.abs(cur[o]! - prev[o]!);
            }
            if ((2 * sum) / values > threshold) kept++;
        }
    }
    return Math.max(kept, 1); // min_tokens = 1 per frame
}

async function decodeChild(path: string, end: number | undefined, maxPixels: number | undefined): Promise<void> {
    const options = openOptions(end, maxPixels);
    const cpu = process.cpuUsage();
    const childCpu = childrenCpuMs();
    const started = performance.now();
    await using video = await Video.open(path, options);
    const plan = await video.plan();
    const openMs = performance.now() - started;
    const [target] = targetSizes([{ height: video.height, width: video.width, frames: plan.count, mergeSize: VIDEO_MERGE }], {
        patchSize: PATCH,
        minTokens: MIN_TOKENS,
        maxTokens: MAX_TOKENS,
    });
    const tw = target!.width;
    const th = target!.height;
    const tokensPerFrame = (tw / (PATCH * VIDEO_MERGE)) * (th / (PATCH * VIDEO_MERGE));
    let frames = 0;
    let kept = 0;
    let prev: Uint8Array | undefined;
    let decodeMs = openMs;
    let t = performance.now();
    for await (const frame of video.frames()) {
        decodeMs += performance.now() - t; // time spent waiting for ffmpeg, not resizing/comparing below
        frames++;
        const resized = await native().resizeRgb(frame.data, frame.width, frame.height, tw, th);
        kept += prev ? keptTokens(prev, resized, tw, th, DIFF_THRESHOLD) : tokensPerFrame;
        prev = resized;
        t = performance.now();
    }
    const used = process.cpuUsage(cpu);
    const result: DecodeCaseResult = {
        video: path,
        options,
        frameSize: { width: video.width, height: video.height },
        frames,
        decodeMs,
        passMs: performance.now() - started,
        cpuMs: (used.user + used.system) / 1000,
        ffmpegCpuMs: childrenCpuMs() - childCpu,
        keep: { target: { width: tw, height: th }, frames, tokensPerFrame, tokens: frames * tokensPerFrame, kept },
        memoryEnd: memorySample(),
    };
    reportResult(result);
}

/** Kept-token embeddings of the exact encoder and of encodeChangedOnly on the same clip: their difference and times. */
interface DeviationResult {
    video: string;
    options: { end?: number; maxPixels?: number };
    frames: number;
    keptTokens: number;
    tokens: number;
    exactEncodeMs: number;
    changedOnlyEncodeMs: number;
    patchesComputed: number;
    patches: number;
    /** Relative RMS of (changed-only − exact) over all kept tokens, and the largest per frame. */
    relRms: number;
    maxFrameRelRms: number;
    /** Mean cosine similarity of the kept tokens' embeddings (changed-only vs exact). */
    meanCosine: number;
}

async function deviationChild(mmproj: string, path: string, threads: number, end: number | undefined, maxPixels: number | undefined): Promise<void> {
    const options = openOptions(end, maxPixels);
    await using vision = await loadVision({ mmproj, threads, gpu: BENCH_GPU });
    let started = performance.now();
    const exact = await vision.encodeVideo(await Video.open(path, options), { prune: true });
    const exactEncodeMs = performance.now() - started;
    started = performance.now();
    const changed = await vision.encodeVideo(await Video.open(path, options), { prune: { encodeChangedOnly: true } });
    const changedOnlyEncodeMs = performance.now() - started;
    if (exact.embeddings.length !== changed.embeddings.length) throw new Error("the two encoders kept different tokens");
    const d = exact.width;
    let num = 0;
    let den = 0;
    let cosSum = 0;
    let maxFrame = 0;
    let offset = 0;
    for (const frame of exact.frames) {
        let fn = 0;
        let fd = 0;
        for (let t = 0; t < frame.keptTokens; t++, offset += d) {
            let dot = 0;
            let na = 0;
            let nb = 0;
            for (let i = 0; i < d; i++) {
                const a = changed.embeddings[offset + i]!;
                const b = exact.embeddings[offset + i]!;
                fn += (a - b) ** 2;
                fd += b * b;
                dot += a * b;
                na += a * a;
                nb += b * b;
            }
            cosSum += dot / Math.sqrt(na * nb);
        }
        num += fn;
        den += fd;
        maxFrame = Math.max(maxFrame, Math.sqrt(fn / fd));
    }
    const result: DeviationResult = {
        video: path,
        options,
        frames: exact.frames.length,
        keptTokens: exact.tokens,
        tokens: exact.frames.reduce((a, f) => a + f.tokens, 0),
        exactEncodeMs,
        changedOnlyEncodeMs,
        patchesComputed: changed.encoder.patchesComputed,
        patches: changed.encoder.patches,
        relRms: Math.sqrt(num / den),
        maxFrameRelRms: maxFrame,
        meanCosine: cosSum / Math.max(1, exact.tokens),
    };
    reportResult(result);
}

async function promptChild(model: string, mmproj: string, path: string, prune: boolean, changedOnly: boolean, threads: number, maxTokens: number, end: number | undefined, maxPixels: number | undefined): Promise<void> {
    const options = openOptions(end, maxPixels);
    let started = performance.now();
    await using m = await loadModel({ model, mmproj, threads, gpu: BENCH_GPU });
    const loadMs = performance.now() - started;
    started = performance.now();
    {
        await using warm = await m.createSession({ contextSize: 256, threads });
        await warm.prompt("Hello", { maxTokens: 2, temperature: 0 });
    }
    const warmupMs = performance.now() - started;
    await using session = await m.createSession({ threads });
    await using video = await Video.open(path, options);
    let lastLog = 0;
    const cpu = process.cpuUsage();
    const r = await session.prompt([{ video, ...(prune ? (changedOnly ? { prune: { encodeChangedOnly: true } } : {}) : { prune: false as const }) }, QUESTION], {
        maxTokens,
        temperature: 0,
        onMediaProgress: (p) => {
            const now = performance.now();
            if (now - lastLog > 30_000) {
                lastLog = now;
                log(`    ${JSON.stringify(p)}`);
            }
        },
        onPromptProgress: ({ evaluated, total }) => {
            const now = performance.now();
            if (now - lastLog > 30_000) {
                lastLog = now;
                log(`    prefill ${evaluated}/${total}`);
            }
        },
    });
    const used = process.cpuUsage(cpu);
    const media = r.media[0];
    if (!media || media.kind !== "video") throw new Error("the prompt reported no video");
    const result: PromptCaseResult = {
        video: path,
        prune,
        changedOnly,
        options,
        threads,
        contextSize: session.contextSize,
        loadMs,
        warmupMs,
        timings: r.timings,
        cpuMs: (used.user + used.system) / 1000,
        promptTokens: r.promptTokens.length,
        generatedTokens: r.tokens.length,
        stopReason: r.stopReason,
        media: { tokens: media.tokens, keptTokens: media.keptTokens, frames: media.frames.length, grid: media.grid, warnings: media.warnings, encoder: media.encoder },
        visionComputeBytes: m.vision?.computeBytes() ?? NaN,
        memoryEnd: memorySample(),
    };
    reportResult(result);
}

async function main(): Promise<void> {
    const quick = hasFlag("quick");
    const threads = argNumber("threads", 2, 1, 1024);
    const maxTokens = argNumber("max-tokens", 16, 1, 100000);
    const maxPixelsArg = argNumber("max-pixels", 256 * 144, 0);
    const maxPixels = maxPixelsArg > 0 ? maxPixelsArg : undefined;
    const seconds = argNumber("seconds", quick ? 10 : 60, 1, 60, true);
    const end = seconds < 60 ? seconds : undefined;
    const textType = argChoice<TextType>("text-type", "q8_0", TEXT_TYPES);
    const all = hasFlag("all");
    const only = argList<VideoKind>("kinds", VIDEO_KINDS, VIDEO_KINDS);
    const prompts = !hasFlag("no-prompts");
    const started = new Date();
    const machine = machineInfo();
    log(`machine: ${machine.cpu}, ${machine.cpus} CPUs, load ${machine.loadAverage}; threads ${threads}`);

    const kinds = VIDEO_KINDS;
    const videos = Object.fromEntries(kinds.map((k) => [k, ensureVideo(k)])) as Record<VideoKind, string>;
    const mmproj = prompts ? await ensureMmproj() : undefined;
    const textModel = prompts ? await ensureTextModel(textType) : undefined;

    // 1. Decode alone (reference sampling, no pre-scaling), with the pixel-only keep ratio at the reference budget;
    //    and at the benchmark's frame size when it differs.
    const decode: Record<string, { reference: DecodeCaseResult; benchmark?: DecodeCaseResult }> = {};
    for (const kind of kinds) {
        log(`decode ${kind} (reference sampling${end ? `, first ${end} s` : ""}) ...`);
        const reference = (await runChild<DecodeCaseResult>(import.meta.url, ["decode", videos[kind], String(end ?? ""), ""])).result;
        decode[kind] = { reference };
        if (maxPixels !== undefined) {
            log(`decode ${kind} (maxPixels ${maxPixels}) ...`);
            decode[kind]!.benchmark = (await runChild<DecodeCaseResult>(import.meta.url, ["decode", videos[kind], String(end ?? ""), String(maxPixels)])).result;
        }
    }

    // 2. The prompts.
    const cases: Array<{ kind: VideoKind; prune: boolean; changedOnly: boolean }> = [
        { kind: "screen" as const, prune: true, changedOnly: false },
        { kind: "screen" as const, prune: true, changedOnly: true },
        { kind: "screen" as const, prune: false, changedOnly: false },
        { kind: "camera" as const, prune: true, changedOnly: false },
        ...(all ? [{ kind: "camera" as const, prune: true, changedOnly: true }, { kind: "camera" as const, prune: false, changedOnly: false }] : []),
    ].filter((c) => only.includes(c.kind));
    const runs: Array<{ kind: VideoKind; result: PromptCaseResult; wallMs: number }> = [];
    if (prompts) {
        for (const c of cases) {
            log(`prompt: ${c.kind}, prune ${c.prune ? (c.changedOnly ? "on, changed blocks only" : "on") : "off"} ...`);
            const o = await runChild<PromptCaseResult>(import.meta.url, [
                "prompt", textModel!, mmproj!, videos[c.kind], c.prune ? (c.changedOnly ? "c" : "1") : "0", String(threads), String(maxTokens), String(end ?? ""), String(maxPixels ?? ""),
            ]);
            runs.push({ kind: c.kind, result: o.result, wallMs: o.wallMs });
        }
    }
    // 3. The changed-only encoder's deviation from the exact one, on the screen clip (at most its first 20 s).
    let deviation: DeviationResult | undefined;
    if (prompts && only.includes("screen")) {
        const devEnd = Math.min(end ?? 60, 20);
        log(`encoder deviation: screen, first ${devEnd} s, exact vs changed blocks only ...`);
        deviation = (await runChild<DeviationResult>(import.meta.url, ["deviation", mmproj!, videos.screen, String(threads), String(devEnd), String(maxPixels ?? "")])).result;
    }

    const decodeTable = markdownTable(
        ["video", "frames", "decode s", "CPU s (node + ffmpeg)", "peak RSS MiB", "keep ratio, reference budget (tokens kept / before)", "keep ratio at benchmark size"],
        kinds.map((k) => {
            const d = decode[k]!;
            const ratio = (x: KeepCount) => `${fmt.pct(x.kept / x.tokens)} (${x.kept} / ${x.tokens}, ${x.target.width}×${x.target.height}, ${x.tokensPerFrame}/frame)`;
            return [k, String(d.reference.frames), fmt.s(d.reference.decodeMs), `${fmt.s(d.reference.cpuMs)} + ${fmt.s(d.reference.ffmpegCpuMs)}`, fmt.mib(d.reference.memoryEnd.peakRss), ratio(d.reference.keep), d.benchmark ? ratio(d.benchmark.keep) : "–"];
        }),
    );
    const promptTable = markdownTable(
        ["video", "prune", "frames × tok", "tokens kept", "encoder patches computed", "prompt tokens", "decode s", "encode s", "prefill s", "generation s (tok/s)", "prompt s", "CPU share", "peak RSS MiB"],
        runs.map(({ kind, result: r }) => [
            kind,
            r.prune ? (r.changedOnly ? "on, changed blocks only" : "on") : "off",
            `${r.media.frames} × ${r.media.grid.height * r.media.grid.width}`,
            `${r.media.keptTokens} / ${r.media.tokens} (${fmt.pct(r.media.keptTokens / r.media.tokens)})`,
            `${r.media.encoder.patchesComputed} / ${r.media.encoder.patches} (${fmt.pct(r.media.encoder.patchesComputed / r.media.encoder.patches)})`,
            String(r.promptTokens),
            fmt.s(r.timings.decodeMs),
            fmt.s(r.timings.encodeMs),
            fmt.s(r.timings.prefillMs),
            `${fmt.s(r.timings.generationMs)} (${r.generatedTokens} tok, ${r.timings.tokensPerSecond.toFixed(1)}/s)`,
            fmt.s(r.timings.promptMs),
            fmt.pct(r.cpuMs / (r.timings.totalMs * r.threads)),
            fmt.mib(r.memoryEnd.peakRss),
        ]),
    );
    const result = {
        benchmark: "video-pipeline",
        date: started.toISOString(),
        machine,
        threads,
        textType,
        videos: Object.fromEntries(kinds.map((k) => [k, { path: videos[k], description: VIDEO_DESCRIPTIONS[k] }])),
        scale: { end: end ?? 60, maxPixels: maxPixels ?? null },
        decode,
        prompts: runs,
        deviation,
    };
    const saved = await saveResults("video-pipeline", result);
    const deviationTable = deviation
        ? markdownTable(
              ["clip", "frames", "tokens kept", "exact encode s", "changed-only encode s", "speed-up", "patches computed", "rel. RMS vs exact (worst frame)", "mean cosine"],
              [[
                  `screen, first ${deviation.options.end ?? 60} s`,
                  String(deviation.frames),
                  `${deviation.keptTokens} / ${deviation.tokens}`,
                  fmt.s(deviation.exactEncodeMs),
                  fmt.s(deviation.changedOnlyEncodeMs),
                  `${(deviation.exactEncodeMs / deviation.changedOnlyEncodeMs).toFixed(2)}×`,
                  `${deviation.patchesComputed} / ${deviation.patches} (${fmt.pct(deviation.patchesComputed / deviation.patches)})`,
                  `${deviation.relRms.toExponential(2)} (${deviation.maxFrameRelRms.toExponential(2)})`,
                  deviation.meanCosine.toFixed(5),
              ]],
          )
        : "";
    process.stdout.write(`\n${decodeTable}\n\n${prompts ? `${promptTable}\n\n` : ""}${deviationTable ? `${deviationTable}\n\n` : ""}results: ${saved}\n`);
}

if (process.argv[2] === "--child") {
    const [, , , kind, ...a] = process.argv;
    const optNum = (s: string | undefined) => (s ? Number(s) : undefined);
    if (kind === "decode") await decodeChild(a[0]!, optNum(a[1]), optNum(a[2]));
    else if (kind === "prompt") await promptChild(a[0]!, a[1]!, a[2]!, a[3] !== "0", a[3] === "c", Number(a[4]), Number(a[5]), optNum(a[6]), optNum(a[7]));
    else if (kind === "deviation") await deviationChild(a[0]!, a[1]!, Number(a[2]), optNum(a[3]), optNum(a[4]));
    else throw new Error(`unknown child case ${kind}`);
} else {
    await main();
}
