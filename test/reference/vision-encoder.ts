/**
 * Slow, float64, obviously-correct reference of the VideoLLaMA3 vision encoder + spatial down-sample + projector.
 *
 * Written from /work/shared/specs/videollama3.md (§2 encoder, §3 merge + projector, §4 patch order) and the semantics of
 * the Python reference (`videollama3/model/videollama3_encoder/modeling_videollama3_encoder.py`, flash-attention path,
 * and `MlpGeluProjector` in `modeling_videollama3.py`). No code is shared with lib/ or native/; everything is a plain
 * loop so that every step can be checked by reading it. It is meant to be run on TINY models (hidden ≈ 32) in tests.
 *
 * Deliberate differences from the PyTorch reference: everything is float64 (PyTorch computes RoPE in fp32 and the
 * rest in bf16/fp32), so comparisons against fp32/bf16 implementations need a tolerance.
 */

import {
    type RefTensor,
    type WeightLookup,
    expectShape,
    geluErf,
    geluTanh,
    layerNorm,
    linear,
    map,
    permute,
    randomArray,
    seededRandom,
} from "./tensor.js";

/** Hyper-parameters of the vision tower (spec §2). The MLP width and projector width are read from the weight shapes. */
export interface VisionRefConfig {
    /** Encoder width (1152 for the real model). */
    hidden: number;
    /** Attention heads (16 for the real model); head_dim = hidden / heads must be a multiple of 4 (2D RoPE halves). */
    heads: number;
    /** Encoder layers (27 for the real model). */
    layers: number;
    /** LayerNorm epsilon (1e-6 for the real model). */
    eps: number;
    /** RoPE base θ (10000 for the real model). */
    ropeTheta: number;
    /** Patch side in pixels (14 for the real model). */
    patchSize: number;
    /** Input channels; default 3 (RGB). */
    channels?: number;
}

/** One image or one video frame, already patchified (see {@link patchify}). */
export interface VisionRefItem {
    /**
     * Normalized pixel patches, one row of channels·p·p values per patch, row layout (c, py, px), rows in merge-block
     * order (spec §4). Length = gridHeight·gridWidth·channels·p·p.
     */
    patches: Float64Array;
    /** Patch rows of this item (pixels / patchSize); must be divisible by mergeSize. */
    gridHeight: number;
    /** Patch columns of this item; must be divisible by mergeSize. */
    gridWidth: number;
    /** Spatial merge factor: 1 for images, 2 for video frames (spec §3). */
    mergeSize: number;
}

/** Options of {@link referenceVisionForward}. */
export interface VisionRefOptions {
    /** Also return the activations after patch embedding, after every layer and after post_layernorm. Default false. */
    keepIntermediates?: boolean;
    /** Prefix of the encoder tensor names. Default `"model.vision_encoder."` (spec §8). */
    visionPrefix?: string;
    /** Prefix of the projector tensor names. Default `"model.mm_projector."` (spec §8). */
    projectorPrefix?: string;
    /** Stop after the spatial down-sample (no projector weights needed); `tokens` is then the merged encoder output. */
    skipProjector?: boolean;
    /**
     * Replaces each encoder layer's input (all rows, before LayerNorm1) with what the hook returns: how a test states
     * an algorithm that takes some rows of a layer from elsewhere (e.g. from an earlier frame) in plain terms.
     */
    layerInput?: (layer: number, x: Float64Array) => Float64Array;
}

/** Result for one input item. */
export interface VisionRefItemResult {
    /** Projector output, row-major [nTokens × projDim], tokens in raster order over (gridHeight × gridWidth). */
    tokens: Float64Array;
    /** Number of LLM tokens = gridHeight·gridWidth (merged grid). */
    nTokens: number;
    /** Merged grid rows = input gridHeight / mergeSize. */
    gridHeight: number;
    /** Merged grid columns = input gridWidth / mergeSize. */
    gridWidth: number;
    /** Width of each token row in `tokens` (projector output width, or `hidden` with skipProjector). */
    projDim: number;
    /** Encoder output after the down-sample, before the projector: [nTokens × hidden], raster order. */
    merged: Float64Array;
}

