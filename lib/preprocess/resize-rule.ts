/**
 * Target sizes of images and video frames: the reference image processor's `simple_batched_resize` (every item has
 * the same merge size) and `batched_resize` (mixed merge sizes), reproduced operation for operation so that the same
 * IEEE double arithmetic gives the same sizes. Pure arithmetic, no I/O.
 *
 * Python details that matter: `round()` rounds halves to even; `max_pixels // n` is a floor division; the token
 * budget is shared by all images plus all video frames of a request. Sizes are (height, width) — the reference's
 * PIL path swaps them by mistake (fixed upstream in c28335a); this module uses the correct order.
 *
 * @module
 */
import { InvalidOptionError } from "../errors.js";

/** A target size in pixels; both sides are multiples of the item's factor (patch size × merge size). */
export interface TargetSize {
    /** Height in pixels. */
    readonly height: number;
    /** Width in pixels. */
    readonly width: number;
}

/** One image or video of a request, as the resize rule sees it. */
export interface VisualItemSize {
    /** Source height in pixels (of the first frame, for a video). */
    height: number;
    /** Source width in pixels. */
    width: number;
    /** Frames this item contributes: 1 for an image (default), the number of sampled frames for a video. */
    frames?: number;
}

/** A {@link VisualItemSize} with its merge size, for {@link targetSizes}. */
export interface VisualItem extends VisualItemSize {
    /** Patches per merge-block side: the projector's `image.merge_size` (1) or `video.merge_size` (2). */
    mergeSize: number;
}

/** The token budget of the vision projector (GGUF `videollama3.image.min_tokens` / `max_tokens`). */
export interface ResizeBudget {
    /** Pixels per patch side (`clip.vision.patch_size`, 14). */
    patchSize: number;
    /** Minimum tokens per item (16); with the factor it gives `min_pixels = minTokens * factor²`. */
    minTokens: number;
    /** Token budget of the whole request (16384); `max_pixels = maxTokens * factor²`. */
    maxTokens: number;
}

/** Python's `round()` of a float to an integer: nearest integer, exact halves to the even neighbour. */
export function roundHalfEven(x: number): number {
    const floor = Math.floor(x);
    const diff = x - floor; // exact for |x| < 2^52
    if (diff < 0.5) return floor;
    if (diff > 0.5) return floor + 1;
    return floor % 2 === 0 ? floor : floor + 1;
}

function checkPositiveInteger(option: string, value: unknown, min = 1): number {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
        throw new InvalidOptionError(option, min === 0 ? "a non-negative integer" : "a positive integer", value);
    }
    return value;
}

function checkItems(items: readonly VisualItemSize[], option: string): void {
    if (!Array.isArray(items) || items.length === 0) throw new InvalidOptionError(option, "a non-empty array", items);
    items.forEach((item, i) => {
        if (typeof item !== "object" || item === null) throw new InvalidOptionError(`${option}[${i}]`, "an object", item);
        checkPositiveInteger(`${option}[${i}].height`, item.height);
        checkPositiveInteger(`${option}[${i}].width`, item.width);
        if (item.frames !== undefined) checkPositiveInteger(`${option}[${i}].frames`, item.frames);
    });
}

/**
 * `simple_batched_resize`: every item uses the same `factor` (patch size × merge size). The pixel budget
 * `maxTokens * factor²` is divided (floor) by the number of images plus video frames; an item over its share is
 * scaled down (floor), an item under `minTokens * factor²` is scaled up (ceil), otherwise each side is rounded
 * (half to even) to a multiple of the factor.
 *
 * @returns one size per item, in order (a video's size applies to all of its frames).
 */
