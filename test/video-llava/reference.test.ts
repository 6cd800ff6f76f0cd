// Video-LLaVA end to end against the independent float64 reference, with the reference reading the Hugging Face
// checkpoint itself (not our GGUF files): preprocessing (shortest-edge resize, centre crop, CLIP normalisation) →
// image tower without / video tower with the class token (test/reference/clip-encoder.ts) → projector → LLaMA decoder
// over the prompt with its placeholders replaced (test/convert/qwen2-reference.ts). Our answer's first tokens must be
// the reference's greedy choices, and the logits the language model computes from our embeddings must match.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, loadModel, loadVision, Video, type Model } from "../../lib/index.js";
import { openCheckpointTensors, ShardReader, toFloat32 } from "../../lib/convert/safetensors.js";
import { convertedTinyVideoLlava } from "../fixtures/hf-video-llava.js";
import { decoderLogits, type WeightSource } from "../convert/qwen2-reference.js";
import { errorStats, readClipProjector, referenceClipForward, referenceClipPreprocess, type ClipPreprocessParams, type ClipRefConfig } from "../reference/clip-encoder.js";
import { weightLookupFromMap, type RefTensor, type WeightLookup } from "../reference/tensor.js";
import { seededRandom } from "../reference/tensor.js";
import { testVideo } from "../video/fixtures.js";

const IMAGE = 32000;
const VIDEO = 32001;
let model: Model;
let mmprojPath: string;
/** Every checkpoint tensor by its Hugging Face name, as float64 in PyTorch shape. */
let hf: Map<string, RefTensor>;
let clipConfig: ClipRefConfig;
let text: { hidden: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number; ropeTheta: number; rmsEps: number };

/** The reference's names are the projector file's (`v.blk.0.attn_q.weight`); these are their checkpoint names. */
function hfName(gguf: string): string {
    const tower = gguf.startsWith("v.video.") ? "video_tower.vision_model." : "image_tower.vision_model.";
    const rest = gguf.startsWith("v.video.") ? gguf.slice(8) : gguf.startsWith("v.") ? gguf.slice(2) : gguf;
    const mm = /^mm\.(0|2)\.(weight|bias)$/.exec(gguf);
    if (mm) return `multi_modal_projector.linear_${mm[1] === "0" ? 1 : 2}.${mm[2]}`;
    const fixed: Record<string, string> = {
        class_embd: "embeddings.class_embedding",
        "patch_embd.weight": "embeddings.patch_embedding.weight",
        "position_embd.weight": "embeddings.position_embedding.weight",
        "pre_ln.weight": "pre_layrnorm.weight",
        "pre_ln.bias": "pre_layrnorm.bias",
    };
    if (fixed[rest]) return tower + fixed[rest];
    const blk = /^blk\.(\d+)\.(\w+)\.(weight|bias)$/.exec(rest);
    if (!blk) throw new Error(`no checkpoint name for ${gguf}`);
    const parts: Record<string, string> = {
        attn_q: "self_attn.q_proj",
        attn_k: "self_attn.k_proj",
        attn_v: "self_attn.v_proj",
        attn_out: "self_attn.out_proj",
        ln1: "layer_norm1",
        ln2: "layer_norm2",
        ffn_up: "mlp.fc1",
        ffn_down: "mlp.fc2",
    };
    return `${tower}encoder.layers.${blk[1]}.${parts[blk[2]!]}.${blk[3]}`;
}

const visionWeights: WeightLookup = (name) => weightLookupFromMap(hf)(hfName(name));
const textWeights: WeightSource = (name, count) => {
    const t = hf.get(name);
    if (!t || t.data.length !== count) throw new Error(`checkpoint tensor ${name}: ${t ? t.data.length : "missing"} values, expected ${count}`);
    return Float32Array.from(t.data);
};

function preprocessParams(dir: string): ClipPreprocessParams {
    const p = JSON.parse(readFileSync(join(dir, "preprocessor_config.json"), "utf8")) as Record<string, unknown>;
    const size = p.size as { shortest_edge: number };
    const crop = p.crop_size as { height: number; width: number };
    return { shortestEdge: size.shortest_edge, cropSize: crop.height, rescale: p.rescale_factor as number, mean: p.image_mean as [number, number, number], std: p.image_std as [number, number, number] };
}

