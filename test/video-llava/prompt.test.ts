// Video-LLaVA through the same public API as VideoLLaMA3, on the generated tiny checkpoint converted by our converter:
// the Hugging Face prompt format with 256 `<image>` and 2,056 `<video>` placeholders (ids checked against the spec's
// Hugging Face test ids), 8 frames at floor(i·N/8), images and videos mixed, placeholders never sampled, KV reuse
// over turns, and Differential Frame Pruning offered but off by default.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, loadModel, Video, type Model } from "../../lib/index.js";
import { native } from "../../lib/native/load.js";
import { convertedTinyVideoLlava } from "../fixtures/hf-video-llava.js";
import { seededRandom } from "../reference/tensor.js";
import { testVideo } from "../video/fixtures.js";

const IMAGE = 32000;
const VIDEO = 32001;
/** `<s>USER: ` as the Hugging Face test tokenizes it (spec, "Tokenization parity"): BOS, ▁US, ER, :, ▁. */
const HF_PROMPT_HEAD = [1, 3148, 1001, 29901, 29871];
/** `Why is this video funny? ASSISTANT:` after the `<video>` placeholder, from the same Hugging Face test. */
const HF_WHY_TAIL = [3750, 338, 445, 4863, 2090, 1460, 29973, 319, 1799, 9047, 13566, 29901];
const greedy = { temperature: 0, maxTokens: 6 } as const;

let model: Model;

function picture(width: number, height: number, seed: number): Image {
    const rng = seededRandom(seed);
    const data = new Uint8Array(width * height * 3).map(() => Math.floor(rng() * 256));
    return Image.fromPixels({ data, width, height, format: "rgb" });
}

function count(tokens: readonly number[], id: number): number {
    return tokens.filter((t) => t === id).length;
}

beforeAll(async () => {
    const files = await convertedTinyVideoLlava();
    model = await loadModel({ model: files.model, mmproj: files.mmproj });
}, 600_000);

afterAll(async () => {
    await model?.dispose();
});