export function simpleBatchedResize(items: readonly VisualItemSize[], factor: number, minTokens: number, maxTokens: number): TargetSize[] {
    checkItems(items, "items");
    checkPositiveInteger("factor", factor);
    checkPositiveInteger("minTokens", minTokens, 0);
    checkPositiveInteger("maxTokens", maxTokens);
    const minPixels = minTokens * factor * factor;
    const maxPixels = maxTokens * factor * factor;
    const count = items.reduce((n, item) => n + (item.frames ?? 1), 0);
    const share = Math.floor(maxPixels / count); // max_pixels // num_images
    return items.map(({ height, width }) => {
        let h = roundHalfEven(height / factor) * factor;
        let w = roundHalfEven(width / factor) * factor;
        if (h * w > share) {
            const beta = Math.sqrt((height * width) / share);
            h = Math.floor(height / beta / factor) * factor;
            w = Math.floor(width / beta / factor) * factor;
        }
        if (h * w < minPixels) {
            const beta = Math.sqrt(minPixels / (height * width));
            h = Math.ceil((height * beta) / factor) * factor;
            w = Math.ceil((width * beta) / factor) * factor;
        }
        // The reference can only produce a zero side when minTokens is 0 (it would then fail in PIL); keep one patch.
        return { height: Math.max(h, factor), width: Math.max(w, factor) };
    });
}

/**
 * `batched_resize`: items with different factors. The request's tokens `Σ frames·ceil(H/f)·ceil(W/f)` are compared
 * with `maxTokens`; over budget, every side becomes `floor(side/β/f)·f` with `β = sqrt(total/maxTokens)`, otherwise
 * `round(side/f)·f` (half to even). There is no minimum (as in the reference).
 */
export function batchedResize(items: readonly VisualItemSize[], factors: readonly number[], maxTokens: number): TargetSize[] {
    checkItems(items, "items");
    if (!Array.isArray(factors) || factors.length !== items.length) {
        throw new InvalidOptionError("factors", `an array of ${items.length} factors (one per item)`, factors);
    }
    factors.forEach((f, i) => checkPositiveInteger(`factors[${i}]`, f));
    checkPositiveInteger("maxTokens", maxTokens);
    let total = 0;
    items.forEach((item, i) => {
        const f = factors[i]!;
        total += (item.frames ?? 1) * Math.ceil(item.height / f) * Math.ceil(item.width / f);
    });
    if (total > maxTokens) {
        const beta = Math.sqrt(total / maxTokens);
        return items.map(({ height, width }, i) => {
            const f = factors[i]!;
            // A zero side (an item far smaller than the others) would make the reference fail; keep one block.
            return {
                height: Math.max(Math.floor(height / beta / f) * f, f),
                width: Math.max(Math.floor(width / beta / f) * f, f),
            };
        });
    }
    return items.map(({ height, width }, i) => {
        const f = factors[i]!;
        return { height: Math.max(roundHalfEven(height / f) * f, f), width: Math.max(roundHalfEven(width / f) * f, f) };
    });
}

/**
 * The target size of every image and video of one request, as the reference processor chooses it:
 * {@link simpleBatchedResize} with `factor = patchSize × mergeSize` when all items share a merge size, otherwise
 * {@link batchedResize}.
 *
 * @example
 * targetSizes([{ height: 1080, width: 1920, mergeSize: 1 }], { patchSize: 14, minTokens: 16, maxTokens: 16384 })
 * // → [{ height: 1078, width: 1918 }]  (77 × 137 = 10,549 patches)
 */
export function targetSizes(items: readonly VisualItem[], budget: ResizeBudget): TargetSize[] {
    checkItems(items, "items");
    checkPositiveInteger("patchSize", budget?.patchSize);
    items.forEach((item, i) => checkPositiveInteger(`items[${i}].mergeSize`, item.mergeSize));
    const factors = items.map((item) => budget.patchSize * item.mergeSize);
    if (factors.every((f) => f === factors[0])) {
        return simpleBatchedResize(items, factors[0]!, budget.minTokens, budget.maxTokens);
    }
    return batchedResize(items, factors, budget.maxTokens);
}

/**
 * Tokens the language model receives for one image or frame of the given target size:
 * `(height / (patchSize·mergeSize)) · (width / (patchSize·mergeSize))`.
 */
export function tokensForSize(size: TargetSize, patchSize: number, mergeSize: number): number {
    const f = patchSize * mergeSize;
    return Math.floor(size.height / f) * Math.floor(size.width / f);
}
