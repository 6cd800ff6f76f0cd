// Videos through the public API: sampling → video resize rule → Differential Frame Pruning → encoder (merge 2) →
// prompt with frame timestamps, checked against the independent float64 reference pipeline of test/reference.
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError, loadModel, loadVision, Video, type Model, type Vision } from "../../lib/index.js";
import { targetSizes } from "../../lib/preprocess/resize-rule.js";
import { TINY_VISION } from "../fixtures/hf-checkpoint.js";
import { referenceDiffFP } from "../reference/diffp.js";
import { pillowBicubicResize } from "../reference/pillow-resize.js";
import { normalizePixelU8, patchify, referenceVisionForward } from "../reference/vision-encoder.js";
import { tinyVl3, type TinyVl3 } from "../vision/fixture.js";
import { videoFixture } from "../fixtures/videos.js";
import { testVideo, type VideoName } from "./fixtures.js";

const IMAGE_TOKEN = 151665;
let fixture: TinyVl3;
let model: Model;
let vision: Vision;
const greedy = { temperature: 0, maxTokens: 12 } as const;

beforeAll(async () => {
    fixture = await tinyVl3();
    model = await loadModel({ model: fixture.textModel, mmproj: fixture.mmproj });
    vision = await loadVision({ mmproj: fixture.mmproj });
}, 600_000);

afterAll(async () => {
    await Promise.all([model?.dispose(), vision?.dispose()]);
});

/** ffmpeg/ffprobe processes that are children of this process (none may outlive a call). */
function ffmpegChildren(): string[] {
    const out: string[] = [];
    for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
        try {
            const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
            const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            if (ppid === process.pid && /\((ffmpeg|ffprobe)\)/.test(stat)) out.push(stat.slice(0, 60));
        } catch {
            // the process ended meanwhile
        }
    }
    return out;
}

/** The reference: frames (decoded by Video, tested on its own) → Pillow resize → normalize → patchify → DiffFP → float64 encoder. */
async function referenceVideo(name: VideoName, fps: number, prune: { threshold: number; minTokens: number } | undefined) {
    await using video = await Video.open(testVideo(name), { fps, maxFrames: 180 });
    const frames = [];
    for await (const f of video.frames()) frames.push(f);
    const [target] = targetSizes([{ width: video.width, height: video.height, frames: frames.length, mergeSize: 2 }], {
        patchSize: 14,
        minTokens: fixture.minTokens,
        maxTokens: fixture.maxTokens,
    });
    const W = target!.width;
    const H = target!.height;
    const patches = frames.map((f) => {
        const rgb = pillowBicubicResize(f.data, f.width, f.height, W, H);
        const chw = new Float64Array(3 * W * H);
        for (let p = 0; p < W * H; p++) for (let c = 0; c < 3; c++) chw[c * W * H + p] = normalizePixelU8(rgb[p * 3 + c]!);
        return patchify(chw, 1, 3, H, W, 14, 2);
    });
    const gh = H / 14;
    const gw = W / 14;
    const mask = prune ? referenceDiffFP(patches, gh, gw, 2, prune.threshold, prune.minTokens).mask : patches.map(() => new Array<boolean>((gh / 2) * (gw / 2)).fill(true));
    const config = { hidden: TINY_VISION.hidden, heads: TINY_VISION.heads, layers: TINY_VISION.layers, eps: 1e-6, ropeTheta: 10000, patchSize: 14 };
    const forward = referenceVisionForward(fixture.weights, patches.map((p) => ({ patches: p, gridHeight: gh, gridWidth: gw, mergeSize: 2 })), config);
    const dim = forward.items[0]!.projDim;
    const rows: number[] = [];
    forward.items.forEach((item, f) => mask[f]!.forEach((keep, t) => keep && rows.push(...item.tokens.subarray(t * dim, (t + 1) * dim))));
    return { timestamps: frames.map((f) => f.timestamp), kept: mask.map((m) => m.filter(Boolean).length), perFrame: (gh / 2) * (gw / 2), embeddings: Float64Array.from(rows), target: target! };
}

