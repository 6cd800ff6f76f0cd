/**
 * Tiny float64 helpers for the slow reference implementations in test/reference/.
 *
 * Everything here is written as plain loops over row-major Float64Arrays. Nothing is optimised, nothing is
 * vectorised, nothing is shared with the production code in lib/ or native/. The goal is that each function can
 * be checked by reading it.
 *
 * Conventions used throughout:
 * - a "matrix" of `rows × cols` is a Float64Array of length rows·cols, element (r, c) at index r·cols + c;
 * - a PyTorch `nn.Linear(in, out)` weight has shape [out, in] (row o holds the weights of output o), exactly as stored
 *   in HF safetensors checkpoints, and computes y = x·Wᵀ + b.
 */

/** A float64 tensor: row-major data plus its shape (e.g. [out, in] for a Linear weight). */
export interface RefTensor {
    /** Row-major values; length = product of `shape`. */
    data: Float64Array;
    /** Dimensions, outermost first (PyTorch order). */
    shape: number[];
}

/** Looks up a checkpoint tensor by its HF name (e.g. `model.vision_encoder.post_layernorm.weight`); must throw if absent. */
export type WeightLookup = (hfName: string) => RefTensor;

/** Product of all dimensions (1 for a scalar shape []). */
export function numel(shape: readonly number[]): number {
    let n = 1;
    for (const d of shape) n *= d;
    return n;
}

/**
 * Builds a {@link WeightLookup} over a Map of name → tensor. Missing names throw an Error naming the tensor, and every
 * tensor is checked for `data.length === numel(shape)`.
 */
export function weightLookupFromMap(map: ReadonlyMap<string, RefTensor>): WeightLookup {
    return (name: string): RefTensor => {
        const t = map.get(name);
        if (t === undefined) throw new Error(`reference: missing weight tensor "${name}"`);
        if (t.data.length !== numel(t.shape)) {
            throw new Error(`reference: tensor "${name}" has ${t.data.length} values but shape [${t.shape.join(", ")}]`);
        }
        return t;
    };
}

/** Throws unless `t.shape` equals `expected` exactly (clear message with the tensor name). */
export function expectShape(name: string, t: RefTensor, expected: readonly number[]): void {
    const ok = t.shape.length === expected.length && t.shape.every((d, i) => d === expected[i]);
    if (!ok) {
        throw new Error(`reference: tensor "${name}" has shape [${t.shape.join(", ")}], expected [${expected.join(", ")}]`);
    }
}

/**
 * PyTorch `nn.Linear`: y[r, o] = b[o] + Σ_i x[r, i] · W[o, i].
 * @param x input matrix rows × inDim
 * @param w weight [outDim, inDim] (PyTorch layout)
 * @param b bias [outDim] or null for no bias
 */
export function linear(x: Float64Array, rows: number, inDim: number, w: Float64Array, b: Float64Array | null, outDim: number): Float64Array {
    if (x.length !== rows * inDim) throw new Error(`linear: x has ${x.length} values, expected ${rows}×${inDim}`);
    if (w.length !== outDim * inDim) throw new Error(`linear: W has ${w.length} values, expected ${outDim}×${inDim}`);
    if (b !== null && b.length !== outDim) throw new Error(`linear: bias has ${b.length} values, expected ${outDim}`);
    const y = new Float64Array(rows * outDim);
    for (let r = 0; r < rows; r++) {
        for (let o = 0; o < outDim; o++) {
            let acc = 0;
            for (let i = 0; i < inDim; i++) acc += x[r * inDim + i] * w[o * inDim + i];
            y[r * outDim + o] = acc + (b === null ? 0 : b[o]);
        }
    }
    return y;
}

/**
 * PyTorch `nn.LayerNorm(dim, eps)` applied to each row independently:
 * y = (x − mean) / sqrt(var + eps) · weight + bias, with the *biased* variance (divide by dim), as PyTorch does.
 */
export function layerNorm(x: Float64Array, rows: number, dim: number, weight: Float64Array, bias: Float64Array, eps: number): Float64Array {
    if (x.length !== rows * dim) throw new Error(`layerNorm: x has ${x.length} values, expected ${rows}×${dim}`);
    const y = new Float64Array(rows * dim);
    for (let r = 0; r < rows; r++) {
        let mean = 0;
        for (let i = 0; i < dim; i++) mean += x[r * dim + i];
        mean /= dim;
        let variance = 0;
        for (let i = 0; i < dim; i++) {
            const d = x[r * dim + i] - mean;
            variance += d * d;
        }
        variance /= dim;
        const inv = 1 / Math.sqrt(variance + eps);
        for (let i = 0; i < dim; i++) y[r * dim + i] = (x[r * dim + i] - mean) * inv * weight[i] + bias[i];
    }
    return y;
}

/** Element-wise a + b (new array). */
export function add(a: Float64Array, b: Float64Array): Float64Array {
    if (a.length !== b.length) throw new Error(`add: length ${a.length} vs ${b.length}`);
    const y = new Float64Array(a.length);
    for (let i = 0; i < a.length; i++) y[i] = a[i] + b[i];
    return y;
}

