/** Invalid input, corrupt files, stalls, abort, early exit, close: errors are clear and every child is reaped. */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { DisposedError, InvalidOptionError, MediaDecodeError } from "../../lib/errors.js";
import { linspaceIndices } from "../../lib/decode/probe.js";
import { Video } from "../../lib/decode/Video.js";
import { frameId, videoFixture } from "../fixtures/videos.js";
import { collect, expectNoLeakedChildren, ffmpegChildren, sleep } from "./helpers.js";

afterEach(() => expectNoLeakedChildren());

describe("invalid options and sources", () => {
    test.each([
        [{ fps: 0 }, "fps"],
        [{ fps: -1 }, "fps"],
        [{ fps: "1" }, "fps"],
        [{ fps: Number.NaN }, "fps"],
        [{ maxFrames: 0 }, "maxFrames"],
        [{ maxFrames: 2.5 }, "maxFrames"],
        [{ start: -1 }, "start"],
        [{ start: 5, end: 5 }, "end"],
        [{ start: 6, end: 2 }, "end"],
        [{ maxPixels: 0 }, "maxPixels"],
        [{ signal: "stop" }, "signal"],
        [{ onProgress: 1 }, "onProgress"],
        [{ ffmpegPath: 42 }, "ffmpegPath"],
        [{ stallTimeout: 5 }, "stallTimeout"],
        [{ fsp: 2 }, "fsp"],
    ])("%o → InvalidOptionError(%s)", async (options, option) => {
        const error = await Video.open(videoFixture("cfr10").path, options as never).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(InvalidOptionError);
        expect((error as InvalidOptionError).option).toBe(option);
        if (option === "fsp") expect((error as Error).message).toMatch(/did you mean "fps"/);
    });

    test("ranges outside the video → InvalidOptionError", async () => {
        const path = videoFixture("cfr10").path; // 12.5 s
        await expect(Video.open(path, { start: 12.5 })).rejects.toMatchObject({ name: "InvalidOptionError", option: "start" });
        await expect(Video.open(path, { start: 30, end: 40 })).rejects.toMatchObject({ name: "InvalidOptionError", option: "start" });
    });

    test("frames() options are validated", async () => {
        const video = await Video.open(videoFixture("cfr10").path);
        await expect(collect(video, { signal: 1 } as never)).rejects.toBeInstanceOf(InvalidOptionError);
        await expect(collect(video, { sgnal: undefined, foo: 1 } as never)).rejects.toBeInstanceOf(InvalidOptionError);
        await video.close();
    });

    test("a missing file → MediaDecodeError naming the path, before ffmpeg is even looked for", async () => {
        const missing = join(tmpdir(), "vidllama-no-such-video.mp4");
        // An unusable ffmpegPath would give FfmpegNotFoundError/warnings if the search ran first.
        const error = await Video.open(missing, { ffmpegPath: "/nonexistent/ffmpeg" }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MediaDecodeError);
        expect((error as MediaDecodeError).source).toBe(missing);
        expect((error as Error).message).toContain(missing);
        expect((error as Error).message).toMatch(/no such file/);
    });

    test("a directory, an empty file, garbage bytes, unsupported sources", async () => {
        const dir = mkdtempSync(join(tmpdir(), "vidllama-decode-"));
        try {
            await expect(Video.open(dir)).rejects.toMatchObject({ name: "MediaDecodeError", message: expect.stringMatching(/directory/) });
            writeFileSync(join(dir, "empty.mp4"), "");
            await expect(Video.open(join(dir, "empty.mp4"))).rejects.toMatchObject({ name: "MediaDecodeError", message: expect.stringMatching(/empty/) });
            const garbage = Buffer.alloc(50_000);
            for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 251;
            writeFileSync(join(dir, "garbage.mp4"), garbage);
            await expect(Video.open(join(dir, "garbage.mp4"))).rejects.toBeInstanceOf(MediaDecodeError);
            await expect(Video.open(garbage)).rejects.toBeInstanceOf(MediaDecodeError);
            await expect(Video.open(Buffer.alloc(0))).rejects.toBeInstanceOf(MediaDecodeError);
            await expect(Video.open(42 as never)).rejects.toBeInstanceOf(InvalidOptionError);
            await expect(Video.open(new URL("ftp://example.com/x.mp4"))).rejects.toBeInstanceOf(InvalidOptionError);
            // audio only: no video stream
            const audio = join(dir, "tone.wav");
            execFileSync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i", "sine=d=0.2", audio]);
            await expect(Video.open(audio)).rejects.toMatchObject({ name: "MediaDecodeError", message: expect.stringMatching(/no video stream/) });
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("corrupt input", () => {
    test("a truncated file yields the frames before the cut, with a warning", async () => {
        const f = videoFixture("truncated"); // 125 frames at 10 fps, cut after 45% of the bytes
        const video = await Video.open(f.path);
        const frames = await collect(video);
        expect(frames.length).toBeGreaterThan(0);
        expect(frames.length).toBeLessThan(12);
        expect(frames.map((fr) => frameId(fr.data, 160, 120))).toEqual(frames.map((_, k) => 10 * k + 9));
        expect(video.warnings.length).toBeGreaterThan(0);
        await video.close();
    });

    test("overwritten bytes: frames are still delivered, decoder errors become warnings", async () => {
        const f = videoFixture("scribbled"); // 150 frames at 30 fps, 4 KiB of garbage in the middle
        const video = await Video.open(f.path, { fps: 5 });
        const frames = await collect(video);
        expect(frames.length).toBeGreaterThanOrEqual(20);
        expect(video.warnings.join("\n")).toMatch(/ffmpeg/);
        await video.close();
    });

    test("a truncated file that needs subsampling: the count comes from the packets that are there", async () => {
        const f = videoFixture("truncated");
        const video = await Video.open(f.path, { fps: 10, maxFrames: 5 });
        const frames = await collect(video);
        const ids = frames.map((fr) => frameId(fr.data, 160, 120));
        // Every source frame is a sample at fps=10; the packet scan sees the n frames left, linspace picks 5 of them
        // and the last one is the last decodable frame.
        expect(frames).toHaveLength(5);
        const n = ids.at(-1)! + 1;
        expect(n).toBeGreaterThan(10);
        expect(n).toBeLessThan(125);
        expect(ids).toEqual(linspaceIndices(n, 5));
        expect(video.warnings.join("\n")).toMatch(/ffmpeg reported errors/);
        await video.close();
    });
});

describe("child processes are always reaped", () => {
    test("break out of the loop early", async () => {
        const video = await Video.open(videoFixture("big").path, { fps: 25 });
        let n = 0;
        for await (const frame of video.frames()) {
            expect(frame.data.length).toBe(320 * 240 * 3);
            if (++n === 2) break;
        }
        expect(n).toBe(2);
        expectNoLeakedChildren();
        // the video stays usable
        const again = video.frames()[Symbol.asyncIterator]();
        expect((await again.next()).done).toBe(false);
        await again.return();
        await video.close();
    });

    test("abort mid-decode rejects with the signal's reason and kills ffmpeg", async () => {
        const video = await Video.open(videoFixture("big").path, { fps: 25 });
        const controller = new AbortController();
        const reason = new Error("user cancelled");
        let n = 0;
        const error = await (async () => {
            for await (const _ of video.frames({ signal: controller.signal })) {
                if (++n === 3) controller.abort(reason);
            }
        })().catch((e: unknown) => e);
        expect(error).toBe(reason);
        expect(n).toBe(3);
        expectNoLeakedChildren();
        await video.close();
    });

    test("abort while the consumer holds a frame kills the child at once", async () => {
        const controller = new AbortController();
        const video = await Video.open(videoFixture("big").path, { fps: 25, signal: controller.signal });
        const it = video.frames()[Symbol.asyncIterator]();
        await it.next();
        expect(ffmpegChildren().length).toBeGreaterThan(0);
        controller.abort();
        await sleep(300);
        expect(ffmpegChildren()).toEqual([]); // killed and reaped without the consumer calling next()
        await expect(it.next()).rejects.toMatchObject({ name: "AbortError" });
        await video.close();
    });

    test("an already aborted signal rejects before spawning", async () => {
        const controller = new AbortController();
        controller.abort(new Error("early"));
        await expect(Video.open(videoFixture("cfr10").path, { signal: controller.signal })).rejects.toThrow("early");
        const video = await Video.open(videoFixture("cfr10").path);
        await expect(collect(video, { signal: controller.signal })).rejects.toThrow("early");
        await video.close();
    });

    test("abort while waiting for the frame count (subsampling) and during the count pass", async () => {
        const video = await Video.open(videoFixture("cfr30").path, { fps: 30, maxFrames: 10 });
        const controller = new AbortController();
        const it = video.frames({ signal: controller.signal })[Symbol.asyncIterator]();
        await it.next();
        const pending = it.next();
        controller.abort();
        await expect(pending).rejects.toMatchObject({ name: "AbortError" });
        expectNoLeakedChildren();
        await video.close();
    });

    test("close() during a pass kills the child; the pass rejects with DisposedError", async () => {
        const video = await Video.open(videoFixture("big").path, { fps: 25 });
        const it = video.frames()[Symbol.asyncIterator]();
        await it.next();
        await video.close();
        expectNoLeakedChildren();
        await expect(it.next()).rejects.toBeInstanceOf(DisposedError);
        await expect(collect(video)).rejects.toBeInstanceOf(DisposedError);
        await video.close(); // idempotent
    });

    test("Symbol.asyncDispose closes the video", async () => {
        const video = await Video.open(videoFixture("cfr10").path);
        const it = video.frames()[Symbol.asyncIterator]();
        await it.next();
        await video[Symbol.asyncDispose]();
        expectNoLeakedChildren();
        await expect(it.next()).rejects.toBeInstanceOf(DisposedError);
    });

    test("an exception thrown by onProgress propagates and reaps the child", async () => {
        const video = await Video.open(videoFixture("big").path, {
            fps: 25,
            onProgress: (p) => {
                if (p.framesDecoded === 4) throw new Error("progress handler failed");
            },
        });
        await expect(collect(video)).rejects.toThrow("progress handler failed");
        expectNoLeakedChildren();
        await video.close();
    });
});

describe("a stalled ffmpeg", () => {
    let dir: string;
    let raw: string;
    beforeAll(() => {
        dir = mkdtempSync(join(tmpdir(), "vidllama-stall-"));
        // Two real frames (cfr10 at 1 fps), then silence with stdout left open.
        raw = join(dir, "two-frames.rgb");
        const out = execFileSync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-nostdin", "-i", videoFixture("cfr10").path, "-vf", "fps=fps=1:round=down", "-frames:v", "2", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
        writeFileSync(raw, out);
        const real = execFileSync("sh", ["-c", "command -v ffmpeg"]).toString().trim();
        for (const [name, bytes, then] of [
            ["fake-ffmpeg", 2 * 64 * 48 * 3, "exec sleep 600"],
            ["fake0-ffmpeg", 0, "exec sleep 600"],
            ["short-ffmpeg", 2 * 64 * 48 * 3, "exit 0"],
        ] as const) {
            writeFileSync(
                join(dir, name),
                `#!/bin/sh\ncase " $* " in\n  *" rawvideo "*) head -c ${bytes} "${raw}"; ${then} ;;\n  *) exec "${real}" "$@" ;;\nesac\n`,
            );
            chmodSync(join(dir, name), 0o755);
        }
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    test("is killed after stallTimeout; the frames so far are delivered with a warning", async () => {
        const video = await Video.open(videoFixture("cfr10").path, { ffmpegPath: join(dir, "fake-ffmpeg"), stallTimeout: 600 });
        expect(video.ffmpeg?.source).toBe("option");
        const started = Date.now();
        const frames = await collect(video);
        expect(Date.now() - started).toBeLessThan(10_000);
        expect(frames.map((fr) => frameId(fr.data, 64, 48))).toEqual([9, 19]);
        expect(video.warnings.join("\n")).toMatch(/no progress for 600 ms/);
        expectNoLeakedChildren();
        await video.close();
    });

    test("an ffmpeg that stops before the predicted count: the last decoded frame still closes the subsampled sequence", async () => {
        // Predicted: 12 samples (12.5 s at 1 fps) → linspace(0, 11, 4) = [0, 3, 7, 11]; this ffmpeg delivers 2 and exits.
        const video = await Video.open(videoFixture("cfr10").path, { ffmpegPath: join(dir, "short-ffmpeg"), maxFrames: 4 });
        const frames = await collect(video);
        expect(frames.map((fr) => [fr.sampleIndex, frameId(fr.data, 64, 48), fr.timestamp])).toEqual([
            [0, 9, 0],
            [1, 19, 1],
        ]);
        expect(video.warnings.join("\n")).toMatch(/stopped before the predicted sampled frame 11/);
        expect(video.warnings.join("\n")).toMatch(/expected 12 sampled frames \(from the packet timestamps\) but ffmpeg produced 2/);
        await video.close();
    });

    test("with nothing decoded → MediaDecodeError", async () => {
        const video = await Video.open(videoFixture("cfr10").path, { ffmpegPath: join(dir, "fake0-ffmpeg"), stallTimeout: 500 });
        await expect(collect(video)).rejects.toMatchObject({ name: "MediaDecodeError", message: expect.stringMatching(/no progress/) });
        expectNoLeakedChildren();
        await video.close();
    });
});