describe("video encoding against the float64 reference (resize, DiffFP, merge 2, projector)", () => {
    for (const [name, fps] of [["movingThenStatic", 1], ["sceneCut", 2], ["odd", 1]] as const) {
        for (const prune of [true, false]) {
            it(`${name} at ${fps} fps, ${prune ? "pruned" : "not pruned"}`, async () => {
                const settings = prune ? { threshold: 0.1, minTokens: 1 } : undefined;
                const ref = await referenceVideo(name, fps, settings);
                await using video = await Video.open(testVideo(name), { fps, maxFrames: 180 });
                const ours = await vision.encodeVideo(video, prune ? {} : { prune: false });
                expect(ours.size).toEqual({ width: ref.target.width, height: ref.target.height });
                expect(ours.frames.map((f) => f.timestamp)).toEqual(ref.timestamps);
                expect(ours.frames.map((f) => f.keptTokens)).toEqual(ref.kept);
                expect(ours.frames.every((f) => f.tokens === ref.perFrame)).toBe(true);
                expect(ours.embeddings.length).toBe(ref.embeddings.length);
                let maxErr = 0;
                let sumSq = 0;
                for (let i = 0; i < ref.embeddings.length; i++) {
                    maxErr = Math.max(maxErr, Math.abs(ours.embeddings[i]! - ref.embeddings[i]!));
                    sumSq += ref.embeddings[i]! ** 2;
                }
                expect(maxErr / Math.sqrt(sumSq / ref.embeddings.length)).toBeLessThan(2e-3);
                if (prune && name === "movingThenStatic") {
                    // the square moves in the first 4 s, then nothing changes: later frames keep only the minimum
                    expect(ours.frames.slice(0, 4).every((f) => f.keptTokens > 1)).toBe(true);
                    expect(ours.frames.slice(5).every((f) => f.keptTokens === 1)).toBe(true);
                }
                if (prune && name === "sceneCut") {
                    expect(ref.kept.some((k, i) => i > 0 && k === ref.perFrame)).toBe(true); // the cut frame is kept whole
                }
            });
        }
    }
});

describe("encodeVideo", () => {
    it("stops between encoder batches when aborted, rejecting with the signal's reason", async () => {
        await using video = await Video.open(testVideo("sceneCut"), { fps: 10 }); // 60 frames: several batches
        const controller = new AbortController();
        const reason = new Error("enough");
        let encodedWhenAborted = -1;
        const pending = vision.encodeVideo(video, {
            signal: controller.signal,
            onProgress: (p) => {
                if (p.framesEncoded > 0 && encodedWhenAborted < 0) {
                    encodedWhenAborted = p.framesEncoded;
                    controller.abort(reason);
                }
            },
        });
        await expect(pending).rejects.toBe(reason);
        expect(encodedWhenAborted).toBeGreaterThan(0);
        expect(encodedWhenAborted).toBeLessThan(60);
        expect(ffmpegChildren()).toEqual([]);
    });

    it("gives the same tokens for frames the caller decoded (Video.fromFrames) as for the file", async () => {
        await using file = await Video.open(testVideo("odd"), { fps: 1 });
        const frames = [];
        for await (const f of file.frames()) frames.push({ data: f.data, width: f.width, height: f.height, timestamp: f.timestamp });
        await using given = await Video.fromFrames(frames, { fps: 1 });
        const a = await vision.encodeVideo(file);
        const b = await vision.encodeVideo(given);
        expect(b.frames).toEqual(a.frames);
        expect(Array.from(b.embeddings)).toEqual(Array.from(a.embeddings));
    });
});

