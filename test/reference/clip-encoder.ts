/**
 * Slow, float64, obviously-correct reference of Video-LLaVA's vision path as Hugging Face runs it
 * (`VideoLlavaForConditionalGeneration.get_image_features` / `get_video_features` over two `CLIPVisionModel`s and
 * `VideoLlavaMultiModalProjector`; spec ../shared/specs/video-llava.md §1–2), with its weights read from a projector
 * GGUF (docs/gguf-format.md, "Video-LLaVA"), and of its image processor (`VideoLlavaImageProcessor`: shortest-edge
 * resize, centre crop, rescale, normalize).
 *
 * Written from the semantics of transformers' `modeling_clip.py` (`CLIPVisionEmbeddings`, `CLIPEncoderLayer`,
 * `CLIPVisionTransformer`) and `image_transforms.py` (`get_resize_output_image_size`, `center_crop`). No code is
 * shared with lib/ or native/; every step is a plain loop that can be checked by reading it. Meant for TINY models
 * (hidden ≈ 32) in tests.
 *
 * The GGUF stores tensors in ggml order (`ne0` first); {@link readClipProjector} gives every tensor its PyTorch shape
 * (the reverse: ggml [in, out] is torch Linear [out, in], ggml [p, p, 3, H] is the conv's [H, 3, p, p]), with the
 * same row-major data, so the formulas below read like the PyTorch code. Names stay the GGUF's: `v.` is
 * `image_tower.vision_model.`, `v.video.` is `video_tower.vision_model.`, `blk.N.attn_q` is
 * `encoder.layers.N.self_attn.q_proj`, and so on (the table of the contract).
 *
 * Deliberate differences from PyTorch: everything is float64, so comparisons with fp32/fp16 code need a tolerance.
 */
import { GgufValueType } from "../../lib/gguf/types.js";
import { readGguf, readTensorData, type GgufFile } from "../../lib/gguf/reader.js";
import { pillowBicubicResize } from "./pillow-resize.js";
import { type RefTensor, type WeightLookup, expectShape, geluErf, layerNorm, linear, map, weightLookupFromMap } from "./tensor.js";
import { attentionWithinSegments } from "./vision-encoder.js";

/** CLIP's `quick_gelu` (transformers `QuickGELUActivation`): x · sigmoid(1.702 · x). */
export function quickGelu(x: number): number {
    return x * (1 / (1 + Math.exp(-1.702 * x)));
}

