/**
 * Self-tests of the float64 vision reference (test/reference/vision-encoder.ts). Each test compares against an
 * independent formulation (complex-number RoPE, fully masked attention, 2×2 block means, a raster-order
 * mini-implementation working on whole images with a literal convolution) or against hand-derived closed forms.
 */
import { describe, expect, it } from "vitest";
import {
    applyVisionRope,
    attentionWithinSegments,
    bilinearResize,
    mergeBlockToRaster,
    normalizePixelU8,
    patchify,
    randomVisionWeights,
    referenceVisionForward,
    ropeInvFreq,
    ropePositions,
    type VisionRefConfig,
    type VisionRefItem,
} from "./vision-encoder.js";
import { erf, maxAbsDiff, randomArray, seededRandom, weightLookupFromMap, type RefTensor } from "./tensor.js";

// ---------------------------------------------------------------------------------------------------------------------
// Patch order helpers (spec §4)
// ---------------------------------------------------------------------------------------------------------------------

describe("patch order", () => {
    it("patchify: rows in merge-block order, row layout (c, py, px) — checked against the spec's prose", () => {
        const t = 2, C = 3, p = 2, m = 2, gh = 4, gw = 6;
        const H = gh * p, W = gw * p;
        // value encodes its own coordinates
        const pix = new Float64Array(t * C * H * W);
        const code = (f: number, c: number, y: number, x: number): number => f * 1e6 + c * 1e4 + y * 100 + x;
        for (let f = 0; f < t; f++) for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++)
            pix[((f * C + c) * H + y) * W + x] = code(f, c, y, x);
        const rows = patchify(pix, t, C, H, W, p, m);
        const rowLen = C * p * p;
        expect(rows.length).toBe(t * gh * gw * rowLen);
        // "for each merge block (row-major over H/m × W/m) the m×m patches row-major"
        let r = 0;
        for (let f = 0; f < t; f++)
            for (let by = 0; by < gh / m; by++)
                for (let bx = 0; bx < gw / m; bx++)
                    for (let my = 0; my < m; my++)
                        for (let mx = 0; mx < m; mx++, r++) {
                            const py0 = (by * m + my) * p;
                            const px0 = (bx * m + mx) * p;
                            let i = 0;
                            for (let c = 0; c < C; c++) for (let py = 0; py < p; py++) for (let px = 0; px < p; px++, i++)
                                expect(rows[r * rowLen + i]).toBe(code(f, c, py0 + py, px0 + px));
                        }
    });

    it("patchify with merge 1 is plain raster order", () => {
        const C = 1, p = 1, H = 3, W = 5;
        const pix = new Float64Array(H * W).map((_, i) => i);
        expect(Array.from(patchify(pix, 1, C, H, W, p, 1))).toEqual(Array.from(pix));
    });

    it("ropePositions: (h, w) of each patch in merge-block order (and raster for merge 1)", () => {
        for (const m of [1, 2, 3]) {
            const gh = 2 * m, gw = 3 * m;
            const pos = ropePositions(gh, gw, m);
            let r = 0;
            for (let by = 0; by < gh / m; by++)
                for (let bx = 0; bx < gw / m; bx++)
                    for (let my = 0; my < m; my++)
                        for (let mx = 0; mx < m; mx++, r++) {
                            expect(pos.h[r]).toBe(by * m + my);
                            expect(pos.w[r]).toBe(bx * m + mx);
                        }
        }
        // tiny explicit example, m = 2, 2×4 grid
        const pos = ropePositions(2, 4, 2);
        expect(Array.from(pos.h)).toEqual([0, 0, 1, 1, 0, 0, 1, 1]);
        expect(Array.from(pos.w)).toEqual([0, 1, 0, 1, 2, 3, 2, 3]);
    });

    it("ropePositions agrees with patchify of a coordinate image (the two orders are the same)", () => {
        const gh = 6, gw = 8, m = 2;
        const yImg = new Float64Array(gh * gw), xImg = new Float64Array(gh * gw);
        for (let y = 0; y < gh; y++) for (let x = 0; x < gw; x++) { yImg[y * gw + x] = y; xImg[y * gw + x] = x; }
        const pos = ropePositions(gh, gw, m);
        expect(Array.from(patchify(yImg, 1, 1, gh, gw, 1, m))).toEqual(Array.from(pos.h));
        expect(Array.from(patchify(xImg, 1, 1, gh, gw, 1, m))).toEqual(Array.from(pos.w));
    });

    it("mergeBlockToRaster inverts patchify (per-row vectors of width dim)", () => {
        const gh = 4, gw = 6, m = 2, dim = 3;
        const rng = seededRandom(3);
        const raster = randomArray(rng, gh * gw * dim);
        // build merge-block rows by hand
        const rows = new Float64Array(gh * gw * dim);
        let r = 0;
        for (let by = 0; by < gh / m; by++) for (let bx = 0; bx < gw / m; bx++) for (let my = 0; my < m; my++) for (let mx = 0; mx < m; mx++, r++)
            for (let c = 0; c < dim; c++) rows[r * dim + c] = raster[((by * m + my) * gw + bx * m + mx) * dim + c];
        expect(Array.from(mergeBlockToRaster(rows, gh, gw, m, dim))).toEqual(Array.from(raster));
    });

    it("normalizePixelU8 maps 0 → −1, 255 → 1, 127.5 → 0", () => {
        expect(normalizePixelU8(0)).toBe(-1);
        expect(normalizePixelU8(255)).toBe(1);
        expect(normalizePixelU8(127.5)).toBe(0);
    });
});