/** Debug activations over ALL patch rows of all items (concatenated in input order, merge-block order inside items). */
export interface VisionRefIntermediates {
    /** Total patch rows. */
    rows: number;
    /** Row width (= config.hidden). */
    hidden: number;
    /** First row of each item in the concatenated arrays (length = items + 1; last entry = rows). */
    itemRowOffsets: number[];
    /** After the patch embedding (conv as matmul + bias). */
    patchEmbed: Float64Array;
    /** After each encoder layer (layers.length = config.layers). */
    layers: Float64Array[];
    /** After post_layernorm (before the down-sample). */
    postLayerNorm: Float64Array;
}

/** Result of {@link referenceVisionForward}. */
export interface VisionRefResult {
    /** One entry per input item, same order. */
    items: VisionRefItemResult[];
    /** Present when options.keepIntermediates is true. */
    intermediates?: VisionRefIntermediates;
}

// ---------------------------------------------------------------------------------------------------------------------
// Pixel normalization and patch order (spec §4)
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Pixel normalization of the released processor (spec §4): rescale by 1/255, then normalize with mean = std = 0.5,
 * i.e. x = (u8/255 − 0.5)/0.5. Input 0..255, output −1..1.
 */
export function normalizePixelU8(u8: number): number {
    return (u8 / 255 - 0.5) / 0.5;
}

/**
 * Patchify exactly as `image_processing_videollama3.py` does (spec §4), following the Python literally:
 * `(t, C, H, W).reshape(t, C, gh/m, m, p, gw/m, m, p).transpose(0,2,5,3,6,1,4,7).reshape(t·gh·gw, C·p·p)`.
 *
 * @param pixels channel-first frames, row-major (t, C, H, W), already normalized
 * @returns rows of C·p·p values (layout (c, py, px)), rows in merge-block order, frames one after another
 */
export function patchify(pixels: Float64Array, t: number, channels: number, height: number, width: number, patchSize: number, mergeSize: number): Float64Array {
    if (pixels.length !== t * channels * height * width) throw new Error(`patchify: ${pixels.length} values for (${t}, ${channels}, ${height}, ${width})`);
    const gh = height / patchSize;
    const gw = width / patchSize;
    if (!Number.isInteger(gh) || !Number.isInteger(gw)) throw new Error(`patchify: ${height}×${width} not a multiple of patch ${patchSize}`);
    if (gh % mergeSize !== 0 || gw % mergeSize !== 0) throw new Error(`patchify: grid ${gh}×${gw} not divisible by merge ${mergeSize}`);
    const m = mergeSize;
    const p = patchSize;
    // reshape(t, C, gh/m, m, p, gw/m, m, p) is free on row-major data: just reinterpret the shape.
    const shape = [t, channels, gh / m, m, p, gw / m, m, p];
    // transpose(0, 2, 5, 3, 6, 1, 4, 7) → (t, gh/m, gw/m, m, m, C, p, p); the final reshape is again free.
    return permute(pixels, shape, [0, 2, 5, 3, 6, 1, 4, 7]).data;
}

/**
 * (h, w) RoPE positions of every patch of one image/frame, in merge-block order, following `rot_pos_emb` literally:
 * `hpos = arange(h)[:, None].expand(h, w).reshape(h/m, m, w/m, m).permute(0, 2, 1, 3).flatten()` and the same with
 * `arange(w)[None, :]` for wpos (spec §2 "Patch order"). For mergeSize 1 this is plain raster order.
 * Video frames all get the same positions (`.repeat(t, 1)`), so call this once per frame.
 */
export function ropePositions(gridHeight: number, gridWidth: number, mergeSize: number): { h: Int32Array; w: Int32Array } {
    if (gridHeight % mergeSize !== 0 || gridWidth % mergeSize !== 0) {
        throw new Error(`ropePositions: grid ${gridHeight}×${gridWidth} not divisible by merge ${mergeSize}`);
    }
    const m = mergeSize;
    const hFull = new Int32Array(gridHeight * gridWidth);
    const wFull = new Int32Array(gridHeight * gridWidth);
    for (let y = 0; y < gridHeight; y++) {
        for (let x = 0; x < gridWidth; x++) {
            hFull[y * gridWidth + x] = y; // arange(h).unsqueeze(1).expand(-1, w)
            wFull[y * gridWidth + x] = x; // arange(w).unsqueeze(0).expand(h, -1)
        }
    }
    const shape = [gridHeight / m, m, gridWidth / m, m];
    return {
        h: permute(hFull, shape, [0, 2, 1, 3]).data,
        w: permute(wFull, shape, [0, 2, 1, 3]).data,
    };
}