/** Decodes one IEEE half-precision bit pattern (uint16) to a number. */
export function f16BitsToNumber(bits: number): number {
    const sign = bits & 0x8000 ? -1 : 1;
    const exp = (bits >>> 10) & 0x1f;
    const mant = bits & 0x3ff;
    if (exp === 0) return sign * mant * 2 ** -24; // subnormal (and ±0)
    if (exp === 0x1f) return mant ? NaN : sign * Infinity;
    return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** The encoder MLP's activation: `quick_gelu` (HF default of CLIPVisionConfig) or exact `gelu` (`clip.use_gelu`). */
export type ClipActivation = "quick_gelu" | "gelu";

/** What the reference needs of a projector file, read from its keys. */
export interface ClipRefConfig {
    hidden: number;
    heads: number;
    /** Blocks written and run (`clip.vision.block_count`): HF `hidden_states[layers]` is the feature layer. */
    layers: number;
    eps: number;
    patchSize: number;
    /** Side of the square the towers see (224): (imageSize / patchSize)² patches + 1 class token. */
    imageSize: number;
    act: ClipActivation;
    imageKeepCls: boolean;
    videoKeepCls: boolean;
    hasVideoTower: boolean;
    preprocess: ClipPreprocessParams;
}

/** `VideoLlavaImageProcessor` settings. */
export interface ClipPreprocessParams {
    /** `size.shortest_edge` (224). */
    shortestEdge: number;
    /** `crop_size` (224 × 224). */
    cropSize: number;
    /** `rescale_factor` (1/255). */
    rescale: number;
    mean: readonly [number, number, number];
    std: readonly [number, number, number];
}

/** A projector file opened for the reference. */
export interface ClipProjectorRef {
    file: GgufFile;
    config: ClipRefConfig;
    /** Every tensor by its GGUF name, decoded to float64, in PyTorch shape. */
    weights: WeightLookup;
}

/** Reads a Video-LLaVA projector GGUF: its settings and all its tensors (f32 or f16) as float64. */
export async function readClipProjector(path: string): Promise<ClipProjectorRef> {
    const file = await readGguf(path);
    if (file.getString("clip.projector_type") !== "video_llava") throw new Error(`${path}: not a Video-LLaVA projector`);
    const num = (key: string, fallback?: number): number => {
        const v = file.getNumber(key) ?? fallback;
        if (v === undefined) throw new Error(`${path}: missing key ${key}`);
        return v;
    };
    const f32x3 = (key: string): [number, number, number] => {
        const v = file.getValue(key);
        if (!v || v.type !== GgufValueType.ARRAY || v.value.length !== 3) throw new Error(`${path}: ${key} must be 3 numbers`);
        const a = v.value as ArrayLike<number>;
        return [a[0]!, a[1]!, a[2]!];
    };
    const imageSize = num("clip.vision.image_size");
    const config: ClipRefConfig = {
        hidden: num("clip.vision.embedding_length"),
        heads: num("clip.vision.attention.head_count"),
        layers: num("clip.vision.block_count"),
        eps: num("clip.vision.attention.layer_norm_epsilon"),
        patchSize: num("clip.vision.patch_size"),
        imageSize,
        act: file.getBoolean("clip.use_gelu") === true ? "gelu" : "quick_gelu",
        imageKeepCls: file.getBoolean("video_llava.image.keep_cls") ?? false,
        videoKeepCls: file.getBoolean("video_llava.video.keep_cls") ?? true,
        hasVideoTower: file.tensors.some((t) => t.name.startsWith("v.video.")),
        preprocess: {
            shortestEdge: num("video_llava.image.shortest_edge", imageSize),
            cropSize: num("video_llava.image.crop_size", imageSize),
            rescale: num("video_llava.image.rescale_factor", 1 / 255),
            mean: f32x3("clip.vision.image_mean"),
            std: f32x3("clip.vision.image_std"),
        },
    };
    const map = new Map<string, RefTensor>();
    for (const t of file.tensors) {
        const bytes = await readTensorData(file, t.name);
        const n = t.elementCount;
        const data = new Float64Array(n);
        if (t.type === "f32") {
            for (let i = 0; i < n; i++) data[i] = bytes.readFloatLE(i * 4);
        } else if (t.type === "f16") {
            for (let i = 0; i < n; i++) data[i] = f16BitsToNumber(bytes.readUInt16LE(i * 2));
        } else {
            throw new Error(`${path}: tensor ${t.name} is ${t.type}; the reference reads f32 and f16 only`);
        }
        map.set(t.name, { data, shape: [...t.shape].reverse() });
    }
    return { file, config, weights: weightLookupFromMap(map) };
}

// ---------------------------------------------------------------------------------------------------------------------
// Preprocessing (transformers image_transforms + VideoLlavaImageProcessor.preprocess)
// ---------------------------------------------------------------------------------------------------------------------

/**
 * `get_resize_output_image_size(image, size=shortest_edge, default_to_square=False)`, literally:
 * ```
 * short, long = (width, height) if width <= height else (height, width)
 * new_short, new_long = size, int(size * long / short)
 * return (new_long, new_short) if width <= height else (new_short, new_long)      # (height, width)
 * ```
 */
export function resizeOutputSize(width: number, height: number, shortestEdge: number): { width: number; height: number } {
    const [short, long] = width <= height ? [width, height] : [height, width];
    const newShort = shortestEdge;
    const newLong = Math.trunc((shortestEdge * long) / short); // Python int() of a float truncates
    const [outH, outW] = width <= height ? [newLong, newShort] : [newShort, newLong];
    return { width: outW, height: outH };
}

/**
 * transformers `center_crop(image, (cropH, cropW))` of a packed RGB8 picture, literally, including its padding path:
 * ```
 * top = (orig_height - crop_height) // 2; bottom = top + crop_height      (left / right likewise)
 * if the window lies inside: return image[top:bottom, left:right]
 * new_height = max(crop_height, orig_height)  (new_width likewise)
 * new_image = zeros(new_height, new_width); top_pad = ceil((new_height - orig_height) / 2)  (left_pad likewise)
 * new_image[top_pad:top_pad + orig_height, left_pad:left_pad + orig_width] = image
 * top += top_pad; bottom += top_pad; left += left_pad; right += left_pad
 * return new_image[max(0, top):min(new_height, bottom), max(0, left):min(new_width, right)]
 * ```
 */
export function centerCrop(rgb: Uint8Array, width: number, height: number, cropH: number, cropW: number): { data: Uint8Array; width: number; height: number } {
    const floorDiv = (a: number, b: number) => Math.floor(a / b);
    let top = floorDiv(height - cropH, 2);
    let bottom = top + cropH;
    let left = floorDiv(width - cropW, 2);
    let right = left + cropW;
    const cut = (src: Uint8Array, srcW: number, y0: number, y1: number, x0: number, x1: number) => {
        const out = new Uint8Array((y1 - y0) * (x1 - x0) * 3);
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) for (let c = 0; c < 3; c++) out[((y - y0) * (x1 - x0) + (x - x0)) * 3 + c] = src[(y * srcW + x) * 3 + c]!;
        return { data: out, width: x1 - x0, height: y1 - y0 };
    };
    if (top >= 0 && bottom <= height && left >= 0 && right <= width) return cut(rgb, width, top, bottom, left, right);
    const newH = Math.max(cropH, height);
    const newW = Math.max(cropW, width);
    const padded = new Uint8Array(newH * newW * 3);
    const topPad = Math.ceil((newH - height) / 2);
    const leftPad = Math.ceil((newW - width) / 2);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) padded[((y + topPad) * newW + x + leftPad) * 3 + c] = rgb[(y * width + x) * 3 + c]!;
    top += topPad;
    bottom += topPad;
    left += leftPad;
    right += leftPad;
    return cut(padded, newW, Math.max(0, top), Math.min(newH, bottom), Math.max(0, left), Math.min(newW, right));
}

