/**
 * The converter's check of its own output: converted rows are decoded back to f32 (with ggml's dequantizers) and
 * compared with the f32 upcast of the checkpoint's values.
 *
 * What each type must achieve — and why:
 *
 * - **f32** (from bf16/f16/f32) and **bf16 from bf16**: exact; the conversion is a widening copy.
 * - **f16 / bf16** (rounding from a wider type): ggml rounds to nearest-even, so every value must lie within half a
 *   unit in the last place of the target format at the value's magnitude: 2^(e−11) for f16 (2^−25 in its subnormal
 *   range, |x| < 2^−14), 2^(e−8) for bf16, e = ⌊log2|x|⌋. This is checked **per element** (a value that overflows
 *   f16, |x| ≥ 65520, fails it).
 * - **block types**: a uniform quantizer with step Δ and round-to-nearest has an error spread evenly over ±Δ/2,
 *   i.e. an RMS of Δ/√12. Δ per block follows from the format: Q8_0 amax/127, Q4_0 amax/8, Q5_0 amax/16 (32-value
 *   blocks, signed); Q5_1 (max−min)/31 (32); Q4_K (max−min)/15 and Q5_K (max−min)/31 per 32-value sub-block (min
 *   clamped to ≤ 0, as the K-quants store a non-negative offset); Q6_K amax/32 per 16-value sub-block. The
 *   expected error energy Σ n_b·Δ_b²/12 is computed from the source data itself, so outliers and per-tensor scale
 *   do not matter. The measured error energy must stay within **4×** that (RMS within 2×): storing the scales in
 *   f16 (relative error 2⁻¹¹), 6-bit sub-block scales of the K-quants and Q4_0's clamp of +8·d to 7·d add a few
 *   percent; ggml's RMSE-optimising scale search only lowers the error. A misplaced row, a wrong scale or a broken
 *   block gives errors of the order of the values themselves — tens of times the bound.
 *
 * @internal
 * @module
 */
import type { StorageType } from "./quant-rules.js";

/** RMS error allowed for block types, as a multiple of the ideal uniform-quantizer RMS error (see module doc). */
export const BLOCK_RMS_FACTOR = 2;

/** Running error statistics of one tensor. */
export class ErrorStats {
    /** Σ (converted − source)². */
    sumSqErr = 0;
    /** Σ source². */
    sumSqRef = 0;
    /** Σ of the allowed squared error (block types: expected uniform-quantizer error; float types: half-ulp²). */
    sumSqAllowed = 0;
    maxAbsErr = 0;
    /** Values compared. */
    values = 0;
    /** Values outside their per-element bound (float types) or that should have been exact. */
    violations = 0;
    /** First violating value, for the error message. */
    firstViolation: { index: number; source: number; converted: number } | undefined;
    /** Non-finite source values met (a block quantizer cannot represent them). */
    nonFinite = 0;

    constructor(readonly type: StorageType) {}

    /** Relative RMS error √(Σerr²/Σsrc²) (0 for an all-zero tensor reproduced exactly). */
    get relRms(): number {
        return this.sumSqRef > 0 ? Math.sqrt(this.sumSqErr / this.sumSqRef) : this.sumSqErr > 0 ? Infinity : 0;
    }

    /** The relative RMS error the type is allowed. */
    get relRmsBound(): number {
        if (this.type === "f32") return 0;
        const allowed = isBlockType(this.type) ? BLOCK_RMS_FACTOR * BLOCK_RMS_FACTOR * this.sumSqAllowed : this.sumSqAllowed;
        return this.sumSqRef > 0 ? Math.sqrt(allowed / this.sumSqRef) : 0;
    }

    /** Undefined when the error is within bounds, else a description of what is wrong. */
    failure(): string | undefined {
        if (this.nonFinite > 0) return `${this.nonFinite} source values are NaN or infinite, which ${this.type} cannot store`;
        if (this.violations > 0) {
            const v = this.firstViolation;
            if (!v) return `the converted ${this.type} data decodes to NaN`;
            return (
                `${this.violations} of ${this.values} values are outside the ${this.type} rounding bound ` +
                `(first: element ${v.index}, source ${v.source}, converted ${v.converted})`
            );
        }
        if (isBlockType(this.type)) {
            // 1e-12 relative slack for the floating-point summation itself
            const allowed = BLOCK_RMS_FACTOR * BLOCK_RMS_FACTOR * this.sumSqAllowed * (1 + 1e-9) + 1e-12 * this.sumSqRef;
            if (this.sumSqErr > allowed) {
                return `relative RMS error ${this.relRms.toExponential(3)} exceeds the ${this.type} bound ${this.relRmsBound.toExponential(3)}`;
            }
        }
        return undefined;
    }
}

function isBlockType(type: StorageType): boolean {
    return type !== "f32" && type !== "f16" && type !== "bf16";
}

let halfUlpF16: Float64Array | undefined;
let halfUlpBf16: Float64Array | undefined;

