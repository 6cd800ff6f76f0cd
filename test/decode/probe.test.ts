/** probeVideo, the `ffmpeg -i` fallback parser, and the sampling arithmetic (count prediction, linspace, decord). */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, test } from "vitest";
import { resolveFfmpeg, resolveFfprobe, secondsStringToMicros } from "../../lib/decode/ffmpeg.js";
import {
    decordFrameIndices,
    ffmpegRate,
    linspaceIndices,
    normalizeSource,
    predictFpsFrameCount,
    probeVideo,
    probeWithFfmpeg,
    probeWithFfprobe,
    scanPackets,
    type DecodeInput,
} from "../../lib/decode/probe.js";
import { videoFixture, type FixtureName } from "../fixtures/videos.js";
import { expectNoLeakedChildren, ffmpegFrames, hasNumpy, numpyLinspace, referenceDecordIndices } from "./helpers.js";

afterEach(() => expectNoLeakedChildren());

describe("probeVideo", () => {
    test.each([
        ["cfr10", { width: 64, height: 48, fps: 10, duration: 12.5, frameCount: 125, startTime: 0, codec: "ffv1", rotation: 0 }],
        ["odd", { width: 333, height: 197, fps: 5, duration: 3, frameCount: 15, startTime: 0, codec: "ffv1", rotation: 0 }],
        ["bframes", { width: 64, height: 48, fps: 30000 / 1001, frameCount: 219, startTime: 0, codec: "h264", rotation: 0 }],
        ["ts", { width: 64, height: 48, fps: 30, duration: 9, frameCount: 270, startTime: 1.4, codec: "h264", rotation: 0 }],
        ["rotated", { width: 48, height: 96, codedWidth: 96, codedHeight: 48, fps: 10, duration: 3, frameCount: 30, codec: "h264" }],
    ] as const)("%s", async (name, expected) => {
        const p = await probeVideo(videoFixture(name as FixtureName).path);
        for (const [key, value] of Object.entries(expected)) {
            if (typeof value === "number" && !Number.isInteger(value)) expect(p[key as keyof typeof p]).toBeCloseTo(value, 4);
            else expect(p[key as keyof typeof p]).toEqual(value);
        }
        if (name === "bframes") expect(p.duration).toBeCloseTo(219 / (30000 / 1001), 2);
    });

    test("bytes can be probed too (through a temporary file)", async () => {
        const p = await probeVideo(readFileSync(videoFixture("bframes").path));
        expect([p.width, p.height, p.frameCount]).toEqual([64, 48, 219]);
    });

    test("the `ffmpeg -i` parser agrees with ffprobe", async () => {
        const ffmpeg = await resolveFfmpeg();
        const ffprobe = (await resolveFfprobe(ffmpeg))!;
        const o = { signal: undefined, stallTimeout: 20_000 };
        for (const name of ["cfr10", "odd", "bframes", "ts", "rotated"] as const) {
            const input = normalizeSource(videoFixture(name).path) as DecodeInput;
            const a = await probeWithFfprobe(input, ffprobe, o);
            const b = await probeWithFfmpeg(input, ffmpeg, o);
            expect([b.width, b.height, b.codedWidth, b.codedHeight, b.rotation, b.codec, b.streamIndex]).toEqual([
                a.width,
                a.height,
                a.codedWidth,
                a.codedHeight,
                a.rotation,
                a.codec,
                a.streamIndex,
            ]);
            expect(b.duration).toBeCloseTo(a.duration, 1);
            expect(b.fps).toBeCloseTo(a.fps, 2);
            expect(b.startTime).toBeCloseTo(a.startTime, 5);
        }
    });
});