// ---------------------------------------------------------------------------------------------------------------------
// 2D RoPE (spec §2)
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Independent complex-number formulation: pair j (0 ≤ j < head_dim/2) is the complex number x[j] + i·x[j + half],
 * multiplied by e^(iφ) with φ = pos · θ^(−(j mod quarter)/quarter), pos = h for j < quarter, w otherwise.
 * (This is also the ggml GGML_ROPE_TYPE_VISION picture: n_dims = head_dim/2 pairs (i, i + n_dims), theta_scale =
 * θ^(−2/n_dims), sections {quarter, quarter}, theta reset to the w position at sector `quarter`.)
 */
function ropeComplex(x: Float64Array, h: number, w: number, theta: number): Float64Array {
    const half = x.length / 2, quarter = half / 2;
    const out = new Float64Array(x.length);
    for (let j = 0; j < half; j++) {
        const pos = j < quarter ? h : w;
        const phi = pos * Math.pow(theta, -(j % quarter) / quarter);
        const re = x[j], im = x[j + half];
        out[j] = re * Math.cos(phi) - im * Math.sin(phi);
        out[j + half] = re * Math.sin(phi) + im * Math.cos(phi);
    }
    return out;
}

describe("2D RoPE", () => {
    it("inv_freq = θ^(−2j/(head_dim/2)); for head_dim 72 these are 18 powers of 10000^(−1/18)", () => {
        const inv = ropeInvFreq(72, 10000);
        expect(inv.length).toBe(18);
        for (let j = 0; j < 18; j++) expect(inv[j]).toBeCloseTo(Math.pow(10000, -j / 18), 15);
        expect(inv[0]).toBe(1);
    });

    it("matches the complex-number formulation (head_dim 16 and 72, random positions)", () => {
        const rng = seededRandom(11);
        for (const headDim of [4, 16, 72]) {
            const inv = ropeInvFreq(headDim, 10000);
            for (let trial = 0; trial < 20; trial++) {
                const x = randomArray(rng, headDim);
                const h = Math.floor(rng() * 60), w = Math.floor(rng() * 60);
                expect(maxAbsDiff(applyVisionRope(x, h, w, inv), ropeComplex(x, h, w, 10000))).toBeLessThan(1e-13);
            }
        }
    });

    it("is the identity at (0, 0), preserves norms and depends only on relative positions", () => {
        const rng = seededRandom(12);
        const inv = ropeInvFreq(16, 10000);
        const q = randomArray(rng, 16), k = randomArray(rng, 16);
        expect(Array.from(applyVisionRope(q, 0, 0, inv))).toEqual(Array.from(q));
        const norm = (v: Float64Array): number => Math.sqrt(v.reduce((a, b) => a + b * b, 0));
        expect(norm(applyVisionRope(q, 7, 3, inv))).toBeCloseTo(norm(q), 13);
        const dot = (a: Float64Array, b: Float64Array): number => a.reduce((s, v, i) => s + v * b[i], 0);
        const base = dot(applyVisionRope(q, 5, 2, inv), applyVisionRope(k, 1, 9, inv));
        const shifted = dot(applyVisionRope(q, 5 + 13, 2 + 4, inv), applyVisionRope(k, 1 + 13, 9 + 4, inv));
        expect(shifted).toBeCloseTo(base, 12);
        // but h and w are not interchangeable
        const swapped = dot(applyVisionRope(q, 2, 5, inv), applyVisionRope(k, 9, 1, inv));
        expect(Math.abs(swapped - base)).toBeGreaterThan(1e-6);
    });
});

