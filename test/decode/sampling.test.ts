/**
 * Which frames are sampled, and their timestamps: checked against first-principles computations of ffmpeg's
 * `fps=round=down` rule on clips whose pixels encode the source frame index, and against the reference loader itself
 * (re-stated in Python with numpy, running the same ffmpeg command ffmpeg-python builds).
 */
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { Video } from "../../lib/decode/Video.js";
import { frameId, isSolid, videoFixture, type FixtureName } from "../fixtures/videos.js";
import { collect, expectNoLeakedChildren, ffmpegFrames, hasNumpy, md5, numpyArangeIndices, numpyLinspace, referenceDecordIndices, referenceLoad } from "./helpers.js";
import { evenFrameIndices } from "../../lib/decode/Video.js";
import { InvalidOptionError } from "../../lib/errors.js";

afterEach(() => expectNoLeakedChildren());

/**
 * Source frames the fps filter picks for a CFR clip of `count` frames at `rate` fps (frame i at i/rate s), sampled at
 * `fps`, optionally trimmed like `-ss start -t (end-start)`: frames before `start` are dropped, the first frame at or
 * after (first kept + (end − start)) ends the stream; output slot k holds the last frame whose time (relative to
 * `start`) rounds down to ≤ k/fps, for k from ⌊t_first·fps⌋ to ⌊t_end·fps⌋ − 1. Exact integer arithmetic in
 * 1/(rate·fpsDen·1000) units.
 */
function expectedFpsIds(count: number, rate: number, fps: [number, number], range?: { start: number; end?: number }): number[] {
    // Work in milliseconds (the fixtures' container time base), exact for rate 10 and integer fps.
    const t = (i: number): number => Math.round((i * 1000) / rate);
    const ss = range ? Math.round(range.start * 1000) : 0;
    let kept = Array.from({ length: count }, (_, i) => i).filter((i) => !range || t(i) >= ss);
    let endMs: number;
    const lastEnd = t(count - 1) + Math.round(1000 / rate) - ss;
    if (range?.end !== undefined) {
        const dur = Math.round((range.end - range.start) * 1000);
        const first = t(kept[0]!) - ss;
        const cut = kept.findIndex((i) => t(i) - ss - first >= dur);
        endMs = cut >= 0 ? t(kept[cut]!) - ss : lastEnd;
        if (cut >= 0) kept = kept.slice(0, cut);
    } else {
        endMs = lastEnd;
    }
    const slot = (ms: number): number => Math.floor((ms * fps[0]) / (1000 * fps[1]));
    const ids: number[] = [];
    for (let k = slot(t(kept[0]!) - ss); k < slot(endMs); k++) {
        let best = -1;
        for (const i of kept) if (slot(t(i) - ss) <= k) best = i;
        ids.push(best);
    }
    return ids;
}

