// Video-LLaVA conversions of the tiny checkpoint (test/fixtures/hf-video-llava.ts, the released HF layout). Both output
// files are read back with the GGUF reader and compared with the "Video-LLaVA" section of docs/gguf-format.md —
// every key, tensor name, shape and type written out here by hand from the doc — and with the checkpoint's values
// computed from the fixture generator. The q/k rows are checked against a permutation written here independently
// of the converter (llama.cpp's reshape/swapaxes, by strides).
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ChatTemplate } from "../../lib/chat/template.js";
import { convertCheckpoint, VIDEO_LLAVA_DEFAULT_CHAT_TEMPLATE, type ConvertProgress, type ConvertResult } from "../../lib/convert/convert.js";
import type { MmprojOutputType, TextOutputType } from "../../lib/convert/quant-rules.js";
import { readGguf, readTensorData, type GgufFile } from "../../lib/gguf/reader.js";
import { native } from "../../lib/native/load.js";
import {
    llamaSpmVocabulary,
    videoLlavaPrefixes,
    writeVideoLlavaCheckpoint,
    type VideoLlavaCheckpoint,
    type VideoLlavaCheckpointOptions,
} from "../fixtures/hf-video-llava.js";
import { expectedBf16Values, fixturesRoot, freshDir, listDir, relRms } from "./helpers.js";

const FTYPE: Record<TextOutputType, number> = { f32: 0, f16: 1, bf16: 32, q8_0: 7, q4_0: 2, q4_k_m: 15 };
/** As convert.test.ts: relative RMS error each storage type must reach on the fixture's near-normal weights. */
const REL_RMS_LIMIT: Record<string, number> = { f16: 4e-4, q8_0: 0.01, q6_K: 0.03, q5_0: 0.065, q4_K: 0.11, q4_0: 0.13 };

const checkpoints = new Map<string, Promise<VideoLlavaCheckpoint>>();
/** A checkpoint written once per process under test/.fixtures/convert/vl-<key>. */
function vlCheckpoint(key: string, options: VideoLlavaCheckpointOptions = {}): Promise<VideoLlavaCheckpoint> {
    let p = checkpoints.get(key);
    if (!p) {
        p = writeVideoLlavaCheckpoint(join(fixturesRoot, `vl-${key}`), options);
        checkpoints.set(key, p);
    }
    return p;
}

/**
 * llama.cpp's `LlamaModel.permute(w, n_head, n_head_kv)` written as the array operation it is:
 * `w.reshape(n, 2, rows/n/2, cols).swapaxes(1, 2).reshape(rows, cols)`, with `n = n_head_kv` when it differs.
 * Output element [a, b, c, :] of the swapped view (a head, b < rows/n/2, c < 2) is input element [a, c, b, :].
 */
function llamaCppPermute(w: Float32Array, rows: number, cols: number, nHead: number, nHeadKv: number): Float32Array {
    const n = nHeadKv !== nHead ? nHeadKv : nHead;
    const d1 = 2;
    const d2 = rows / n / 2;
    // row-major strides (in rows) of the reshaped input [n, 2, d2] and of the swapped output [n, d2, 2]
    const inStride = [d1 * d2, d2, 1];
    const outStride = [d2 * d1, d1, 1];
    const out = new Float32Array(w.length);
    for (let a = 0; a < n; a++) {
        for (let b = 0; b < d2; b++) {
            for (let c = 0; c < d1; c++) {
                const src = a * inStride[0]! + c * inStride[1]! + b * inStride[2]!;
                const dst = a * outStride[0]! + b * outStride[1]! + c * outStride[2]!;
                out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
            }
        }
    }
    return out;
}

interface ExpectedTensor {
    hf: string;
    shape: number[];
    /** Values in the GGUF's row order, from the generator. */
    values: () => Float32Array;
}

