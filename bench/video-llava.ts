/**
 * Video-LLaVA with the real 7B shapes (random weights: text q8_0, projector f16 with both CLIP ViT-L/14 towers),
 * through the public API, beside llama.cpp's CLIP encoder on the same ViT-L shapes in the same run.
 *
 * Cases, each in its own child process:
 * - image tower: `loadVision({ mmproj })` → `vision.encode(224×224 JPEG)` (257 positions, 256 tokens kept), after a
 *   warm-up encode; ms per image.
 * - video tower: `vision.encodeVideo(Video.open(clip, { frames: 8 }), { prune: false })` (8 × 257 tokens), after a
 *   warm-up pass; encoder ms per frame (`timings.encodeMs / 8`) and decode wait.
 * - an 8-frame video question: `loadModel({ model, mmproj })` → `session.prompt([{ video: clip }, "Why is this video
 *   funny?"], { maxTokens: 16, temperature: 0 })` after a warm-up prompt: visual tokens, encode, prefill, time to
 *   first token, total.
 * - llama.cpp (bench/lib/llama-cpp.ts driver, same llama.cpp commit and ggml build): `mtmd_encode_chunk` of a
 *   224×224 image on a LLaVA-1.5-style `mlp` projector with the same image tower and projector, then libllama's
 *   prefill of as many embeddings as our question evaluated: the same work done by llama.cpp's own code, as far as
 *   llama.cpp can run it (it has no Video-LLaVA video path).
 *
 *   node bench/.models/js/bench/video-llava.js [--quick] [--reps 3] [--threads 2] [--kind camera|screen]
 *       [--no-question] [--no-llama-cpp]
 * --quick: one timed encode of each tower, no question and no llama.cpp prefill (~2 minutes after generation).
 * The first run generates the files (6.7 GiB text model, 1.2 GiB projector, 0.6 GiB peer projector; ~20 minutes).
 */
import { BENCH_GPU } from "./lib/env.js";
import { Video } from "../lib/decode/Video.js";
import { Image } from "../lib/decode/Image.js";
import { loadModel } from "../lib/Model.js";
import { loadVision } from "../lib/Vision.js";
import { memorySample, reportResult, runChild, type MemorySample } from "./lib/child.js";
import { ensureMtmdDriver, runMtmd, type MtmdResult } from "./lib/llama-cpp.js";
import { ensureImage, ensureVideo, VIDEO_KINDS, type VideoKind } from "./lib/media.js";
import { argChoice, argNumber, fmt, hasFlag, log, machineInfo, markdownTable, median, saveResults } from "./lib/report.js";
import { ensureLlavaStyleMmproj, ensureVideoLlavaMmproj, ensureVideoLlavaTextModel } from "./lib/video-llava-models.js";

const IMAGE = [224, 224] as const;
const FRAMES = 8;
const CLIP_SECONDS = 10;
const QUESTION = "Why is this video funny?";

interface ImageCaseResult {
    tokens: number;
    loadMs: number;
    warmupMs: number;
    runs: number[];
    cpuMs: number[];
    computeBytes: number;
    weightsBytes: number;
    memoryEnd: MemorySample;
}

interface VideoCaseResult {
    frames: number;
    tokensPerFrame: number;
    tokens: number;
    loadMs: number;
    warmupMs: number;
    /** Per timed pass: `timings.encodeMs` and `timings.decodeMs` of `encodeVideo`, and its wall time. */
    runs: Array<{ encodeMs: number; decodeMs: number; wallMs: number; cpuMs: number }>;
    computeBytes: number;
    memoryEnd: MemorySample;
}

interface QuestionCaseResult {
    loadMs: number;
    contextSize: number;
    promptTokens: number;
    visualTokens: number;
    answerTokens: number;
    timings: Record<string, number>;
    cpuMs: number;
    memoryEnd: MemorySample;
}

async function imageChild(mmproj: string, imagePath: string, threads: number, reps: number): Promise<void> {
    let started = performance.now();
    await using vision = await loadVision({ mmproj, threads });
    const loadMs = performance.now() - started;
    started = performance.now();
    await vision.encode(Image.fromFile(imagePath));
    const warmupMs = performance.now() - started;
    const runs: number[] = [];
    const cpuMs: number[] = [];
    let tokens = 0;
    for (let i = 0; i < reps; i++) {
        const cpu = process.cpuUsage();
        started = performance.now();
        const r = await vision.encode(Image.fromFile(imagePath));
        runs.push(performance.now() - started);
        const used = process.cpuUsage(cpu);
        cpuMs.push((used.user + used.system) / 1000);
        tokens = r.tokens;
        log(`    image encode ${i + 1}/${reps}: ${fmt.ms(runs.at(-1)!)} ms, ${r.tokens} tokens`);
    }
    const result: ImageCaseResult = {
        tokens,
        loadMs,
        warmupMs,
        runs,
        cpuMs,
        computeBytes: vision.computeBytes(),
        weightsBytes: vision.info.weightsBytes,
        memoryEnd: memorySample(),
    };
    reportResult(result);
}