describe("fps=round=down sampling (first principles)", () => {
    test("a 10 fps clip sampled at 1 fps gives source frames 9, 19, 29, … labelled 0 s, 1 s, 2 s, …", async () => {
        const f = videoFixture("cfr10");
        const video = await Video.open(f.path);
        expect(video.width).toBe(64);
        expect(video.height).toBe(48);
        expect(video.fps).toBe(10);
        expect(video.duration).toBeCloseTo(12.5, 6);
        expect(video.frameCount).toBe(125);
        const frames = await collect(video);
        const expected = expectedFpsIds(125, 10, [1, 1]);
        expect(expected).toEqual([9, 19, 29, 39, 49, 59, 69, 79, 89, 99, 109, 119]); // the rule stated in the spec
        expect(frames.map((fr) => frameId(fr.data, fr.width, fr.height))).toEqual(expected);
        expect(frames.map((fr) => fr.timestamp)).toEqual(expected.map((_, k) => k));
        expect(frames.map((fr) => fr.index)).toEqual(expected.map((_, k) => k));
        for (const fr of frames) {
            expect(fr.data.length).toBe(64 * 48 * 3);
            expect(isSolid(fr.data)).toBe(true);
        }
        expect(video.warnings).toEqual([]);
        await video.close();
    });

    test.each([
        { fps: 3, range: undefined },
        { fps: 0.5, range: undefined },
        { fps: 1, range: { start: 2.35, end: 7.8 } },
        { fps: 2, range: { start: 4 } },
    ])("10 fps clip, fps=$fps, range=$range", async ({ fps, range }) => {
        const f = videoFixture("cfr10");
        const video = await Video.open(f.path, { fps, ...(range ?? {}) });
        const frames = await collect(video);
        const rate: [number, number] = fps === 0.5 ? [1, 2] : [fps, 1];
        const expected = expectedFpsIds(125, 10, rate, range);
        expect(frames.map((fr) => frameId(fr.data, fr.width, fr.height))).toEqual(expected);
        const start = range?.start ?? 0;
        frames.forEach((fr, k) => expect(fr.timestamp).toBeCloseTo(start + k / fps, 9));
        expect(video.warnings).toEqual([]);
        await video.close();
    });

    test("maxFrames below the sampled count keeps np.linspace(0, n-1, maxFrames, dtype=int)", async () => {
        const f = videoFixture("cfr30");
        const progress: { framesDecoded: number; framesTotal?: number }[] = [];
        const video = await Video.open(f.path, { fps: 2, maxFrames: 7, onProgress: (p) => progress.push({ ...p }) });
        const frames = await collect(video);
        // 20 s at 2 fps → n = 40 slots; slot k holds source frame 15k + 14 (last frame before (k+1)/2 s at 30 fps).
        const idx = hasNumpy() ? numpyLinspace([[40, 7]])[0]! : [0, 6, 13, 19, 26, 32, 39];
        expect(idx).toEqual([0, 6, 13, 19, 26, 32, 39]);
        expect(frames.map((fr) => frameId(fr.data, fr.width, fr.height))).toEqual(idx.map((k) => 15 * k + 14));
        expect(frames.map((fr) => fr.sampleIndex)).toEqual(idx);
        expect(frames.map((fr) => fr.timestamp)).toEqual(idx.map((k) => k * 0.5));
        // progress counts every frame the fps filter produced, with the exact total from the packet scan
        expect(progress.map((p) => p.framesDecoded)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
        expect(progress.at(-1)?.framesTotal).toBe(40);
        expect(video.warnings).toEqual([]);
        await video.close();
    });

    test("default fps=1 with a small maxFrames", async () => {
        const f = videoFixture("cfr30");
        const video = await Video.open(f.path, { maxFrames: 6 });
        const frames = await collect(video);
        const idx = hasNumpy() ? numpyLinspace([[20, 6]])[0]! : [0, 3, 7, 11, 15, 19];
        expect(frames.map((fr) => frameId(fr.data, fr.width, fr.height))).toEqual(idx.map((k) => 30 * k + 29));
        expect(frames.map((fr) => fr.timestamp)).toEqual(idx);
        await video.close();
    });

    test("odd frame size 333x197 keeps its size and pixels", async () => {
        const f = videoFixture("odd");
        const video = await Video.open(f.path, { fps: 2 });
        expect([video.width, video.height]).toEqual([333, 197]);
        const frames = await collect(video);
        // 15 frames at 5 fps = 3 s → 6 slots; slot k holds frame ⌊(k+1)·5/2⌋ − 1 rounded down to the last frame before (k+1)/2 s
        expect(frames.map((fr) => frameId(fr.data, 333, 197))).toEqual(expectedFpsIdsGeneric(15, 5, 2));
        for (const fr of frames) {
            expect([fr.width, fr.height, fr.data.length]).toEqual([333, 197, 333 * 197 * 3]);
            expect(isSolid(fr.data)).toBe(true);
        }
        await video.close();
    });

    test("a 1-frame video yields that frame (the fps filter alone yields none) with a warning", async () => {
        const f = videoFixture("one");
        // Independent check of the premise: the reference's ffmpeg command produces no frame at all.
        expect(ffmpegFrames(["-i", f.path, "-vf", "fps=fps=1:round=down"], 64 * 48 * 3)).toHaveLength(0);
        const video = await Video.open(f.path);
        const frames = await collect(video);
        expect(frames).toHaveLength(1);
        expect(frameId(frames[0]!.data, 64, 48)).toBe(0);
        expect(frames[0]!.timestamp).toBe(0);
        expect(video.warnings.join("\n")).toMatch(/shorter than one sampling interval/);
        await video.close();
    });

    test("MPEG-TS: timestamps start at the stream's start time", async () => {
        const f = videoFixture("ts");
        const video = await Video.open(f.path, { fps: 1 });
        expect(video.probe?.startTime).toBeCloseTo(1.4, 6);
        const frames = await collect(video);
        expect(frames.map((fr) => frameId(fr.data, 64, 48))).toEqual(Array.from({ length: 9 }, (_, k) => 30 * k + 29));
        expect(frames.map((fr) => fr.timestamp)).toEqual(Array.from({ length: 9 }, (_, k) => 1.4 + k));
        await video.close();
    });

    test("rotated video: upright frames with swapped size, byte-identical to ffmpeg's own autorotation", async () => {
        const f = videoFixture("rotated");
        const video = await Video.open(f.path, { fps: 2 });
        expect(video.probe?.codedWidth).toBe(96);
        expect(video.probe?.codedHeight).toBe(48);
        expect([video.width, video.height]).toEqual([48, 96]);
        expect([90, 270]).toContain(video.probe?.rotation);
        const frames = await collect(video);
        const reference = ffmpegFrames(["-i", f.path, "-vf", "fps=fps=2:round=down"], 48 * 96 * 3);
        expect(frames.length).toBe(reference.length);
        expect(frames.map((fr) => md5(fr.data))).toEqual(reference.map((b) => md5(b)));
        // and not the stored orientation
        const stored = ffmpegFrames(["-noautorotate", "-i", f.path, "-vf", "fps=fps=2:round=down"], 48 * 96 * 3);
        expect(md5(frames[0]!.data)).not.toBe(md5(stored[0]!));
        await video.close();
    });

    test("maxPixels scales frames down, keeping the aspect ratio", async () => {
        const f = videoFixture("odd");
        const video = await Video.open(f.path, { fps: 1, maxPixels: 10_000 });
        expect(video.width * video.height).toBeLessThanOrEqual(10_000);
        expect(video.width * video.height).toBeGreaterThan(9_000);
        expect(Math.abs(video.width / video.height - 333 / 197)).toBeLessThan(0.02);
        const frames = await collect(video);
        expect(frames.length).toBe(3);
        for (const fr of frames) expect(fr.data.length).toBe(video.width * video.height * 3);
        expect(frames.map((fr) => frameId(fr.data, fr.width, fr.height))).toEqual([4, 9, 14]);
        expect(video.warnings.join("\n")).toMatch(/scaled from 333x197/);
        await video.close();
    });
});

/** Same rule as {@link expectedFpsIds} for integer rates without trimming, in units of 1/(rate·fps) s. */
function expectedFpsIdsGeneric(count: number, rate: number, fps: number): number[] {
    const slot = (i: number): number => Math.floor((i * fps) / rate);
    const end = Math.floor((count * fps) / rate);
    const ids: number[] = [];
    for (let k = 0; k < end; k++) {
        let best = -1;
        for (let i = 0; i < count; i++) if (slot(i) <= k) best = i;
        ids.push(best);
    }
    return ids;
}

describe.runIf(hasNumpy())("against the reference loader (Python + numpy + the same ffmpeg command)", () => {
    const cases: { name: FixtureName; fps: number; maxFrames: number; start?: number; end?: number }[] = [
        { name: "cfr10", fps: 1, maxFrames: 180 },
        { name: "cfr10", fps: 2, maxFrames: 7 },
        { name: "cfr10", fps: 3, maxFrames: 180, start: 1.5, end: 9.25 },
        { name: "cfr30", fps: 7.5, maxFrames: 50 },
        { name: "cfr30", fps: 1, maxFrames: 180, end: 13.3 },
        { name: "cfr30", fps: 2, maxFrames: 11, start: 4.2 },
        { name: "bframes", fps: 1, maxFrames: 180 },
        { name: "bframes", fps: 4, maxFrames: 9 },
        { name: "bframes", fps: 2, maxFrames: 180, start: 1.1, end: 5.9 },
        { name: "odd", fps: 2, maxFrames: 4 },
        { name: "ts", fps: 3, maxFrames: 10 },
    ];
    let references: ReturnType<typeof referenceLoad> = [];
    beforeAll(() => {
        references = referenceLoad(cases.map((c) => ({ ...c, path: videoFixture(c.name).path })));
    });
    test.each(cases.map((c, i) => ({ ...c, i })))("$name fps=$fps maxFrames=$maxFrames start=$start end=$end", async (c) => {
        const f = videoFixture(c.name);
        const ref = references[c.i]!;
        expect(ref.md5.length).toBeGreaterThan(0);
        const video = await Video.open(f.path, { fps: c.fps, maxFrames: c.maxFrames, start: c.start, end: c.end });
        const frames = await collect(video);
        expect(frames.map((fr) => md5(fr.data))).toEqual(ref.md5);
        expect(frames.map((fr) => fr.timestamp)).toEqual(ref.timestamps);
        expect(video.warnings).toEqual([]);
        await video.close();
    });

    test("short ranges (< 1 s) use the reference's decord frame indices", async () => {
        const f = videoFixture("cfr30");
        const cases = [
            { start: 3.2, end: 3.9, fps: 1 },
            { start: 3.2, end: 3.9, fps: 4 },
            { start: 0, end: 0.5, fps: 2 },
            { start: 19.5, end: 20.4, fps: 3 },
        ];
        const expected = referenceDecordIndices(cases.map((c) => ({ s: c.start, e: c.end, vid_fps: 30, n: 600, fps: c.fps, max_frames: 180 })));
        for (const [i, c] of cases.entries()) {
            const video = await Video.open(f.path, c);
            const frames = await collect(video);
            expect(frames.map((fr) => frameId(fr.data, 64, 48))).toEqual(expected[i]);
            expect(frames.map((fr) => fr.sampleIndex)).toEqual(expected[i]);
            frames.forEach((fr) => expect(fr.timestamp).toBeCloseTo(fr.sampleIndex / 30, 12));
            expect(video.warnings).toEqual([]);
            await video.close();
        }
    });

    test("frames: N spreads N frames over the video as Video-LLaVA's HF examples do (floor(i·total/N))", async () => {
        const cases: Array<{ fixture: FixtureName; frames: number; start?: number; end?: number; total: number; first: number }> = [
            { fixture: "cfr30", frames: 8, total: 600, first: 0 },
            { fixture: "cfr10", frames: 7, total: 125, first: 0 },
            { fixture: "odd", frames: 32, total: 15, first: 0 }, // fewer frames than asked: some are delivered twice
            { fixture: "cfr30", frames: 8, start: 4, end: 10, total: 180, first: 120 },
        ];
        const expected = hasNumpy()
            ? numpyArangeIndices(cases.map((c) => [c.total, c.frames]))
            : cases.map((c) => Array.from({ length: c.frames }, (_, i) => Math.floor((i * c.total) / c.frames)));
        for (const [i, c] of cases.entries()) {
            expect(evenFrameIndices(c.total, c.frames)).toEqual(expected[i]);
            const f = videoFixture(c.fixture);
            const video = await Video.open(f.path, { frames: c.frames, ...(c.start !== undefined ? { start: c.start, end: c.end } : {}) });
            const plan = await video.plan();
            expect(plan.count).toBe(c.frames);
            const frames = await collect(video);
            const ids = expected[i]!.map((k) => k + c.first);
            expect(frames.map((fr) => frameId(fr.data, f.width, f.height))).toEqual(ids);
            expect(frames.map((fr) => fr.sampleIndex)).toEqual(ids);
            frames.forEach((fr, k) => expect(fr.timestamp).toBeCloseTo(ids[k]! / f.rate[0], 9));
            expect(video.warnings).toEqual([]);
            await video.close();
        }
        await expect(Video.open(videoFixture("cfr10").path, { frames: 8, fps: 2 })).rejects.toThrow(InvalidOptionError);
    });
});