/** Text tensors of the doc's Video-LLaVA section: GGUF name → HF key, ggml shape, expected values. */
function docTextTensors(ck: VideoLlavaCheckpoint): Map<string, ExpectedTensor> {
    const { hidden: h, ffn, vocab, layers, heads, kvHeads } = ck.text;
    const hd = h / heads;
    const kv = hd * kvHeads;
    const p = videoLlavaPrefixes(ck.layout);
    const m = new Map<string, ExpectedTensor>();
    const plain = (hf: string, shape: number[]): ExpectedTensor => ({
        hf,
        shape,
        values: () => expectedBf16Values(ck.seed, hf, shape.reduce((a, d) => a * d, 1), ck.weightScale),
    });
    m.set("token_embd.weight", plain(`${p.languageModel}embed_tokens.weight`, [h, vocab]));
    for (let i = 0; i < layers; i++) {
        const l = `${p.languageModel}layers.${i}.`;
        m.set(`blk.${i}.attn_norm.weight`, plain(`${l}input_layernorm.weight`, [h]));
        const q = `${l}self_attn.q_proj.weight`;
        m.set(`blk.${i}.attn_q.weight`, { hf: q, shape: [h, h], values: () => llamaCppPermute(expectedBf16Values(ck.seed, q, h * h, ck.weightScale), h, h, heads, heads) });
        const k = `${l}self_attn.k_proj.weight`;
        m.set(`blk.${i}.attn_k.weight`, { hf: k, shape: [h, kv], values: () => llamaCppPermute(expectedBf16Values(ck.seed, k, kv * h, ck.weightScale), kv, h, heads, kvHeads) });
        m.set(`blk.${i}.attn_v.weight`, plain(`${l}self_attn.v_proj.weight`, [h, kv]));
        m.set(`blk.${i}.attn_output.weight`, plain(`${l}self_attn.o_proj.weight`, [h, h]));
        m.set(`blk.${i}.ffn_norm.weight`, plain(`${l}post_attention_layernorm.weight`, [h]));
        m.set(`blk.${i}.ffn_gate.weight`, plain(`${l}mlp.gate_proj.weight`, [h, ffn]));
        m.set(`blk.${i}.ffn_up.weight`, plain(`${l}mlp.up_proj.weight`, [h, ffn]));
        m.set(`blk.${i}.ffn_down.weight`, plain(`${l}mlp.down_proj.weight`, [ffn, h]));
    }
    m.set("output_norm.weight", plain(`${p.languageModel}norm.weight`, [h]));
    m.set("output.weight", plain(`${p.lmHead}weight`, [h, vocab]));
    return m;
}