// ---------------------------------------------------------------------------------------------------------------------
// Attention within items
// ---------------------------------------------------------------------------------------------------------------------

/** Full attention over all rows with an additive block mask (0 inside a segment, −∞ across). */
function maskedFullAttention(q: Float64Array, k: Float64Array, v: Float64Array, rows: number, heads: number, headDim: number, segment: number[]): Float64Array {
    const width = heads * headDim;
    const out = new Float64Array(rows * width);
    for (let hd = 0; hd < heads; hd++) {
        for (let i = 0; i < rows; i++) {
            const s: number[] = [];
            for (let j = 0; j < rows; j++) {
                let dot = 0;
                for (let d = 0; d < headDim; d++) dot += q[i * width + hd * headDim + d] * k[j * width + hd * headDim + d];
                s.push(dot / Math.sqrt(headDim) + (segment[i] === segment[j] ? 0 : -Infinity));
            }
            const e = s.map((x) => Math.exp(x)); // no max subtraction: values are small
            const z = e.reduce((a, b) => a + b, 0);
            for (let d = 0; d < headDim; d++) {
                let acc = 0;
                for (let j = 0; j < rows; j++) acc += (e[j] / z) * v[j * width + hd * headDim + d];
                out[i * width + hd * headDim + d] = acc;
            }
        }
    }
    return out;
}

describe("attention within items", () => {
    it("equals full attention with a block-diagonal −∞ mask", () => {
        const rng = seededRandom(21);
        const lengths = [2, 5, 1, 4];
        const rows = 12, heads = 2, headDim = 4, width = heads * headDim;
        const segment: number[] = [];
        lengths.forEach((len, s) => { for (let i = 0; i < len; i++) segment.push(s); });
        const q = randomArray(rng, rows * width), k = randomArray(rng, rows * width), v = randomArray(rng, rows * width);
        const got = attentionWithinSegments(q, k, v, rows, heads, headDim, lengths);
        expect(maxAbsDiff(got, maskedFullAttention(q, k, v, rows, heads, headDim, segment))).toBeLessThan(1e-14);
        // and it is NOT plain full attention (the mask matters)
        expect(maxAbsDiff(got, maskedFullAttention(q, k, v, rows, heads, headDim, new Array(rows).fill(0)))).toBeGreaterThan(1e-3);
        // a one-row segment attends only to itself → output = its own v
        const solo = 7;
        for (let c = 0; c < width; c++) expect(got[solo * width + c]).toBeCloseTo(v[solo * width + c], 15);
    });
});

// ---------------------------------------------------------------------------------------------------------------------
// Bilinear down-sample (spec §3)
// ---------------------------------------------------------------------------------------------------------------------