beforeAll(async () => {
    const files = await convertedTinyVideoLlava();
    model = await loadModel({ model: files.model, mmproj: files.mmproj });
    mmprojPath = files.mmproj;
    // Settings of the towers (sizes, eps, class-token choices) from the projector; the preprocessing from the
    // checkpoint's own preprocessor_config.json; every weight from the checkpoint.
    clipConfig = { ...(await readClipProjector(files.mmproj)).config, preprocess: preprocessParams(files.checkpointDir) };
    const config = JSON.parse(readFileSync(join(files.checkpointDir, "config.json"), "utf8")) as { text_config: Record<string, number> };
    const t = config.text_config;
    text = {
        hidden: t.hidden_size!,
        layers: t.num_hidden_layers!,
        heads: t.num_attention_heads!,
        kvHeads: t.num_key_value_heads ?? t.num_attention_heads!,
        ffn: t.intermediate_size!,
        vocab: t.vocab_size!,
        ropeTheta: t.rope_theta ?? 10000,
        rmsEps: t.rms_norm_eps ?? 1e-6,
    };
    const { tensors } = await openCheckpointTensors(files.checkpointDir);
    const reader = new ShardReader();
    hf = new Map();
    for (const tensor of tensors.values()) {
        const bytes = new Uint8Array(tensor.byteLength);
        await reader.read(tensor, 0, tensor.byteLength, bytes);
        const n = tensor.shape.reduce((a, b) => a * b, 1);
        const f32 = new Float32Array(n);
        toFloat32(tensor.dtype, bytes, n, f32);
        hf.set(tensor.name, { data: Float64Array.from(f32), shape: [...tensor.shape] });
    }
    await reader.close?.();
}, 900_000);

afterAll(async () => {
    await model?.dispose();
});

/** Greedy tokens of the reference decoder, never choosing ids >= 32000 (as vidllama bans them). */
function referenceGreedy(inputs: Array<number | Float64Array>, steps: number): { tokens: number[]; margins: number[]; firstLogits: Float64Array } {
    const seq = [...inputs];
    const tokens: number[] = [];
    const margins: number[] = [];
    let firstLogits: Float64Array | undefined;
    for (let s = 0; s < steps; s++) {
        const logits = decoderLogits(seq, textWeights, {
            prefix: "language_model.model.",
            head: "language_model.lm_head.weight",
            qkvBias: false,
            dims: { hidden: text.hidden, layers: text.layers, heads: text.heads, kvHeads: text.kvHeads, ffn: text.ffn, vocab: text.vocab },
            ropeTheta: text.ropeTheta,
            rmsEps: text.rmsEps,
        });
        firstLogits ??= logits;
        let best = 0;
        for (let i = 1; i < 32000; i++) if (logits[i]! > logits[best]!) best = i;
        let second = best === 0 ? 1 : 0;
        for (let i = 0; i < 32000; i++) if (i !== best && logits[i]! > logits[second]!) second = i;
        tokens.push(best);
        margins.push(logits[best]! - logits[second]!);
        seq.push(best);
    }
    return { tokens, margins, firstLogits: firstLogits! };
}

/** Replaces each run of placeholders in `prompt` by the rows of the matching medium, in order. */
function withEmbeddings(prompt: readonly number[], media: Array<{ id: number; rows: Float64Array[] }>): Array<number | Float64Array> {
    const out: Array<number | Float64Array> = [];
    let m = 0;
    let r = 0;
    for (const t of prompt) {
        if (t !== IMAGE && t !== VIDEO) {
            out.push(t);
            continue;
        }
        const medium = media[m]!;
        expect(t).toBe(medium.id);
        out.push(medium.rows[r++]!);
        if (r === medium.rows.length) {
            m++;
            r = 0;
        }
    }
    expect(m).toBe(media.length);
    return out;
}

function rowsOf(tokens: Float64Array, n: number, dim: number): Float64Array[] {
    return Array.from({ length: n }, (_, i) => tokens.slice(i * dim, (i + 1) * dim));
}

