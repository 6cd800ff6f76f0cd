// Type selection rules, against values derived by hand from llama.cpp's src/llama-quant.cpp (the parity test
// llama-quantize.test.ts checks the same rules against libllama itself).
import { describe, expect, it } from "vitest";
import { allowsQuantization, selectMmprojTensorTypes, selectTextTensorTypes, type TextOutputType } from "../../lib/convert/quant-rules.js";
import { textTensorPlans } from "../../lib/convert/tensor-map.js";
import type { TextHparams } from "../../lib/convert/hf-config.js";

function hparams(over: Partial<TextHparams>): TextHparams {
    return {
        hiddenSize: 1536,
        intermediateSize: 8960,
        layers: 28,
        heads: 12,
        kvHeads: 2,
        vocabSize: 151936,
        contextLength: 32768,
        ropeTheta: 1e6,
        rmsNormEps: 1e-6,
        tieWordEmbeddings: true,
        ropeScaling: undefined,
        bosTokenId: 151643,
        eosTokenId: 151645,
        imageTokenIndex: 151665,
        projectorType: "mlp2x_gelu",
        useTokenCompression: true,
        ...over,
    };
}

function types(type: TextOutputType, h: TextHparams): Map<string, string> {
    const plans = textTensorPlans(h);
    const chosen = selectTextTensorTypes(
        type,
        plans.map((p) => ({ name: p.gguf, ne: p.ne })),
        h.layers,
    );
    return new Map([...chosen].map(([k, v]) => [k, v.type]));
}

// use_more_bits(i, 28): i < 3 || i >= 24 || (i - 3) % 3 == 2
const MORE_BITS_28 = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27];

describe("llama.cpp tensor type rules", () => {
    it("Q4_K_M, 2B shapes (tied): Q6_K for token_embd and half of attn_v/ffn_down, Q4_K elsewhere, f32 vectors", () => {
        const t = types("q4_k_m", hparams({}));
        expect(t.get("token_embd.weight")).toBe("q6_K");
        expect(t.has("output.weight")).toBe(false);
        for (let i = 0; i < 28; i++) {
            const more = MORE_BITS_28.includes(i);
            expect(t.get(`blk.${i}.attn_v.weight`), `layer ${i}`).toBe(more ? "q6_K" : "q4_K");
            expect(t.get(`blk.${i}.ffn_down.weight`), `layer ${i}`).toBe(more ? "q6_K" : "q4_K");
            for (const n of ["attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"]) expect(t.get(`blk.${i}.${n}.weight`)).toBe("q4_K");
            for (const n of ["attn_norm.weight", "ffn_norm.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias"]) {
                expect(t.get(`blk.${i}.${n}`)).toBe("f32");
            }
        }
        expect(t.get("output_norm.weight")).toBe("f32");
    });

    it("Q4_K_M, 7B shapes (untied): output Q6_K, token_embd stays Q4_K", () => {
        const t = types("q4_k_m", hparams({ hiddenSize: 3584, intermediateSize: 18944, heads: 28, kvHeads: 4, vocabSize: 152064, tieWordEmbeddings: false }));
        expect(t.get("output.weight")).toBe("q6_K");
        expect(t.get("token_embd.weight")).toBe("q4_K");
        expect(t.get("blk.5.attn_v.weight")).toBe("q6_K");
        expect(t.get("blk.6.attn_v.weight")).toBe("q4_K");
    });

    it("Q8_0 and Q4_0: the default type everywhere except the output/tied embedding (Q6_K for Q4_0)", () => {
        const q8 = types("q8_0", hparams({}));
        expect(new Set([...q8].filter(([k]) => k.endsWith("weight") && !k.includes("norm")).map(([, v]) => v))).toEqual(new Set(["q8_0"]));
        const q4 = types("q4_0", hparams({}));
        expect(q4.get("token_embd.weight")).toBe("q6_K");
        expect(q4.get("blk.0.ffn_down.weight")).toBe("q4_0"); // the Q4_1 bump for early ffn_down needs an imatrix
        const q4u = types("q4_0", hparams({ tieWordEmbeddings: false }));
        expect(q4u.get("token_embd.weight")).toBe("q4_0");
        expect(q4u.get("output.weight")).toBe("q6_K");
    });

    it("falls back by row length: Q4_K→Q5_0, Q6_K→Q8_0 for rows of 32k; F16 for rows that are not a multiple of 32", () => {
        const tiny = types("q4_k_m", hparams({ hiddenSize: 64, intermediateSize: 128, heads: 4, kvHeads: 2, layers: 2 }));
        expect(tiny.get("token_embd.weight")).toBe("q8_0"); // output rule: 64 % 256 != 0 → Q8_0
        expect(tiny.get("blk.0.attn_q.weight")).toBe("q5_0");
        expect(tiny.get("blk.1.attn_v.weight")).toBe("q8_0"); // use_more_bits(1, 2) → Q6_K → Q8_0
        expect(tiny.get("blk.0.attn_v.weight")).toBe("q5_0");
        const odd = types("q8_0", hparams({ hiddenSize: 256, intermediateSize: 272, heads: 4, kvHeads: 2, layers: 2 }));
        expect(odd.get("blk.0.ffn_down.weight")).toBe("f16"); // 272 % 32 != 0
        expect(odd.get("blk.0.ffn_up.weight")).toBe("q8_0");
        const oddK = types("q4_k_m", hparams({ hiddenSize: 256, intermediateSize: 272, heads: 4, kvHeads: 2, layers: 2 }));
        expect(oddK.get("blk.0.ffn_down.weight")).toBe("f16");
        expect(oddK.get("blk.0.ffn_up.weight")).toBe("q4_K");
        expect(oddK.get("token_embd.weight")).toBe("q6_K");
    });

    it("float types: matrices in the type, vectors f32", () => {
        for (const type of ["f32", "f16", "bf16"] as const) {
            const t = types(type, hparams({ layers: 1 }));
            expect(t.get("blk.0.attn_q.weight")).toBe(type);
            expect(t.get("token_embd.weight")).toBe(type);
            expect(t.get("blk.0.attn_q.bias")).toBe("f32");
            expect(t.get("output_norm.weight")).toBe("f32");
        }
    });

    it("only ≥2-D weights that are not norms are quantizable", () => {
        expect(allowsQuantization("blk.0.attn_q.weight", [64, 64])).toBe(true);
        expect(allowsQuantization("blk.0.attn_q.bias", [64])).toBe(false);
        expect(allowsQuantization("blk.0.attn_norm.weight", [64])).toBe(false);
        expect(allowsQuantization("x.weight", [64, 1])).toBe(false); // ggml_n_dims ignores trailing 1s
    });

    it("mmproj: matrices (including the 4-D patch embedding) in the chosen type, vectors f32", () => {
        const t = selectMmprojTensorTypes("f16", [
            { name: "v.patch_embd.weight", ne: [14, 14, 3, 32] },
            { name: "v.patch_embd.bias", ne: [32] },
            { name: "mm.0.weight", ne: [32, 64] },
        ]);
        expect(t.get("v.patch_embd.weight")!.type).toBe("f16");
        expect(t.get("v.patch_embd.bias")!.type).toBe("f32");
        expect(t.get("mm.0.weight")!.type).toBe("f16");
    });
});