describe("bilinear down-sample", () => {
    const rng = seededRandom(31);
    it("factor 2 equals the mean of each 2×2 block (spec claim), random data", () => {
        const H = 6, W = 10, C = 5;
        const x = randomArray(rng, H * W * C);
        const got = bilinearResize(x, H, W, C, H / 2, W / 2);
        const mean = new Float64Array((H / 2) * (W / 2) * C);
        for (let oy = 0; oy < H / 2; oy++) for (let ox = 0; ox < W / 2; ox++) for (let c = 0; c < C; c++) {
            let s = 0;
            for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) s += x[((2 * oy + dy) * W + 2 * ox + dx) * C + c];
            mean[(oy * (W / 2) + ox) * C + c] = s / 4;
        }
        expect(maxAbsDiff(got, mean)).toBeLessThan(1e-15);
    });
    it("factor 1 is exactly the identity", () => {
        const x = randomArray(rng, 4 * 7 * 3);
        expect(Array.from(bilinearResize(x, 4, 7, 3, 4, 7))).toEqual(Array.from(x));
    });
    it("factor 3 picks the centre element, factor 4 averages the central 2×2 (not a block mean)", () => {
        const x = randomArray(rng, 6 * 9);
        const f3 = bilinearResize(x, 6, 9, 1, 2, 3);
        for (let oy = 0; oy < 2; oy++) for (let ox = 0; ox < 3; ox++) expect(f3[oy * 3 + ox]).toBe(x[(3 * oy + 1) * 9 + 3 * ox + 1]);
        const y = randomArray(rng, 8 * 8);
        const f4 = bilinearResize(y, 8, 8, 1, 2, 2);
        for (let oy = 0; oy < 2; oy++) for (let ox = 0; ox < 2; ox++) {
            const at = (r: number, c: number): number => y[r * 8 + c];
            const expected = (at(4 * oy + 1, 4 * ox + 1) + at(4 * oy + 1, 4 * ox + 2) + at(4 * oy + 2, 4 * ox + 1) + at(4 * oy + 2, 4 * ox + 2)) / 4;
            expect(f4[oy * 2 + ox]).toBeCloseTo(expected, 14);
        }
    });
    it("matches PyTorch's align_corners=False results for non-integer factors (1-D rows)", () => {
        // F.interpolate(arange(5), size=2, linear) = [0.75, 3.25]; [0, 1] → size 3 = [0, 0.5, 1] (edge clamping)
        expect(Array.from(bilinearResize(new Float64Array([0, 1, 2, 3, 4]), 1, 5, 1, 1, 2))).toEqual([0.75, 3.25]);
        const up = bilinearResize(new Float64Array([0, 1]), 1, 2, 1, 1, 3);
        expect(up[0]).toBe(0);
        expect(up[1]).toBeCloseTo(0.5, 15);
        expect(up[2]).toBeCloseTo(1, 15);
    });
});

// ---------------------------------------------------------------------------------------------------------------------
// Hand-derived 1-layer toy (closed form)
// ---------------------------------------------------------------------------------------------------------------------

