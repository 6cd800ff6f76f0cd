/**
 * Live video through the public `Stream` API (`model.createStream(options)`), with the real VideoLLaMA3-2B shapes
 * (random weights: mmproj f16, text q8_0): frames of a simulated 1-fps camera pushed with
 * `stream.pushFrame({ data, width, height, timestamp })`, sized by the stream's default rule (`budgetFrames` 180:
 * 1280×720 → 336×196, 84 tokens per frame), Differential Frame Pruning on (the default).
 *
 * Three figures, each case in its own child process (bench/lib/child.ts):
 * 1. **Sustained ingest** per scene (`ingest` child): N frames pushed as fast as the stream takes them
 *    (`queue: { policy: "wait" }`: back-pressure, nothing dropped); frames/s over the wall time of ingestion, and ms
 *    per frame split into encode (preprocessing, pruning, vision encoder, projector) and append (the language model
 *    evaluating the frame's tokens), from the `frame` events (`e.encodeMs`, `e.appendMs`, `e.keptTokens`). The first
 *    frame (never pruned; first use of the encoder's graph) is reported apart from the steady-state medians.
 * 2. **Time to first token** in the same child: a short question (`stream.ask(q, { maxTokens, temperature: 0,
 *    keep: false })`, so the cache is left as it was) on the empty stream (before the first frame; after one
 *    unreported warm-up question), then after F frames for each F of `--ask-at` (default: N): `ttftMs` with F frames
 *    in the cache / `ttftMs` on the empty stream (goal ≤ 1.5×). Peer: re-prefilling what the cache holds — after the
 *    stream is closed, a fresh Session evaluates a prompt of as many positions as the cache held at the last ask
 *    point plus the question (`session.prompt(text, { maxTokens: 1 })`, `timings.prefillMs`), i.e. what answering
 *    would cost without a live cache. The filler is text, not visual embeddings: the language model's cost per
 *    position is the same (1-D RoPE; one embedding row per position either way).
 * 3. **Memory over a long stream** (`memory` child): M frames of one scene pushed with `queue: { policy: "wait" }`
 *    (faster than real time: as fast as ingestion goes), a frame window (`window: { frames: W }`) so the cache is
 *    bounded, and a kept question every Q frames (`maxTokens` 8; turns accumulate until `textWindow`, 256 positions
 *    by default here, then leave too). Every K frames (in the `frame` event, after a forced GC: `--expose-gc`
 *    through `v8.setFlagsFromString`) it samples
 *    `process.memoryUsage()` (rss, heap, external), /proc/self/status (RssAnon, RssFile) and `stream.stats()`
 *    (kvBytes, kvTokens). Slopes in MB per hour of stream time (1 fps: frames = seconds; MB = 10^6 bytes) by a
 *    least-squares fit over the samples after the warm-up frames (goal ≤ 50 MB/h for RSS).
 *
 * Scenes (frames are generated once and cached under bench/.models/media/):
 * - `static`: one still image (ffmpeg's testsrc2 JPEG at the frame size), the same pixels every frame; with
 *   `--static-noise A` each frame gets fresh uniform noise in [-A, A] per byte. (DiffFP keeps a 28×28 token when
 *   its mean |Δ| on the [-1, 1] scale ×255 exceeds 0.1, i.e. a mean change above 0.05 of a u8 step after the
 *   resize: even ±1 noise can defeat it.)
 * - `moving`: the `camera` clip of bench/lib/media.ts (zooming mandelbrot + temporal sensor noise, every region
 *   changes), sampled at 1 fps (60 frames), resized to the frame size, looped.
 * - `screen`: the `screen` clip of bench/lib/media.ts (static window, typing, cursor), the same way.
 *
 * Cost on a 2-core machine (encoder ~14 ms per 14-px patch; LLM ~50 ms per position in large batches, and a floor of
 * one pass over the weights per evaluation): a 1280×720 frame is 336 patches (~5 s) to encode and 84 tokens (~4 s)
 * to append when nothing is pruned; a pruned frame still costs the encoder and three small LLM evaluations (text
 * before, visual tokens, text after). The memory run therefore has its own frame size, by default 112×112 (the
 * 16-token minimum, 64 patches), so that an hour of stream (3,600 frames) takes hours, not a day;
 * `--memory-frame-size 1280x720` measures it on the real frame size.
 *
 *   node bench/.models/js/bench/stream.js [--quick] [--frames N] [--frame-size 1280x720] [--scenes static,moving]
 *       [--ask-at 30,180] [--reps 3] [--question "…"] [--max-tokens 4] [--no-reprefill] [--ingest-window F]
 *       [--memory-frames M] [--memory-frame-size WxH] [--memory-scene moving] [--window W] [--text-window T] [--sample-every K]
 *       [--warmup-frames F] [--memory-ask-every Q] [--no-memory] [--no-ingest] [--static-noise A]
 *       [--budget-frames 180] [--prune on|off] [--context N] [--threads 2] [--text-type q8_0|f16]
 * Defaults: scenes static and moving, 180 frames each (3 minutes of stream; TTFT asked after the last), 3 questions
 * per ask point; memory run of 3,600 moving 112×112 frames, window 60 frames, a sample every 30 frames, fitted
 * after 600 frames, a kept question every 30 frames.
 * --quick: 2 frames per scene, one question per point, and a 12-frame memory run with a 4-frame window (a smoke run
 * of a few minutes; its slopes are over seconds of stream and mean nothing).
 * --frames 0 or --no-ingest skips figures 1–2; --memory-frames 0 or --no-memory skips figure 3.
 */