/** Applies f to every element (new array). */
export function map(a: Float64Array, f: (v: number) => number): Float64Array {
    const y = new Float64Array(a.length);
    for (let i = 0; i < a.length; i++) y[i] = f(a[i]);
    return y;
}

/**
 * The error function erf(x), accurate to about 1e-15 absolute (checked against tabulated values in the tests).
 *
 * - |x| ≤ 3: the everywhere-convergent series with only positive terms (no cancellation),
 *   erf(x) = 2/√π · e^(−x²) · Σ_{n≥0} 2ⁿ x^(2n+1) / (1·3·5···(2n+1))
 *   (Abramowitz & Stegun 7.1.6). Term ratio = 2x²/(2n+3), summed until the term no longer changes the sum.
 * - |x| > 3: erf(x) = 1 − erfc(x) with the classical continued fraction (A&S 7.1.14)
 *   erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated bottom-up with 200 levels
 *   (far more than needed for x > 3).
 * - erf is odd: erf(−x) = −erf(x).
 */
export function erf(x: number): number {
    if (Number.isNaN(x)) return NaN;
    if (x < 0) return -erf(-x);
    if (x <= 3) {
        let term = x; // n = 0 term: 2⁰ x¹ / 1
        let sum = term;
        for (let n = 0; n < 500; n++) {
            term *= (2 * x * x) / (2 * n + 3);
            const next = sum + term;
            if (next === sum) break;
            sum = next;
        }
        return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
    }
    if (x > 27) return 1; // erfc(27) < 1e-318: below double precision of 1 − erfc
    let frac = x; // innermost level
    for (let k = 200; k >= 1; k--) frac = x + k / 2 / frac;
    const erfc = Math.exp(-x * x) / Math.sqrt(Math.PI) / frac;
    return 1 - erfc;
}

/** Exact (erf) GELU, PyTorch `nn.GELU()` default: x/2 · (1 + erf(x/√2)). Used by the projector (spec §3). */
export function geluErf(x: number): number {
    return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/**
 * Tanh-approximation GELU, HF `gelu_pytorch_tanh` = PyTorch `gelu(approximate="tanh")`:
 * x/2 · (1 + tanh(√(2/π) · (x + 0.044715·x³))). Used by the vision MLP (spec §2).
 */
export function geluTanh(x: number): number {
    return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/**
 * Generic PyTorch/NumPy `x.reshape(shape).permute(perm)` followed by making it contiguous: returns the permuted data
 * (row-major over the permuted shape) and the permuted shape. Written with explicit multi-index arithmetic so that the
 * patch-order helpers can follow the Python reshape/transpose chains literally.
 */
export function permute<T extends Float64Array | Int32Array>(data: T, shape: readonly number[], perm: readonly number[]): { data: T; shape: number[] } {
    const n = numel(shape);
    if (data.length !== n) throw new Error(`permute: ${data.length} values for shape [${shape.join(", ")}]`);
    if (perm.length !== shape.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
        throw new Error(`permute: invalid permutation [${perm.join(", ")}] for ${shape.length} dims`);
    }
    const outShape = perm.map((p) => shape[p]);
    // Row-major strides of the input.
    const inStrides = new Array<number>(shape.length);
    let s = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
        inStrides[d] = s;
        s *= shape[d];
    }
    const out = (data instanceof Float64Array ? new Float64Array(n) : new Int32Array(n)) as T;
    const idx = new Array<number>(outShape.length).fill(0); // multi-index over the OUTPUT shape
    for (let o = 0; o < n; o++) {
        // Output dim k walks input dim perm[k].
        let src = 0;
        for (let k = 0; k < outShape.length; k++) src += idx[k] * inStrides[perm[k]];
        out[o] = data[src];
        // Increment the output multi-index (last dim fastest).
        for (let k = outShape.length - 1; k >= 0; k--) {
            idx[k]++;
            if (idx[k] < outShape[k]) break;
            idx[k] = 0;
        }
    }
    return { data: out, shape: outShape };
}

/** Deterministic PRNG (mulberry32) returning uniform values in [0, 1). For reproducible random test data only. */
export function seededRandom(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/** Float64Array of `n` uniform values in [lo, hi) from `rng`. */
export function randomArray(rng: () => number, n: number, lo = -1, hi = 1): Float64Array {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng();
    return a;
}

/** Decodes one bfloat16 bit pattern (uint16) to a number: the bits are the high half of an IEEE float32. */
export function bf16BitsToNumber(bits: number): number {
    const buf = new DataView(new ArrayBuffer(4));
    buf.setUint32(0, (bits & 0xffff) << 16 >>> 0);
    return buf.getFloat32(0);
}

/** Largest |a[i] − b[i]| (Infinity if lengths differ, NaN-safe: any NaN gives NaN). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
    if (a.length !== b.length) return Infinity;
    let m = 0;
    for (let i = 0; i < a.length; i++) {
        const d = Math.abs(a[i] - b[i]);
        if (Number.isNaN(d)) return NaN;
        if (d > m) m = d;
    }
    return m;
}