describe("hand-computed toy model", () => {
    it("1 layer, hidden 4, 1 head, a 1×2-patch image: closed-form result", () => {
        // head_dim must be a multiple of 4 (RoPE uses head_dim/4 frequencies per axis), so hidden 4 ⇒ 1 head.
        // head_dim 4 → inv_freq = [1]: pairs (0,2) rotate by h, pairs (1,3) by w.
        // Patch size 1, 3 channels. Patch 0 = (1,0,0) at (h,w) = (0,0); patch 1 = (0,1,0) at (0,1).
        // Conv columns make the embeddings x0 = [1,−1,1,−1], x1 = [1,1,−1,−1] (mean 0, variance 1 → LayerNorm with
        // eps 0 and unit weight leaves them unchanged). q = k = v = LN1(x), out_proj = identity, MLP output = 0,
        // projector = identity → erf-GELU → identity.
        //
        // Rotations: q0 = k0 = x0 (angle 0). For x1, pair (1,3) = (1, −1) rotates by 1 rad:
        //   k1 = [1, cos1 + sin1, −1, sin1 − cos1].
        // Scores (scale 1/2): s00 = |x0|²/2 = 2, s11 = |k1|²/2 = 2, s01 = s10 = (x0·k1)/2 = −sin 1.
        // Softmax: a = e²/(e² + e^(−sin 1)) on the diagonal, 1 − a off it.
        // h0 = x0 + a·x0 + (1−a)·x1 = [2, −2a, 2a, −2];  h1 = x1 + (1−a)·x0 + a·x1 = [2, 2a, −2a, −2].
        // Both have mean 0 and variance 2 + 2a² → post_layernorm divides by sqrt(2 + 2a²).
        const x0 = [1, -1, 1, -1], x1 = [1, 1, -1, -1];
        const eye = (n: number): Float64Array => { const a = new Float64Array(n * n); for (let i = 0; i < n; i++) a[i * n + i] = 1; return a; };
        const z = (n: number): Float64Array => new Float64Array(n);
        const ones = (n: number): Float64Array => new Float64Array(n).fill(1);
        const conv = new Float64Array(4 * 3);
        for (let o = 0; o < 4; o++) { conv[o * 3 + 0] = x0[o]; conv[o * 3 + 1] = x1[o]; }
        const vp = "model.vision_encoder.", lp = `${vp}encoder.layers.0.`, pp = "model.mm_projector.";
        const w = new Map<string, RefTensor>([
            [`${vp}embeddings.patch_embedding.weight`, { data: conv, shape: [4, 3, 1, 1] }],
            [`${vp}embeddings.patch_embedding.bias`, { data: z(4), shape: [4] }],
            [`${lp}layer_norm1.weight`, { data: ones(4), shape: [4] }],
            [`${lp}layer_norm1.bias`, { data: z(4), shape: [4] }],
            [`${lp}layer_norm2.weight`, { data: ones(4), shape: [4] }],
            [`${lp}layer_norm2.bias`, { data: z(4), shape: [4] }],
            [`${lp}mlp.fc1.weight`, { data: z(4), shape: [1, 4] }],
            [`${lp}mlp.fc1.bias`, { data: z(1), shape: [1] }],
            [`${lp}mlp.fc2.weight`, { data: z(4), shape: [4, 1] }],
            [`${lp}mlp.fc2.bias`, { data: z(4), shape: [4] }],
            [`${vp}post_layernorm.weight`, { data: ones(4), shape: [4] }],
            [`${vp}post_layernorm.bias`, { data: z(4), shape: [4] }],
            [`${pp}readout.0.weight`, { data: eye(4), shape: [4, 4] }],
            [`${pp}readout.0.bias`, { data: z(4), shape: [4] }],
            [`${pp}readout.2.weight`, { data: eye(4), shape: [4, 4] }],
            [`${pp}readout.2.bias`, { data: z(4), shape: [4] }],
        ]);
        for (const proj of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
            w.set(`${lp}self_attn.${proj}.weight`, { data: eye(4), shape: [4, 4] });
            w.set(`${lp}self_attn.${proj}.bias`, { data: z(4), shape: [4] });
        }
        const cfg: VisionRefConfig = { hidden: 4, heads: 1, layers: 1, eps: 0, ropeTheta: 10000, patchSize: 1 };
        const item: VisionRefItem = { patches: new Float64Array([1, 0, 0, 0, 1, 0]), gridHeight: 1, gridWidth: 2, mergeSize: 1 };
        const res = referenceVisionForward(weightLookupFromMap(w), item, cfg, { keepIntermediates: true });

        const a = Math.exp(2) / (Math.exp(2) + Math.exp(-Math.sin(1)));
        const s = Math.sqrt(2 + 2 * a * a);
        const gelu = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2));
        const expected = [[2, -2 * a, 2 * a, -2], [2, 2 * a, -2 * a, -2]].flat().map((v) => gelu(v / s));
        const out = res.items[0];
        expect(out.nTokens).toBe(2);
        expect(out.gridHeight).toBe(1);
        expect(out.gridWidth).toBe(2);
        expect(maxAbsDiff(out.tokens, expected)).toBeLessThan(1e-14);
        // intermediates: embedding = [x0; x1], layer output = [h0; h1]
        expect(Array.from(res.intermediates!.patchEmbed)).toEqual([...x0, ...x1]);
        expect(maxAbsDiff(res.intermediates!.layers[0], [2, -2 * a, 2 * a, -2, 2, 2 * a, -2 * a, -2])).toBeLessThan(1e-14);
    });
});

// ---------------------------------------------------------------------------------------------------------------------
// Independent raster-order mini-implementation on whole images
// ---------------------------------------------------------------------------------------------------------------------

interface MiniImage {
    /** normalized pixels, (C, H, W) */
    pixels: Float64Array;
    gridHeight: number;
    gridWidth: number;
    mergeSize: number;
}

/**
 * A second implementation written differently on purpose: tokens in RASTER order with their (y, x) carried along,
 * patch embedding as a literal strided convolution over the whole image, number[][] matrices, complex RoPE,
 * one full attention over all tokens of all items with a −∞ block mask, E[x²]−E[x]² LayerNorm, and the down-sample as
 * an explicit 2×2 block mean (merge 2) or identity (merge 1).
 */