import { BENCH_GPU } from "./lib/env.js";
import { closeSync, existsSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Image } from "../lib/decode/Image.js";
import { Video } from "../lib/decode/Video.js";
import { familyOf } from "../lib/family/index.js";
import { loadModel, type Model } from "../lib/Model.js";
import { native } from "../lib/native/load.js";
import type { FrameEvent, Stream, StreamOptions, StreamStats } from "../lib/Stream.js";
import { Random } from "../test/fixtures/random.js";
import { memorySample, reportResult, runChild, type MemorySample } from "./lib/child.js";
import { MEDIA_DIR } from "./lib/env.js";
import { ensureImage, ensureVideo, VIDEO_DESCRIPTIONS, type VideoKind } from "./lib/media.js";
import { ensureMmproj, ensureTextModel, TEXT_TYPES, type TextType } from "./lib/models.js";
import { argChoice, argList, argNumber, argValue, fmt, hasFlag, log, machineInfo, markdownTable, median, saveResults, usageError } from "./lib/report.js";

const SCENES = ["static", "moving", "screen"] as const;
type Scene = (typeof SCENES)[number];
const SCENE_CLIP: Readonly<Record<Exclude<Scene, "static">, VideoKind>> = { moving: "camera", screen: "screen" };
const DEFAULT_QUESTION = "What is happening right now?";
const MEMORY_QUESTION = "What changed in the last minute?";
/** Bump when the cached raw frames' recipe changes. */
const RAW_VERSION = "v1";

interface Size {
    width: number;
    height: number;
}

/** What a child is asked to do (passed as one JSON argument). */
interface CommonConfig {
    model: string;
    mmproj: string;
    threads: number;
    scene: Scene;
    frameSize: Size;
    /** Raw RGB frames (moving / screen scenes), `frames` of frameSize each. */
    raw?: { path: string; frames: number };
    /** Still image (static scene). */
    image?: string;
    staticNoise: number;
    budgetFrames: number;
    prune: boolean;
    contextSize?: number;
}

interface IngestConfig extends CommonConfig {
    frames: number;
    askAt: number[];
    reps: number;
    question: string;
    maxTokens: number;
    reprefill: boolean;
    window?: number;
}

interface MemoryConfig extends CommonConfig {
    frames: number;
    window: number;
    textWindow: number;
    sampleEvery: number;
    warmupFrames: number;
    askEvery: number;
}

// ---- frames ---------------------------------------------------------------------------------------------------------

function rawPath(kind: VideoKind, size: Size): string {
    return join(MEDIA_DIR, `${kind}-1fps-${size.width}x${size.height}-${RAW_VERSION}.rgb`);
}

/**
 * The clip's 1-fps frames (60), resized (Pillow-exact bicubic) to `size` when it differs, written once as packed RGB
 * to a raw file that the children read a frame at a time (no decoding, no pool in memory while they are measured).
 */
async function ensureRawFrames(kind: VideoKind, size: Size): Promise<{ path: string; frames: number }> {
    const path = rawPath(kind, size);
    const bytes = size.width * size.height * 3;
    if (existsSync(path) && statSync(path).size % bytes === 0 && statSync(path).size > 0) return { path, frames: statSync(path).size / bytes };
    const clip = ensureVideo(kind);
    log(`decoding ${clip} at 1 fps → ${size.width}×${size.height} raw frames ...`);
    const tmp = `${path}.tmp-${process.pid}`;
    const fd = openSync(tmp, "w");
    let frames = 0;
    try {
        await using video = await Video.open(clip);
        for await (const f of video.frames()) {
            const data = f.width === size.width && f.height === size.height ? f.data : await native().resizeRgb(f.data, f.width, f.height, size.width, size.height);
            writeSync(fd, data);
            frames++;
        }
        closeSync(fd);
        renameSync(tmp, path);
    } catch (err) {
        closeSync(fd);
        rmSync(tmp, { force: true });
        throw err;
    }
    return { path, frames };
}

/** Frames of one scene: `frame(i)` gives frame i's pixels (a new array when they change). */
interface FrameSource {
    frame(i: number): Uint8Array;
    close(): void;
}

