// End-to-end conversions of tiny checkpoints: every --type and both --mmproj-type values, single-file and sharded,
// tied and untied. Outputs are read back with the GGUF reader and compared with docs/gguf-format.md (keys, tensor
// names, shapes, types — written out here by hand from the doc) and with the checkpoint's values, computed from the
// fixture generator rather than from the converter's own reader.
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint, type ConvertProgress, type ConvertResult } from "../../lib/convert/convert.js";
import type { MmprojOutputType, TextOutputType } from "../../lib/convert/quant-rules.js";
import { readGguf, readTensorData, type GgufFile } from "../../lib/gguf/reader.js";
import { native } from "../../lib/native/load.js";
import { VIDEOLLAMA3_CHAT_TEMPLATE, qwen2Vocabulary, type HfCheckpoint } from "../fixtures/hf-checkpoint.js";
import { checkpoint, expectedBf16Values, freshDir, listDir, relRms } from "./helpers.js";

/** llama_ftype per --type (docs/gguf-format.md general.file_type). */
const FTYPE: Record<TextOutputType, number> = { f32: 0, f16: 1, bf16: 32, q8_0: 7, q4_0: 2, q4_k_m: 15 };

/**
 * Relative RMS error a storage type must reach on the fixture's (near-normal) weights. Round-to-nearest with step Δ
 * has RMS error Δ/√12; for blocks of 32 normal values amax ≈ 2.0–2.5σ, so e.g. Q8_0 (Δ = amax/127) gives
 * ≈ 0.006, Q4_0 (Δ = amax/8) ≈ 0.09, Q5_0 ≈ 0.045, Q4_K (Δ ≈ range/15 on 32 values) ≈ 0.08, Q6_K (Δ = amax/32 on
 * 16 values) ≈ 0.016; f16 rounding ≈ 2⁻¹¹/√3 = 2.8e-4. The limits leave ~40% headroom.
 */
const REL_RMS_LIMIT: Record<string, number> = {
    f32: 0,
    bf16: 0,
    f16: 4e-4,
    q8_0: 0.01,
    q6_K: 0.03,
    q5_0: 0.065,
    q4_K: 0.11,
    q4_0: 0.13,
};

/** Text tensors of docs/gguf-format.md: GGUF name → [HF key, ggml shape]. */
function docTextTensors(ck: HfCheckpoint): Map<string, [string, number[]]> {
    const { hidden: h, ffn, vocab, layers, kvHeads, heads } = ck.text;
    const kv = (h / heads) * kvHeads;
    const m = new Map<string, [string, number[]]>();
    m.set("token_embd.weight", ["model.embed_tokens.weight", [h, vocab]]);
    m.set("output_norm.weight", ["model.norm.weight", [h]]);
    if (!ck.tied) m.set("output.weight", ["lm_head.weight", [h, vocab]]);
    for (let i = 0; i < layers; i++) {
        const p = `model.layers.${i}.`;
        m.set(`blk.${i}.attn_norm.weight`, [`${p}input_layernorm.weight`, [h]]);
        m.set(`blk.${i}.attn_q.weight`, [`${p}self_attn.q_proj.weight`, [h, h]]);
        m.set(`blk.${i}.attn_q.bias`, [`${p}self_attn.q_proj.bias`, [h]]);
        m.set(`blk.${i}.attn_k.weight`, [`${p}self_attn.k_proj.weight`, [h, kv]]);
        m.set(`blk.${i}.attn_k.bias`, [`${p}self_attn.k_proj.bias`, [kv]]);
        m.set(`blk.${i}.attn_v.weight`, [`${p}self_attn.v_proj.weight`, [h, kv]]);
        m.set(`blk.${i}.attn_v.bias`, [`${p}self_attn.v_proj.bias`, [kv]]);
        m.set(`blk.${i}.attn_output.weight`, [`${p}self_attn.o_proj.weight`, [h, h]]);
        m.set(`blk.${i}.ffn_norm.weight`, [`${p}post_attention_layernorm.weight`, [h]]);
        m.set(`blk.${i}.ffn_gate.weight`, [`${p}mlp.gate_proj.weight`, [h, ffn]]);
        m.set(`blk.${i}.ffn_up.weight`, [`${p}mlp.up_proj.weight`, [h, ffn]]);
        m.set(`blk.${i}.ffn_down.weight`, [`${p}mlp.down_proj.weight`, [ffn, h]]);
    }
    return m;
}