function miniForward(W: Map<string, RefTensor>, images: MiniImage[], cfg: VisionRefConfig): number[][][] {
    const C = cfg.channels ?? 3, p = cfg.patchSize, D = cfg.hidden, heads = cfg.heads, hd = D / heads;
    const T = (n: string): RefTensor => { const t = W.get(n); if (!t) throw new Error(n); return t; };
    const lin = (X: number[][], name: string): number[][] => {
        const w = T(`${name}.weight`), b = T(`${name}.bias`).data;
        const [out, inn] = w.shape;
        return X.map((row) => { const y: number[] = []; for (let o = 0; o < out; o++) { let s = b[o]; for (let i = 0; i < inn; i++) s += w.data[o * inn + i] * row[i]; y.push(s); } return y; });
    };
    const ln = (X: number[][], name: string): number[][] => {
        const g = T(`${name}.weight`).data, b = T(`${name}.bias`).data;
        return X.map((row) => {
            const mu = row.reduce((a, v) => a + v, 0) / row.length;
            const ex2 = row.reduce((a, v) => a + v * v, 0) / row.length;
            const sd = Math.sqrt(ex2 - mu * mu + cfg.eps);
            return row.map((v, i) => ((v - mu) / sd) * g[i] + b[i]);
        });
    };
    // tokens (raster inside each image)
    const item: number[] = [], ys: number[] = [], xs: number[] = [];
    let X: number[][] = [];
    const convW = T("model.vision_encoder.embeddings.patch_embedding.weight").data, convB = T("model.vision_encoder.embeddings.patch_embedding.bias").data;
    images.forEach((img, ii) => {
        const Hpx = img.gridHeight * p, Wpx = img.gridWidth * p;
        for (let y = 0; y < img.gridHeight; y++) for (let x = 0; x < img.gridWidth; x++) {
            const e: number[] = [];
            for (let o = 0; o < D; o++) {
                let s = convB[o];
                for (let c = 0; c < C; c++) for (let ky = 0; ky < p; ky++) for (let kx = 0; kx < p; kx++)
                    s += convW[((o * C + c) * p + ky) * p + kx] * img.pixels[(c * Hpx + y * p + ky) * Wpx + x * p + kx];
                e.push(s);
            }
            X.push(e); item.push(ii); ys.push(y); xs.push(x);
        }
    });
    const rope = (v: number[], y: number, x: number): number[] => {
        const half = v.length / 2, quarter = half / 2, out = v.slice();
        for (let j = 0; j < half; j++) {
            const phi = (j < quarter ? y : x) * Math.pow(cfg.ropeTheta, -(j % quarter) / quarter);
            out[j] = v[j] * Math.cos(phi) - v[j + half] * Math.sin(phi);
            out[j + half] = v[j] * Math.sin(phi) + v[j + half] * Math.cos(phi);
        }
        return out;
    };
    const N = X.length;
    for (let l = 0; l < cfg.layers; l++) {
        const pre = `model.vision_encoder.encoder.layers.${l}`;
        const a = ln(X, `${pre}.layer_norm1`);
        const q = lin(a, `${pre}.self_attn.q_proj`), k = lin(a, `${pre}.self_attn.k_proj`), v = lin(a, `${pre}.self_attn.v_proj`);
        const qr = q.map((row, i) => { const r: number[] = []; for (let h = 0; h < heads; h++) r.push(...rope(row.slice(h * hd, (h + 1) * hd), ys[i], xs[i])); return r; });
        const kr = k.map((row, i) => { const r: number[] = []; for (let h = 0; h < heads; h++) r.push(...rope(row.slice(h * hd, (h + 1) * hd), ys[i], xs[i])); return r; });
        const att: number[][] = X.map(() => new Array<number>(D).fill(0));
        for (let h = 0; h < heads; h++) for (let i = 0; i < N; i++) {
            const sc: number[] = [];
            for (let j = 0; j < N; j++) {
                let s = 0;
                for (let d = 0; d < hd; d++) s += qr[i][h * hd + d] * kr[j][h * hd + d];
                sc.push(item[i] === item[j] ? s / Math.sqrt(hd) : -Infinity);
            }
            const mx = Math.max(...sc);
            const e = sc.map((s) => Math.exp(s - mx));
            const zsum = e.reduce((u, w2) => u + w2, 0);
            for (let d = 0; d < hd; d++) { let s = 0; for (let j = 0; j < N; j++) s += e[j] * v[j][h * hd + d]; att[i][h * hd + d] = s / zsum; }
        }
        const o = lin(att, `${pre}.self_attn.out_proj`);
        X = X.map((row, i) => row.map((val, c) => val + o[i][c]));
        const b = ln(X, `${pre}.layer_norm2`);
        const f = lin(lin(b, `${pre}.mlp.fc1`).map((row) => row.map((u) => 0.5 * u * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (u + 0.044715 * u ** 3))))), `${pre}.mlp.fc2`);
        X = X.map((row, i) => row.map((val, c) => val + f[i][c]));
    }
    X = ln(X, "model.vision_encoder.post_layernorm");
    const results: number[][][] = [];
    images.forEach((img, ii) => {
        const grid = new Map<string, number[]>();
        for (let i = 0; i < N; i++) if (item[i] === ii) grid.set(`${ys[i]},${xs[i]}`, X[i]);
        const m = img.mergeSize;
        const merged: number[][] = [];
        for (let oy = 0; oy < img.gridHeight / m; oy++) for (let ox = 0; ox < img.gridWidth / m; ox++) {
            const acc = new Array<number>(D).fill(0);
            for (let dy = 0; dy < m; dy++) for (let dx = 0; dx < m; dx++) grid.get(`${oy * m + dy},${ox * m + dx}`)!.forEach((u, c) => { acc[c] += u / (m * m); });
            merged.push(acc);
        }
        const g = lin(merged, "model.mm_projector.readout.0").map((row) => row.map((u) => 0.5 * u * (1 + erf(u / Math.SQRT2))));
        results.push(lin(g, "model.mm_projector.readout.2"));
    });
    return results;
}