async function openFrames(c: CommonConfig): Promise<FrameSource> {
    const bytes = c.frameSize.width * c.frameSize.height * 3;
    if (c.raw) {
        const fd = openSync(c.raw.path, "r");
        const count = c.raw.frames;
        return {
            frame(i) {
                const data = new Uint8Array(bytes);
                readSync(fd, data, 0, bytes, (i % count) * bytes);
                return data;
            },
            close: () => closeSync(fd),
        };
    }
    const decoded = await Image.fromFile(c.image!).decode();
    if (decoded.width !== c.frameSize.width || decoded.height !== c.frameSize.height) throw new Error(`${c.image} is ${decoded.width}×${decoded.height}, not the frame size`);
    const base = decoded.data;
    const a = c.staticNoise;
    const rng = new Random(0x5eed);
    return {
        frame() {
            if (a === 0) return base;
            const out = new Uint8Array(bytes);
            for (let j = 0; j < bytes; j++) out[j] = Math.min(255, Math.max(0, base[j]! + rng.int(2 * a + 1) - a));
            return out;
        },
        close: () => {},
    };
}

// ---- children -------------------------------------------------------------------------------------------------------

/** A forced full GC (Node's `gc`, exposed at run time), or undefined where that is not possible. */
function exposeGc(): (() => void) | undefined {
    const existing = (globalThis as { gc?: () => void }).gc;
    if (existing) return existing;
    try {
        setFlagsFromString("--expose-gc");
        return runInNewContext("gc") as () => void;
    } catch {
        return undefined;
    }
}

async function loadAndWarm(c: CommonConfig): Promise<{ model: Model; loadMs: number; warmupMs: number; target: Size; frameTokens: number }> {
    let started = performance.now();
    const model = await loadModel({ model: c.model, mmproj: c.mmproj, threads: c.threads, gpu: BENCH_GPU });
    const loadMs = performance.now() - started;
    started = performance.now();
    {
        // Touches every weight of the memory-mapped language model.
        await using warm = await model.createSession({ contextSize: 256, threads: c.threads });
        await warm.prompt("Hello", { maxTokens: 2, temperature: 0 });
    }
    const warmupMs = performance.now() - started;
    const info = model.visionInfo!;
    const geometry = familyOf(info).streamFrameGeometry(c.frameSize.width, c.frameSize.height, c.budgetFrames, info);
    return { model, loadMs, warmupMs, target: geometry.resize, frameTokens: geometry.tokens };
}

function streamOptions(c: CommonConfig, window: number | undefined, textWindow?: number): StreamOptions {
    return {
        threads: c.threads,
        ...(textWindow !== undefined ? { textWindow } : {}),
        budgetFrames: c.budgetFrames,
        queue: { policy: "wait", size: 4 },
        ...(c.prune ? {} : { prune: false as const }),
        ...(window ? { window: { frames: window } } : {}),
        ...(c.contextSize ? { contextSize: c.contextSize } : {}),
    };
}

interface FrameRecord {
    timestamp: number;
    tokens: number;
    keptTokens: number;
    encodeMs: number;
    appendMs: number;
    queueDepth: number;
}

interface AskRecord {
    ttftMs: number;
    /** CPU time of this process during the question, ms (other work on the machine lowers the share). */
    cpuMs: number;
    promptMs: number;
    generationMs: number;
    answerTokens: number;
}

interface AskPoint {
    /** Frames pushed before the question (0: the empty stream). */
    framesPushed: number;
    framesInCache: number;
    kvTokens: number;
    /** 1-minute load average of the machine when the question was asked. */
    loadAverage: number;
    asks: AskRecord[];
}

interface IngestResult {
    scene: Scene;
    frameSize: Size;
    target: Size;
    frameTokens: number;
    threads: number;
    contextSize: number;
    loadMs: number;
    warmupMs: number;
    /** Wall time of ingestion (pushes until `idle()`), questions excluded, ms. */
    ingestWallMs: number;
    ingestCpuMs: number;
    framesPushed: number;
    frames: FrameRecord[];
    evictions: { events: number; frames: number };
    empty: AskPoint;
    points: AskPoint[];
    statsEnd: StreamStats;
    reprefill?: { targetPositions: number; promptTokens: number; prefillMs: number; promptMs: number; contextSize: number };
    memoryEnd: MemorySample;
}

async function askPoint(stream: Stream, c: IngestConfig, framesPushed: number, reps: number): Promise<AskPoint> {
    await stream.idle();
    const before = stream.stats();
    const asks: AskRecord[] = [];
    const loadAverage = loadavg()[0]!;
    for (let r = 0; r < reps; r++) {
        const cpu = process.cpuUsage();
        const a = await stream.ask(c.question, { maxTokens: c.maxTokens, temperature: 0, keep: false });
        const used = process.cpuUsage(cpu);
        asks.push({ ttftMs: a.ttftMs, cpuMs: (used.user + used.system) / 1000, promptMs: a.promptMs, generationMs: a.generationMs, answerTokens: a.tokens.length });
    }
    log(`    ${framesPushed} frames, ${before.kvTokens} positions: TTFT ${asks.map((a) => fmt.ms(a.ttftMs)).join(", ")} ms (load ${loadAverage.toFixed(2)})`);
    return { framesPushed, framesInCache: before.framesInCache, kvTokens: before.kvTokens, loadAverage, asks };
}

/** Filler text of about `n` tokens (common words, cut at n tokens). */
function fillerText(model: Model, n: number): string {
    const words = "the river runs past an old mill where children play in summer and farmers bring grain to town".split(" ");
    const parts: string[] = [];
    for (let i = 0; i < n + 16; i++) parts.push(words[i % words.length]!);
    const tokens = model.tokenize(parts.join(" ")).slice(0, Math.max(1, n));
    return model.detokenize(tokens);
}