async function videoChild(mmproj: string, clip: string, threads: number, reps: number): Promise<void> {
    let started = performance.now();
    await using vision = await loadVision({ mmproj, threads });
    const loadMs = performance.now() - started;
    const pass = async () => {
        await using video = await Video.open(clip, { frames: FRAMES });
        const cpu = process.cpuUsage();
        const t0 = performance.now();
        const r = await vision.encodeVideo(video, { prune: false });
        const wallMs = performance.now() - t0;
        const used = process.cpuUsage(cpu);
        return { r, wallMs, cpuMs: (used.user + used.system) / 1000 };
    };
    started = performance.now();
    await pass();
    const warmupMs = performance.now() - started;
    const runs: VideoCaseResult["runs"] = [];
    let last;
    for (let i = 0; i < reps; i++) {
        last = await pass();
        runs.push({ encodeMs: last.r.timings.encodeMs, decodeMs: last.r.timings.decodeMs, wallMs: last.wallMs, cpuMs: last.cpuMs });
        log(`    video encode ${i + 1}/${reps}: ${fmt.ms(last.r.timings.encodeMs)} ms for ${last.r.frames.length} frames, ${last.r.tokens} tokens`);
    }
    const result: VideoCaseResult = {
        frames: last!.r.frames.length,
        tokensPerFrame: last!.r.tokens / last!.r.frames.length,
        tokens: last!.r.tokens,
        loadMs,
        warmupMs,
        runs,
        computeBytes: vision.computeBytes(),
        memoryEnd: memorySample(),
    };
    reportResult(result);
}

async function questionChild(model: string, mmproj: string, clip: string, threads: number): Promise<void> {
    let started = performance.now();
    await using m = await loadModel({ model, mmproj, threads, gpu: BENCH_GPU });
    const loadMs = performance.now() - started;
    {
        // Warm-up: touches every weight of the memory-mapped language model and builds the encoder's graph.
        await using warm = await m.createSession({ contextSize: 512, threads });
        await warm.prompt([Image.fromFile(ensureImage(...IMAGE)), "Hello"], { maxTokens: 2, temperature: 0 });
    }
    await using session = await m.createSession({ contextSize: 4096, threads });
    log(`    8-frame video question (context ${session.contextSize}) ...`);
    const cpu = process.cpuUsage();
    const r = await session.prompt([{ video: clip }, QUESTION], { maxTokens: 16, temperature: 0 });
    const used = process.cpuUsage(cpu);
    const visualTokens = r.media.reduce((a, x) => a + x.tokens, 0);
    const result: QuestionCaseResult = {
        loadMs,
        contextSize: session.contextSize,
        promptTokens: r.promptTokens.length,
        visualTokens,
        answerTokens: r.tokens.length,
        timings: { ...r.timings },
        cpuMs: (used.user + used.system) / 1000,
        memoryEnd: memorySample(),
    };
    reportResult(result);
}