/** Projector tensors of the doc: both towers (only the blocks before the feature layer), then `mm.0` / `mm.2`. */
function docMmprojTensors(ck: VideoLlavaCheckpoint, blockCount: number): Map<string, ExpectedTensor> {
    const { hidden: vh, ffn, patch, imageSize } = ck.vision;
    const h = ck.text.hidden;
    const positions = (imageSize / patch) ** 2 + 1;
    const p = videoLlavaPrefixes(ck.layout);
    const m = new Map<string, ExpectedTensor>();
    const add = (gguf: string, hf: string, shape: number[]) =>
        m.set(gguf, { hf, shape, values: () => expectedBf16Values(ck.seed, hf, shape.reduce((a, d) => a * d, 1), ck.weightScale) });
    for (const [tower, g] of [
        [p.imageTower, "v."],
        [p.videoTower, "v.video."],
    ] as const) {
        add(`${g}class_embd`, `${tower}embeddings.class_embedding`, [vh]);
        add(`${g}patch_embd.weight`, `${tower}embeddings.patch_embedding.weight`, [patch, patch, 3, vh]);
        add(`${g}position_embd.weight`, `${tower}embeddings.position_embedding.weight`, [vh, positions]);
        add(`${g}pre_ln.weight`, `${tower}pre_layrnorm.weight`, [vh]);
        add(`${g}pre_ln.bias`, `${tower}pre_layrnorm.bias`, [vh]);
        for (let i = 0; i < blockCount; i++) {
            const b = `${g}blk.${i}.`;
            const l = `${tower}encoder.layers.${i}.`;
            add(`${b}ln1.weight`, `${l}layer_norm1.weight`, [vh]);
            add(`${b}ln1.bias`, `${l}layer_norm1.bias`, [vh]);
            for (const [gg, hf] of [
                ["attn_q", "q_proj"],
                ["attn_k", "k_proj"],
                ["attn_v", "v_proj"],
                ["attn_out", "out_proj"],
            ] as const) {
                add(`${b}${gg}.weight`, `${l}self_attn.${hf}.weight`, [vh, vh]);
                add(`${b}${gg}.bias`, `${l}self_attn.${hf}.bias`, [vh]);
            }
            add(`${b}ln2.weight`, `${l}layer_norm2.weight`, [vh]);
            add(`${b}ln2.bias`, `${l}layer_norm2.bias`, [vh]);
            add(`${b}ffn_up.weight`, `${l}mlp.fc1.weight`, [vh, ffn]);
            add(`${b}ffn_up.bias`, `${l}mlp.fc1.bias`, [ffn]);
            add(`${b}ffn_down.weight`, `${l}mlp.fc2.weight`, [ffn, vh]);
            add(`${b}ffn_down.bias`, `${l}mlp.fc2.bias`, [vh]);
        }
    }
    add("mm.0.weight", `${p.projector}linear_1.weight`, [vh, h]);
    add("mm.0.bias", `${p.projector}linear_1.bias`, [h]);
    add("mm.2.weight", `${p.projector}linear_2.weight`, [h, h]);
    add("mm.2.bias", `${p.projector}linear_2.bias`, [h]);
    return m;
}

/** The llama.cpp type of each text tensor for the tiny dimensions (as convert.test.ts works it out, untied). */
function expectedTextType(type: TextOutputType, name: string): string {
    if (name.includes("norm")) return "f32";
    if (type === "f32" || type === "f16" || type === "bf16") return type;
    if (type === "q8_0") return "q8_0";
    if (type === "q4_0") return name === "output.weight" ? "q8_0" : "q4_0";
    if (name === "output.weight") return "q8_0"; // q6_K, rows of 64 → q8_0
    if (name === "blk.1.attn_v.weight" || name === "blk.1.ffn_down.weight") return "q8_0"; // use_more_bits(1, 2)
    return "q5_0"; // q4_K on rows of 64/128 → q5_0
}

/** Vectors (1-D) and the position embeddings are f32 whatever the projector type (doc). */
function expectedMmprojType(mmprojType: MmprojOutputType, name: string, shape: number[]): string {
    if (shape.length === 1 || name.endsWith("position_embd.weight")) return "f32";
    return mmprojType;
}

async function decodeTensor(g: GgufFile, name: string): Promise<Float32Array> {
    const t = g.getTensor(name)!;
    const data = await readTensorData(g, name);
    if (t.type === "f32") return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    return native().dequantize(t.type, data, t.elementCount);
}

async function checkTensors(g: GgufFile, expected: Map<string, ExpectedTensor>, typeOf: (name: string, shape: number[]) => string): Promise<void> {
    expect(g.tensors.map((t) => t.name).sort()).toEqual([...expected.keys()].sort());
    for (const [name, e] of expected) {
        const t = g.getTensor(name)!;
        expect(t.shape, name).toEqual(e.shape);
        expect(t.type, name).toBe(typeOf(name, e.shape));
        const want = e.values();
        const got = await decodeTensor(g, name);
        if (t.type === "f32" || t.type === "bf16") {
            // every bf16 value is an f32 (and a bf16): bit-exact
            expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer)), `${name} bit-exact`).toBe(true);
        } else {
            expect(relRms(got, want), `${name} (${t.type})`).toBeLessThan(REL_RMS_LIMIT[t.type]!);
        }
    }
}

