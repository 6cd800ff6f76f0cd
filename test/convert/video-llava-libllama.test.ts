// The converted Video-LLaVA text model as stock libllama sees it: hyper-parameters and special tokens, tokenization
// (the spec's Hugging Face test prompt and llama.cpp's own LLaMA-SPM test vectors), and the forward pass — logits
// of the f32 conversion against an independent double-precision LLaMA implementation (HF semantics: rotate-half
// RoPE) fed with the checkpoint's weights, which only agree when the q/k rows were permuted as llama.cpp does.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint, VIDEO_LLAVA_DEFAULT_CHAT_TEMPLATE } from "../../lib/convert/convert.js";
import type { TextOutputType } from "../../lib/convert/quant-rules.js";
import { native } from "../../lib/native/load.js";
import type { NativeModel } from "../../lib/native/types.js";
import { writeVideoLlavaCheckpoint, type VideoLlavaCheckpoint } from "../fixtures/hf-video-llava.js";
import { argmax, correlation, expectedBf16Values, fixturesRoot, freshDir, repoRoot } from "./helpers.js";
import { decoderLogits } from "./qwen2-reference.js";

/**
 * The Hugging Face test's prompt and ids (shared/specs/video-llava.md, "Tokenization parity"; HF-test). The spec's
 * prompt has no "\n" after `<video>` (the HF docs' prompt format has one; see the second case below).
 */
const HF_TEST_PROMPT = "USER: <video>Why is this video funny? ASSISTANT:";
const HF_TEST_IDS = [1, 3148, 1001, 29901, 29871, 32001, 3750, 338, 445, 4863, 2090, 1460, 29973, 319, 1799, 9047, 13566, 29901];
/** Matrices with σ ≈ 1/√hidden so that both layers visibly change the logits (see libllama.test.ts). */
const WEIGHT_SCALE = 6;

function reference(ck: VideoLlavaCheckpoint, tokens: readonly number[], ropeStyle: "neox" | "interleaved" = "neox"): Float64Array {
    const cache = new Map<string, Float32Array>();
    return decoderLogits(
        tokens,
        (name, count) => {
            let w = cache.get(name);
            if (!w) {
                w = expectedBf16Values(ck.seed, name, count, WEIGHT_SCALE);
                cache.set(name, w);
            }
            return w;
        },
        { dims: ck.text, prefix: "language_model.model.", head: "language_model.lm_head.weight", qkvBias: false, ropeTheta: 10000, rmsEps: 1e-5, ropeStyle },
    );
}

function maxRelDiff(a: ArrayLike<number>, ref: ArrayLike<number>): number {
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < ref.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(a[i]! - ref[i]!));
        maxAbs = Math.max(maxAbs, Math.abs(ref[i]!));
    }
    return maxDiff / maxAbs;
}

async function logitsOf(model: NativeModel, tokens: readonly number[]): Promise<Float32Array> {
    const ctx = await model.createContext({ contextSize: 256, threads: 2 });
    try {
        await ctx.evaluate(Int32Array.from(tokens), { logits: true });
        return ctx.logits();
    } finally {
        ctx.dispose();
    }
}