/** Vision projector tensors of docs/gguf-format.md. */
function docMmprojTensors(ck: HfCheckpoint): Map<string, [string, number[]]> {
    const { hidden: vh, ffn, layers, patch } = ck.vision;
    const h = ck.text.hidden;
    const e = "model.vision_encoder.";
    const m = new Map<string, [string, number[]]>();
    m.set("v.patch_embd.weight", [`${e}embeddings.patch_embedding.weight`, [patch, patch, 3, vh]]);
    m.set("v.patch_embd.bias", [`${e}embeddings.patch_embedding.bias`, [vh]]);
    for (let i = 0; i < layers; i++) {
        const p = `${e}encoder.layers.${i}.`;
        const b = `v.blk.${i}.`;
        for (const [g, hf] of [
            ["ln1", "layer_norm1"],
            ["ln2", "layer_norm2"],
        ]) {
            m.set(`${b}${g}.weight`, [`${p}${hf}.weight`, [vh]]);
            m.set(`${b}${g}.bias`, [`${p}${hf}.bias`, [vh]]);
        }
        for (const [g, hf] of [
            ["attn_q", "q_proj"],
            ["attn_k", "k_proj"],
            ["attn_v", "v_proj"],
            ["attn_out", "out_proj"],
        ]) {
            m.set(`${b}${g}.weight`, [`${p}self_attn.${hf}.weight`, [vh, vh]]);
            m.set(`${b}${g}.bias`, [`${p}self_attn.${hf}.bias`, [vh]]);
        }
        m.set(`${b}ffn_up.weight`, [`${p}mlp.fc1.weight`, [vh, ffn]]);
        m.set(`${b}ffn_up.bias`, [`${p}mlp.fc1.bias`, [ffn]]);
        m.set(`${b}ffn_down.weight`, [`${p}mlp.fc2.weight`, [ffn, vh]]);
        m.set(`${b}ffn_down.bias`, [`${p}mlp.fc2.bias`, [vh]]);
    }
    m.set("v.post_ln.weight", [`${e}post_layernorm.weight`, [vh]]);
    m.set("v.post_ln.bias", [`${e}post_layernorm.bias`, [vh]]);
    m.set("mm.0.weight", ["model.mm_projector.readout.0.weight", [vh, h]]);
    m.set("mm.0.bias", ["model.mm_projector.readout.0.bias", [h]]);
    m.set("mm.2.weight", ["model.mm_projector.readout.2.weight", [h, h]]);
    m.set("mm.2.bias", ["model.mm_projector.readout.2.bias", [h]]);
    return m;
}

/**
 * Types expected for the tiny dimensions (hidden 64, ffn 128, 2 layers), worked out by hand from llama-quant.cpp:
 * rows of 64/128 values are multiples of 32 but not of 256, so Q4_K falls back to Q5_0 and Q6_K to Q8_0;
 * use_more_bits(i, 2) holds only for layer 1.
 */
function expectedTinyType(type: TextOutputType, name: string, tied: boolean): string {
    const isVector = name.endsWith(".bias") || name.includes("norm");
    if (isVector) return "f32";
    if (type === "f32" || type === "f16" || type === "bf16") return type;
    const outputLike = name === "output.weight" || (tied && name === "token_embd.weight");
    if (type === "q8_0") return "q8_0";
    if (type === "q4_0") return outputLike ? "q8_0" : "q4_0";
    // q4_k_m
    if (outputLike) return "q8_0";
    if (name === "token_embd.weight") return "q5_0";
    if (name === "blk.1.attn_v.weight" || name === "blk.1.ffn_down.weight") return "q8_0";
    return "q5_0";
}

