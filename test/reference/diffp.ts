/**
 * Slow float64 reference of the Differential Frame Pruner (DiffFP), spec §5, following
 * `Videollama3MetaForCausalLM._get_compression_mask` (videollama3/model/videollama3_arch.py and the identical copy in
 * inference/transformers_api/modeling_videollama3.py) literally:
 *
 * ```
 * images = images.view(t, (h // m) * (w // m), -1)           # one row per merged token (m·m patches × C·p·p values)
 * pixel_diff = images[1:] - images[:-1]
 * pixel_diff = torch.abs(pixel_diff).mean(dim=-1) * 255
 * pixel_diff = torch.cat([torch.full_like(pixel_diff[0:1], threshold + 1), pixel_diff], dim=0)
 * mask = pixel_diff > threshold
 * padding_ids = torch.nonzero(mask.sum(dim=1) < min_tokens)[:, 0]
 * mask[padding_ids, :min_tokens] = 1
 * ```
 * and `if t == 1: mask = ones` (a one-frame video is never pruned).
 *
 * Why the `view` works: the patch rows of a frame are in merge-block order (spec §4), so the m·m patches of one merged
 * token are consecutive rows, and reinterpreting the frame's flat values as (tokens, m·m·C·p·p) puts exactly one
 * merged token's values in each row. Merged tokens are numbered in raster order over the (gh/m) × (gw/m) grid — the
 * same order as the encoder's output tokens (spec §3).
 */

/** Result of {@link referenceDiffFP}. */
export interface DiffFPResult {
    /** Keep mask per frame, each of length tokensPerFrame (raster order over the merged grid). */
    mask: boolean[][];
    /** All frames' masks concatenated (= Python `mask.flatten()`). */
    flatMask: boolean[];
    /**
     * Distance per frame and merged token: mean |P[f] − P[f−1]| · 255 over the token's values; frame 0 holds the
     * sentinel threshold + 1. For a one-frame video the distances are all threshold + 1 as well (never computed).
     */
    distances: Float64Array[];
    /** Kept tokens per frame. */
    keptPerFrame: number[];
    /** Total kept tokens. */
    kept: number;
    /** Total tokens before pruning = frames · tokensPerFrame. */
    total: number;
    /** Merged tokens per frame = (gridHeight/mergeSize) · (gridWidth/mergeSize). */
    tokensPerFrame: number;
}

/**
 * Computes the DiffFP keep mask of one video.
 *
 * @param framesPatches one Float64Array per sampled frame: that frame's patch rows in merge-block order (normalized
 *   pixel values, rows of C·p·p), i.e. the frame's slice of `pixel_values`. All frames must have the same length.
 * @param gridHeight patch rows per frame (pixels / patch size, NOT merged)
 * @param gridWidth patch columns per frame
 * @param mergeSize spatial merge (2 for videos)
 * @param threshold keep a token if its distance is strictly greater than this. Default 0.1 (the released value).
 * @param minTokens if a frame keeps fewer than this, its FIRST `minTokens` tokens (top-left in raster order) are forced
 *   on, in addition to whatever was already kept (Python `mask[padding_ids, :min_tokens] = 1`). Default 1.
 */
export function referenceDiffFP(framesPatches: readonly Float64Array[], gridHeight: number, gridWidth: number, mergeSize: number, threshold = 0.1, minTokens = 1): DiffFPResult {
    const t = framesPatches.length;
    if (t === 0) throw new Error("referenceDiffFP: no frames");
    const m = mergeSize;
    if (gridHeight % m !== 0 || gridWidth % m !== 0) throw new Error(`referenceDiffFP: grid ${gridHeight}×${gridWidth} not divisible by merge ${m}`);
    const tokensPerFrame = (gridHeight / m) * (gridWidth / m);
    const frameLen = framesPatches[0].length;
    for (const f of framesPatches) {
        if (f.length !== frameLen) throw new Error("referenceDiffFP: frames differ in size");
    }
    if (frameLen % (gridHeight * gridWidth) !== 0) throw new Error("referenceDiffFP: frame size is not a whole number of patch rows");
    // `.view(t, tokens, -1)`: values per merged token = m·m patch rows of C·p·p values.
    const perToken = frameLen / tokensPerFrame;

    const distances: Float64Array[] = [];
    const mask: boolean[][] = [];
    if (t === 1) {
        // `modal == "video" and t == 1` → torch.ones(num_patches): nothing is pruned.
        distances.push(new Float64Array(tokensPerFrame).fill(threshold + 1));
        mask.push(new Array<boolean>(tokensPerFrame).fill(true));
    } else {
        for (let f = 0; f < t; f++) {
            const d = new Float64Array(tokensPerFrame);
            if (f === 0) {
                // torch.full_like(pixel_diff[0:1], threshold + 1): the first frame is always kept whole.
                d.fill(threshold + 1);
            } else {
                const cur = framesPatches[f];
                const prev = framesPatches[f - 1]; // previous SAMPLED frame, not the last kept token
                for (let k = 0; k < tokensPerFrame; k++) {
                    let sum = 0;
                    for (let i = k * perToken; i < (k + 1) * perToken; i++) sum += Math.abs(cur[i] - prev[i]);
                    d[k] = (sum / perToken) * 255; // .abs().mean(dim=-1) * 255
                }
            }
            distances.push(d);
            // mask = pixel_diff > threshold (strict)
            const keep: boolean[] = [];
            for (let k = 0; k < tokensPerFrame; k++) keep.push(d[k] > threshold);
            // frames with fewer than min_tokens kept: set the first min_tokens entries (slice clamps at the end)
            const count = keep.filter(Boolean).length;
            if (count < minTokens) {
                for (let k = 0; k < Math.min(minTokens, tokensPerFrame); k++) keep[k] = true;
            }
            mask.push(keep);
        }
    }
    const keptPerFrame = mask.map((row) => row.filter(Boolean).length);
    return {
        mask,
        flatMask: mask.flat(),
        distances,
        keptPerFrame,
        kept: keptPerFrame.reduce((a, b) => a + b, 0),
        total: t * tokensPerFrame,
        tokensPerFrame,
    };
}