async function ingestChild(c: IngestConfig): Promise<void> {
    const { model, loadMs, warmupMs, target, frameTokens } = await loadAndWarm(c);
    const source = await openFrames(c);
    const frames: FrameRecord[] = [];
    const evictions = { events: 0, frames: 0 };
    let stream: Stream | undefined = await model.createStream(streamOptions(c, c.window));
    stream.on("frame", (e: FrameEvent) => frames.push({ timestamp: e.timestamp, tokens: e.tokens, keptTokens: e.keptTokens, encodeMs: e.encodeMs, appendMs: e.appendMs, queueDepth: e.queueDepth }));
    stream.on("evict", (e) => {
        evictions.events++;
        evictions.frames += e.frames;
    });
    stream.on("error", (e) => log(`    stream error: ${e.message}`));
    const contextSize = stream.stats().contextSize;
    log(`  ${c.scene}: ${c.frameSize.width}×${c.frameSize.height} → ${target.width}×${target.height} (${frameTokens} tokens/frame), context ${contextSize}`);
    await stream.ask(c.question, { maxTokens: c.maxTokens, temperature: 0, keep: false }); // warm-up question
    const empty = await askPoint(stream, c, 0, c.reps);
    const askAt = new Set(c.askAt);
    const points: AskPoint[] = [];
    let ingestWallMs = 0;
    let ingestCpuMs = 0;
    let segment = performance.now();
    let cpu = process.cpuUsage();
    let lastLog = performance.now();
    const endSegment = async () => {
        await stream!.idle();
        ingestWallMs += performance.now() - segment;
        const used = process.cpuUsage(cpu);
        ingestCpuMs += (used.user + used.system) / 1000;
    };
    const startSegment = () => {
        segment = performance.now();
        cpu = process.cpuUsage();
    };
    for (let i = 0; i < c.frames; i++) {
        await stream.pushFrame({ data: source.frame(i), width: c.frameSize.width, height: c.frameSize.height, timestamp: i });
        if (performance.now() - lastLog > 30_000) {
            lastLog = performance.now();
            const f = frames.at(-1);
            log(`    frame ${frames.length}/${c.frames}${f ? `: encode ${fmt.ms(f.encodeMs)} ms, append ${fmt.ms(f.appendMs)} ms, kept ${f.keptTokens}/${f.tokens}` : ""}`);
        }
        if (askAt.has(i + 1)) {
            await endSegment();
            points.push(await askPoint(stream, c, i + 1, c.reps));
            startSegment();
        }
    }
    if (!askAt.has(c.frames)) await endSegment();
    const statsEnd = stream.stats();
    await stream.close();
    stream = undefined;
    source.close();

    let reprefill: IngestResult["reprefill"];
    const last = points.at(-1);
    if (c.reprefill && last) {
        // The question as a user turn: its words plus the template's role markers (~8 tokens).
        const questionPositions = model.tokenize(c.question).length + 8;
        const targetPositions = last.kvTokens + questionPositions;
        const contextSize = Math.ceil((targetPositions + 64) / 256) * 256;
        log(`  re-prefill peer: a fresh Session evaluating ~${targetPositions} positions (context ${contextSize}) ...`);
        await using session = await model.createSession({ contextSize, threads: c.threads });
        // The Session's template adds about as many tokens around the text as the question's turn has.
        const r = await session.prompt(fillerText(model, targetPositions - questionPositions), { maxTokens: 1, temperature: 0 });
        reprefill = { targetPositions, promptTokens: r.promptTokens.length, prefillMs: r.timings.prefillMs, promptMs: r.timings.promptMs, contextSize };
        log(`    ${reprefill.promptTokens} positions: prefill ${fmt.ms(reprefill.prefillMs)} ms`);
    }
    const result: IngestResult = {
        scene: c.scene,
        frameSize: c.frameSize,
        target,
        frameTokens,
        threads: c.threads,
        contextSize,
        loadMs,
        warmupMs,
        ingestWallMs,
        ingestCpuMs,
        framesPushed: c.frames,
        frames,
        evictions,
        empty,
        points,
        statsEnd,
        ...(reprefill ? { reprefill } : {}),
        memoryEnd: memorySample(),
    };
    await model.dispose();
    reportResult(result);
}

interface MemoryRecord {
    /** Frames ingested when sampled. */
    frames: number;
    /** Stream time of the newest frame, s. */
    streamSeconds: number;
    wallMs: number;
    rss: number;
    heapUsed: number;
    external: number;
    arrayBuffers: number;
    rssAnon: number;
    rssFile: number;
    kvBytes: number;
    kvTokens: number;
    framesInCache: number;
    framesEvicted: number;
    /** Mean encode / append ms of the frames since the previous sample. */
    encodeMs: number;
    appendMs: number;
    keptTokens: number;
    /** 1-minute load average of the machine. */
    loadAverage: number;
}