/**
 * Reorders one item's rows from merge-block order to raster order, literally as the encoder does before the
 * interpolation (spec §3): `view(gh/m, gw/m, m, m, C).permute(0, 1, 3, 2, 4).reshape(gh, gw, C)`.
 * @returns raster (gh, gw, C) row-major
 */
export function mergeBlockToRaster(rows: Float64Array, gridHeight: number, gridWidth: number, mergeSize: number, dim: number): Float64Array {
    const m = mergeSize;
    return permute(rows, [gridHeight / m, gridWidth / m, m, m, dim], [0, 2, 1, 3, 4]).data;
}

// ---------------------------------------------------------------------------------------------------------------------
// 2D RoPE (spec §2)
// ---------------------------------------------------------------------------------------------------------------------

/**
 * `VisionRotaryEmbedding(dim = head_dim/2, theta)`: inv_freq[j] = 1 / theta^(2j/dim), j = 0 .. dim/2 − 1
 * (`arange(0, dim, 2) / dim`). For the real model head_dim 72 → dim 36 → 18 frequencies.
 */
export function ropeInvFreq(headDim: number, theta: number): Float64Array {
    const dim = headDim / 2;
    const n = dim / 2;
    const inv = new Float64Array(n);
    for (let j = 0; j < n; j++) inv[j] = 1 / Math.pow(theta, (2 * j) / dim);
    return inv;
}

/**
 * Applies the vision 2D RoPE to ONE head vector x (length head_dim) of a patch at row h, column w (spec §2):
 * freqs = concat(h·inv_freq, w·inv_freq)                           (head_dim/2 values)
 * cos/sin = cos/sin of cat(freqs, freqs)                           (head_dim values)
 * x' = x·cos + rotate_half(x)·sin, rotate_half(x) = cat(−x[half:], x[:half]), half = head_dim/2.
 * So pairs (i, i+half) rotate by angle freqs[i]: first quarter of the pairs with the row index, second with the column.
 */