async function main(): Promise<void> {
    const quick = hasFlag("quick");
    const threads = argNumber("threads", 2, 1, 1024);
    const reps = argNumber("reps", quick ? 1 : 3, 1, 100);
    const kind = argChoice<VideoKind>("kind", "camera", VIDEO_KINDS);
    const question = !quick && !hasFlag("no-question");
    const llamaCpp = !hasFlag("no-llama-cpp");
    const started = new Date();
    const machine = machineInfo();
    log(`machine: ${machine.cpu}, ${machine.cpus} CPUs, load ${machine.loadAverage}; threads ${threads}, reps ${reps}`);

    const mmproj = await ensureVideoLlavaMmproj();
    const textModel = question || llamaCpp ? await ensureVideoLlavaTextModel() : undefined;
    const image = ensureImage(...IMAGE);
    const clip = ensureVideo(kind, CLIP_SECONDS);
    let driver: string | undefined;
    let llavaMmproj: string | undefined;
    let llamaCppSkipped: string | undefined;
    if (llamaCpp) {
        const d = ensureMtmdDriver(log);
        if ("path" in d) {
            driver = d.path;
            llavaMmproj = await ensureLlavaStyleMmproj();
        } else {
            llamaCppSkipped = d.skipped;
            log(`llama.cpp peer skipped: ${d.skipped}`);
        }
    }

    log(`vidllama image tower ${IMAGE.join("x")} (${reps} timed) ...`);
    const img = (await runChild<ImageCaseResult>(import.meta.url, ["image", mmproj, image, String(threads), String(reps)])).result;
    log(`vidllama video tower, ${FRAMES} frames of a ${CLIP_SECONDS}-s ${kind} clip (${reps} timed) ...`);
    const vid = (await runChild<VideoCaseResult>(import.meta.url, ["video", mmproj, clip, String(threads), String(reps)])).result;
    let q: QuestionCaseResult | undefined;
    if (question && textModel) {
        log(`vidllama 8-frame video question ...`);
        q = (await runChild<QuestionCaseResult>(import.meta.url, ["question", textModel, mmproj, clip, String(threads)])).result;
    }
    let peer: MtmdResult | undefined;
    if (driver && llavaMmproj && textModel) {
        log(`llama.cpp CLIP encoder (LLaVA-1.5-style, same ViT-L/14) ${IMAGE.join("x")}${q ? ` + libllama prefill of ${q.promptTokens} embeddings` : ""} ...`);
        peer = await runMtmd(driver, textModel, llavaMmproj, IMAGE[0], IMAGE[1], threads, reps, q !== undefined, q?.promptTokens);
    }

    const imageMs = median(img.runs);
    const videoFrameMs = median(vid.runs.map((r) => r.encodeMs)) / vid.frames;
    const peerMs = peer ? median(peer.runs) : NaN;
    const encoderTable = markdownTable(
        ["encoder (224×224 frame)", "tokens", "ms per frame", "CPU share", "compute buffer MiB", "peak RSS MiB", "vs llama.cpp CLIP"],
        [
            ["vidllama image tower (`vision.encode`)", String(img.tokens), fmt.ms(imageMs), fmt.pct(median(img.cpuMs) / imageMs / threads), fmt.mib(img.computeBytes), fmt.mib(img.memoryEnd.peakRss), peer ? fmt.ratio(imageMs / peerMs) : "–"],
            [
                `vidllama video tower (\`vision.encodeVideo\`, ${vid.frames} frames)`,
                String(vid.tokensPerFrame),
                fmt.ms(videoFrameMs),
                fmt.pct(median(vid.runs.map((r) => r.cpuMs / r.wallMs)) / threads),
                fmt.mib(vid.computeBytes),
                fmt.mib(vid.memoryEnd.peakRss),
                peer ? fmt.ratio(videoFrameMs / peerMs) : "–",
            ],
            peer
                ? ["llama.cpp CLIP (`mtmd_encode_chunk`, LLaVA-1.5-style `mlp`)", String(peer.tokens), fmt.ms(peerMs), fmt.pct(median(peer.cpuMs) / peerMs / threads), "–", Number.isNaN(peer.peakRss) ? "–" : fmt.mib(peer.peakRss), "1.00"]
                : ["llama.cpp CLIP", "–", llamaCppSkipped ?? "–", "–", "–", "–", "–"],
        ],
    );
    let questionTable = "";
    if (q) {
        const t = q.timings;
        const rows = [
            ["vidllama `session.prompt`", String(q.visualTokens), String(q.promptTokens), fmt.ms(t.decodeMs!), fmt.ms(t.encodeMs!), fmt.ms(t.prefillMs!), fmt.ms(t.promptMs!), fmt.ms(t.totalMs!), `${q.answerTokens}`],
        ];
        if (peer && peer.prefillMs >= 0) {
            const encode = FRAMES * peerMs;
            rows.push(["llama.cpp: 8 × CLIP encode + libllama prefill", `${FRAMES} × ${peer.tokens}`, String(peer.prefillTokens), "–", fmt.ms(encode), fmt.ms(peer.prefillMs), fmt.ms(encode + peer.prefillMs), "–", "–"]);
        }
        questionTable = markdownTable(["8-frame question", "visual tokens", "prompt tokens", "decode wait ms", "encode ms", "prefill ms", "time to first token ms", "total ms", "answer tokens"], rows);
    }
    const result = { benchmark: "video-llava", date: started.toISOString(), machine, threads, kind, mmproj, textModel, llavaMmproj, llamaCppSkipped, image: img, video: vid, question: q, llamaCpp: peer };
    const saved = await saveResults("video-llava", result);
    process.stdout.write(`\n${encoderTable}\n\n${questionTable}${questionTable ? "\n\n" : ""}results: ${saved}\n`);
}

if (process.argv[2] === "--child") {
    const [, , , kind, ...rest] = process.argv;
    if (kind === "image") await imageChild(rest[0]!, rest[1]!, Number(rest[2]), Number(rest[3]));
    else if (kind === "video") await videoChild(rest[0]!, rest[1]!, Number(rest[2]), Number(rest[3]));
    else if (kind === "question") await questionChild(rest[0]!, rest[1]!, rest[2]!, Number(rest[3]));
    else throw new Error(`unknown child case ${kind}`);
} else {
    await main();
}