interface MemoryResult {
    scene: Scene;
    frameSize: Size;
    target: Size;
    frameTokens: number;
    window: number;
    textWindow: number;
    threads: number;
    contextSize: number;
    gcExposed: boolean;
    loadMs: number;
    warmupMs: number;
    ingestWallMs: number;
    framesPushed: number;
    asks: { count: number; ttftMs: number[] };
    evictions: { events: number; frames: number; turns: number };
    errors: string[];
    /** Right after the stream was created (no frame yet). */
    start: MemoryRecord;
    samples: MemoryRecord[];
    statsEnd: StreamStats;
    memoryEnd: MemorySample;
}

async function memoryChild(c: MemoryConfig): Promise<void> {
    const gc = exposeGc();
    const { model, loadMs, warmupMs, target, frameTokens } = await loadAndWarm(c);
    await using _model = { [Symbol.asyncDispose]: () => model.dispose() };
    const source = await openFrames(c);
    await using stream = await model.createStream(streamOptions(c, c.window, c.textWindow));
    const contextSize = stream.stats().contextSize;
    log(`  memory: ${c.scene} ${c.frameSize.width}×${c.frameSize.height} → ${target.width}×${target.height} (${frameTokens} tokens/frame), window ${c.window} frames + ${c.textWindow} text positions, context ${contextSize}, ${c.frames} frames`);
    const evictions = { events: 0, frames: 0, turns: 0 };
    const errors: string[] = [];
    const samples: MemoryRecord[] = [];
    let ingested = 0;
    let sumEncode = 0;
    let sumAppend = 0;
    let sumKept = 0;
    let since = 0;
    let started = performance.now();
    let lastLog = started;
    const sample = (streamSeconds: number): MemoryRecord => {
        gc?.();
        const mu = process.memoryUsage();
        const ms = memorySample();
        const st = stream.stats();
        const n = Math.max(1, since);
        const r: MemoryRecord = {
            frames: ingested,
            streamSeconds,
            wallMs: performance.now() - started,
            rss: mu.rss,
            heapUsed: mu.heapUsed,
            external: mu.external,
            arrayBuffers: mu.arrayBuffers,
            rssAnon: ms.rssAnon,
            rssFile: ms.rssFile,
            kvBytes: st.kvBytes,
            kvTokens: st.kvTokens,
            framesInCache: st.framesInCache,
            framesEvicted: st.framesEvicted,
            encodeMs: sumEncode / n,
            appendMs: sumAppend / n,
            keptTokens: sumKept / n,
            loadAverage: loadavg()[0]!,
        };
        sumEncode = sumAppend = sumKept = since = 0;
        return r;
    };
    stream.on("frame", (e) => {
        ingested++;
        since++;
        sumEncode += e.encodeMs;
        sumAppend += e.appendMs;
        sumKept += e.keptTokens;
        if (ingested % c.sampleEvery === 0) samples.push(sample(e.timestamp));
        const now = performance.now();
        if (now - lastLog > 60_000) {
            lastLog = now;
            const s = samples.at(-1);
            log(`    ${ingested}/${c.frames} frames (${fmt.s(now - started)} s)${s ? `: RSS ${fmt.mib(s.rss)} MiB, KV ${fmt.mib(s.kvBytes)} MiB, ${s.framesInCache} frames in cache` : ""}`);
        }
    });
    stream.on("evict", (e) => {
        evictions.events++;
        evictions.frames += e.frames;
        evictions.turns += e.turns;
    });
    stream.on("error", (e) => errors.push(e.message));
    const start = sample(NaN);
    started = performance.now();
    const asks: Array<Promise<number>> = [];
    for (let i = 0; i < c.frames; i++) {
        await stream.pushFrame({ data: source.frame(i), width: c.frameSize.width, height: c.frameSize.height, timestamp: i });
        if (c.askEvery > 0 && (i + 1) % c.askEvery === 0) {
            // Not awaited: questions run between frames, as a live application asks them.
            asks.push(stream.ask(MEMORY_QUESTION, { maxTokens: 8, temperature: 0 }).then((a) => a.ttftMs, (err: Error) => (errors.push(err.message), NaN)));
        }
    }
    const ttftMs = await Promise.all(asks);
    await stream.idle();
    const ingestWallMs = performance.now() - started;
    source.close();
    const result: MemoryResult = {
        scene: c.scene,
        frameSize: c.frameSize,
        target,
        frameTokens,
        window: c.window,
        textWindow: c.textWindow,
        threads: c.threads,
        contextSize,
        gcExposed: gc !== undefined,
        loadMs,
        warmupMs,
        ingestWallMs,
        framesPushed: c.frames,
        asks: { count: asks.length, ttftMs },
        evictions,
        errors,
        start,
        samples,
        statsEnd: stream.stats(),
        memoryEnd: memorySample(),
    };
    reportResult(result);
}

// ---- parent ---------------------------------------------------------------------------------------------------------