function randomImage(rng: () => number, C: number, H: number, W: number): Float64Array {
    const px = new Float64Array(C * H * W);
    for (let i = 0; i < px.length; i++) px[i] = normalizePixelU8(Math.floor(rng() * 256));
    return px;
}

describe("full forward vs independent mini-implementation", () => {
    const cfg: VisionRefConfig = { hidden: 16, heads: 2, layers: 2, eps: 1e-6, ropeTheta: 10000, patchSize: 3 };
    const weights = randomVisionWeights(cfg, 24, 20, 1234);
    const lookup = weightLookupFromMap(weights);
    const rng = seededRandom(99);
    const C = 3, p = cfg.patchSize;

    it("image (merge 1) + 3 video frames (merge 2) in one call: identical tokens", () => {
        const image: MiniImage = { pixels: randomImage(rng, C, 3 * p, 5 * p), gridHeight: 3, gridWidth: 5, mergeSize: 1 };
        const frames: MiniImage[] = [0, 1, 2].map(() => ({ pixels: randomImage(rng, C, 4 * p, 6 * p), gridHeight: 4, gridWidth: 6, mergeSize: 2 }));
        const all = [image, ...frames];
        const items: VisionRefItem[] = all.map((im) => ({
            patches: patchify(im.pixels, 1, C, im.gridHeight * p, im.gridWidth * p, p, im.mergeSize),
            gridHeight: im.gridHeight, gridWidth: im.gridWidth, mergeSize: im.mergeSize,
        }));
        const ref = referenceVisionForward(lookup, items, cfg);
        const mini = miniForward(weights, all, cfg);
        expect(ref.items.map((r) => r.nTokens)).toEqual([15, 6, 6, 6]);
        expect(ref.items[1].gridHeight).toBe(2);
        expect(ref.items[1].gridWidth).toBe(3);
        for (let i = 0; i < all.length; i++) {
            expect(ref.items[i].projDim).toBe(20);
            expect(maxAbsDiff(ref.items[i].tokens, mini[i].flat())).toBeLessThan(1e-11);
        }
        // sanity: outputs are not trivially small/degenerate
        expect(Math.max(...ref.items[0].tokens.map(Math.abs))).toBeGreaterThan(0.1);
    });

    it("items are independent: a batch equals each item run alone; frames of a video can be batched or not", () => {
        const a: VisionRefItem = { patches: patchify(randomImage(rng, C, 2 * p, 4 * p), 1, C, 2 * p, 4 * p, p, 2), gridHeight: 2, gridWidth: 4, mergeSize: 2 };
        const b: VisionRefItem = { patches: patchify(randomImage(rng, C, 2 * p, 4 * p), 1, C, 2 * p, 4 * p, p, 2), gridHeight: 2, gridWidth: 4, mergeSize: 2 };
        const both = referenceVisionForward(lookup, [a, b], cfg);
        const onlyA = referenceVisionForward(lookup, [a], cfg);
        const onlyB = referenceVisionForward(lookup, b, cfg);
        expect(maxAbsDiff(both.items[0].tokens, onlyA.items[0].tokens)).toBeLessThan(1e-15);
        expect(maxAbsDiff(both.items[1].tokens, onlyB.items[0].tokens)).toBeLessThan(1e-15);
        expect(maxAbsDiff(onlyA.items[0].tokens, onlyB.items[0].tokens)).toBeGreaterThan(1e-3);
    });

    it("a mis-ordered input (raster rows given as merge-block rows) is detected", () => {
        const im: MiniImage = { pixels: randomImage(rng, C, 4 * p, 4 * p), gridHeight: 4, gridWidth: 4, mergeSize: 2 };
        const wrong: VisionRefItem = { patches: patchify(im.pixels, 1, C, 4 * p, 4 * p, p, 1), gridHeight: 4, gridWidth: 4, mergeSize: 2 };
        const ref = referenceVisionForward(lookup, wrong, cfg);
        expect(maxAbsDiff(ref.items[0].tokens, miniForward(weights, [im], cfg)[0].flat())).toBeGreaterThan(1e-4);
    });

    it("skipProjector returns the merged encoder output; intermediates have the documented sizes", () => {
        const it0: VisionRefItem = { patches: patchify(randomImage(rng, C, 2 * p, 2 * p), 1, C, 2 * p, 2 * p, p, 2), gridHeight: 2, gridWidth: 2, mergeSize: 2 };
        const full = referenceVisionForward(lookup, it0, cfg, { keepIntermediates: true });
        const noProj = referenceVisionForward(lookup, it0, cfg, { skipProjector: true });
        expect(noProj.items[0].projDim).toBe(16);
        expect(Array.from(noProj.items[0].tokens)).toEqual(Array.from(full.items[0].merged));
        const im = full.intermediates!;
        expect(im.rows).toBe(4);
        expect(im.itemRowOffsets).toEqual([0, 4]);
        expect(im.layers.length).toBe(2);
        expect(im.patchEmbed.length).toBe(4 * 16);
        // merged = mean of the 4 post-layernorm rows (one 2×2 block)
        for (let c = 0; c < 16; c++) {
            const mean = (im.postLayerNorm[c] + im.postLayerNorm[16 + c] + im.postLayerNorm[32 + c] + im.postLayerNorm[48 + c]) / 4;
            expect(full.items[0].merged[c]).toBeCloseTo(mean, 14);
        }
    });

    it("rejects inconsistent inputs", () => {
        expect(() => referenceVisionForward(lookup, { patches: new Float64Array(5), gridHeight: 1, gridWidth: 1, mergeSize: 1 }, cfg)).toThrow();
        expect(() => referenceVisionForward(lookup, { patches: new Float64Array(3 * 27), gridHeight: 1, gridWidth: 3, mergeSize: 2 }, cfg)).toThrow();
        expect(() => referenceVisionForward(lookup, [], cfg)).toThrow();
        expect(() => referenceVisionForward(weightLookupFromMap(new Map()), { patches: new Float64Array(27), gridHeight: 1, gridWidth: 1, mergeSize: 1 }, cfg)).toThrow(/missing weight/);
    });
});