/** The result of {@link referenceClipPreprocess}. */
export interface ClipPreprocessResult {
    /** `pixel_values` of the one picture: (3, cropSize, cropSize) row-major, channel first. */
    pixelValues: Float64Array;
    /** Size after the shortest-edge resize. */
    resized: { width: number; height: number };
    /** The cropped picture, packed RGB8 (before rescale and normalize). */
    cropped: Uint8Array;
}

/**
 * `VideoLlavaImageProcessor.preprocess` of one RGB picture (a video frame is processed the same way): resize so the
 * shortest edge is `shortestEdge` (PIL BICUBIC: {@link pillowBicubicResize}), centre crop `cropSize`², multiply by
 * `rescale`, `(x − mean[c]) / std[c]`, channels first.
 */
export function referenceClipPreprocess(rgb: Uint8Array, width: number, height: number, params: ClipPreprocessParams): ClipPreprocessResult {
    const resized = resizeOutputSize(width, height, params.shortestEdge);
    const pixels = pillowBicubicResize(rgb, width, height, resized.width, resized.height);
    const crop = centerCrop(pixels, resized.width, resized.height, params.cropSize, params.cropSize);
    if (crop.width !== params.cropSize || crop.height !== params.cropSize) throw new Error("centerCrop: unexpected size");
    const plane = crop.width * crop.height;
    const pixelValues = new Float64Array(3 * plane);
    for (let p = 0; p < plane; p++) {
        for (let c = 0; c < 3; c++) pixelValues[c * plane + p] = (crop.data[p * 3 + c]! * params.rescale - params.mean[c]!) / params.std[c]!;
    }
    return { pixelValues, resized, cropped: crop.data };
}

/**
 * The (c, py, px) rows of each patch of (3, S, S) pixel values, patches in raster order — the order of the patch
 * embedding's `flatten(2).transpose(1, 2)` and of vidllama's patch rows for merge 1 (what the pruning compares).
 */