describe("video prompts", () => {
    it("renders timestamps and one placeholder per kept token, and answers deterministically", async () => {
        const ask = async () => {
            const session = await model.createSession();
            await using video = await Video.open(testVideo("movingThenStatic"), { fps: 1 });
            const result = await session.prompt([video, "What moves?"], greedy);
            await session.dispose();
            return result;
        };
        const a = await ask();
        const b = await ask();
        expect(a.tokens).toEqual(b.tokens);
        expect(a.tokens.length).toBeGreaterThan(0);
        const media = a.media[0]!;
        if (media.kind !== "video") throw new Error("expected a video");
        expect(media.frames).toHaveLength(8);
        expect(a.promptTokens.filter((t) => t === IMAGE_TOKEN)).toHaveLength(media.keptTokens);
        expect(media.keptTokens).toBeLessThan(media.tokens);
        const text = model.detokenize(a.promptTokens.filter((t) => t !== IMAGE_TOKEN), { special: true });
        const times = media.frames.map((f) => `Time ${f.timestamp.toFixed(1)}s:`);
        expect(text).toBe(`<|im_start|>user\n${times.join(",")}\nWhat moves?<|im_end|>\n<|im_start|>assistant\n`);
        expect(a.timings.encodeMs).toBeGreaterThan(0);
        expect(a.timings.prefillMs).toBeGreaterThan(0);
        expect(ffmpegChildren()).toEqual([]);
    });

    it("accepts a path with the projector's sampling defaults, prune knobs, and mixes images and text", async () => {
        const session = await model.createSession();
        const pruned = await session.prompt([{ video: testVideo("sceneCut") }, "Q"], { ...greedy, maxTokens: 1 });
        session.reset();
        const all = await session.prompt([{ video: testVideo("sceneCut"), prune: false }, "Q"], { ...greedy, maxTokens: 1 });
        session.reset();
        const loose = await session.prompt([{ video: testVideo("sceneCut") }, "Q"], { ...greedy, maxTokens: 1, prune: { threshold: 1e6, minTokensPerFrame: 2 } });
        const [p, a, l] = [pruned.media[0]!, all.media[0]!, loose.media[0]!];
        if (p.kind !== "video" || a.kind !== "video" || l.kind !== "video") throw new Error("expected videos");
        expect(p.frames).toHaveLength(6); // fps from the projector (1) over 6 s
        expect(a.keptTokens).toBe(a.tokens);
        expect(p.keptTokens).toBeLessThan(a.keptTokens);
        expect(l.frames.slice(1).every((f) => f.keptTokens === 2)).toBe(true);
        await expect(session.prompt([{ video: testVideo("sceneCut"), prune: { threshold: -1 } }, "Q"])).rejects.toBeInstanceOf(InvalidOptionError);
        await session.dispose();
    });

    it("reuses the KV cache with a video in the history without decoding it again", async () => {
        const session = await model.createSession();
        await using video = await Video.open(testVideo("movingThenStatic"), { fps: 1 });
        const turn1 = await session.prompt([video, "What moves?"], greedy);
        const turn2 = await session.prompt("And then?", greedy);
        expect(turn2.reusedTokens).toBeGreaterThanOrEqual(turn1.promptTokens.length + turn1.tokens.length - 1);
        expect(turn2.promptTokens.filter((t) => t === IMAGE_TOKEN)).toHaveLength(0);
        expect(turn2.timings.decodeMs).toBe(0);
        await session.dispose();
    });

    it("handles a single-frame video, a truncated file and a corrupt one", async () => {
        const session = await model.createSession();
        await using one = await Video.open(testVideo("single"));
        const r = await session.prompt([one, "Q"], { ...greedy, maxTokens: 1 });
        const m = r.media[0]!;
        if (m.kind !== "video") throw new Error("expected a video");
        expect(m.frames).toHaveLength(1);
        expect(m.keptTokens).toBe(m.tokens); // the first frame is kept whole

        // A file cut in the middle, and one with garbage inside: the frames that decode are used, with warnings.
        for (const name of ["truncated", "scribbled"] as const) {
            session.reset();
            await using broken = await Video.open(videoFixture(name).path, { fps: 2 });
            const b = await session.prompt([broken, "Q"], { ...greedy, maxTokens: 1 });
            const bm = b.media[0]!;
            if (bm.kind !== "video") throw new Error("expected a video");
            expect(bm.frames.length).toBeGreaterThan(0);
            if (name === "scribbled") expect(bm.warnings.join("\n")).toMatch(/error|corrupt|invalid/i);
        }
        expect(ffmpegChildren()).toEqual([]);
        await session.dispose();
    });

    it("aborts while decoding/encoding frames and while prefilling, reaping ffmpeg, and stays usable", async () => {
        const session = await model.createSession({ batchSize: 16 });
        for (const stage of ["encode", "prefill"] as const) {
            const controller = new AbortController();
            await using video = await Video.open(testVideo("movingThenStatic"), { fps: 1 });
            const result = await session.prompt([video, "Q"], {
                ...greedy,
                signal: controller.signal,
                onMediaProgress: (p) => stage === "encode" && p.framesEncoded > 0 && controller.abort(),
                onPromptProgress: ({ evaluated }) => stage === "prefill" && evaluated > 20 && controller.abort(),
            });
            expect(result.stopReason).toBe("abort");
            expect(result.tokens).toEqual([]);
            expect(ffmpegChildren()).toEqual([]);
        }
        await using video = await Video.open(testVideo("movingThenStatic"), { fps: 1 });
        const ok = await session.prompt([video, "Q"], greedy);
        expect(ok.stopReason).not.toBe("abort");
        await session.dispose();
        expect(ffmpegChildren()).toEqual([]);
    });
});
