// Live streams with a Video-LLaVA model: the same Stream API, the family's layout (each frame a user turn holding a
// one-frame video, 257 tokens), the cache equal to the template's rendering of that conversation, eviction of whole
// frames within a bounded window, and the clear refusal of timestamps.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatTemplate } from "../../lib/chat/template.js";
import { InvalidOptionError, loadModel, Video, type FrameEvent, type Model } from "../../lib/index.js";
import { convertedTinyVideoLlava } from "../fixtures/hf-video-llava.js";
import { testVideo } from "../video/fixtures.js";

const VIDEO = 32001;
const greedy = { temperature: 0, maxTokens: 4 } as const;
let model: Model;
let frames: Array<{ data: Uint8Array; width: number; height: number; timestamp: number }>;

beforeAll(async () => {
    const files = await convertedTinyVideoLlava();
    model = await loadModel({ model: files.model, mmproj: files.mmproj });
    await using video = await Video.open(testVideo("movingThenStatic"), { fps: 1 });
    frames = [];
    for await (const f of video.frames()) frames.push({ data: f.data, width: f.width, height: f.height, timestamp: f.timestamp });
}, 600_000);

afterAll(async () => {
    await model?.dispose();
});

describe("Video-LLaVA streams", () => {
    it("appends exactly what the model's template renders: every frame a user turn with a one-frame video", async () => {
        await using stream = await model.createStream({ queue: { policy: "wait" } });
        const kept: number[] = [];
        stream.on("frame", (e: FrameEvent) => kept.push(e.keptTokens));
        for (const f of frames.slice(0, 3)) await stream.pushFrame(f);
        await stream.idle();
        const answer = await stream.ask("What moves?", greedy);
        await stream.pushFrame(frames[3]!);
        await stream.idle();
        expect(kept).toEqual([257, 257, 257, 257]); // not pruned by default, the class token kept

        // The template's text for the equivalent conversation, each message tokenized on its own (SentencePiece would
        // merge the ' ' closing a turn with the next 'USER:' in a whole-conversation tokenization; a stream appends turns
        // as they come).
        const template = new ChatTemplate(model.info.chatTemplate!);
        const frame = { role: "user", content: [{ type: "video" as const, num_frames: 1 }] };
        const whole = template.renderText([frame, frame, frame, { role: "user", content: "What moves?" }], { addGenerationPrompt: true });
        expect(whole).toBe("USER: <video>\n USER: <video>\n USER: <video>\n USER: What moves? ASSISTANT:");
        const own = (m: { role: string; content: unknown }, gen = false) => model.tokenize(template.renderText([m as typeof frame], { addGenerationPrompt: gen }), { special: true });
        const answerTokens = answer.tokens.slice(0, answer.stopReason === "maxTokens" ? -1 : undefined);
        const tokens = [1, ...own(frame), ...own(frame), ...own(frame), ...own({ role: "user", content: "What moves?" }, true), ...answerTokens, ...model.tokenize("</s>", { special: true }), ...own(frame)];
        const expected = tokens.flatMap((t) => (t === VIDEO ? new Array<number>(257).fill(VIDEO) : [t]));
        expect(stream.cachedTokens()).toEqual(expected);
    });

    it("keeps memory bounded: a window of 3 frames evicts whole frames and still answers", async () => {
        await using stream = await model.createStream({ window: { frames: 3 }, queue: { policy: "wait" } });
        const evicted: number[] = [];
        stream.on("evict", (e) => evicted.push(e.frames));
        for (const f of frames) await stream.pushFrame(f);
        await stream.idle();
        const a = await stream.ask("What now?", greedy);
        expect(a.tokens.length).toBeGreaterThan(0);
        expect(evicted.reduce((x, y) => x + y, 0)).toBe(frames.length - 3);
        expect(stream.cachedTokens().filter((t) => t === VIDEO)).toHaveLength(3 * 257 + 0);
        expect(stream.stats().framesEvicted).toBe(frames.length - 3);
    });

    it("prunes live frames when asked (the class token and the minimum kept)", async () => {
        await using stream = await model.createStream({ prune: true, queue: { policy: "wait" } });
        const kept: number[] = [];
        stream.on("frame", (e: FrameEvent) => kept.push(e.keptTokens));
        for (const f of frames) await stream.pushFrame(f);
        await stream.idle();
        expect(kept[0]).toBe(257);
        expect(kept.slice(5)).toEqual([2, 2, 2]); // the square is still from 4 s on
    });

    it("refuses timestamps with a typed error naming the option", async () => {
        await expect(model.createStream({ timestamps: true })).rejects.toBeInstanceOf(InvalidOptionError);
        await expect(model.createStream({ timestamps: true })).rejects.toMatchObject({ option: "timestamps" });
    });
});