describe("timing", () => {
    it("tiny model (hidden 32, 2 layers, 2 heads, patch 14) on a 32×32-patch image runs in a couple of seconds", () => {
        const cfg: VisionRefConfig = { hidden: 32, heads: 2, layers: 2, eps: 1e-6, ropeTheta: 10000, patchSize: 14 };
        const lookup = weightLookupFromMap(randomVisionWeights(cfg, 64, 48, 5));
        const rng = seededRandom(6);
        const px = randomImage(rng, 3, 32 * 14, 32 * 14);
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        const res = referenceVisionForward(lookup, { patches: patchify(px, 1, 3, 448, 448, 14, 1), gridHeight: 32, gridWidth: 32, mergeSize: 1 }, cfg);
        const cpu = process.cpuUsage(c0);
        const cpuMs = (cpu.user + cpu.system) / 1000;
        const wallMs = performance.now() - t0;
        console.log(`reference vision forward, 1024 patches, hidden 32, 2 layers: ${wallMs.toFixed(0)} ms wall, ${cpuMs.toFixed(0)} ms CPU`);
        expect(res.items[0].nTokens).toBe(1024);
        expect(res.items[0].tokens.every(Number.isFinite)).toBe(true);
        // CPU time (not wall time) so that a loaded 2-core machine does not make this flaky; ≈1.5–2.5 s measured.
        expect(cpuMs).toBeLessThan(10_000);
    });
});
