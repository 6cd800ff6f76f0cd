/**
 * Reference of Pillow's bicubic `Image.resize` for 8-bit images, written in TypeScript from the algorithm (not from
 * our C++), used to check native/preprocess/resize.cpp.
 *
 * The algorithm: a separable convolution. For an axis resampled from `inSize` to `outSize` samples, the scale is
 * `inSize / outSize`; when downscaling the kernel is stretched by the scale (antialiasing: support 2·scale, argument
 * divided by the scale), when upscaling it is the plain Keys cubic (a = −0.5, support 2). Output sample i is centred
 * at (i + 0.5)·scale in input coordinates; it takes the input samples [round(center − support), round(center +
 * support)) clipped to the image, weights them with the kernel at (j + 0.5 − center)/filterscale and normalises the
 * weights to sum 1. Columns are resampled first (into an 8-bit image, clipped), rows second; an axis whose size does
 * not change is left alone.
 *
 * Two arithmetic modes:
 * - "fixed": Pillow's integer arithmetic — weights rounded (half away from zero) to 22-bit fixed point, sums start at
 *   2^21, result = floor(sum / 2^22) clipped to 0..255. Must match Pillow bit for bit.
 * - "float": the same filter in float64 end to end, each pass rounded to nearest and clipped. Differs from Pillow by
 *   at most ±1 (the fixed-point quantisation of the weights); an independent sanity check of the filter itself.
 */

export type PillowArithmetic = "fixed" | "float";

const PRECISION_BITS = 22;

/** The Keys cubic convolution kernel with a = −0.5 (Pillow's BICUBIC). */
export function keysCubic(x: number): number {
    const a = -0.5;
    const t = Math.abs(x);
    if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
    return 0;
}

/** Weights of one axis: for each output sample, the first input index and its weights (normalised, float64). */
export function axisWeights(inSize: number, outSize: number): { start: number; weights: number[] }[] {
    const scale = inSize / outSize;
    const filterscale = Math.max(scale, 1);
    const support = 2 * filterscale;
    const result: { start: number; weights: number[] }[] = [];
    for (let i = 0; i < outSize; i++) {
        const center = (i + 0.5) * scale;
        // C's (int) cast truncates toward zero
        const start = Math.max(0, Math.trunc(center - support + 0.5));
        const end = Math.min(inSize, Math.trunc(center + support + 0.5));
        const weights: number[] = [];
        let total = 0;
        for (let j = start; j < end; j++) {
            const w = keysCubic((j - center + 0.5) * (1 / filterscale));
            weights.push(w);
            total += w;
        }
        result.push({ start, weights: total !== 0 ? weights.map((w) => w / total) : weights });
    }
    return result;
}

function toFixed(w: number): number {
    const v = w * (1 << PRECISION_BITS);
    return w < 0 ? Math.trunc(v - 0.5) : Math.trunc(v + 0.5);
}

/**
 * Resamples one axis of an image stored as `lines` lines of `length` samples (channels interleaved), reading sample
 * `k` of line `l` at `src[l * lineStride + k * sampleStride + c]`.
 */
function resampleAxis(
    src: Uint8Array,
    channels: number,
    inSize: number,
    outSize: number,
    lines: number,
    lineStride: number,
    sampleStride: number,
    dst: Uint8Array,
    dstLineStride: number,
    dstSampleStride: number,
    mode: PillowArithmetic,
    lineOffset = 0,
): void {
    const axis = axisWeights(inSize, outSize);
    const fixed = axis.map((a) => a.weights.map(toFixed));
    for (let l = 0; l < lines; l++) {
        for (let i = 0; i < outSize; i++) {
            const { start, weights } = axis[i]!;
            for (let c = 0; c < channels; c++) {
                let value: number;
                if (mode === "fixed") {
                    let sum = 1 << (PRECISION_BITS - 1);
                    const k = fixed[i]!;
                    for (let j = 0; j < k.length; j++) sum += src[(l + lineOffset) * lineStride + (start + j) * sampleStride + c]! * k[j]!;
                    value = Math.floor(sum / (1 << PRECISION_BITS));
                } else {
                    let sum = 0;
                    for (let j = 0; j < weights.length; j++) sum += src[(l + lineOffset) * lineStride + (start + j) * sampleStride + c]! * weights[j]!;
                    value = Math.round(sum);
                }
                dst[l * dstLineStride + i * dstSampleStride + c] = Math.min(255, Math.max(0, value));
            }
        }
    }
}

/**
 * `Image.resize((newWidth, newHeight), Image.BICUBIC)` of a packed 8-bit image with `channels` interleaved channels.
 */
export function pillowBicubicResize(
    src: Uint8Array,
    width: number,
    height: number,
    newWidth: number,
    newHeight: number,
    channels = 3,
    mode: PillowArithmetic = "fixed",
): Uint8Array {
    if (newWidth === width && newHeight === height) return src.slice();
    let current = src;
    let curW = width;
    let rowOffset = 0;
    const vertical = axisWeights(height, newHeight);
    if (newWidth !== width) {
        // Only the rows the vertical pass reads (all of them when the height does not change).
        const first = newHeight !== height ? vertical[0]!.start : 0;
        const last = newHeight !== height ? vertical[newHeight - 1]!.start + vertical[newHeight - 1]!.weights.length : height;
        const rows = last - first;
        rowOffset = first;
        const tmp = new Uint8Array(newWidth * rows * channels);
        resampleAxis(current, channels, width, newWidth, rows, width * channels, channels, tmp, newWidth * channels, channels, mode, first);
        current = tmp;
        curW = newWidth;
    }
    if (newHeight === height) return current;
    // Vertical pass: "lines" are columns; samples run down the rows, starting at rowOffset in the original rows.
    const out = new Uint8Array(newWidth * newHeight * channels);
    const axis = axisWeights(height, newHeight);
    const fixed = axis.map((a) => a.weights.map(toFixed));
    for (let x = 0; x < curW; x++) {
        for (let i = 0; i < newHeight; i++) {
            const { start, weights } = axis[i]!;
            const base = start - rowOffset;
            for (let c = 0; c < channels; c++) {
                let value: number;
                if (mode === "fixed") {
                    let sum = 1 << (PRECISION_BITS - 1);
                    const k = fixed[i]!;
                    for (let j = 0; j < k.length; j++) sum += current[((base + j) * curW + x) * channels + c]! * k[j]!;
                    value = Math.floor(sum / (1 << PRECISION_BITS));
                } else {
                    let sum = 0;
                    for (let j = 0; j < weights.length; j++) sum += current[((base + j) * curW + x) * channels + c]! * weights[j]!;
                    value = Math.round(sum);
                }
                out[(i * newWidth + x) * channels + c] = Math.min(255, Math.max(0, value));
            }
        }
    }
    return out;
}