function checkTextKeys(g: GgufFile, ck: VideoLlavaCheckpoint, type: TextOutputType, name: string): void {
    const t = ck.text;
    const u32 = (key: string, value: number) => expect(g.getValue(key), key).toEqual({ type: 4, value });
    const f32 = (key: string, value: number) => expect(g.getValue(key), key).toEqual({ type: 6, value: Math.fround(value) });
    const str = (key: string, value: string) => expect(g.getValue(key), key).toEqual({ type: 8, value });
    const bool = (key: string, value: boolean) => expect(g.getValue(key), key).toEqual({ type: 7, value });
    str("general.architecture", "llama");
    str("general.type", "model");
    str("general.name", name);
    u32("general.file_type", FTYPE[type]);
    if (type.startsWith("q")) u32("general.quantization_version", 2);
    else expect(g.getValue("general.quantization_version")).toBeUndefined();
    u32("llama.context_length", 4096);
    u32("llama.embedding_length", t.hidden);
    u32("llama.feed_forward_length", t.ffn);
    u32("llama.block_count", t.layers);
    u32("llama.attention.head_count", t.heads);
    u32("llama.attention.head_count_kv", t.kvHeads);
    f32("llama.rope.freq_base", 10000);
    u32("llama.rope.dimension_count", t.hidden / t.heads);
    f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    u32("llama.vocab_size", 32064);
    str("tokenizer.ggml.model", "llama");
    str("tokenizer.ggml.pre", "default");
    u32("tokenizer.ggml.bos_token_id", 1);
    u32("tokenizer.ggml.eos_token_id", 2);
    u32("tokenizer.ggml.unknown_token_id", 0);
    u32("tokenizer.ggml.padding_token_id", 32002);
    bool("tokenizer.ggml.add_bos_token", true);
    bool("tokenizer.ggml.add_eos_token", false);
    bool("tokenizer.ggml.add_space_prefix", true);
    u32("video_llava.image_token_id", 32000);
    u32("video_llava.video_token_id", 32001);
    // generation_config.json holds only special ids: no sampling keys
    expect([...g.metadata.keys()].filter((k) => k.startsWith("video_llava.generation."))).toEqual([]);
    expect([...g.metadata.keys()].filter((k) => k.startsWith("videollama3."))).toEqual([]);
}

async function checkVocabulary(g: GgufFile): Promise<void> {
    const tokens = g.getArray("tokenizer.ggml.tokens") as string[];
    const scores = g.getArray("tokenizer.ggml.scores") as Float32Array;
    const types = g.getArray("tokenizer.ggml.token_type") as Int32Array;
    expect(tokens).toHaveLength(32064);
    expect(scores).toHaveLength(32064);
    expect(types).toHaveLength(32064);
    expect(g.getValue("tokenizer.ggml.merges")).toBeUndefined();
    // llama.cpp's own conversion of the LLaMA tokenizer is the reference for the 32000 pieces
    const ref = await llamaSpmVocabulary();
    expect(tokens.slice(0, 32000)).toEqual(ref.tokens);
    expect(Array.from(scores.slice(3, 32000))).toEqual(Array.from(ref.scores.slice(3)));
    expect(Array.from(types.slice(3, 32000))).toEqual(Array.from(ref.types.slice(3)));
    const at = (id: number) => [tokens[id], scores[id], types[id]];
    expect(at(259)).toEqual(["▁▁", -1e9, 1]);
    expect(at(3148)).toEqual(["▁US", -2889, 1]);
    expect(at(3750)).toEqual(["▁Why", -3491, 1]);
    expect(at(13)).toEqual(["<0x0A>", 0, 6]); // byte fallback pieces keep type 6
    // tokenizer_config.json's added_tokens_decoder lists <unk>, <s>, </s> as special: control, score −1000, as
    // llama.cpp's _create_vocab_sentencepiece makes them
    expect([at(0), at(1), at(2)]).toEqual([
        ["<unk>", -1000, 3],
        ["<s>", -1000, 3],
        ["</s>", -1000, 3],
    ]);
    expect(at(32000)).toEqual(["<image>", -1000, 3]);
    expect(at(32001)).toEqual(["<video>", -1000, 3]);
    expect(at(32002)).toEqual(["<pad>", -1000, 3]);
    expect(at(32003)).toEqual(["[PAD32003]", -10000, 5]);
    expect(at(32063)).toEqual(["[PAD32063]", -10000, 5]);
}

