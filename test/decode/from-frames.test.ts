/** Video.fromFrames: frames the caller decoded itself. */
import { describe, expect, test } from "vitest";
import { InvalidOptionError, MediaDecodeError } from "../../lib/errors.js";
import { Video, type InputFrame } from "../../lib/decode/Video.js";
import { collect, hasNumpy, numpyLinspace } from "./helpers.js";

function rgbFrame(w: number, h: number, value: number, extra: Partial<InputFrame> = {}): InputFrame {
    const data = new Uint8Array(w * h * 3);
    for (let i = 0; i < data.length; i++) data[i] = (value + i) & 255;
    return { data, width: w, height: h, ...extra };
}

describe("Video.fromFrames", () => {
    test("an array of RGB frames: size, default timestamps, repeatable passes, no ffmpeg", async () => {
        const frames = [0, 1, 2, 3].map((k) => rgbFrame(5, 3, k * 10));
        const video = await Video.fromFrames(frames, { fps: 2 });
        expect([video.width, video.height, video.fps, video.frameCount, video.duration]).toEqual([5, 3, 2, 4, 2]);
        expect(video.ffmpeg).toBeUndefined();
        for (let pass = 0; pass < 2; pass++) {
            const out = await collect(video);
            expect(out.map((f) => f.timestamp)).toEqual([0, 0.5, 1, 1.5]);
            expect(out.map((f) => f.index)).toEqual([0, 1, 2, 3]);
            out.forEach((f, k) => expect(Array.from(f.data)).toEqual(Array.from(frames[k]!.data)));
        }
        await video.close();
    });

    test("RGBA (including Uint8ClampedArray, as WebCodecs/ImageData give) is converted to RGB; timestamps are kept", async () => {
        const w = 3;
        const h = 2;
        const rgba = new Uint8ClampedArray(w * h * 4);
        for (let p = 0; p < w * h; p++) rgba.set([p, 100 + p, 200 + p, 7], p * 4);
        const video = await Video.fromFrames([{ data: rgba, width: w, height: h, timestamp: 4.25, format: "rgba" }, { data: new Uint8Array(rgba), width: w, height: h, timestamp: 5 }]);
        const out = await collect(video);
        expect(out.map((f) => f.timestamp)).toEqual([4.25, 5]);
        for (const f of out) {
            expect(f.data).toBeInstanceOf(Uint8Array);
            expect(Array.from(f.data)).toEqual(Array.from({ length: w * h }, (_, p) => [p, 100 + p, 200 + p]).flat());
        }
    });

    test("an array longer than maxFrames is subsampled with the reference's linspace", async () => {
        const frames = Array.from({ length: 154 }, (_, k) => rgbFrame(2, 2, k));
        const video = await Video.fromFrames(frames, { maxFrames: 64 });
        const out = await collect(video);
        const expected = hasNumpy() ? numpyLinspace([[154, 64]])[0]! : undefined;
        expect(out).toHaveLength(64);
        if (expected) expect(out.map((f) => f.sampleIndex)).toEqual(expected);
        out.forEach((f) => expect(f.data[0]).toBe(f.sampleIndex & 255));
    });

    test("validation", async () => {
        const bad: [unknown, string][] = [
            [[rgbFrame(4, 4, 0), rgbFrame(4, 5, 0)], "frames[1]"],
            [[{ data: new Uint8Array(10), width: 2, height: 2 }], "frames[0].data"],
            [[{ data: new Uint8Array(12), width: 2, height: 2, format: "rgba" }], "frames[0].data"],
            [[{ data: new Uint8Array(12), width: 0, height: 2 }], "frames[0].width"],
            [[{ data: new Uint8Array(12), width: 2, height: 2.5 }], "frames[0].height"],
            [[{ data: [1, 2, 3], width: 1, height: 1 }], "frames[0].data"],
            [[{ data: new Uint8Array(3), width: 1, height: 1, format: "bgr" }], "frames[0].format"],
            [[{ data: new Uint8Array(3), width: 1, height: 1, timestamp: Number.NaN }], "frames[0].timestamp"],
            [[null], "frames[0]"],
            [42, "frames"],
        ];
        for (const [frames, option] of bad) {
            const error = await Video.fromFrames(frames as never).catch((e: unknown) => e);
            expect(error, option).toBeInstanceOf(InvalidOptionError);
            expect((error as InvalidOptionError).option).toBe(option);
        }
        await expect(Video.fromFrames([])).rejects.toBeInstanceOf(MediaDecodeError);
        await expect(Video.fromFrames([rgbFrame(1, 1, 0)], { fps: 0 })).rejects.toBeInstanceOf(InvalidOptionError);
        await expect(Video.fromFrames([rgbFrame(1, 1, 0)], { maxFramez: 3 } as never)).rejects.toBeInstanceOf(InvalidOptionError);
    });

    test("an async iterable is read lazily, once, validated frame by frame", async () => {
        let produced = 0;
        let finalized = false;
        async function* source(): AsyncGenerator<InputFrame> {
            try {
                for (let k = 0; k < 5; k++) {
                    produced++;
                    yield rgbFrame(4, 2, k);
                }
            } finally {
                finalized = true;
            }
        }
        const video = await Video.fromFrames(source(), { fps: 4 });
        expect(produced).toBe(1); // only the first frame, to learn the size
        expect([video.width, video.height, video.frameCount]).toEqual([4, 2, undefined]);
        expect(Number.isNaN(video.duration)).toBe(true);
        const out = await collect(video);
        expect(out.map((f) => f.timestamp)).toEqual([0, 0.25, 0.5, 0.75, 1]);
        expect(finalized).toBe(true);
        await expect(collect(video)).rejects.toBeInstanceOf(MediaDecodeError); // consumed
    });

    test("async iterable: break closes the source; too many frames or a bad frame is an error", async () => {
        let finalized = false;
        async function* endless(): AsyncGenerator<InputFrame> {
            try {
                for (let k = 0; ; k++) yield rgbFrame(2, 2, k);
            } finally {
                finalized = true;
            }
        }
        const a = await Video.fromFrames(endless());
        for await (const f of a.frames()) if (f.index === 3) break;
        expect(finalized).toBe(true);

        const b = await Video.fromFrames(endless(), { maxFrames: 10 });
        await expect(collect(b)).rejects.toMatchObject({ name: "InvalidOptionError", option: "frames" });

        const c = await Video.fromFrames((function* () {
            yield rgbFrame(2, 2, 0);
            yield rgbFrame(3, 2, 0);
        })());
        await expect(collect(c)).rejects.toMatchObject({ name: "InvalidOptionError", option: "frames[1]" });
    });

    test("abort while waiting for the next user frame", async () => {
        const controller = new AbortController();
        async function* slow(): AsyncGenerator<InputFrame> {
            yield rgbFrame(2, 2, 0);
            await new Promise(() => {}); // never resolves
        }
        const video = await Video.fromFrames(slow());
        const it = video.frames({ signal: controller.signal })[Symbol.asyncIterator]();
        await it.next();
        const pending = it.next();
        controller.abort(new Error("stop"));
        await expect(pending).rejects.toThrow("stop");
    });
});
