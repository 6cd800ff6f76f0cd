// Live streams through the public API on the generated tiny VideoLLaMA3: the tokens appended equal the model's own
// template rendering, eviction with re-packing is exact, memory stays flat over thousands of frames, questions at
// any time, queue policies, live ffmpeg sources (a growing file, a Readable, a dying source), abort/close hygiene,
// save/load.
import { execFileSync, spawn } from "node:child_process";
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatTemplate } from "../../lib/chat/template.js";
import { InvalidOptionError, loadModel, StreamSourceError, Video, type FrameEvent, type Model, type Stream } from "../../lib/index.js";
import { VIDEOLLAMA3_CHAT_TEMPLATE } from "../fixtures/hf-checkpoint.js";
import { tinyVl3 } from "../vision/fixture.js";
import { testVideo } from "../video/fixtures.js";
import { ffmpegChildren } from "../decode/helpers.js";

const IMAGE_TOKEN = 151665;
const greedy = { temperature: 0, maxTokens: 4 } as const;
let model: Model;
let dir: string;
/** Decoded frames of the generated clips (1 fps), reused by several tests. */
let moving: Array<{ data: Uint8Array; width: number; height: number; timestamp: number }>;

beforeAll(async () => {
    const fixture = await tinyVl3();
    model = await loadModel({ model: fixture.textModel, mmproj: fixture.mmproj });
    dir = mkdtempSync(join(tmpdir(), "vidllama-stream-"));
    await using video = await Video.open(testVideo("movingThenStatic"), { fps: 1 });
    moving = [];
    for await (const f of video.frames()) moving.push({ data: f.data, width: f.width, height: f.height, timestamp: f.timestamp });
}, 600_000);

afterAll(async () => {
    await model?.dispose();
    rmSync(dir, { recursive: true, force: true });
});

/** A noise frame (every token changes: DiffFP keeps it whole). */
function noiseFrame(width: number, height: number, seed: number, timestamp: number) {
    const data = new Uint8Array(width * height * 3);
    let x = seed * 2654435761 + 1;
    for (let i = 0; i < data.length; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        data[i] = x >>> 24;
    }
    return { data, width, height, timestamp };
}

/** Writes an MPEG-TS clip with ffmpeg (optionally at real time, so it grows while being read). */
function makeClip(name: string, seconds: number, rate = 10): string {
    const path = join(dir, name);
    execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `testsrc2=s=112x84:r=${rate}:d=${seconds}`, "-c:v", "mpeg2video", "-f", "mpegts", path]);
    return path;
}