export function applyVisionRope(x: Float64Array, h: number, w: number, invFreq: Float64Array): Float64Array {
    const headDim = x.length;
    const half = headDim / 2;
    const quarter = half / 2;
    if (invFreq.length !== quarter) throw new Error(`applyVisionRope: ${invFreq.length} frequencies for head_dim ${headDim}`);
    // freqs: [h·inv_freq[0..quarter), w·inv_freq[0..quarter)]
    const freqs = new Float64Array(half);
    for (let j = 0; j < quarter; j++) {
        freqs[j] = h * invFreq[j];
        freqs[quarter + j] = w * invFreq[j];
    }
    // emb = cat(freqs, freqs)
    const emb = new Float64Array(headDim);
    for (let i = 0; i < headDim; i++) emb[i] = freqs[i % half];
    // rotate_half
    const rot = new Float64Array(headDim);
    for (let i = 0; i < half; i++) {
        rot[i] = -x[half + i];
        rot[half + i] = x[i];
    }
    const out = new Float64Array(headDim);
    for (let i = 0; i < headDim; i++) out[i] = x[i] * Math.cos(emb[i]) + rot[i] * Math.sin(emb[i]);
    return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Attention (spec §2 "Variable length")
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Non-causal multi-head softmax attention with scale 1/sqrt(head_dim), where each segment (one image or one video
 * frame, contiguous rows) attends ONLY to itself — the `flash_attn_varlen_func` semantics with cu_seqlens.
 * q, k, v: [rows × heads·head_dim] (head hd occupies columns hd·head_dim .. (hd+1)·head_dim − 1, the `view(q_len, heads,
 * head_dim)` layout). RoPE must already be applied to q and k. Returns [rows × heads·head_dim].
 * @param segmentLengths rows of each segment, summing to `rows`
 */
export function attentionWithinSegments(q: Float64Array, k: Float64Array, v: Float64Array, rows: number, heads: number, headDim: number, segmentLengths: readonly number[]): Float64Array {
    const width = heads * headDim;
    if (segmentLengths.reduce((a, b) => a + b, 0) !== rows) throw new Error("attentionWithinSegments: segment lengths do not sum to rows");
    const out = new Float64Array(rows * width);
    const scale = 1 / Math.sqrt(headDim);
    let start = 0;
    for (const len of segmentLengths) {
        const end = start + len;
        for (let hd = 0; hd < heads; hd++) {
            const col = hd * headDim;
            const scores = new Float64Array(len);
            for (let i = start; i < end; i++) {
                const qOff = i * width + col;
                // scores over the keys of THIS segment only
                let max = -Infinity;
                for (let j = start; j < end; j++) {
                    const kOff = j * width + col;
                    let dot = 0;
                    for (let d = 0; d < headDim; d++) dot += q[qOff + d] * k[kOff + d];
                    scores[j - start] = dot * scale;
                    if (scores[j - start] > max) max = scores[j - start];
                }
                // softmax (max-subtracted for stability; mathematically identical)
                let sum = 0;
                for (let j = 0; j < len; j++) {
                    scores[j] = Math.exp(scores[j] - max);
                    sum += scores[j];
                }
                // out_i = Σ_j softmax_ij · v_j  (out starts at 0)
                for (let j = start; j < end; j++) {
                    const p = scores[j - start] / sum;
                    const vOff = j * width + col;
                    for (let d = 0; d < headDim; d++) out[qOff + d] += p * v[vOff + d];
                }
            }
        }
        start = end;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Spatial down-sample (spec §3)
// ---------------------------------------------------------------------------------------------------------------------

/**
 * `torch.nn.functional.interpolate(mode="bilinear", align_corners=False, size=(outH, outW))` on a raster (H, W, C)
 * array, implemented literally with PyTorch's formula (upsample_bilinear2d, no antialias):
 *   scale = in / out (size given, no scale_factor)
 *   src   = max(scale · (dst + 0.5) − 0.5, 0)
 *   i0    = floor(src), i1 = i0 + (i0 < in − 1 ? 1 : 0), λ1 = src − i0, λ0 = 1 − λ1
 *   out   = λ0h·(λ0w·x[h0,w0] + λ1w·x[h0,w1]) + λ1h·(λ0w·x[h1,w0] + λ1w·x[h1,w1])
 * For an integer factor 2 the source point is 2i + 0.5, i.e. the mean of each 2×2 block; for factor 1 it is the identity.
 * @returns raster (outH, outW, C)
 */
export function bilinearResize(x: Float64Array, inH: number, inW: number, channels: number, outH: number, outW: number): Float64Array {
    if (x.length !== inH * inW * channels) throw new Error("bilinearResize: size mismatch");
    const scaleH = inH / outH;
    const scaleW = inW / outW;
    const out = new Float64Array(outH * outW * channels);
    for (let oy = 0; oy < outH; oy++) {
        const srcH = Math.max(scaleH * (oy + 0.5) - 0.5, 0);
        const h0 = Math.floor(srcH);
        const h1 = h0 + (h0 < inH - 1 ? 1 : 0);
        const l1h = srcH - h0;
        const l0h = 1 - l1h;
        for (let ox = 0; ox < outW; ox++) {
            const srcW = Math.max(scaleW * (ox + 0.5) - 0.5, 0);
            const w0 = Math.floor(srcW);
            const w1 = w0 + (w0 < inW - 1 ? 1 : 0);
            const l1w = srcW - w0;
            const l0w = 1 - l1w;
            for (let c = 0; c < channels; c++) {
                const at = (yy: number, xx: number): number => x[(yy * inW + xx) * channels + c];
                out[(oy * outW + ox) * channels + c] =
                    l0h * (l0w * at(h0, w0) + l1w * at(h0, w1)) + l1h * (l0w * at(h1, w0) + l1w * at(h1, w1));
            }
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Weight names (spec §8)
// ---------------------------------------------------------------------------------------------------------------------

/**
 * All tensor names and shapes the reference reads, in HF checkpoint naming (spec §8). Useful to generate tiny random
 * checkpoints. `intermediate` = MLP width (4304 real), `projDim` = LLM width (1536 for 2B).
 */
export function visionWeightShapes(config: VisionRefConfig, intermediate: number, projDim: number, options: Pick<VisionRefOptions, "visionPrefix" | "projectorPrefix" | "skipProjector"> = {}): Array<[string, number[]]> {
    const vp = options.visionPrefix ?? "model.vision_encoder.";
    const pp = options.projectorPrefix ?? "model.mm_projector.";
    const c = config.channels ?? 3;
    const H = config.hidden;
    const list: Array<[string, number[]]> = [
        [`${vp}embeddings.patch_embedding.weight`, [H, c, config.patchSize, config.patchSize]],
        [`${vp}embeddings.patch_embedding.bias`, [H]],
    ];
    for (let l = 0; l < config.layers; l++) {
        const lp = `${vp}encoder.layers.${l}.`;
        list.push([`${lp}layer_norm1.weight`, [H]], [`${lp}layer_norm1.bias`, [H]]);
        for (const proj of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
            list.push([`${lp}self_attn.${proj}.weight`, [H, H]], [`${lp}self_attn.${proj}.bias`, [H]]);
        }
        list.push([`${lp}layer_norm2.weight`, [H]], [`${lp}layer_norm2.bias`, [H]]);
        list.push([`${lp}mlp.fc1.weight`, [intermediate, H]], [`${lp}mlp.fc1.bias`, [intermediate]]);
        list.push([`${lp}mlp.fc2.weight`, [H, intermediate]], [`${lp}mlp.fc2.bias`, [H]]);
    }
    list.push([`${vp}post_layernorm.weight`, [H]], [`${vp}post_layernorm.bias`, [H]]);
    if (!options.skipProjector) {
        list.push([`${pp}readout.0.weight`, [projDim, H]], [`${pp}readout.0.bias`, [projDim]]);
        list.push([`${pp}readout.2.weight`, [projDim, projDim]], [`${pp}readout.2.bias`, [projDim]]);
    }
    return list;
}

// ---------------------------------------------------------------------------------------------------------------------
// Full forward
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Runs the whole vision path for one or more items (images and/or video frames): patch embedding → `layers` ×
 * (pre-norm attention with 2D RoPE, per-item attention; pre-norm tanh-GELU MLP) → post_layernorm → per-item bilinear
 * down-sample by mergeSize → projector Linear → erf-GELU → Linear (spec §2, §3).
 *
 * A video is passed as several items (one per frame) with the same grid and mergeSize 2. Items never attend to each
 * other. Tokens come out in raster order over the merged grid of each item.
 */
export function referenceVisionForward(weights: WeightLookup, input: VisionRefItem | readonly VisionRefItem[], config: VisionRefConfig, options: VisionRefOptions = {}): VisionRefResult {
    const items = Array.isArray(input) ? (input as readonly VisionRefItem[]) : [input as VisionRefItem];
    if (items.length === 0) throw new Error("referenceVisionForward: no input items");
    const vp = options.visionPrefix ?? "model.vision_encoder.";
    const pp = options.projectorPrefix ?? "model.mm_projector.";
    const C = config.channels ?? 3;
    const p = config.patchSize;
    const H = config.hidden;
    const heads = config.heads;
    const headDim = H / heads;
    const patchDim = C * p * p;
    if (!Number.isInteger(headDim)) throw new Error(`hidden ${H} not divisible by heads ${heads}`);
    // VisionRotaryEmbedding(head_dim // 2) makes head_dim/4 frequencies, then cat(freqs_h, freqs_w) and cat(x, x) must
    // give head_dim values again: only consistent when head_dim % 4 == 0 (72 for the real model).
    if (headDim % 4 !== 0) throw new Error(`head_dim ${headDim} must be a multiple of 4 for the 2D RoPE`);

    const get = (name: string, shape: readonly number[]): Float64Array => {
        const t: RefTensor = weights(name);
        expectShape(name, t, shape);
        return t.data;
    };

    // ---- concatenate all items (spec §1 step 3: one sequence, block-diagonal attention) ----
    const itemRowOffsets: number[] = [0];
    for (const it of items) {
        if (!Number.isInteger(it.gridHeight) || !Number.isInteger(it.gridWidth) || it.gridHeight <= 0 || it.gridWidth <= 0) throw new Error("bad grid");
        if (it.gridHeight % it.mergeSize !== 0 || it.gridWidth % it.mergeSize !== 0) {
            throw new Error(`grid ${it.gridHeight}×${it.gridWidth} not divisible by merge ${it.mergeSize}`);
        }
        const n = it.gridHeight * it.gridWidth;
        if (it.patches.length !== n * patchDim) throw new Error(`item has ${it.patches.length} values, expected ${n}×${patchDim}`);
        itemRowOffsets.push(itemRowOffsets[itemRowOffsets.length - 1] + n);
    }
    const rows = itemRowOffsets[itemRowOffsets.length - 1];
    const segmentLengths = items.map((it) => it.gridHeight * it.gridWidth);

    // ---- patch embedding (spec §2 "patch"; §4): Conv2d(C, H, k=p, s=p) on each pre-cut C×p×p patch = one output
    // pixel per patch: e[o] = bias[o] + Σ_{c,ky,kx} W[o,c,ky,kx] · patch[c,ky,kx]. No position embedding, no pre-norm.
    const convW = get(`${vp}embeddings.patch_embedding.weight`, [H, C, p, p]);
    const convB = get(`${vp}embeddings.patch_embedding.bias`, [H]);
    let x = new Float64Array(rows * H);
    for (let it = 0; it < items.length; it++) {
        const patches = items[it].patches;
        for (let r = 0; r < segmentLengths[it]; r++) {
            const row = itemRowOffsets[it] + r;
            for (let o = 0; o < H; o++) {
                let acc = convB[o];
                for (let c = 0; c < C; c++) {
                    for (let ky = 0; ky < p; ky++) {
                        for (let kx = 0; kx < p; kx++) {
                            acc += convW[((o * C + c) * p + ky) * p + kx] * patches[r * patchDim + (c * p + ky) * p + kx];
                        }
                    }
                }
                x[row * H + o] = acc;
            }
        }
    }
    const patchEmbed = x;

    // ---- RoPE positions per row (spec §2): merge-block order inside each item; frames repeat the same (h, w) ----
    const posH = new Int32Array(rows);
    const posW = new Int32Array(rows);
    for (let it = 0; it < items.length; it++) {
        const pos = ropePositions(items[it].gridHeight, items[it].gridWidth, items[it].mergeSize);
        for (let r = 0; r < segmentLengths[it]; r++) {
            posH[itemRowOffsets[it] + r] = pos.h[r];
            posW[itemRowOffsets[it] + r] = pos.w[r];
        }
    }
    const invFreq = ropeInvFreq(headDim, config.ropeTheta);

    // ---- encoder layers (spec §2 "block"): h = h + attn(LN1(h)); h = h + mlp(LN2(h)) ----
    const layerOutputs: Float64Array[] = [];
    for (let l = 0; l < config.layers; l++) {
        const lp = `${vp}encoder.layers.${l}.`;
        if (options.layerInput) x = new Float64Array(options.layerInput(l, x));
        // LayerNorm1
        const ln1 = layerNorm(x, rows, H, get(`${lp}layer_norm1.weight`, [H]), get(`${lp}layer_norm1.bias`, [H]), config.eps);
        // q, k, v Linear with bias
        const q = linear(ln1, rows, H, get(`${lp}self_attn.q_proj.weight`, [H, H]), get(`${lp}self_attn.q_proj.bias`, [H]), H);
        const k = linear(ln1, rows, H, get(`${lp}self_attn.k_proj.weight`, [H, H]), get(`${lp}self_attn.k_proj.bias`, [H]), H);
        const v = linear(ln1, rows, H, get(`${lp}self_attn.v_proj.weight`, [H, H]), get(`${lp}self_attn.v_proj.bias`, [H]), H);
        // 2D RoPE on q and k of every head (view(q_len, heads, head_dim)); v is not rotated
        for (let r = 0; r < rows; r++) {
            for (let hd = 0; hd < heads; hd++) {
                const off = r * H + hd * headDim;
                q.set(applyVisionRope(q.subarray(off, off + headDim), posH[r], posW[r], invFreq), off);
                k.set(applyVisionRope(k.subarray(off, off + headDim), posH[r], posW[r], invFreq), off);
            }
        }
        // softmax attention strictly within each item, scale 1/sqrt(head_dim)
        const attn = attentionWithinSegments(q, k, v, rows, heads, headDim, segmentLengths);
        // out projection + residual
        const o = linear(attn, rows, H, get(`${lp}self_attn.out_proj.weight`, [H, H]), get(`${lp}self_attn.out_proj.bias`, [H]), H);
        const h1 = new Float64Array(rows * H);
        for (let i = 0; i < h1.length; i++) h1[i] = x[i] + o[i];
        // LayerNorm2 → fc1 → gelu_pytorch_tanh → fc2 → residual
        const ln2 = layerNorm(h1, rows, H, get(`${lp}layer_norm2.weight`, [H]), get(`${lp}layer_norm2.bias`, [H]), config.eps);
        const fc1W = weights(`${lp}mlp.fc1.weight`);
        const inter = fc1W.shape[0];
        const f1 = linear(ln2, rows, H, get(`${lp}mlp.fc1.weight`, [inter, H]), get(`${lp}mlp.fc1.bias`, [inter]), inter);
        const act = map(f1, geluTanh);
        const f2 = linear(act, rows, inter, get(`${lp}mlp.fc2.weight`, [H, inter]), get(`${lp}mlp.fc2.bias`, [H]), H);
        const h2 = new Float64Array(rows * H);
        for (let i = 0; i < h2.length; i++) h2[i] = h1[i] + f2[i];
        x = h2;
        if (options.keepIntermediates) layerOutputs.push(x);
    }

    // ---- post_layernorm (spec §2 "norms") ----
    const post = layerNorm(x, rows, H, get(`${vp}post_layernorm.weight`, [H]), get(`${vp}post_layernorm.bias`, [H]), config.eps);

    // ---- per item: merge-block → raster, bilinear down-sample by m, projector (spec §3) ----
    let proj0W: Float64Array | null = null;
    let proj0B: Float64Array | null = null;
    let proj2W: Float64Array | null = null;
    let proj2B: Float64Array | null = null;
    let projDim = H;
    if (!options.skipProjector) {
        projDim = weights(`${pp}readout.0.weight`).shape[0];
        proj0W = get(`${pp}readout.0.weight`, [projDim, H]);
        proj0B = get(`${pp}readout.0.bias`, [projDim]);
        proj2W = get(`${pp}readout.2.weight`, [projDim, projDim]);
        proj2B = get(`${pp}readout.2.bias`, [projDim]);
    }
    const results: VisionRefItemResult[] = [];
    for (let it = 0; it < items.length; it++) {
        const { gridHeight: gh, gridWidth: gw, mergeSize: m } = items[it];
        const rowsOfItem = post.subarray(itemRowOffsets[it] * H, itemRowOffsets[it + 1] * H);
        const raster = mergeBlockToRaster(rowsOfItem, gh, gw, m, H);
        const oh = gh / m;
        const ow = gw / m;
        const merged = bilinearResize(raster, gh, gw, H, oh, ow); // raster over (oh, ow)
        const nTokens = oh * ow;
        let tokens = merged;
        if (!options.skipProjector) {
            // mlp2x_gelu: Linear(H, D) → nn.GELU() (exact erf) → Linear(D, D)
            const a = linear(merged, nTokens, H, proj0W!, proj0B!, projDim);
            const g = map(a, geluErf);
            tokens = linear(g, nTokens, projDim, proj2W!, proj2B!, projDim);
        }
        results.push({ tokens, nTokens, gridHeight: oh, gridWidth: ow, projDim, merged });
    }

    const result: VisionRefResult = { items: results };
    if (options.keepIntermediates) {
        result.intermediates = { rows, hidden: H, itemRowOffsets, patchEmbed, layers: layerOutputs, postLayerNorm: post };
    }
    return result;
}

/**
 * Deterministic random weights for every tensor of {@link visionWeightShapes}, scaled so activations stay O(1):
 * matrices uniform in ±sqrt(3/fan_in) (unit-variance outputs), LayerNorm weights 1 ± 0.1, biases ± 0.1.
 * Test helper (the lead may use it to fill tiny checkpoints); not a model initialisation of the reference.
 */
export function randomVisionWeights(config: VisionRefConfig, intermediate: number, projDim: number, seed: number, options: Pick<VisionRefOptions, "visionPrefix" | "projectorPrefix" | "skipProjector"> = {}): Map<string, RefTensor> {
    const rng = seededRandom(seed);
    const out = new Map<string, RefTensor>();
    for (const [name, shape] of visionWeightShapes(config, intermediate, projDim, options)) {
        const n = shape.reduce((a, b) => a * b, 1);
        let data: Float64Array;
        if (name.endsWith(".bias")) {
            data = randomArray(rng, n, -0.1, 0.1);
        } else if (shape.length === 1) {
            data = randomArray(rng, n, 0.9, 1.1); // LayerNorm weight
        } else {
            const fanIn = n / shape[0];
            const a = Math.sqrt(3 / fanIn);
            data = randomArray(rng, n, -a, a);
        }
        out.set(name, { data, shape: [...shape] });
    }
    return out;
}