/** Least-squares slope of y over x (units of y per unit of x); NaN for fewer than 2 points. */
function slope(points: ReadonlyArray<readonly [number, number]>): number {
    const n = points.length;
    if (n < 2) return NaN;
    const mx = points.reduce((a, p) => a + p[0], 0) / n;
    const my = points.reduce((a, p) => a + p[1], 0) / n;
    let sxy = 0;
    let sxx = 0;
    for (const [x, y] of points) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) ** 2;
    }
    return sxx > 0 ? sxy / sxx : NaN;
}

function parseSize(name: string, fallback: string): Size {
    const text = argValue(name, fallback);
    const m = /^(\d+)x(\d+)$/.exec(text);
    const w = Number(m?.[1]);
    const h = Number(m?.[2]);
    if (!m || w < 16 || h < 16 || w > 7680 || h > 7680) usageError(`--${name} must be WIDTHxHEIGHT with sides from 16 to 7680, not "${text}"`);
    return { width: w, height: h };
}

function parseCounts(name: string, fallback: number[], max: number): number[] {
    const text = argValue(name, fallback.join(","));
    const values = text.split(",").map((s) => Number(s));
    if (text.trim() === "" || values.some((v) => !Number.isInteger(v) || v < 1 || v > max)) usageError(`--${name} must be frame counts from 1 to ${max} (--frames), not "${text}"`);
    return [...new Set(values)].sort((a, b) => a - b);
}

const mbPerHour = (bytesPerSecond: number): number => (bytesPerSecond * 3600) / 1e6;