/** Half-ulp of the target format for each f32 biased exponent (0..255). */
function halfUlpTable(type: "f16" | "bf16"): Float64Array {
    if (type === "f16" && halfUlpF16) return halfUlpF16;
    if (type === "bf16" && halfUlpBf16) return halfUlpBf16;
    const t = new Float64Array(256);
    for (let biased = 0; biased < 256; biased++) {
        const e = biased === 0 ? -126 : biased - 127; // f32 subnormals share the smallest normal binade's spacing
        if (type === "f16") t[biased] = e >= -14 ? 2 ** (e - 11) : 2 ** -25;
        else t[biased] = 2 ** (Math.max(e, -126) - 8);
    }
    if (type === "f16") halfUlpF16 = t;
    else halfUlpBf16 = t;
    return t;
}

/** Sub-block size over which the ideal step is computed, and the step from the sub-block's values. */
function blockRule(type: StorageType): { size: number; step: (min: number, max: number, amax: number) => number } {
    switch (type) {
        case "q8_0":
            return { size: 32, step: (_min, _max, amax) => amax / 127 };
        case "q4_0":
            return { size: 32, step: (_min, _max, amax) => amax / 8 };
        case "q5_0":
            return { size: 32, step: (_min, _max, amax) => amax / 16 };
        case "q5_1":
            return { size: 32, step: (min, max) => (max - min) / 31 };
        case "q4_K":
            return { size: 32, step: (min, max) => (Math.max(max, 0) - Math.min(min, 0)) / 15 };
        case "q5_K":
            return { size: 32, step: (min, max) => (Math.max(max, 0) - Math.min(min, 0)) / 31 };
        case "q6_K":
            return { size: 16, step: (_min, _max, amax) => amax / 32 };
        default:
            throw new Error(`no block rule for ${type}`);
    }
}

/**
 * Adds the comparison of `count` values: `source` (the f32 upcast of the checkpoint) against `converted` (the output
 * decoded back to f32). `count` must be a whole number of rows, and rows a whole number of blocks.
 */
export function accumulateError(stats: ErrorStats, source: Float32Array, converted: Float32Array, count: number): void {
    const type = stats.type;
    if (type === "f32") {
        const a = new Uint32Array(source.buffer, source.byteOffset, count);
        const b = new Uint32Array(converted.buffer, converted.byteOffset, count);
        for (let i = 0; i < count; i++) {
            const x = source[i]!;
            stats.sumSqRef += x * x;
            if (a[i] !== b[i]) {
                stats.violations++;
                stats.firstViolation ??= { index: stats.values + i, source: x, converted: converted[i]! };
                const d = Math.abs(converted[i]! - x);
                stats.sumSqErr += d * d;
                if (d > stats.maxAbsErr) stats.maxAbsErr = d;
            }
        }
        stats.values += count;
        return;
    }
    if (type === "f16" || type === "bf16") {
        const table = halfUlpTable(type);
        const bits = new Uint32Array(source.buffer, source.byteOffset, count);
        let sumSqErr = 0;
        let sumSqRef = 0;
        let allowed = 0;
        let maxAbs = stats.maxAbsErr;
        for (let i = 0; i < count; i++) {
            const x = source[i]!;
            const y = converted[i]!;
            const h = table[(bits[i]! >>> 23) & 0xff]!;
            const d = Math.abs(y - x);
            if (!(d <= h)) {
                // NaN stays NaN and ±inf stays ±inf; anything else outside half an ulp is wrong
                const same = (Number.isNaN(x) && Number.isNaN(y)) || (!Number.isFinite(x) && x === y);
                if (!same) {
                    stats.violations++;
                    stats.firstViolation ??= { index: stats.values + i, source: x, converted: y };
                }
                continue;
            }
            sumSqErr += d * d;
            sumSqRef += x * x;
            allowed += h * h;
            if (d > maxAbs) maxAbs = d;
        }
        stats.sumSqErr += sumSqErr;
        stats.sumSqRef += sumSqRef;
        stats.sumSqAllowed += allowed;
        stats.maxAbsErr = maxAbs;
        stats.values += count;
        return;
    }
    const rule = blockRule(type);
    let sumSqErr = 0;
    let sumSqRef = 0;
    let allowed = 0;
    let maxAbs = stats.maxAbsErr;
    for (let start = 0; start < count; start += rule.size) {
        const end = Math.min(count, start + rule.size);
        let min = Infinity;
        let max = -Infinity;
        let amax = 0;
        for (let i = start; i < end; i++) {
            const x = source[i]!;
            if (!Number.isFinite(x)) {
                stats.nonFinite++;
                continue;
            }
            const d = Math.abs(converted[i]! - x);
            sumSqErr += d * d;
            sumSqRef += x * x;
            if (d > maxAbs) maxAbs = d;
            if (x < min) min = x;
            if (x > max) max = x;
            const ax = Math.abs(x);
            if (ax > amax) amax = ax;
        }
        if (min <= max) {
            const step = rule.step(min, max, amax);
            allowed += ((end - start) * step * step) / 12;
        }
    }
    if (Number.isNaN(sumSqErr)) stats.violations++;
    stats.sumSqErr += sumSqErr;
    stats.sumSqRef += sumSqRef;
    stats.sumSqAllowed += allowed;
    stats.maxAbsErr = maxAbs;
    stats.values += count;
}