describe("Video-LLaVA against the float64 reference on the Hugging Face checkpoint", () => {
    it("an image question: 256 tokens without the class token, the same greedy answer", async () => {
        const rng = seededRandom(11);
        const width = 260;
        const height = 180;
        const data = new Uint8Array(width * height * 3).map(() => Math.floor(rng() * 256));
        const session = await model.createSession();
        const ours = await session.prompt([Image.fromPixels({ data, width, height, format: "rgb" }), "What is this?"], { temperature: 0, maxTokens: 3 });
        const pre = referenceClipPreprocess(data, width, height, clipConfig.preprocess);
        const [ref] = referenceClipForward(visionWeights, [{ pixelValues: pre.pixelValues, tower: "image" }], clipConfig);
        expect(ref!.nTokens).toBe(256);
        const encoded = await model.encode(Image.fromPixels({ data, width, height, format: "rgb" }));
        const err = errorStats(encoded.embeddings, ref!.tokens);
        expect(err.relative).toBeLessThan(1e-4);
        const greedy = referenceGreedy(withEmbeddings(ours.promptTokens, [{ id: IMAGE, rows: rowsOf(ref!.tokens, 256, ref!.projDim) }]), 3);
        expect(Math.min(...greedy.margins)).toBeGreaterThan(1e-3); // the choices are not ties
        expect(ours.tokens.slice(0, 3)).toEqual(greedy.tokens);
        await session.dispose();
    }, 600_000);

    it("an 8-frame video question: 2,056 tokens (class token first in every frame), the same greedy answer and logits", async () => {
        const clip = testVideo("odd"); // 150×99, 20 frames → 0, 2, 5, 7, 10, 12, 15, 17
        await using video = await Video.open(clip, { frames: 8 });
        const frames = [];
        for await (const f of video.frames()) frames.push(f);
        expect(frames).toHaveLength(8);
        const items = frames.map((f) => ({ pixelValues: referenceClipPreprocess(f.data, f.width, f.height, clipConfig.preprocess).pixelValues, tower: "video" as const }));
        const ref = referenceClipForward(visionWeights, items, clipConfig);
        expect(ref.every((r) => r.nTokens === 257 && r.cls)).toBe(true);
        const refRows = ref.flatMap((r) => rowsOf(r.tokens, r.nTokens, r.projDim));

        await using vision = await loadVision({ mmproj: mmprojPath });
        const encoded = await vision.encodeVideo(video, {});
        const flat = new Float64Array(refRows.length * ref[0]!.projDim);
        refRows.forEach((r, i) => flat.set(r, i * r.length));
        expect(errorStats(encoded.embeddings, flat).relative).toBeLessThan(1e-4);

        const session = await model.createSession();
        const ours = await session.prompt([{ video: clip }, "Why is this video funny?"], { temperature: 0, maxTokens: 2 });
        const inputs = withEmbeddings(ours.promptTokens, [{ id: VIDEO, rows: refRows }]);
        const greedy = referenceGreedy(inputs, 2);
        expect(Math.min(...greedy.margins)).toBeGreaterThan(1e-3);
        expect(ours.tokens.slice(0, 2)).toEqual(greedy.tokens);

        // The language model's logits at the end of the prompt, from our embeddings, against the reference's.
        const at = ours.promptTokens.indexOf(VIDEO);
        // f32 cache, no flash attention (the CPU flash-attention kernel works in f16): the comparison is of the model.
        const ctx = await model.nativeModel.createContext({ contextSize: 4096, threads: 2, f32Cache: true, flashAttention: 0 });
        await ctx.evaluate(Int32Array.from(ours.promptTokens.slice(0, at)), {});
        await ctx.evaluateEmbeddings(encoded.embeddings, {});
        await ctx.evaluate(Int32Array.from(ours.promptTokens.slice(at + 2056)), { logits: true });
        const logits = ctx.logits();
        ctx.dispose();
        expect(errorStats(logits.subarray(0, 32000), greedy.firstLogits.subarray(0, 32000)).relative).toBeLessThan(2e-3);
        await session.dispose();
    }, 900_000);
});