export function clipPatchRows(pixelValues: Float64Array, size: number, patchSize: number): Float64Array {
    const g = size / patchSize;
    const p = patchSize;
    const rowLen = 3 * p * p;
    const out = new Float64Array(g * g * rowLen);
    for (let gy = 0; gy < g; gy++) {
        for (let gx = 0; gx < g; gx++) {
            for (let c = 0; c < 3; c++) {
                for (let py = 0; py < p; py++) {
                    for (let px = 0; px < p; px++) {
                        out[(gy * g + gx) * rowLen + (c * p + py) * p + px] = pixelValues[(c * size + gy * p + py) * size + gx * p + px]!;
                    }
                }
            }
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// The towers and the projector
// ---------------------------------------------------------------------------------------------------------------------

/** Which tower: `v.` (image_tower) or `v.video.` (video_tower). */
export type ClipTower = "image" | "video";

export function towerPrefix(tower: ClipTower): string {
    return tower === "video" ? "v.video." : "v.";
}

/**
 * `CLIPVisionModel(pixel_values, output_hidden_states=True).hidden_states[config.layers]` of one picture: the output
 * of the last block the file holds (for Video-LLaVA-7B, `hidden_states[-2]`). Rows: [CLS; patch 0 … patch G²−1],
 * each `hidden` wide.
 *
 * ```
 * patch_embeds = Conv2d(3, H, kernel=p, stride=p, bias=False)(pixel_values).flatten(2).transpose(1, 2)
 * embeddings   = cat([class_embedding, patch_embeds]) + position_embedding(arange(1 + G²))
 * h = pre_layrnorm(embeddings)
 * for each layer: h = h + out_proj(attention(LN1(h)));  h = h + fc2(act(fc1(LN2(h))))
 * ```
 * Attention: bidirectional over the picture's 1 + G² tokens, q/k/v/out with biases, softmax(q·kᵀ / √head_dim).
 */
export function referenceClipTower(weights: WeightLookup, tower: ClipTower, pixelValues: Float64Array, config: ClipRefConfig): Float64Array {
    const pre = towerPrefix(tower);
    const H = config.hidden;
    const p = config.patchSize;
    const S = config.imageSize;
    const G = S / p;
    const n = 1 + G * G;
    const headDim = H / config.heads;
    if (!Number.isInteger(G) || !Number.isInteger(headDim)) throw new Error("referenceClipTower: bad sizes");
    if (pixelValues.length !== 3 * S * S) throw new Error(`referenceClipTower: ${pixelValues.length} pixel values, expected 3×${S}×${S}`);
    const get = (name: string, shape: readonly number[]): Float64Array => {
        const t = weights(pre + name);
        expectShape(pre + name, t, shape);
        return t.data;
    };

    // ---- embeddings ----
    const conv = get("patch_embd.weight", [H, 3, p, p]);
    const cls = get("class_embd", [H]);
    const pos = get("position_embd.weight", [n, H]);
    const x = new Float64Array(n * H);
    for (let o = 0; o < H; o++) x[o] = cls[o]!; // token 0: the class embedding
    for (let gy = 0; gy < G; gy++) {
        for (let gx = 0; gx < G; gx++) {
            const token = 1 + gy * G + gx; // flatten(2): raster order
            for (let o = 0; o < H; o++) {
                let acc = 0; // no bias
                for (let c = 0; c < 3; c++) {
                    for (let ky = 0; ky < p; ky++) {
                        for (let kx = 0; kx < p; kx++) acc += conv[((o * 3 + c) * p + ky) * p + kx]! * pixelValues[(c * S + gy * p + ky) * S + gx * p + kx]!;
                    }
                }
                x[token * H + o] = acc;
            }
        }
    }
    for (let t = 0; t < n; t++) for (let o = 0; o < H; o++) x[t * H + o] += pos[t * H + o]!;
    let h = layerNorm(x, n, H, get("pre_ln.weight", [H]), get("pre_ln.bias", [H]), config.eps);

    // ---- encoder layers ----
    const act = config.act === "gelu" ? geluErf : quickGelu;
    for (let l = 0; l < config.layers; l++) {
        const b = `blk.${l}.`;
        const ln1 = layerNorm(h, n, H, get(`${b}ln1.weight`, [H]), get(`${b}ln1.bias`, [H]), config.eps);
        const q = linear(ln1, n, H, get(`${b}attn_q.weight`, [H, H]), get(`${b}attn_q.bias`, [H]), H);
        const k = linear(ln1, n, H, get(`${b}attn_k.weight`, [H, H]), get(`${b}attn_k.bias`, [H]), H);
        const v = linear(ln1, n, H, get(`${b}attn_v.weight`, [H, H]), get(`${b}attn_v.bias`, [H]), H);
        const attn = attentionWithinSegments(q, k, v, n, config.heads, headDim, [n]); // one picture, no mask
        const o = linear(attn, n, H, get(`${b}attn_out.weight`, [H, H]), get(`${b}attn_out.bias`, [H]), H);
        const h1 = new Float64Array(n * H);
        for (let i = 0; i < h1.length; i++) h1[i] = h[i]! + o[i]!;
        const F = weights(`${pre}${b}ffn_up.weight`).shape[0]!;
        const ln2 = layerNorm(h1, n, H, get(`${b}ln2.weight`, [H]), get(`${b}ln2.bias`, [H]), config.eps);
        const up = linear(ln2, n, H, get(`${b}ffn_up.weight`, [F, H]), get(`${b}ffn_up.bias`, [F]), F);
        const down = linear(map(up, act), n, F, get(`${b}ffn_down.weight`, [H, F]), get(`${b}ffn_down.bias`, [H]), H);
        const h2 = new Float64Array(n * H);
        for (let i = 0; i < h2.length; i++) h2[i] = h1[i]! + down[i]!;
        h = h2;
    }
    return h;
}

/** `VideoLlavaMultiModalProjector`: linear_1 (`mm.0`) → erf GELU → linear_2 (`mm.2`), over `rows` rows of `hidden`. */
export function referenceClipProjector(weights: WeightLookup, x: Float64Array, rows: number, hidden: number): Float64Array {
    const w0 = weights("mm.0.weight");
    const D = w0.shape[0]!;
    expectShape("mm.0.weight", w0, [D, hidden]);
    const b0 = weights("mm.0.bias");
    expectShape("mm.0.bias", b0, [D]);
    const w2 = weights("mm.2.weight");
    expectShape("mm.2.weight", w2, [D, D]);
    const b2 = weights("mm.2.bias");
    expectShape("mm.2.bias", b2, [D]);
    const a = map(linear(x, rows, hidden, w0.data, b0.data, D), geluErf);
    return linear(a, rows, D, w2.data, b2.data, D);
}

/** One picture for {@link referenceClipForward}. */
export interface ClipRefItem {
    /** (3, S, S) pixel values ({@link referenceClipPreprocess}). */
    pixelValues: Float64Array;
    tower: ClipTower;
    /** Patch tokens to keep (ascending indices into the G² patches, DiffFP's keep); absent: all. */
    keep?: readonly number[];
}

/** The projected tokens of one item. */
export interface ClipRefItemResult {
    /** [nTokens × projDim], row-major: the class token first where the tower keeps it, then the kept patches. */
    tokens: Float64Array;
    nTokens: number;
    projDim: number;
    /** Whether row 0 is the class token. */
    cls: boolean;
}

/**
 * The visual tokens of each item, as `get_image_features` (image tower, `vision_feature_select_strategy =
 * "default"`: `hidden_states[-2][:, 1:]`, the class token dropped) and `get_video_features` (video tower, all 257
 * rows, class token first) make them, then the projector. The keep-class-token choice of each tower is the file's
 * (`video_llava.image.keep_cls` / `video.keep_cls`). With `keep`, only those patch rows follow (the class token, where
 * kept, is always first).
 */
export function referenceClipForward(weights: WeightLookup, items: readonly ClipRefItem[], config: ClipRefConfig): ClipRefItemResult[] {
    const H = config.hidden;
    const patches = (config.imageSize / config.patchSize) ** 2;
    const projDim = weights("mm.0.weight").shape[0]!;
    return items.map((item) => {
        const hidden = referenceClipTower(weights, item.tower, item.pixelValues, config);
        const cls = item.tower === "video" ? config.videoKeepCls : config.imageKeepCls;
        const rows: number[] = cls ? [0] : [];
        for (const t of item.keep ?? Array.from({ length: patches }, (_, i) => i)) rows.push(1 + t);
        const selected = new Float64Array(rows.length * H);
        rows.forEach((r, i) => selected.set(hidden.subarray(r * H, (r + 1) * H), i * H));
        const tokens = referenceClipProjector(weights, selected, rows.length, H);
        return { tokens, nTokens: rows.length, projDim, cls };
    });
}

/** max |ours − ref| and the RMS of ref, for error bounds relative to the activations' scale. */
export function errorStats(ours: ArrayLike<number>, ref: ArrayLike<number>): { maxErr: number; rms: number; relative: number } {
    if (ours.length !== ref.length) throw new Error(`errorStats: ${ours.length} values vs ${ref.length}`);
    let maxErr = 0;
    let sumSq = 0;
    for (let i = 0; i < ref.length; i++) {
        const d = Math.abs(ours[i]! - ref[i]!);
        if (Number.isNaN(d)) return { maxErr: NaN, rms: NaN, relative: NaN };
        if (d > maxErr) maxErr = d;
        sumSq += ref[i]! * ref[i]!;
    }
    const rms = Math.sqrt(sumSq / Math.max(1, ref.length));
    return { maxErr, rms, relative: maxErr / rms };
}