describe("libllama loads the converted Video-LLaVA text model", () => {
    const models = new Map<TextOutputType, NativeModel>();
    let ck: VideoLlavaCheckpoint;
    let refLogits: Float64Array;

    beforeAll(async () => {
        ck = await writeVideoLlavaCheckpoint(join(fixturesRoot, "vl-strong"), { weightScale: WEIGHT_SCALE });
        const out = await freshDir("vl-libllama");
        for (const type of ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"] as const) {
            const r = await convertCheckpoint({ input: ck.dir, outDir: out, type, name: "m", verify: "none", force: true });
            models.set(type, await native().loadModel({ path: r.textModel }));
        }
        refLogits = reference(ck, HF_TEST_IDS);
    });
    afterAll(() => {
        for (const m of models.values()) m.dispose();
    });

    it("reports the checkpoint's hyper-parameters and special tokens", () => {
        for (const [type, model] of models) {
            expect(model.info(), type).toMatchObject({
                trainContextSize: 4096,
                embeddingSize: 64,
                layers: 2,
                heads: 4,
                kvHeads: 4,
                vocabSize: 32064,
                bos: 1,
                eos: 2,
                addBos: true,
                chatTemplate: VIDEO_LLAVA_DEFAULT_CHAT_TEMPLATE,
            });
        }
        const model = models.get("f32")!;
        expect(model.isEog(2)).toBe(true);
        expect(model.isEog(32001)).toBe(false);
        const specials = new Map(model.specialTokens().map((t) => [t.id, t.text]));
        expect([specials.get(32000), specials.get(32001), specials.get(32002)]).toEqual(["<image>", "<video>", "<pad>"]);
    });

    it("tokenizes the Hugging Face test prompt to exactly the spec's ids", () => {
        for (const [type, model] of models) {
            expect(Array.from(model.tokenize(HF_TEST_PROMPT, true, true)), type).toEqual(HF_TEST_IDS);
        }
        const model = models.get("q8_0")!;
        // the HF docs' format with "\n" after the placeholder: SentencePiece's "▁" after a special token, then the
        // newline byte and "Why" without its word-start "▁" (llama.cpp's SPM tokenizer, as HF's)
        expect(Array.from(model.tokenize("USER: <video>\nWhy is this video funny? ASSISTANT:", true, true))).toEqual([
            ...HF_TEST_IDS.slice(0, 6),
            29871,
            13,
            11008,
            ...HF_TEST_IDS.slice(7),
        ]);
        // placeholders typed by a user are text, not the special token
        expect(Array.from(model.tokenize("<video>", false, false))).not.toContain(32001);
        expect(model.detokenize(HF_TEST_IDS, true)).toBe("<s> USER: <video> Why is this video funny? ASSISTANT:");
    });

    it("tokenizes llama.cpp's LLaMA-SPM test vectors exactly", async () => {
        const dir = join(repoRoot, "deps", "llama.cpp", "models");
        const raw = await readFile(join(dir, "ggml-vocab-llama-spm.gguf.inp"), "utf8");
        const outLines = (await readFile(join(dir, "ggml-vocab-llama-spm.gguf.out"), "utf8")).split("\n");
        // the splitting of llama.cpp's tests/test-tokenizer-0.cpp
        const inputs: string[] = [];
        const sep = "\n__ggml_vocab_test__\n";
        for (let pos = 0; pos < raw.length; ) {
            const next = raw.indexOf(sep, pos);
            if (next < 0) {
                inputs.push(raw.slice(pos));
                break;
            }
            inputs.push(raw.slice(pos, next));
            pos = next + sep.length;
        }
        const model = models.get("q4_0")!;
        let checked = 0;
        for (let i = 0; i < inputs.length; i++) {
            const expected = (outLines[i] ?? "").trim();
            const want = expected === "" ? [] : expected.split(/\s+/).map(Number);
            expect(Array.from(model.tokenize(inputs[i]!, false, false)), JSON.stringify(inputs[i])).toEqual(want);
            checked++;
        }
        expect(checked).toBeGreaterThan(30);
    });

    it("f32 conversion computes the checkpoint's function: logits equal an independent LLaMA forward pass", async () => {
        const logits = await logitsOf(models.get("f32")!, HF_TEST_IDS);
        expect(logits).toHaveLength(32064);
        // ggml in f32 with an f16 KV cache: errors of order 2^-11 relative, far below a wrong layout
        const TOLERANCE = 5e-3;
        expect(maxRelDiff(logits, refLogits)).toBeLessThan(TOLERANCE);
        expect(argmax(logits)).toBe(argmax(refLogits));
        // control: the reference with the other RoPE pairing — what an unpermuted q/k computes — is far outside
        expect(maxRelDiff(logits, reference(ck, HF_TEST_IDS, "interleaved"))).toBeGreaterThan(10 * TOLERANCE);
    });

    it("every type gives logits close to the checkpoint's (quantization noise only)", async () => {
        // as libllama.test.ts: weight noise ε per type for these dimensions, amplified at most 8× into the logits
        const weightError: Record<TextOutputType, number> = { f32: 0, f16: 0, bf16: 0, q8_0: 0.005, q4_k_m: 0.04, q4_0: 0.081 };
        for (const [type, model] of models) {
            const c = correlation(await logitsOf(model, HF_TEST_IDS), refLogits);
            expect(c, type).toBeGreaterThan(Math.min(0.9999, 1 / Math.sqrt(1 + (8 * weightError[type]) ** 2)));
        }
    });

    it("greedy generation with Sampler(temperature 0) follows the reference argmax", async () => {
        const model = models.get("f32")!;
        const ctx = await model.createContext({ contextSize: 256, threads: 2 });
        try {
            const sampler = new (native().Sampler)(model, { temperature: 0 });
            const tokens = [...HF_TEST_IDS];
            let r = await ctx.evaluate(Int32Array.from(tokens), { sampler });
            for (let step = 0; step < 3; step++) {
                expect(r.token, `step ${step}`).toBe(argmax(reference(ck, tokens)));
                tokens.push(r.token);
                r = await ctx.evaluate(Int32Array.of(r.token), { sampler });
            }
        } finally {
            ctx.dispose();
        }
    });
});