describe("Video-LLaVA prompts", () => {
    it("is recognised from its files: family, towers and the settings the prompt depends on", () => {
        const v = model.vision!.info;
        expect(v.family).toBe("video_llava");
        expect(model.family?.displayName).toBe("Video-LLaVA");
        expect(v).toMatchObject({ imageSize: 224, shortestEdge: 224, videoFrames: 8, imageKeepCls: false, videoKeepCls: true, imageTokenId: IMAGE, videoTokenId: VIDEO, hasVideoTower: true, tokenCompression: false });
    });

    it("writes `USER: <image>\\n{q} ASSISTANT:` with 256 image placeholders (the class token dropped)", async () => {
        const session = await model.createSession();
        const r = await session.prompt([picture(300, 200, 1), "What is this?"], greedy);
        expect(r.media).toEqual([{ kind: "image", tokens: 256, grid: { height: 16, width: 16 }, source: expect.any(String) as string }]);
        const tail = model.tokenize("\nWhat is this? ASSISTANT:");
        expect(r.promptTokens).toEqual([...HF_PROMPT_HEAD, ...new Array<number>(256).fill(IMAGE), ...tail]);
        expect(model.detokenize(r.promptTokens.filter((t) => t !== IMAGE), { special: true })).toBe("<s> USER:  \nWhat is this? ASSISTANT:"); // ▁ before <image>, ▁\n after it
        expect(r.tokens.length).toBeGreaterThan(0);
        await session.dispose();
    });

    it("samples 8 frames at floor(i·N/8) and writes 8 × 257 = 2,056 video placeholders, frame-major with the class token", async () => {
        // movingThenStatic: 80 frames at 10 fps → frames 0, 10, …, 70 → 0 s … 7 s.
        const session = await model.createSession();
        const r = await session.prompt([{ video: testVideo("movingThenStatic") }, "Why is this video funny?"], greedy);
        const m = r.media[0]!;
        expect(m.kind).toBe("video");
        if (m.kind !== "video") return;
        expect(m.frames.map((f) => f.timestamp)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
        expect(m.frames.every((f) => f.tokens === 257 && f.keptTokens === 257)).toBe(true); // no pruning by default
        expect(m.tokens).toBe(2056);
        expect(m.keptTokens).toBe(2056);
        const at = r.promptTokens.indexOf(VIDEO);
        expect(r.promptTokens.slice(0, at)).toEqual(HF_PROMPT_HEAD);
        expect(r.promptTokens.slice(at, at + 2056)).toEqual(new Array<number>(2056).fill(VIDEO));
        // The spec's HF test prompt has no "\n" after <video>; ours (the HF docs' format) does: ▁ <0x0A> Why … .
        expect(r.promptTokens.slice(at + 2056)).toEqual([29871, 13, 11008, ...HF_WHY_TAIL.slice(1)]);
        expect(model.tokenize("\nWhy")).toEqual([29871, 13, 11008]);
        await session.dispose();
    });

    it("takes the frame count from Video.open({ frames }) and mixes images and videos in one prompt, in order", async () => {
        await using video = await Video.open(testVideo("sceneCut"), { frames: 3 }); // 60 frames → 0, 20, 40
        expect((await video.plan()).timestamps).toEqual([0, 2, 4]);
        const session = await model.createSession();
        const r = await session.prompt([picture(100, 100, 2), video, picture(64, 200, 3), "Compare them."], greedy);
        expect(r.media.map((m) => [m.kind, m.tokens])).toEqual([
            ["image", 256],
            ["video", 3 * 257],
            ["image", 256],
        ]);
        const kinds: number[] = [];
        for (const t of r.promptTokens) if ((t === IMAGE || t === VIDEO) && kinds.at(-1) !== t) kinds.push(t);
        expect(kinds).toEqual([IMAGE, VIDEO, IMAGE]);
        expect(count(r.promptTokens, IMAGE)).toBe(512);
        expect(count(r.promptTokens, VIDEO)).toBe(771);
        const text = model.detokenize(r.promptTokens.filter((t) => t !== IMAGE && t !== VIDEO), { special: true });
        expect(text).toBe("<s> USER:  \n \n \nCompare them. ASSISTANT:");
        await session.dispose();
    });

    it("is deterministic at temperature 0, and the answer depends on the picture", async () => {
        const ask = async (seed: number) => (await (await model.createSession()).prompt([picture(224, 224, seed), "Describe."], greedy)).tokens;
        const a = await ask(5);
        expect(await ask(5)).toEqual(a);
        expect(await ask(6)).not.toEqual(a);
    });

    it("never samples the placeholders or the noise rows above the SentencePiece vocabulary", async () => {
        const banned = model.bannedTokens();
        expect(banned[0]).toBe(32000);
        expect(banned).toHaveLength(64);
        expect(banned.at(-1)).toBe(32063);
        // A text-only load bans the same ids: the text model's metadata names its family's placeholders.
        const textOnly = await loadModel({ model: (await convertedTinyVideoLlava()).model });
        expect(textOnly.bannedTokens()).toEqual(banned);
        const chat = await (await textOnly.createSession()).prompt("Hello", { temperature: 1.5, topK: 0, topP: 1, minP: 0, seed: 3, maxTokens: 100 });
        expect(chat.tokens.filter((t) => t >= 32000)).toEqual([]);
        await textOnly.dispose();
        // The sampler honours a ban: with the greedy choice banned, the next best logit is taken.
        const ctx = await model.nativeModel.createContext({ contextSize: 256, threads: 2 });
        const prompt = Int32Array.from([1, ...model.tokenize("USER: Hello ASSISTANT:")]);
        await ctx.evaluate(prompt, { logits: true });
        const logits = ctx.logits();
        const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
        ctx.dispose();
        const addon = native();
        const pick = async (ban: number[]) => {
            const c = await model.nativeModel.createContext({ contextSize: 256, threads: 2 });
            const r = await c.evaluate(prompt, { sampler: new addon.Sampler(model.nativeModel, { temperature: 0, banned: ban }) });
            c.dispose();
            return r.token;
        };
        expect(await pick([])).toBe(order[0]);
        expect(await pick([order[0]!])).toBe(order[1]);
        expect(await pick([order[0]!, order[1]!])).toBe(order[2]);
        // Hot sampling over many tokens never produces a banned id.
        const session = await model.createSession();
        const hot = await session.prompt([picture(50, 80, 7), "Talk."], { temperature: 1.5, topK: 0, topP: 1, minP: 0, seed: 3, maxTokens: 200 });
        expect(hot.tokens.filter((t) => t >= 32000)).toEqual([]);
        await session.dispose();
    });

    it("reuses the KV cache over turns: `ASSISTANT: {answer}</s>USER: {q}` without encoding the video again", async () => {
        const session = await model.createSession();
        const first = await session.prompt([{ video: testVideo("odd") }, "What is it?"], greedy);
        const second = await session.prompt("And then?", greedy);
        expect(second.media).toEqual([]);
        expect(second.reusedTokens).toBeGreaterThanOrEqual(first.promptTokens.length + first.tokens.length - 1);
        expect(count(second.promptTokens, VIDEO)).toBe(0); // the video was not evaluated again
        // A fresh session given the same history (text only, no tokens) renders the whole prompt and answers the same.
        const fresh = await model.createSession();
        fresh.setHistory(session.history.slice(0, 2).map((m) => (m.role === "assistant" ? { role: "assistant", content: m.content as string } : m)));
        const again = await fresh.prompt("And then?", greedy);
        expect(count(again.promptTokens, VIDEO)).toBe(2056);
        const text = model.detokenize(again.promptTokens.filter((t) => t !== VIDEO), { special: true });
        expect(text).toBe(`<s> USER:  \nWhat is it? ASSISTANT: ${first.text}</s> USER: And then? ASSISTANT:`); // ▁ after </s>, as after every special token
        expect(again.tokens).toEqual(second.tokens);
        await Promise.all([session.dispose(), fresh.dispose()]);
    });

    it("answers without the leading space of the first token (as Hugging Face decodes after `ASSISTANT:`)", async () => {
        const session = await model.createSession();
        const r = await session.prompt([picture(224, 224, 8), "Hi"], { ...greedy, maxTokens: 8 });
        expect(r.text).toBe(model.detokenize(r.tokens).replace(/^ /, ""));
        await session.dispose();
    });

    it("offers Differential Frame Pruning (off by default) and reports its effect on the tokens", async () => {
        const session = await model.createSession();
        const clip = testVideo("movingThenStatic"); // still after 4 s
        const pruned = await session.prompt([{ video: clip, prune: true }, "What moves?"], { ...greedy, maxTokens: 1 });
        const m = pruned.media[0]!;
        if (m.kind !== "video") throw new Error("expected a video");
        expect(m.tokens).toBe(2056);
        expect(m.frames[0]!.keptTokens).toBe(257); // the first frame is kept whole
        // Frames 5–7 equal frame 4: only the minimum patch token and the class token stay.
        expect(m.frames.slice(5).map((f) => f.keptTokens)).toEqual([2, 2, 2]);
        expect(m.keptTokens).toBe(m.frames.reduce((a, f) => a + f.keptTokens, 0));
        expect(count(pruned.promptTokens, VIDEO)).toBe(m.keptTokens);
        session.reset();
        const threshold = await session.prompt([{ video: clip }, "What moves?"], { ...greedy, maxTokens: 1, prune: { threshold: 1e6, minTokensPerFrame: 3 } });
        const t = threshold.media[0]!;
        if (t.kind !== "video") throw new Error("expected a video");
        expect(t.frames.slice(1).every((f) => f.keptTokens === 4)).toBe(true);
        await session.dispose();
    });
});