describe("Stream", () => {
    it("appends exactly what the model's template renders for the equivalent conversation", async () => {
        for (const timestamps of [false, true]) {
            await using stream = await model.createStream({ systemPrompt: "Watch closely.", timestamps, queue: { policy: "wait" } });
            const kept: number[] = [];
            const positions: number[] = [];
            stream.on("frame", (e: FrameEvent) => {
                kept.push(e.keptTokens);
                positions.push(e.positions);
            });
            for (const f of moving.slice(0, 3)) await stream.pushFrame(f);
            await stream.idle();
            const answer = await stream.ask("What moves?", greedy);
            await stream.pushFrame(moving[3]!);
            await stream.idle();
            expect(kept).toHaveLength(4);
            expect(positions.reduce((a, b) => a + b, 0) + answer.promptTokens).toBeLessThan(stream.cachedTokens().length);
            expect(kept[0]).toBeGreaterThan(kept[1]!); // the first frame whole, the next ones pruned

            // The whole conversation rendered at once by the template, tokenized with special tokens, each <image>
            // expanded to the frame's kept tokens.
            const template = new ChatTemplate(VIDEOLLAMA3_CHAT_TEMPLATE);
            const frame = (t: number) => ({ role: "stream", content: [timestamps ? { type: "image" as const, timestamp: t } : { type: "image" as const }] });
            // The answer's tokens are inserted as they are (random weights: its text need not tokenize back to them);
            // the last one was sampled but not evaluated when maxTokens ended the answer.
            const answerTokens = answer.tokens.slice(0, answer.stopReason === "maxTokens" ? -1 : undefined);
            const MARK = "\u0001ANSWER\u0001";
            const text = template.renderText(
                [
                    { role: "system", content: "Watch closely." },
                    frame(moving[0]!.timestamp),
                    frame(moving[1]!.timestamp),
                    frame(moving[2]!.timestamp),
                    { role: "user", content: "What moves?" },
                    { role: "assistant", content: MARK },
                    frame(moving[3]!.timestamp),
                ],
                { addGenerationPrompt: false, variables: { image_token: "<image>" } },
            );
            if (timestamps) expect(text).toContain("Time 2.0s: <image>");
            else expect(text).not.toContain("Time");
            const [head, tail] = text.split(MARK) as [string, string];
            const tokens = [...model.tokenize(head, { special: true }), ...answerTokens, ...model.tokenize(tail, { special: true })];
            const expected: number[] = [];
            let f = 0;
            for (const t of tokens) {
                if (t === IMAGE_TOKEN) for (let i = 0; i < kept[f]!; i++) expected.push(IMAGE_TOKEN);
                else expected.push(t);
                if (t === IMAGE_TOKEN) f++;
            }
            if (JSON.stringify(stream.cachedTokens()) !== JSON.stringify(expected)) {
                console.log(model.detokenize(stream.cachedTokens(), { special: true }), "\n----\n", model.detokenize(expected, { special: true }));
            }
            expect(stream.cachedTokens()).toEqual(expected);
        }
    });

    it("prune.encodeChangedOnly: frames keep the same tokens as with the exact encoder, and questions work", async () => {
        const keptBy = async (prune: true | { encodeChangedOnly: true }) => {
            await using stream = await model.createStream({ prune, queue: { policy: "wait" } });
            const kept: number[] = [];
            stream.on("frame", (e: FrameEvent) => kept.push(e.keptTokens));
            for (const f of moving.slice(0, 4)) await stream.pushFrame(f);
            await stream.idle();
            const answer = await stream.ask("What moves?", greedy);
            expect(answer.tokens.length).toBeGreaterThan(0);
            return kept;
        };
        const exact = await keptBy(true);
        const changed = await keptBy({ encodeChangedOnly: true });
        expect(changed).toEqual(exact);
        expect(exact[0]).toBeGreaterThan(exact[1]!);
        await expect(model.createStream({ prune: { encodeChangedOnly: "yes" as unknown as boolean } })).rejects.toThrow(InvalidOptionError);
    });

    // Eviction keeps the K and V of what stays and re-packs their positions (a RoPE K-shift), as StreamingVLM and
    // llama.cpp's context shift do. In a one-layer model the K and V of a token depend on that token alone, so the
    // result must equal a fresh evaluation of only the kept frames at the re-packed positions. (With more layers the
    // kept tokens' deeper K and V still carry what they attended to before the eviction, by design.)
    it("eviction is exact: after evicting and re-packing, a question's logits equal a fresh stream fed only the kept frames", async () => {
        const oneLayer = await tinyVl3({ name: "vl3-tiny-1layer", textLayers: 1 });
        await using model = await loadModel({ model: oneLayer.textModel, mmproj: oneLayer.mmproj });
        // f32 cache, no flash attention: the CPU flash-attention kernel works in f16 internally (~1e-3 relative).
        const settings = { systemPrompt: "Sink.", timestamps: true, prune: false as const, cacheType: "f32" as const, flashAttention: false, queue: { policy: "wait" as const } };
        const frames = Array.from({ length: 8 }, (_, i) => noiseFrame(56, 56, i, i));
        await using evicting = await model.createStream({ ...settings, window: { frames: 3 } });
        const evictions: number[] = [];
        evicting.on("evict", (e) => evictions.push(e.frames));
        for (const f of frames) await evicting.pushFrame(f);
        await evicting.idle();
        const a = await evicting.ask("What is there?", { ...greedy, keep: false, logits: true });
        const stats = evicting.stats();
        expect(stats.framesEvicted).toBe(5);
        expect(stats.framesInCache).toBe(3);
        expect(stats.window).toEqual({ from: 5, to: 7 });
        expect(stats.evicted).toMatchObject({ from: 0, to: 4 });
        expect(evictions.reduce((x, y) => x + y, 0)).toBe(5);

        await using fresh = await model.createStream(settings);
        for (const f of frames.slice(5)) await fresh.pushFrame(f);
        await fresh.idle();
        const b = await fresh.ask("What is there?", { ...greedy, keep: false, logits: true });
        expect(evicting.cachedTokens()).toEqual(fresh.cachedTokens());
        const la = a.logits!;
        const lb = b.logits!;
        expect(la.length).toBe(lb.length);
        let maxDiff = 0;
        let maxAbs = 0;
        for (let i = 0; i < la.length; i++) {
            maxDiff = Math.max(maxDiff, Math.abs(la[i]! - lb[i]!));
            maxAbs = Math.max(maxAbs, Math.abs(lb[i]!));
        }
        expect(maxAbs).toBeGreaterThan(0);
        expect(maxDiff / maxAbs).toBeLessThan(1e-4);
        expect(a.tokens).toEqual(b.tokens);
        // keep: false left the stream unchanged.
        expect(evicting.stats().kvTokens).toBe(stats.kvTokens);
    });

    it("stays flat in KV size and memory through 5,000 frames pushed faster than real time", async () => {
        await using stream = await model.createStream({ window: { seconds: 60 }, queue: { policy: "wait" }, contextSize: 2048 });
        // A mostly static scene (a new picture every 50 frames): DiffFP keeps whole frames at the changes, one token in between.
        const pictures = Array.from({ length: 100 }, (_, k) => noiseFrame(28, 28, k, 0).data);
        const samples: Array<{ frame: number; rss: number; kv: number }> = [];
        for (let i = 0; i < 5000; i++) {
            await stream.pushFrame({ data: pictures[Math.floor(i / 50)]!, width: 28, height: 28, timestamp: i });
            if (i % 500 === 499) {
                await stream.idle();
                const s = stream.stats();
                samples.push({ frame: i + 1, rss: process.memoryUsage().rss, kv: s.kvTokens });
            }
        }
        await stream.idle();
        const s = stream.stats();
        expect(s.framesIngested).toBe(5000);
        expect(s.framesDropped).toBe(0);
        expect(s.framesInCache).toBeLessThanOrEqual(60);
        expect(s.framesEvicted).toBe(5000 - s.framesInCache);
        // KV size: the same window from the first sample on.
        const kv = samples.map((x) => x.kv);
        expect(Math.max(...kv) - Math.min(...kv)).toBeLessThan(100);
        // Memory: after warm-up, growth stays within noise (no per-frame leak: 4,000 frames × a frame's pixels alone would be ~9 MB).
        const rssGrowth = samples.at(-1)!.rss - samples[1]!.rss;
        expect(rssGrowth).toBeLessThan(40 * 1024 * 1024);
        // Positions never exceed the context however long the stream ran.
        expect(s.kvTokens).toBeLessThan(s.contextSize);
        expect(await stream.ask("Still there?", greedy)).toMatchObject({ stopReason: expect.any(String) });
    }, 900_000);

    it("answers questions while frames arrive; frames queued meanwhile are ingested after", async () => {
        await using stream = await model.createStream({ queue: { policy: "wait", size: 2 } });
        await using video = await Video.open(testVideo("sceneCut"), { fps: 2 });
        const ingest = stream.ingest(video);
        const answers = [];
        for (let k = 0; k < 3; k++) {
            await new Promise((r) => setTimeout(r, 30));
            answers.push(await stream.ask(`Question ${k}?`, greedy));
        }
        const end = await ingest;
        await stream.idle();
        expect(end).toMatchObject({ reason: "end", frames: 12 });
        const s = stream.stats();
        expect(s.framesIngested).toBe(12);
        expect(s.framesDropped).toBe(0);
        for (const a of answers) expect(a.tokens.length).toBeGreaterThan(0);
        expect(answers.map((a) => a.frames)).toEqual([...answers.map((a) => a.frames)].sort((x, y) => x - y));
        // The questions and answers stayed in the stream (keep defaults to true).
        const text = model.detokenize(stream.cachedTokens().filter((t) => t !== IMAGE_TOKEN), { special: true });
        for (let k = 0; k < 3; k++) expect(text).toContain(`<|im_start|>user\nQuestion ${k}?<|im_end|>\n<|im_start|>assistant\n`);
        // waitForFrames: the question sees every frame queued before it.
        const slow = await model.createStream({ queue: { policy: "wait", size: 16 } });
        for (const f of moving) void slow.pushFrame(f);
        const caughtUp = await slow.ask("Now?", { ...greedy, waitForFrames: true });
        expect(caughtUp.frames).toBe(moving.length);
        expect(caughtUp.promptTokens).toBeGreaterThan(3);
        expect(slow.settings).toMatchObject({ queue: { size: 16, policy: "wait" }, timestamps: false, budgetFrames: 180, textWindow: 1024 });
        // The default frame window bounds the cache (and so a question's latency) at 3,072 positions or what fits.
        expect(slow.settings.window).toEqual({ tokens: Math.min(3072, slow.settings.contextSize - slow.settings.reserve) });
        await slow.close();
        // askStream yields the same text as ask.
        let streamed = "";
        const s2 = stream.askStream("Again?", { ...greedy, keep: false });
        for await (const chunk of s2) streamed += chunk;
        expect(streamed).toBe((await s2.result).text);
    });

    it("overflows its queue by policy: drop-oldest keeps the newest, drop-newest the oldest, wait drops nothing", async () => {
        for (const policy of ["drop-oldest", "drop-newest", "wait"] as const) {
            await using stream = await model.createStream({ queue: { size: 2, policy } });
            const ingested: number[] = [];
            const dropped: number[] = [];
            stream.on("frame", (e) => ingested.push(e.timestamp));
            stream.on("drop", (e) => dropped.push(e.timestamp));
            // A question occupies the stream while 8 frames arrive without waiting for each other.
            const question = stream.ask("Busy?", { ...greedy, maxTokens: 8 });
            const pushes = moving.slice(0, 8).map((f) => stream.pushFrame(f));
            const accepted = (await Promise.all(pushes)).map((r) => r.accepted);
            await question;
            await stream.idle();
            const stats = stream.stats();
            expect(stats.framesSeen).toBe(8);
            expect(stats.framesIngested + stats.framesDropped).toBe(8);
            expect(dropped).toHaveLength(stats.framesDropped);
            if (policy === "wait") {
                expect(dropped).toEqual([]);
                expect(ingested).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
                expect(accepted.every(Boolean)).toBe(true);
            } else {
                expect(dropped.length).toBeGreaterThan(0);
                if (policy === "drop-oldest") expect(ingested.slice(-2)).toEqual([6, 7]);
                else {
                    expect(ingested.slice(0, 2)).toEqual([0, 1]);
                    expect(accepted.filter((a) => !a)).toHaveLength(dropped.length);
                }
            }
        }
    });

    it("follows a file while it is written, and reads encoded video from a Readable", async () => {
        const path = join(dir, "growing.ts");
        const writer = spawn("ffmpeg", ["-v", "error", "-y", "-re", "-f", "lavfi", "-i", "testsrc2=s=112x84:r=10:d=4", "-c:v", "mpeg2video", "-flush_packets", "1", "-f", "mpegts", path], { stdio: "ignore" });
        const wrote = new Promise((r) => writer.once("exit", r));
        while (!existsSync(path) || statSync(path).size === 0) await new Promise((r) => setTimeout(r, 50));
        await using stream = await model.createStream({ queue: { policy: "wait" } });
        const started = Date.now();
        const followed = await stream.ingest(path, { follow: true, fps: 2, idleTimeout: 2000 });
        await wrote;
        expect(followed).toMatchObject({ reason: "end", frames: 8 }); // 4 s at 2 fps, read while it grew
        expect(Date.now() - started).toBeGreaterThan(3000); // it waited for the writer (real time), not just the first bytes
        await stream.idle();
        expect(stream.stats().framesIngested).toBe(8);

        const clip = makeClip("piped.ts", 3);
        const piped = await stream.ingest(createReadStream(clip), { fps: 1 });
        expect(piped).toMatchObject({ reason: "end", frames: 3 });
        await stream.idle();
        // The second source's clock restarted at 0: its frames continue the stream's timeline.
        expect(stream.stats().window.to).toBeCloseTo(3.5 + 2 + 1, 5);
        expect(stream.stats().window.to).toBeGreaterThan(stream.stats().window.from);
        expect(ffmpegChildren()).toEqual([]);
    }, 60_000);

    it("a dying source ends ingestion with a typed error event; what was ingested stays and questions work", async () => {
        await using stream = await model.createStream({ queue: { policy: "wait" } });
        const errors: Error[] = [];
        stream.on("error", (e) => errors.push(e));
        const clip = makeClip("ok.ts", 2);
        expect(await stream.ingest(clip, { fps: 1 })).toMatchObject({ reason: "end", frames: 2 });
        await stream.idle();
        // Nothing listens on this port: the connection is refused (a "network cut" at once).
        const refused = await stream.ingest("rtsp://127.0.0.1:9/none", { idleTimeout: 2000 });
        expect(refused.reason).toBe("error");
        expect(refused.error).toBeInstanceOf(StreamSourceError);
        // A file that is cut short and garbage: ffmpeg fails or ends; either way no exception escapes.
        const broken = join(dir, "broken.ts");
        execFileSync("sh", ["-c", `head -c 3000 ${clip} > ${broken}; head -c 20000 /dev/urandom >> ${broken}`]);
        const r = await stream.ingest(broken, { fps: 1 });
        expect(["end", "error"]).toContain(r.reason);
        // Reconnect with back-off gives up after its attempts, each reported.
        const reconnects: number[] = [];
        stream.on("reconnect", (e) => reconnects.push(e.attempt));
        const retried = await stream.ingest("rtsp://127.0.0.1:9/none", { reconnect: { attempts: 2, delayMs: 20 }, idleTimeout: 1000 });
        expect(retried.reason).toBe("error");
        expect(reconnects).toEqual([1, 2]);
        expect(errors.length).toBeGreaterThanOrEqual(2);
        expect(stream.stats().framesIngested).toBeGreaterThanOrEqual(2);
        expect((await stream.ask("What was there?", greedy)).tokens.length).toBeGreaterThan(0);
        expect(ffmpegChildren()).toEqual([]);
    }, 60_000);

    it("abort and close stop a live source and leave no ffmpeg child", async () => {
        const clip = makeClip("long.ts", 30);
        {
            await using stream = await model.createStream({ queue: { policy: "wait" } });
            const controller = new AbortController();
            stream.on("frame", () => stream.stats().framesIngested >= 2 && controller.abort());
            const r = await stream.ingest(clip, { fps: 5, signal: controller.signal });
            expect(r.reason).toBe("abort");
            expect(r.frames).toBeLessThan(150);
            expect(ffmpegChildren()).toEqual([]);
            expect((await stream.ask("Q?", greedy)).tokens.length).toBeGreaterThan(0);
        }
        const stream = await model.createStream({ queue: { policy: "wait" } });
        const running = stream.ingest(clip, { fps: 5 });
        while (stream.stats().framesIngested < 2) await new Promise((r) => setTimeout(r, 20));
        await stream.close();
        expect((await running).reason).toBe("closed");
        expect(ffmpegChildren()).toEqual([]);
        expect(stream.closed).toBe(true);
        await expect(stream.ask("Q?")).rejects.toMatchObject({ code: "ERR_DISPOSED" });
        await expect(stream.pushFrame(moving[0]!)).rejects.toMatchObject({ code: "ERR_DISPOSED" });
    }, 60_000);

    it("saves and loads a stream, continuing without evaluating it again", async () => {
        const settings = { systemPrompt: "Sink.", window: { frames: 4 }, queue: { policy: "wait" as const } };
        const path = join(dir, "stream.state");
        await using a = await model.createStream(settings);
        for (const f of moving.slice(0, 6)) await a.pushFrame(f);
        await a.idle();
        await a.ask("First?", greedy);
        await a.save(path);
        await expect(a.save(path)).rejects.toBeInstanceOf(InvalidOptionError); // never overwritten unasked
        const expected = await a.ask("Then?", { ...greedy, keep: false });

        await using b = await model.createStream(settings);
        await b.load(path);
        expect(b.cachedTokens()).toEqual(a.cachedTokens());
        expect(b.stats()).toMatchObject({ framesIngested: 6, framesEvicted: 2, framesInCache: 4 });
        const continued = await b.ask("Then?", { ...greedy, keep: false });
        expect(continued.tokens).toEqual(expected.tokens);
        expect(continued.promptMs).toBeLessThan(10_000);

        await using other = await model.createStream({ ...settings, timestamps: true });
        await expect(other.load(path)).rejects.toMatchObject({ code: "ERR_STATE_FILE" });
    });

    it("refuses bad input with typed errors naming the option", async () => {
        await expect(model.createStream({ window: { frames: 0 } })).rejects.toMatchObject({ option: "window.frames" });
        await expect(model.createStream({ queue: { policy: "later" as never } })).rejects.toMatchObject({ option: "queue.policy" });
        await expect(model.createStream({ contextSize: 10 ** 7 })).rejects.toMatchObject({ option: "contextSize" });
        await using stream = await model.createStream();
        await expect(stream.pushFrame({ data: new Uint8Array(5), width: 2, height: 2, timestamp: 0 })).rejects.toMatchObject({ option: "frame.data" });
        await expect(stream.pushFrame({ data: new Uint8Array(12), width: 2, height: 2, timestamp: Number.NaN })).rejects.toMatchObject({ option: "frame.timestamp" });
        await stream.pushFrame({ data: new Uint8Array(12), width: 2, height: 2, timestamp: 5 });
        await expect(stream.pushFrame({ data: new Uint8Array(12), width: 2, height: 2, timestamp: 4 })).rejects.toMatchObject({ option: "frame.timestamp" });
        await expect(stream.ingest(42 as never)).rejects.toMatchObject({ option: "source" });
        await expect(stream.ingest("clip.ts", { fps: 0 })).rejects.toMatchObject({ option: "fps" });
        await expect(stream.ask("")).rejects.toMatchObject({ option: "question" });
        expect(() => stream.on("nope" as never, () => {})).toThrow(InvalidOptionError);
        const text = await loadModel({ model: (await tinyVl3()).textModel });
        await expect(text.createStream()).rejects.toMatchObject({ option: "mmproj" });
        await text.dispose();
    });
});

// Streams and sessions share one core: Stream must not be usable on a model disposed under it.
describe("Stream lifetime", () => {
    it("is closed with its model", async () => {
        const fixture = await tinyVl3();
        const m = await loadModel({ model: fixture.textModel, mmproj: fixture.mmproj });
        const stream: Stream = await m.createStream();
        await m.dispose();
        expect(stream.closed).toBe(true);
    });
});