function checkMmprojKeys(g: GgufFile, ck: VideoLlavaCheckpoint, mmprojType: MmprojOutputType, useGelu = false): void {
    const v = ck.vision;
    const u32 = (key: string, value: number) => expect(g.getValue(key), key).toEqual({ type: 4, value });
    const i32 = (key: string, value: number) => expect(g.getValue(key), key).toEqual({ type: 5, value });
    const f32 = (key: string, value: number) => expect(g.getValue(key), key).toEqual({ type: 6, value: Math.fround(value) });
    const str = (key: string, value: string) => expect(g.getValue(key), key).toEqual({ type: 8, value });
    const bool = (key: string, value: boolean) => expect(g.getValue(key), key).toEqual({ type: 7, value });
    str("general.architecture", "clip");
    str("general.type", "mmproj");
    u32("general.file_type", mmprojType === "f32" ? 0 : 1);
    str("clip.projector_type", "video_llava");
    bool("clip.has_vision_encoder", true);
    u32("clip.vision.embedding_length", v.hidden);
    u32("clip.vision.feed_forward_length", v.ffn);
    u32("clip.vision.block_count", v.layers - 1); // num_hidden_layers + vision_feature_layer (−2) + 1
    u32("clip.vision.attention.head_count", v.heads);
    f32("clip.vision.attention.layer_norm_epsilon", 1e-5);
    u32("clip.vision.patch_size", 14);
    u32("clip.vision.image_size", 224);
    u32("clip.vision.projection_dim", ck.text.hidden);
    expect(g.getValue("clip.vision.image_mean")).toMatchObject({ type: 9, itemType: 6 });
    expect(Array.from(g.getArray("clip.vision.image_mean") as Float32Array)).toEqual([0.48145466, 0.4578275, 0.40821073].map(Math.fround));
    expect(Array.from(g.getArray("clip.vision.image_std") as Float32Array)).toEqual([0.26862954, 0.26130258, 0.27577711].map(Math.fround));
    bool("clip.use_gelu", useGelu);
    i32("video_llava.vision.feature_layer", -2);
    u32("video_llava.vision.source_block_count", v.layers);
    u32("video_llava.image.shortest_edge", 224);
    u32("video_llava.image.crop_size", 224);
    f32("video_llava.image.rescale_factor", 1 / 255);
    str("video_llava.image.resample", "bicubic");
    bool("video_llava.image.keep_cls", false);
    bool("video_llava.video.keep_cls", true);
    u32("video_llava.video.num_frames", 8);
    bool("video_llava.video.token_compression", false);
    f32("video_llava.video.diff_threshold", 0.1);
    u32("video_llava.video.min_tokens_per_frame", 1);
    u32("video_llava.image_token_id", 32000);
    u32("video_llava.video_token_id", 32001);
    str("video_llava.projector.type", "mlp2x_gelu");
    expect([...g.metadata.keys()].filter((k) => k.startsWith("videollama3."))).toEqual([]);
}

const cases: Array<{ type: TextOutputType; mmprojType: MmprojOutputType; shards: number }> = [
    { type: "f32", mmprojType: "f32", shards: 3 },
    { type: "f16", mmprojType: "f16", shards: 1 },
    { type: "bf16", mmprojType: "f32", shards: 3 },
    { type: "q8_0", mmprojType: "f16", shards: 3 },
    { type: "q4_0", mmprojType: "f16", shards: 1 },
    { type: "q4_k_m", mmprojType: "f32", shards: 3 },
];

