// The converted text model as libllama sees it: hyper-parameters, special tokens, tokenization (llama.cpp's own
// Qwen2 tokenizer test vectors), and the forward pass — logits and greedy tokens of the f32 conversion against an
// independent double-precision Qwen2 implementation fed with the checkpoint's weights.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../../lib/convert/convert.js";
import type { TextOutputType } from "../../lib/convert/quant-rules.js";
import { native } from "../../lib/native/load.js";
import type { NativeModel } from "../../lib/native/types.js";
import { VIDEOLLAMA3_CHAT_TEMPLATE, type HfCheckpoint } from "../fixtures/hf-checkpoint.js";
import { argmax, checkpoint, correlation, expectedBf16Values, freshDir, repoRoot } from "./helpers.js";
import { qwen2Logits } from "./qwen2-reference.js";

const PROMPT = [9707, 11, 1879, 0, 151644, 872]; // "Hello, world!<|im_start|>user"
/**
 * Weights 6× the usual spread (σ ≈ 1/√hidden): with trained-model-like σ 0.02 the random layers barely change the
 * residual stream, and a comparison of logits would not notice a broken attention path.
 */
const WEIGHT_SCALE = 6;

function reference(ck: HfCheckpoint, tokens: number[], ropeStyle: "neox" | "interleaved" = "neox"): Float64Array {
    const weights = new Map<string, Float32Array>();
    return qwen2Logits(
        tokens,
        (name, count) => {
            let w = weights.get(name);
            if (!w) {
                w = expectedBf16Values(1, name, count, WEIGHT_SCALE);
                weights.set(name, w);
            }
            return w;
        },
        { dims: ck.text, tied: ck.tied, ropeTheta: 1e6, rmsEps: 1e-6, ropeStyle },
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

async function logitsOf(model: NativeModel, tokens: number[]): Promise<Float32Array> {
    const ctx = await model.createContext({ contextSize: 256, threads: 2 });
    try {
        await ctx.evaluate(Int32Array.from(tokens), { logits: true });
        return ctx.logits();
    } finally {
        ctx.dispose();
    }
}

describe.each([
    ["strong-tied", true],
    ["strong-sharded-untied", false],
] as const)("libllama loads the converted %s model", (key, tied) => {
    const models = new Map<TextOutputType, NativeModel>();
    let ck: HfCheckpoint;
    let refLogits: Float64Array;

    beforeAll(async () => {
        ck = await checkpoint(key, tied ? { weightScale: WEIGHT_SCALE } : { tied: false, shards: 3, weightScale: WEIGHT_SCALE });
        const out = await freshDir(`libllama-${key}`);
        for (const type of ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"] as const) {
            const r = await convertCheckpoint({ input: ck.dir, outDir: out, type, name: "m", verify: "none", force: true });
            models.set(type, await native().loadModel({ path: r.textModel }));
        }
        refLogits = reference(ck, PROMPT);
    });
    afterAll(() => {
        for (const m of models.values()) m.dispose();
    });

    it("reports the checkpoint's hyper-parameters and special tokens", () => {
        const info = models.get("q4_k_m")!.info();
        expect(info).toMatchObject({
            trainContextSize: 32768,
            embeddingSize: ck.text.hidden,
            layers: ck.text.layers,
            heads: ck.text.heads,
            kvHeads: ck.text.kvHeads,
            vocabSize: 151936,
            bos: 151643,
            eos: 151645,
            eot: 151645,
            addBos: false,
            chatTemplate: VIDEOLLAMA3_CHAT_TEMPLATE,
        });
        const model = models.get("f32")!;
        expect(model.isEog(151645)).toBe(true);
        expect(model.isEog(151643)).toBe(true);
        const specials = new Map(model.specialTokens().map((t) => [t.id, t.text]));
        expect(specials.get(151665)).toBe("<image>");
    });

    it("tokenizes llama.cpp's Qwen2 test vectors exactly, and parses the VideoLLaMA3 special tokens", async () => {
        const dir = join(repoRoot, "deps", "llama.cpp", "models");
        const raw = await readFile(join(dir, "ggml-vocab-qwen2.gguf.inp"), "utf8");
        const outLines = (await readFile(join(dir, "ggml-vocab-qwen2.gguf.out"), "utf8")).split("\n");
        // same splitting as llama.cpp's tests/test-tokenizer-0.cpp
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
        const model = models.get("q8_0")!;
        let checked = 0;
        for (let i = 0; i < inputs.length; i++) {
            const expected = (outLines[i] ?? "").trim();
            const want = expected === "" ? [] : expected.split(/\s+/).map(Number);
            expect(Array.from(model.tokenize(inputs[i]!, false, false)), JSON.stringify(inputs[i])).toEqual(want);
            checked++;
        }
        expect(checked).toBeGreaterThan(30);
        expect(Array.from(model.tokenize("<image><|stream_start|>x<|stream_end|><|im_end|>", false, true))).toEqual([
            151665, 151666, 87, 151667, 151645,
        ]);
        // user text is not parsed for special tokens
        expect(Array.from(model.tokenize("<image>", false, false))).not.toContain(151665);
        expect(model.detokenize([9707, 11, 1879, 0], false)).toBe("Hello, world!");
    });

    it("f32 conversion computes the checkpoint's function: logits equal an independent Qwen2 forward pass", async () => {
        const logits = await logitsOf(models.get("f32")!, PROMPT);
        expect(logits).toHaveLength(151936);
        // ggml computes in f32 with an f16 KV cache: errors of order 2^-11 relative, far below a wrong layout
        // (a transposed or shifted weight changes the logits by their own magnitude)
        const TOLERANCE = 5e-3;
        expect(maxRelDiff(logits, refLogits)).toBeLessThan(TOLERANCE);
        expect(argmax(logits)).toBe(argmax(refLogits));
        // control: the same reference with the wrong RoPE pairing is far outside the tolerance, so the comparison
        // does see the attention layers
        expect(maxRelDiff(logits, reference(ck, PROMPT, "interleaved"))).toBeGreaterThan(10 * TOLERANCE);
    });

    it("every type gives logits close to the checkpoint's (quantization noise only)", async () => {
        // Weight noise of relative RMS ε reaches the logits amplified by the layers (A ≈ 5 measured on this model:
        // q8_0, ε ≈ 0.005, gives 1 − r ≈ 3e-4); a correlation r ≥ 1/√(1 + (8ε)²) allows A up to 8. ε per type
        // for these dimensions: q8_0 0.005; q4_k_m 0.04 (its matrices fall back to Q5_0); q4_0 0.081. Float types
        // only see ggml's own arithmetic (bf16 matmuls round activations to bf16).
        const weightError: Record<TextOutputType, number> = { f32: 0, f16: 0, bf16: 0, q8_0: 0.005, q4_k_m: 0.04, q4_0: 0.081 };
        for (const [type, model] of models) {
            const c = correlation(await logitsOf(model, PROMPT), refLogits);
            const min = Math.min(0.9999, 1 / Math.sqrt(1 + (8 * weightError[type]) ** 2));
            expect(c, type).toBeGreaterThan(min);
        }
    });

    it("greedy generation with Sampler(temperature 0) follows the reference argmax", async () => {
        const model = models.get("f32")!;
        const ctx = await model.createContext({ contextSize: 256, threads: 2 });
        try {
            const sampler = new (native().Sampler)(model, { temperature: 0 });
            const tokens = [...PROMPT];
            let r = await ctx.evaluate(Int32Array.from(PROMPT), { sampler });
            const generated: number[] = [];
            for (let step = 0; step < 4; step++) {
                expect(r.token, `step ${step}`).toBe(argmax(reference(ck, tokens)));
                generated.push(r.token);
                tokens.push(r.token);
                r = await ctx.evaluate(Int32Array.of(r.token), { sampler });
            }
            expect(generated.every((t) => t >= 0 && t < 151936)).toBe(true);
        } finally {
            ctx.dispose();
        }
    });
});