function checkTextKeys(g: GgufFile, ck: HfCheckpoint, type: TextOutputType, name: string): void {
    const t = ck.text;
    expect(g.getString("general.architecture")).toBe("qwen2");
    expect(g.getString("general.type")).toBe("model");
    expect(g.getString("general.name")).toBe(name);
    expect(g.getNumber("general.file_type")).toBe(FTYPE[type]);
    if (type.startsWith("q")) expect(g.getNumber("general.quantization_version")).toBe(2);
    else expect(g.getValue("general.quantization_version")).toBeUndefined();
    const u32 = (key: string, value: number) => {
        expect(g.getValue(key), key).toEqual({ type: 4, value });
    };
    const f32 = (key: string, value: number) => {
        expect(g.getValue(key), key).toEqual({ type: 6, value: Math.fround(value) });
    };
    u32("qwen2.context_length", 32768);
    u32("qwen2.embedding_length", t.hidden);
    u32("qwen2.feed_forward_length", t.ffn);
    u32("qwen2.block_count", t.layers);
    u32("qwen2.attention.head_count", t.heads);
    u32("qwen2.attention.head_count_kv", t.kvHeads);
    f32("qwen2.rope.freq_base", 1e6);
    f32("qwen2.attention.layer_norm_rms_epsilon", 1e-6);
    expect(g.getString("tokenizer.ggml.model")).toBe("gpt2");
    expect(g.getString("tokenizer.ggml.pre")).toBe("qwen2");
    u32("tokenizer.ggml.eos_token_id", 151645);
    u32("tokenizer.ggml.eot_token_id", 151645);
    u32("tokenizer.ggml.padding_token_id", 151643);
    u32("tokenizer.ggml.bos_token_id", 151643);
    expect(g.getValue("tokenizer.ggml.add_bos_token")).toEqual({ type: 7, value: false });
    expect(g.getString("tokenizer.chat_template")).toBe(VIDEOLLAMA3_CHAT_TEMPLATE);
    u32("videollama3.image_token_id", 151665);
    u32("videollama3.stream_start_token_id", 151666);
    u32("videollama3.stream_end_token_id", 151667);
    f32("videollama3.generation.temperature", 0.7);
    f32("videollama3.generation.top_p", 0.8);
    u32("videollama3.generation.top_k", 20);
    f32("videollama3.generation.repetition_penalty", 1.1);
    expect(g.getValue("videollama3.generation.do_sample")).toEqual({ type: 7, value: true });
}

async function checkVocabulary(g: GgufFile): Promise<void> {
    const tokens = g.getArray("tokenizer.ggml.tokens") as string[];
    const types = g.getArray("tokenizer.ggml.token_type") as Int32Array;
    const merges = g.getArray("tokenizer.ggml.merges") as string[];
    expect(tokens).toHaveLength(151936);
    expect(types).toHaveLength(151936);
    // llama.cpp's own conversion of the Qwen2 tokenizer is the reference for the BPE part
    const ref = await qwen2Vocabulary();
    expect(merges).toEqual(ref.merges);
    expect(tokens.slice(0, 151643)).toEqual(ref.tokens);
    expect(types.slice(0, 151643).every((t) => t === 1)).toBe(true);
    const at = (id: number) => [tokens[id], types[id]];
    expect(at(151643)).toEqual(["<|endoftext|>", 3]);
    expect(at(151645)).toEqual(["<|im_end|>", 3]);
    expect(at(151656)).toEqual(["<|video_pad|>", 3]);
    expect(at(151657)).toEqual(["<tool_call>", 4]); // added, not special, does not look special → user-defined
    expect(at(151659)).toEqual(["<|fim_prefix|>", 3]); // not special but <|…|> → control
    expect(at(151665)).toEqual(["<image>", 3]);
    expect(at(151666)).toEqual(["<|stream_start|>", 3]);
    expect(at(151667)).toEqual(["<|stream_end|>", 3]);
    expect(at(151668)).toEqual(["[PAD151668]", 5]);
    expect(at(151935)).toEqual(["[PAD151935]", 5]);
}

function checkMmprojKeys(g: GgufFile, ck: HfCheckpoint, mmprojType: MmprojOutputType): void {
    const v = ck.vision;
    const u32 = (key: string, value: number) => expect(g.getValue(key), key).toEqual({ type: 4, value });
    const f32 = (key: string, value: number) => expect(g.getValue(key), key).toEqual({ type: 6, value: Math.fround(value) });
    const str = (key: string, value: string) => expect(g.getValue(key), key).toEqual({ type: 8, value });
    const bool = (key: string, value: boolean) => expect(g.getValue(key), key).toEqual({ type: 7, value });
    str("general.architecture", "clip");
    str("general.type", "mmproj");
    u32("general.file_type", mmprojType === "f32" ? 0 : 1);
    str("clip.projector_type", "videollama3");
    bool("clip.has_vision_encoder", true);
    u32("clip.vision.embedding_length", v.hidden);
    u32("clip.vision.feed_forward_length", v.ffn);
    u32("clip.vision.block_count", v.layers);
    u32("clip.vision.attention.head_count", v.heads);
    f32("clip.vision.attention.layer_norm_epsilon", 1e-6);
    u32("clip.vision.patch_size", 14);
    u32("clip.vision.projection_dim", ck.text.hidden);
    expect(Array.from(g.getArray("clip.vision.image_mean") as Float32Array)).toEqual([0.5, 0.5, 0.5]);
    expect(Array.from(g.getArray("clip.vision.image_std") as Float32Array)).toEqual([0.5, 0.5, 0.5]);
    f32("videollama3.vision.rope.freq_base", 10000);
    str("videollama3.vision.hidden_act", "gelu_pytorch_tanh");
    str("videollama3.projector.type", "mlp2x_gelu");
    u32("videollama3.image.merge_size", 1);
    u32("videollama3.video.merge_size", 2);
    u32("videollama3.image.min_tokens", 16);
    u32("videollama3.image.max_tokens", 16384);
    f32("videollama3.image.rescale_factor", 1 / 255);
    str("videollama3.image.resample", "bicubic");
    f32("videollama3.video.fps", 1);
    u32("videollama3.video.max_frames", 180);
    bool("videollama3.video.token_compression", true);
    f32("videollama3.video.diff_threshold", 0.1);
    u32("videollama3.video.min_tokens_per_frame", 1);
    u32("videollama3.image_token_id", 151665);
}