describe.each(cases)("convert Video-LLaVA to $type (mmproj $mmprojType, $shards shards)", ({ type, mmprojType, shards }) => {
    let ck: VideoLlavaCheckpoint;
    let result: ConvertResult;
    const progress: ConvertProgress[] = [];

    beforeAll(async () => {
        ck = await vlCheckpoint(shards === 1 ? "single" : "sharded", { shards });
        const out = await freshDir(`vl-out-${type}-${mmprojType}`);
        result = await convertCheckpoint({ input: ck.dir, outDir: out, type, mmprojType, name: "VL-tiny", verify: "all", onProgress: (p) => progress.push(p) });
    });

    it("writes exactly the two files with the llama.cpp names", async () => {
        expect(await listDir(join(result.textModel, ".."))).toEqual([`VL-tiny-${type}.gguf`, `mmproj-VL-tiny-${mmprojType}.gguf`].sort());
    });

    it("text model: every key of the doc and the SentencePiece vocabulary of 32064 entries", async () => {
        const g = await readGguf(result.textModel);
        checkTextKeys(g, ck, type, "VL-tiny");
        await checkVocabulary(g);
        // no chat template in the checkpoint: the default one, and a warning saying so
        expect(g.getString("tokenizer.chat_template")).toBe(VIDEO_LLAVA_DEFAULT_CHAT_TEMPLATE);
        expect(result.warnings).toContainEqual(expect.stringMatching(/no chat template .*writing vidllama's default/));
        expect(result.warnings).toContainEqual("61 unused token ids padded as [PAD<i>] up to vocab_size 32064");
    });

    it("text model: every tensor with the doc's name, shape and type, q/k permuted as llama.cpp does, untied output", async () => {
        const g = await readGguf(result.textModel);
        await checkTensors(g, docTextTensors(ck), (n) => expectedTextType(type, n));
    });

    it("projector: every key of the doc; both towers with 2 of 3 blocks, no post-layernorm, the shared projector", async () => {
        const g = await readGguf(result.mmproj);
        checkMmprojKeys(g, ck, mmprojType);
        await checkTensors(g, docMmprojTensors(ck, 2), (n, shape) => expectedMmprojType(mmprojType, n, shape));
        expect(g.tensors.some((t) => t.name.includes("post_ln") || t.name.includes("blk.2."))).toBe(false);
    });

    it("reports every tensor within its bound; progress covers the converted bytes, not the skipped ones", () => {
        expect(result.tensors).toHaveLength(docTextTensors(ck).size + docMmprojTensors(ck, 2).size);
        for (const t of result.tensors) expect(t.relRmsError, t.name).toBeLessThanOrEqual(t.relRmsBound);
        const skipped = ck.tensors.filter((t) => /post_layernorm|encoder\.layers\.2\./.test(t.name));
        expect(skipped).toHaveLength(2 * 2 + 2 * 16);
        const skippedBytes = skipped.reduce((a, t) => a + t.shape.reduce((x, d) => x * d, 1) * 2, 0);
        const last = progress.at(-1)!;
        expect(last.phase).toBe("done");
        expect(last.bytesDone).toBe(last.bytesTotal);
        expect(last.bytesTotal).toBe(ck.bytes - skippedBytes);
    });
});

describe("Video-LLaVA layouts, grouped-query attention and the chat template", () => {
    it("the transformers ≥ 4.52 layout (model.language_model., lm_head., model.image_tower., ...) converts to the same files", async () => {
        const ck = await vlCheckpoint("current", { layout: "current", shards: 2 });
        const r = await convertCheckpoint({ input: ck.dir, outDir: await freshDir("vl-out-current"), type: "f32", mmprojType: "f32", verify: "all" });
        expect(r.tensors.find((t) => t.name === "output.weight")!.source).toBe("lm_head.weight");
        expect(r.tensors.find((t) => t.name === "v.video.class_embd")!.source).toBe("model.video_tower.vision_model.embeddings.class_embedding");
        await checkTensors(await readGguf(r.textModel), docTextTensors(ck), () => "f32");
        await checkTensors(await readGguf(r.mmproj), docMmprojTensors(ck, 2), (n, s) => expectedMmprojType("f32", n, s));
    });

    it("k is permuted by the kv heads when num_key_value_heads < num_attention_heads", async () => {
        const ck = await vlCheckpoint("gqa", { text: { kvHeads: 2 }, shards: 1 });
        expect((ck.config.text_config as Record<string, unknown>).num_key_value_heads).toBe(2);
        const r = await convertCheckpoint({ input: ck.dir, outDir: await freshDir("vl-out-gqa"), type: "f32", mmprojType: "f32" });
        const g = await readGguf(r.textModel);
        expect(g.getValue("llama.attention.head_count_kv")).toEqual({ type: 4, value: 2 });
        await checkTensors(g, docTextTensors(ck), () => "f32");
        // control: permuting k by the query heads gives other values, so the check above does see the head count
        const k = "language_model.model.layers.0.self_attn.k_proj.weight";
        const wrong = llamaCppPermute(expectedBf16Values(1, k, 32 * 64), 32, 64, 4, 4);
        expect(Buffer.from((await decodeTensor(g, "blk.0.attn_k.weight")).buffer).equals(Buffer.from(wrong.buffer))).toBe(false);
    });

    it("the permutation really moves rows (a copy would fail the q/k checks)", () => {
        const w = Float32Array.from({ length: 64 * 2 }, (_, i) => Math.floor(i / 2)); // row r holds r, r
        const p = llamaCppPermute(w, 64, 2, 4, 4);
        // head 0: rows 0, 8, 1, 9, ...: HF's rotate-half pairs (i, i + 8) become adjacent
        expect(Array.from(p.subarray(0, 8)).filter((_, i) => i % 2 === 0)).toEqual([0, 8, 1, 9]);
        expect(Array.from(p.subarray(32, 36)).filter((_, i) => i % 2 === 0)).toEqual([16, 24]);
    });

    it("a checkpoint's chat_template.json is kept; the default template renders the Hugging Face prompt", async () => {
        const template = "{% for m in messages %}{{ m['role'] }}{% endfor %}";
        const ck = await vlCheckpoint("with-template", { chatTemplate: template, shards: 1 });
        const r = await convertCheckpoint({ input: ck.dir, outDir: await freshDir("vl-out-template"), type: "q8_0" });
        expect((await readGguf(r.textModel)).getString("tokenizer.chat_template")).toBe(template);
        expect(r.warnings.some((w) => w.includes("chat template"))).toBe(false);

        const t = new ChatTemplate(VIDEO_LLAVA_DEFAULT_CHAT_TEMPLATE);
        const video = { role: "user", content: [{ type: "video" as const, num_frames: 8 }, { type: "text" as const, text: "Why is this video funny?" }] };
        expect(t.renderText([video], { addGenerationPrompt: true })).toBe("USER: <video>\nWhy is this video funny? ASSISTANT:");
        const image = { role: "user", content: [{ type: "text" as const, text: "What is shown?" }, { type: "image" as const }] };
        expect(
            t.renderText([image, { role: "assistant", content: " Two cats." }, { role: "user", content: "Where?" }], { addGenerationPrompt: true }),
        ).toBe("USER: <image>\nWhat is shown? ASSISTANT: Two cats.</s>USER: Where? ASSISTANT:");
        expect(t.renderText([{ role: "user", content: "Hi" }], { addGenerationPrompt: false })).toBe("USER: Hi ");
    });
});
