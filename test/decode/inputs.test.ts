/** Buffer, Uint8Array, Readable, file: URL and http(s) URL sources; backpressure. */
import { createReadStream, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { Readable } from "node:stream";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { Video } from "../../lib/decode/Video.js";
import { frameId, videoFixture } from "../fixtures/videos.js";
import { collect, expectNoLeakedChildren, ffmpegChildren, md5, sleep } from "./helpers.js";

afterEach(() => expectNoLeakedChildren());

/** Frames of the B-frame MP4 (index at the end of the file, so a plain pipe could not be demuxed) from its path. */
async function baseline(): Promise<string[]> {
    const video = await Video.open(videoFixture("bframes").path, { fps: 2, maxFrames: 5 });
    const frames = await collect(video);
    await video.close();
    return frames.map((f) => md5(f.data));
}

describe("sources", () => {
    let expected: string[];
    let server: Server;
    let base: string;
    const requests: string[] = [];

    beforeAll(async () => {
        expected = await baseline();
        expect(expected).toHaveLength(5);
        // A static file server with Range support (ffmpeg seeks to the MP4 index at the end).
        server = createServer((req, res) => {
            requests.push(`${req.method} ${req.url} ${req.headers.range ?? ""}`);
            const name = decodeURIComponent(req.url!.slice(1)).replace(/\?.*$/, "");
            let body: Buffer;
            try {
                body = readFileSync(videoFixture(name as "bframes").path);
            } catch {
                res.writeHead(404).end();
                return;
            }
            const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
            if (m) {
                const start = Number(m[1]);
                const end = m[2] ? Number(m[2]) : body.length - 1;
                res.writeHead(206, {
                    "Content-Range": `bytes ${start}-${end}/${body.length}`,
                    "Content-Length": end - start + 1,
                    "Accept-Ranges": "bytes",
                });
                res.end(body.subarray(start, end + 1));
            } else {
                res.writeHead(200, { "Content-Length": body.length, "Accept-Ranges": "bytes" });
                res.end(body);
            }
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    test("Buffer (MP4 with its index at the end)", async () => {
        const bytes = readFileSync(videoFixture("bframes").path);
        const video = await Video.open(bytes, { fps: 2, maxFrames: 5 });
        expect(video.source).toBe(`<Buffer ${bytes.length} bytes>`);
        expect((await collect(video)).map((f) => md5(f.data))).toEqual(expected);
        expect(video.warnings).toEqual([]);
        // a second pass feeds the bytes again
        expect((await collect(video)).map((f) => md5(f.data))).toEqual(expected);
        await video.close();
    });

    test("plain Uint8Array", async () => {
        const bytes = new Uint8Array(readFileSync(videoFixture("bframes").path));
        const video = await Video.open(bytes, { fps: 2, maxFrames: 5 });
        expect((await collect(video)).map((f) => md5(f.data))).toEqual(expected);
        await video.close();
    });

    test("Readable stream (spooled to a temporary file, removed by close)", async () => {
        const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith("vidllama-video-")));
        const video = await Video.open(createReadStream(videoFixture("bframes").path, { highWaterMark: 1024 }), { fps: 2, maxFrames: 5 });
        const created = readdirSync(tmpdir()).filter((n) => n.startsWith("vidllama-video-") && !before.has(n));
        expect(created).toHaveLength(1);
        expect((await collect(video)).map((f) => md5(f.data))).toEqual(expected);
        expect((await collect(video)).map((f) => md5(f.data))).toEqual(expected);
        await video.close();
        expect(readdirSync(tmpdir()).filter((n) => created.includes(n))).toEqual([]);
    });

    test("a Readable that fails → MediaDecodeError, temporary file removed", async () => {
        const before = readdirSync(tmpdir()).filter((n) => n.startsWith("vidllama-video-")).length;
        const failing = new Readable({
            read() {
                this.destroy(new Error("disk on fire"));
            },
        });
        await expect(Video.open(failing)).rejects.toMatchObject({ name: "MediaDecodeError", message: expect.stringMatching(/disk on fire/) });
        expect(readdirSync(tmpdir()).filter((n) => n.startsWith("vidllama-video-")).length).toBe(before);
    });

    test("file: URL", async () => {
        const video = await Video.open(pathToFileURL(videoFixture("bframes").path), { fps: 2, maxFrames: 5 });
        expect((await collect(video)).map((f) => md5(f.data))).toEqual(expected);
        await video.close();
    });

    test("http URL, as a string and as a URL object", async () => {
        for (const source of [`${base}/bframes`, new URL(`${base}/bframes`)]) {
            requests.length = 0;
            const video = await Video.open(source, { fps: 2, maxFrames: 5 });
            expect(video.source).toBe(`${base}/bframes`);
            expect((await collect(video)).map((f) => md5(f.data))).toEqual(expected);
            expect(requests.length).toBeGreaterThan(0);
            await video.close();
        }
    });

    test("http URL that does not exist → MediaDecodeError", async () => {
        await expect(Video.open(`${base}/nothing-here`)).rejects.toMatchObject({ name: "MediaDecodeError", source: `${base}/nothing-here` });
    });
});

describe("streaming", () => {
    test("ffmpeg is never more than a couple of frames ahead of a slow consumer", async () => {
        const f = videoFixture("big"); // 320x240: 230400 bytes per frame, 100 frames
        const frameSize = 320 * 240 * 3;
        const video = await Video.open(f.path, { fps: 25 });
        const it = video.frames()[Symbol.asyncIterator]();
        let consumed = 0;
        for (let i = 0; i < 3; i++) {
            const r = await it.next();
            expect(r.done).toBe(false);
            consumed++;
        }
        await sleep(700); // ffmpeg could decode all 100 frames in this time if nothing held it back
        const children = ffmpegChildren().filter((c) => c.comm === "ffmpeg");
        expect(children).toHaveLength(1);
        const io = readFileSync(`/proc/${children[0]!.pid}/io`, "utf8");
        const written = Number(/wchar:\s*(\d+)/.exec(io)![1]);
        // Written = frames consumed + what fits in the pipe and the stream buffer (< 1 frame each) + progress text.
        expect(written).toBeGreaterThan(consumed * frameSize);
        expect(written).toBeLessThan((consumed + 2) * frameSize);
        // Still delivers everything afterwards.
        let rest = 0;
        for (;;) {
            const r = await it.next();
            if (r.done) break;
            rest++;
        }
        expect(consumed + rest).toBe(100);
        await video.close();
    });

    test("a large Buffer with a slow consumer: complete, identical to the file, no warnings", async () => {
        // (Regression: bytes piped through ffmpeg's cache:pipe:0 were misread for Matroska.)
        const path = videoFixture("big").path;
        const bytes = readFileSync(path);
        expect(bytes.length).toBeGreaterThan(256 * 1024); // larger than the pipe buffers
        const fromFile = await Video.open(path, { fps: 25 });
        const expected = (await collect(fromFile)).map((f) => md5(f.data));
        await fromFile.close();
        const video = await Video.open(bytes, { fps: 25 });
        const got: string[] = [];
        for await (const frame of video.frames()) {
            expect(frame.data.length).toBe(320 * 240 * 3);
            if (got.length < 5) await sleep(50);
            got.push(md5(frame.data));
        }
        expect(got).toEqual(expected);
        expect(got).toHaveLength(100);
        expect(video.warnings).toEqual([]);
        await video.close();
    });

    test("frames are independent buffers (a frame is not overwritten by the next one)", async () => {
        const video = await Video.open(videoFixture("cfr10").path, { fps: 2 });
        const frames = await collect(video);
        expect(frames.map((f) => frameId(f.data, 64, 48))).toEqual(Array.from({ length: 25 }, (_, k) => 5 * k + 4));
        expect(statSync(videoFixture("cfr10").path).size).toBeGreaterThan(0);
        await video.close();
    });
});