/** Decodes a tensor of the GGUF to f32 with ggml (native dequantize). */
async function decodeTensor(g: GgufFile, name: string): Promise<Float32Array> {
    const t = g.getTensor(name)!;
    const data = await readTensorData(g, name);
    if (t.type === "f32") return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    return native().dequantize(t.type, data, t.elementCount);
}

/** Tensors, shapes, types and values of one output file against the doc and the generator. */
async function checkTensors(
    g: GgufFile,
    expected: Map<string, [string, number[]]>,
    typeOf: (name: string) => string,
    seed: number,
): Promise<void> {
    expect(new Set(g.tensors.map((t) => t.name))).toEqual(new Set(expected.keys()));
    for (const [name, [hf, shape]] of expected) {
        const t = g.getTensor(name)!;
        expect(t.shape, name).toEqual(shape);
        expect(t.type, name).toBe(typeOf(name));
        const source = expectedBf16Values(seed, hf, t.elementCount);
        const decoded = await decodeTensor(g, name);
        if (t.type === "f32" || t.type === "bf16") {
            // bit-exact: the checkpoint is bf16, every bf16 value is an f32
            const a = new Uint32Array(decoded.buffer, decoded.byteOffset, decoded.length);
            const b = new Uint32Array(source.buffer);
            let mismatches = 0;
            for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) mismatches++;
            expect(mismatches, `${name} bit-exact`).toBe(0);
        } else {
            const err = relRms(decoded, source);
            expect(err, `${name} (${t.type}) relative RMS error`).toBeLessThan(REL_RMS_LIMIT[t.type]!);
            // block types really quantize; f16 holds every bf16 value of the f16 range exactly (8 < 11 mantissa bits)
            if (t.type !== "f16") expect(err, `${name} is not a copy`).toBeGreaterThan(0);
        }
    }
}

interface Case {
    key: string;
    type: TextOutputType;
    mmprojType: MmprojOutputType;
    tied: boolean;
    shards: number;
}

const cases: Case[] = [
    ...(["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"] as const).map(
        (type): Case => ({ key: "tiny-tied", type, mmprojType: type === "f32" ? "f32" : "f16", tied: true, shards: 1 }),
    ),
    ...(["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m"] as const).map(
        (type, i): Case => ({ key: "tiny-sharded-untied", type, mmprojType: i % 2 === 0 ? "f32" : "f16", tied: false, shards: 3 }),
    ),
];