async function main(): Promise<void> {
    const quick = hasFlag("quick");
    const threads = argNumber("threads", 2, 1, 1024);
    const textType = argChoice<TextType>("text-type", "q8_0", TEXT_TYPES);
    const budgetFrames = argNumber("budget-frames", 180, 1, 1 << 20);
    const prune = argChoice("prune", "on", ["on", "off"] as const) === "on";
    const contextArg = argNumber("context", 0, 0, 1 << 20);
    const contextSize = contextArg > 0 ? contextArg : undefined;
    const staticNoise = argNumber("static-noise", 0, 0, 127);
    const question = argValue("question", DEFAULT_QUESTION);
    if (question.trim() === "") usageError("--question must not be empty");
    const maxTokens = argNumber("max-tokens", 4, 1, 4096);

    const frames = hasFlag("no-ingest") ? 0 : argNumber("frames", quick ? 2 : 180, 0, 1_000_000);
    const frameSize = parseSize("frame-size", "1280x720");
    const scenes = argList<Scene>("scenes", ["static", "moving"], SCENES);
    const askAt = frames > 0 ? parseCounts("ask-at", [frames], frames) : [];
    const reps = argNumber("reps", quick ? 1 : 3, 1, 100);
    const reprefill = !hasFlag("no-reprefill");
    const ingestWindowArg = argNumber("ingest-window", 0, 0, 1_000_000);
    const ingestWindow = ingestWindowArg > 0 ? ingestWindowArg : undefined;

    const memoryFrames = hasFlag("no-memory") ? 0 : argNumber("memory-frames", quick ? 12 : 3600, 0, 10_000_000);
    const memoryFrameSize = parseSize("memory-frame-size", "112x112");
    const memoryScene = argChoice<Scene>("memory-scene", "moving", SCENES);
    const window = argNumber("window", quick ? 4 : 60, 1, 1_000_000);
    const textWindow = argNumber("text-window", quick ? 64 : 256, 0, 1_000_000);
    const sampleEvery = argNumber("sample-every", quick ? 2 : 30, 1, 1_000_000);
    const warmupFrames = argNumber("warmup-frames", quick ? 4 : Math.max(2 * window, 600), 0, 10_000_000);
    const memoryAskEvery = argNumber("memory-ask-every", quick ? 6 : 30, 0, 1_000_000);
    if (memoryFrames > 0 && Math.floor(memoryFrames / sampleEvery) - Math.floor(warmupFrames / sampleEvery) < 3) {
        usageError(`--memory-frames ${memoryFrames} leaves fewer than 3 samples (every ${sampleEvery} frames) after --warmup-frames ${warmupFrames}`);
    }
    if (frames === 0 && memoryFrames === 0) usageError("nothing to run: --frames and --memory-frames are both 0");

    const started = new Date();
    const machine = machineInfo();
    log(`machine: ${machine.cpu}, ${machine.cpus} CPUs, load ${machine.loadAverage}; threads ${threads}`);
    const mmproj = await ensureMmproj();
    const model = await ensureTextModel(textType);

    const sceneInput = async (scene: Scene, size: Size): Promise<Pick<CommonConfig, "raw" | "image">> =>
        scene === "static" ? { image: ensureImage(size.width, size.height) } : { raw: await ensureRawFrames(SCENE_CLIP[scene], size) };
    const common = (scene: Scene, size: Size): Omit<CommonConfig, "raw" | "image"> => ({
        model, mmproj, threads, scene, frameSize: size, staticNoise, budgetFrames, prune, ...(contextSize ? { contextSize } : {}),
    });

    const ingest: Array<{ result: IngestResult; wallMs: number }> = [];
    if (frames > 0) {
        for (const scene of scenes) {
            log(`ingest + TTFT: ${scene}, ${frames} frames of ${frameSize.width}×${frameSize.height} ...`);
            const cfg: IngestConfig = {
                ...common(scene, frameSize),
                ...(await sceneInput(scene, frameSize)),
                frames, askAt, reps, question, maxTokens, reprefill, ...(ingestWindow ? { window: ingestWindow } : {}),
            };
            ingest.push(await runChild<IngestResult>(import.meta.url, ["ingest", JSON.stringify(cfg)]));
        }
    }
    let memory: { result: MemoryResult; wallMs: number } | undefined;
    if (memoryFrames > 0) {
        log(`memory: ${memoryScene}, ${memoryFrames} frames of ${memoryFrameSize.width}×${memoryFrameSize.height}, window ${window} ...`);
        const cfg: MemoryConfig = {
            ...common(memoryScene, memoryFrameSize),
            ...(await sceneInput(memoryScene, memoryFrameSize)),
            frames: memoryFrames, window, textWindow, sampleEvery, warmupFrames, askEvery: memoryAskEvery,
        };
        memory = await runChild<MemoryResult>(import.meta.url, ["memory", JSON.stringify(cfg)]);
    }

    // Summaries.
    const steady = (r: IngestResult) => (r.frames.length > 1 ? r.frames.slice(1) : r.frames);
    const ingestSummary = ingest.map(({ result: r }) => {
        const s = steady(r);
        const kept = r.frames.reduce((a, f) => a + f.keptTokens, 0);
        const total = r.frames.reduce((a, f) => a + f.tokens, 0);
        return {
            scene: r.scene,
            frames: r.frames.length,
            keepRatio: kept / total,
            keptTokensMedian: median(s.map((f) => f.keptTokens)),
            ingestFps: (r.frames.length / r.ingestWallMs) * 1000,
            cpuShare: r.ingestCpuMs / (r.ingestWallMs * r.threads),
            encodeMsMedian: median(s.map((f) => f.encodeMs)),
            appendMsMedian: median(s.map((f) => f.appendMs)),
            frameMsMedian: median(s.map((f) => f.encodeMs + f.appendMs)),
            firstFrame: r.frames[0] ?? null,
        };
    });
    const ttftSummary = ingest.flatMap(({ result: r }) => {
        const emptyMs = median(r.empty.asks.map((a) => a.ttftMs));
        return r.points.map((p, i) => {
            const ms = median(p.asks.map((a) => a.ttftMs));
            const peer = i === r.points.length - 1 ? r.reprefill : undefined;
            return {
                scene: r.scene,
                framesInCache: p.framesInCache,
                kvTokens: p.kvTokens,
                emptyKvTokens: r.empty.kvTokens,
                ttftEmptyMs: emptyMs,
                ttftMs: ms,
                ratio: ms / emptyMs,
                cpuShare: p.asks.reduce((a, x) => a + x.cpuMs, 0) / p.asks.reduce((a, x) => a + x.ttftMs + x.generationMs, 0) / r.threads,
                emptyCpuShare: r.empty.asks.reduce((a, x) => a + x.cpuMs, 0) / r.empty.asks.reduce((a, x) => a + x.ttftMs + x.generationMs, 0) / r.threads,
                reprefill: peer ?? null,
                reprefillOverTtft: peer ? peer.prefillMs / ms : NaN,
            };
        });
    });
    const memorySummary = memory
        ? (() => {
              const r = memory.result;
              const fit = r.samples.filter((s) => s.frames >= warmupFrames);
              const per = (key: keyof MemoryRecord) => mbPerHour(slope(fit.map((s) => [s.streamSeconds, s[key] as number] as const)));
              const first = fit[0];
              const lastS = r.samples.at(-1);
              return {
                  scene: r.scene,
                  frames: r.framesPushed,
                  warmupFrames,
                  samplesFitted: fit.length,
                  streamSecondsPerWallSecond: r.framesPushed / (r.ingestWallMs / 1000),
                  slopesMBPerHour: { rss: per("rss"), rssAnon: per("rssAnon"), rssFile: per("rssFile"), heapUsed: per("heapUsed"), external: per("external"), kvBytes: per("kvBytes") },
                  rss: { start: r.start.rss, afterWarmup: first?.rss ?? NaN, end: lastS?.rss ?? NaN, max: Math.max(...r.samples.map((s) => s.rss)) },
                  kvBytes: { min: Math.min(...fit.map((s) => s.kvBytes)), max: Math.max(...fit.map((s) => s.kvBytes)), end: lastS?.kvBytes ?? NaN },
                  framesInCacheMax: Math.max(...r.samples.map((s) => s.framesInCache)),
                  encodeMsMean: fit.reduce((a, s) => a + s.encodeMs, 0) / fit.length,
                  appendMsMean: fit.reduce((a, s) => a + s.appendMs, 0) / fit.length,
                  askTtftMsMedian: median(r.asks.ttftMs.filter((v) => Number.isFinite(v))),
                  evictions: r.evictions,
                  errors: r.errors.length,
              };
          })()
        : undefined;

    const ingestTable = markdownTable(
        ["scene", "frame → resized (tokens)", "frames", "tokens kept", "ingest fps", "ms/frame (median)", "encode ms", "append ms", "first frame ms (enc + app)", "CPU share", "peak RSS MiB"],
        ingest.map(({ result: r }, i) => {
            const s = ingestSummary[i]!;
            const f0 = s.firstFrame;
            return [
                r.scene,
                `${r.frameSize.width}×${r.frameSize.height} → ${r.target.width}×${r.target.height} (${r.frameTokens})`,
                String(s.frames),
                `${fmt.pct(s.keepRatio)} (median ${s.keptTokensMedian}/frame)`,
                s.ingestFps.toFixed(3),
                fmt.ms(s.frameMsMedian),
                fmt.ms(s.encodeMsMedian),
                fmt.ms(s.appendMsMedian),
                f0 ? `${fmt.ms(f0.encodeMs)} + ${fmt.ms(f0.appendMs)}` : "–",
                fmt.pct(s.cpuShare),
                fmt.mib(r.memoryEnd.peakRss),
            ];
        }),
    );
    const ttftTable = markdownTable(
        ["scene", "frames in cache", "cache positions", "TTFT ms, empty stream (CPU share)", "TTFT ms (CPU share)", "TTFT / empty (goal ≤ 1.5)", "re-prefill: positions, ms", "re-prefill / TTFT"],
        ttftSummary.map((t) => [
            t.scene,
            String(t.framesInCache),
            String(t.kvTokens),
            `${fmt.ms(t.ttftEmptyMs)} (${fmt.pct(t.emptyCpuShare)}; ${t.emptyKvTokens} positions)`,
            `${fmt.ms(t.ttftMs)} (${fmt.pct(t.cpuShare)})`,
            fmt.ratio(t.ratio),
            t.reprefill ? `${t.reprefill.promptTokens}, ${fmt.ms(t.reprefill.prefillMs)}` : "–",
            fmt.ratio(t.reprefillOverTtft),
        ]),
    );
    const memoryTable = memory && memorySummary
        ? markdownTable(
              ["scene", "frame → resized (tokens)", "window", "frames (stream s)", "fitted after", "RSS MiB start / after warm-up / end", "RSS MB/h (goal ≤ 50)", "RssAnon MB/h", "heap MB/h", "KV MiB (range)", "KV MB/h", "stream s per wall s"],
              [[
                  memory.result.scene,
                  `${memory.result.frameSize.width}×${memory.result.frameSize.height} → ${memory.result.target.width}×${memory.result.target.height} (${memory.result.frameTokens})`,
                  `${memory.result.window} frames + ${memory.result.textWindow} text`,
                  String(memory.result.framesPushed),
                  `${warmupFrames} frames (${memorySummary.samplesFitted} samples)`,
                  `${fmt.mib(memorySummary.rss.start)} / ${fmt.mib(memorySummary.rss.afterWarmup)} / ${fmt.mib(memorySummary.rss.end)}`,
                  memorySummary.slopesMBPerHour.rss.toFixed(1),
                  memorySummary.slopesMBPerHour.rssAnon.toFixed(1),
                  memorySummary.slopesMBPerHour.heapUsed.toFixed(1),
                  `${fmt.mib(memorySummary.kvBytes.min)}–${fmt.mib(memorySummary.kvBytes.max)}`,
                  memorySummary.slopesMBPerHour.kvBytes.toFixed(1),
                  memorySummary.streamSecondsPerWallSecond.toFixed(3),
              ]],
          )
        : "";

    const result = {
        benchmark: "stream",
        date: started.toISOString(),
        machine,
        threads,
        textType,
        model,
        mmproj,
        settings: {
            budgetFrames, prune, contextSize: contextSize ?? null, staticNoise, question, maxTokens,
            ingest: { frames, frameSize, scenes, askAt, reps, reprefill, window: ingestWindow ?? null },
            memory: { frames: memoryFrames, frameSize: memoryFrameSize, scene: memoryScene, window, textWindow, sampleEvery, warmupFrames, askEvery: memoryAskEvery },
        },
        scenes: { static: "testsrc2 still image, identical frames" + (staticNoise ? ` + uniform noise ±${staticNoise}` : ""), moving: VIDEO_DESCRIPTIONS.camera, screen: VIDEO_DESCRIPTIONS.screen },
        summary: { ingest: ingestSummary, ttft: ttftSummary, memory: memorySummary ?? null },
        ingest,
        memory: memory ?? null,
    };
    const saved = await saveResults("stream", result);
    const out = [
        ingest.length ? `${ingestTable}\n\n${ttftTable}\n` : "",
        memoryTable ? `${memoryTable}\n` : "",
        `results: ${saved}\n`,
    ].filter((s) => s !== "");
    process.stdout.write(`\n${out.join("\n")}`);
}

if (process.argv[2] === "--child") {
    const [, , , kind, config] = process.argv;
    if (kind === "ingest") await ingestChild(JSON.parse(config!) as IngestConfig);
    else if (kind === "memory") await memoryChild(JSON.parse(config!) as MemoryConfig);
    else throw new Error(`unknown child case ${kind}`);
} else {
    await main();
}