describe("sampling arithmetic", () => {
    test("linspaceIndices matches numpy (float64 arithmetic, truncation) — including cases exact fractions get wrong", () => {
        const cases: [number, number][] = [];
        for (let n = 3; n < 260; n++) for (const m of [2, 3, 7, 16, 64, 128, 180]) if (n > m) cases.push([n, m]);
        cases.push([7200, 180], [10_801, 180], [123_457, 128]);
        if (!hasNumpy()) {
            // numpy-verified values
            expect(linspaceIndices(40, 7)).toEqual([0, 6, 13, 19, 26, 32, 39]);
            return;
        }
        const expected = numpyLinspace(cases);
        cases.forEach(([n, m], i) => expect(linspaceIndices(n, m)).toEqual(expected[i]));
        // Exact rational floor(j(n-1)/(m-1)) differs from numpy for some of these; ours must not.
        const exactDiffers = cases.some(([n, m], i) => expected[i]!.some((v, j) => v !== (j === m - 1 ? n - 1 : Math.floor((j * (n - 1)) / (m - 1)))));
        expect(exactDiffers).toBe(true);
    });

    test("ffmpegRate = av_d2q(value, 1001000)", () => {
        expect(ffmpegRate(1)).toEqual([1n, 1n]);
        expect(ffmpegRate(0.5)).toEqual([1n, 2n]);
        expect(ffmpegRate(7.5)).toEqual([15n, 2n]);
        expect(ffmpegRate(1 / 3)).toEqual([1n, 3n]);
        expect(ffmpegRate(29.97)).toEqual([2997n, 100n]);
        expect(ffmpegRate(30000 / 1001)).toEqual([30000n, 1001n]);
    });

    test.runIf(hasNumpy())("decordFrameIndices matches the reference's load_video_from_ids arithmetic", () => {
        const cases: { s: number; e: number; vid_fps: number; n: number; fps: number; max_frames: number }[] = [];
        let seed = 7;
        const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
        for (let i = 0; i < 300; i++) {
            const vid_fps = [23.976023976023978, 25, 29.97002997002997, 30, 59.94005994005994, 10, 5][i % 7]!;
            const n = 50 + Math.floor(rnd() * 2000);
            const s = Math.round(rnd() * (n / vid_fps) * 1000) / 1000;
            const e = s + Math.round(rnd() * 990) / 1000 + 0.001;
            const fps = [1, 2, 0.5, 3, 4, 1.5][i % 6]!;
            const max_frames = [180, 128, 2, 1][i % 4]!;
            cases.push({ s, e, vid_fps, n, fps, max_frames });
        }
        const expected = referenceDecordIndices(cases);
        cases.forEach((c, i) =>
            expect(decordFrameIndices({ start: c.s, end: c.e, videoFps: c.vid_fps, frameCount: c.n, fps: c.fps, maxFrames: c.max_frames })).toEqual(expected[i]),
        );
    });

    // The packet-scan prediction of the fps filter's output count, against what ffmpeg actually outputs.
    const cases: { name: FixtureName; ss?: string; t?: string }[] = [
        { name: "cfr10" },
        { name: "cfr10", ss: "1.23" },
        { name: "cfr30", ss: "0", t: "2.5" },
        { name: "cfr30", ss: "4.01", t: "0.999" },
        { name: "bframes" },
        { name: "bframes", ss: "0.5", t: "1.7" },
        { name: "ts" },
        { name: "one" },
    ];
    test.each(cases)("predicted fps-filter frame count = ffmpeg's: $name ss=$ss t=$t", async ({ name, ss, t }) => {
        const f = videoFixture(name);
        const ffmpeg = await resolveFfmpeg();
        const ffprobe = (await resolveFfprobe(ffmpeg))!;
        const input = normalizeSource(f.path) as DecodeInput;
        const o = { signal: undefined, stallTimeout: 20_000 };
        const probe = await probeWithFfprobe(input, ffprobe, o);
        const frames = (await scanPackets(input, ffprobe, probe.streamIndex, o))!;
        expect(frames.length).toBe(f.frames);
        for (const fps of [1, 7.5]) {
            const predicted = predictFpsFrameCount(
                frames,
                probe.timeBase!,
                probe.formatStartMicros,
                { ss: ss === undefined ? undefined : secondsStringToMicros(ss), t: t === undefined ? undefined : secondsStringToMicros(t) },
                ffmpegRate(fps),
            );
            const args = [...(ss ? ["-ss", ss] : []), ...(t ? ["-t", t] : []), "-i", f.path, "-vf", `fps=fps=${fps}:round=down`, "-s", "8x6"];
            expect([fps, predicted]).toEqual([fps, ffmpegFrames(args, 8 * 6 * 3).length]);
        }
    });
});