describe.each(cases)("convert $key to $type (mmproj $mmprojType)", ({ key, type, mmprojType, tied, shards }) => {
    let ck: HfCheckpoint;
    let result: ConvertResult;
    const progress: ConvertProgress[] = [];

    beforeAll(async () => {
        ck = await checkpoint(key, { tied, shards });
        const out = await freshDir(`out-${key}-${type}-${mmprojType}`);
        result = await convertCheckpoint({
            input: ck.dir,
            outDir: out,
            type,
            mmprojType,
            name: "VL3-tiny",
            verify: "all",
            onProgress: (p) => progress.push(p),
        });
    });

    it("writes exactly the two files with the llama.cpp names", async () => {
        expect(result.textModel).toMatch(new RegExp(`VL3-tiny-${type}\\.gguf$`));
        expect(result.mmproj).toMatch(new RegExp(`mmproj-VL3-tiny-${mmprojType}\\.gguf$`));
        const dir = join(result.textModel, "..");
        expect(await listDir(dir)).toEqual([`VL3-tiny-${type}.gguf`, `mmproj-VL3-tiny-${mmprojType}.gguf`].sort());
    });

    it("text model: every key of docs/gguf-format.md and the full tokenizer", async () => {
        const g = await readGguf(result.textModel);
        checkTextKeys(g, ck, type, "VL3-tiny");
        await checkVocabulary(g);
    });

    it("text model: every tensor with the doc's name and shape, the llama.cpp type, and the checkpoint's values", async () => {
        const g = await readGguf(result.textModel);
        await checkTensors(g, docTextTensors(ck), (n) => expectedTinyType(type, n, tied), 1);
        if (!tied) expect(g.getTensor("output.weight")).toBeDefined();
        else expect(g.getTensor("output.weight")).toBeUndefined();
    });

    it("vision projector: every key and tensor of docs/gguf-format.md, matrices in the mmproj type, vectors f32", async () => {
        const g = await readGguf(result.mmproj);
        checkMmprojKeys(g, ck, mmprojType);
        await checkTensors(g, docMmprojTensors(ck), (n) => (n.endsWith(".bias") || n.includes("ln") ? "f32" : mmprojType), 1);
    });

    it("reports every tensor with its measured error within the type's bound, and monotonic progress", () => {
        expect(result.tensors).toHaveLength(docTextTensors(ck).size + docMmprojTensors(ck).size);
        for (const t of result.tensors) {
            expect(t.relRmsError, t.name).toBeLessThanOrEqual(t.relRmsBound);
            if (t.type !== "f32" && t.type !== "bf16") {
                expect(t.checkedValues, t.name).toBe(t.shape.reduce((a, d) => a * d, 1));
                expect(t.relRmsBound, t.name).toBeGreaterThan(0);
            }
        }
        const converting = progress.filter((p) => p.phase === "text" || p.phase === "mmproj");
        expect(converting.length).toBeGreaterThan(result.tensors.length);
        for (let i = 1; i < converting.length; i++) expect(converting[i]!.bytesDone).toBeGreaterThanOrEqual(converting[i - 1]!.bytesDone);
        const last = progress.at(-1)!;
        expect(last.phase).toBe("done");
        expect(last.bytesDone).toBe(last.bytesTotal);
        expect(last.bytesTotal).toBe(ck.bytes);
        expect(new Set(progress.map((p) => p.phase))).toEqual(new Set(["prepare", "text", "mmproj", "finalize", "done"]));
    });
});

describe("untied output projection", () => {
    it("output.weight comes from lm_head.weight, token_embd from embed_tokens (different values)", async () => {
        const ck = await checkpoint("tiny-sharded-untied", { tied: false, shards: 3 });
        const out = await freshDir("out-untied-check");
        const r = await convertCheckpoint({ input: ck.dir, outDir: out, type: "f32", mmprojType: "f32" });
        const g = await readGguf(r.textModel);
        const output = await decodeTensor(g, "output.weight");
        const embd = await decodeTensor(g, "token_embd.weight");
        expect(Array.from(output.subarray(0, 64))).toEqual(Array.from(expectedBf16Values(1, "lm_head.weight", 64)));
        expect(Array.from(embd.subarray(0, 64))).not.toEqual(Array.from(output.subarray(0, 64)));
        expect(g.getString("general.name")).toBe("ckpt-tiny-sharded-untied"); // default name: the directory's
    });
});

describe("other source dtypes and tokenizer formats", () => {
    it("converts an f16 checkpoint with pair-format merges; bf16 output rounds within half an ulp", async () => {
        const ck = await checkpoint("tiny-f16-pairs", { dtype: "F16", mergesFormat: "pairs", seed: 7 });
        const out = await freshDir("out-f16-source");
        const r = await convertCheckpoint({ input: ck.dir, outDir: out, type: "bf16", verify: "all" });
        const g = await readGguf(r.textModel);
        const ref = await qwen2Vocabulary();
        expect(g.getArray("tokenizer.ggml.merges")).toEqual(ref.merges);
        for (const t of r.tensors) if (t.type === "bf16") expect(t.relRmsError).toBeGreaterThan(0);
        const f = await convertCheckpoint({ input: ck.dir, outDir: out, type: "f16", mmprojType: "f16", name: "copy" });
        for (const t of f.tensors) expect(t.relRmsBound, t.name).toBe(0); // f16 → f16 is a copy
    });
});
