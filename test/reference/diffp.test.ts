/**
 * Self-tests of the DiffFP reference (test/reference/diffp.ts) on constructed frames. Frames are built as u8 pixel
 * images, normalized and patchified with the spec §4 order, so the tests also prove that "merged token k" of the
 * reference is the (k / (gw/m), k % (gw/m)) block of 28×28 pixels. Expected distances use the spec §5 identity
 * d = 2 · Σ|Δu8| / 2352 (normalized = 2·u8/255 − 1), an independent formula.
 */
import { describe, expect, it } from "vitest";
import { referenceDiffFP } from "./diffp.js";
import { normalizePixelU8, patchify } from "./vision-encoder.js";
import { seededRandom } from "./tensor.js";

const p = 14, m = 2, C = 3;
const mh = 3, mw = 4; // merged grid per frame
const gh = mh * m, gw = mw * m; // patch grid
const H = gh * p, W = gw * p; // 84 × 112 pixels
const perToken = m * m * C * p * p; // 2352

/** u8 frame, (C, H, W) */
function randomU8(seed: number): Uint8Array {
    const rng = seededRandom(seed);
    const a = new Uint8Array(C * H * W);
    for (let i = 0; i < a.length; i++) a[i] = 20 + Math.floor(rng() * 200); // stay away from 0/255 so ±k never clips
    return a;
}
function toPatches(u8: Uint8Array): Float64Array {
    const f = new Float64Array(u8.length);
    for (let i = 0; i < u8.length; i++) f[i] = normalizePixelU8(u8[i]);
    return patchify(f, 1, C, H, W, p, m);
}
const idx = (c: number, y: number, x: number): number => (c * H + y) * W + x;

describe("DiffFP reference", () => {
    it("identical frames: first frame whole, later frames keep only the top-left token", () => {
        const f = toPatches(randomU8(1));
        const r = referenceDiffFP([f, f, f], gh, gw, m);
        expect(r.tokensPerFrame).toBe(12);
        expect(r.mask[0].every(Boolean)).toBe(true);
        for (const k of [1, 2]) {
            expect(r.mask[k][0]).toBe(true);
            expect(r.mask[k].slice(1).some(Boolean)).toBe(false);
            expect(Array.from(r.distances[k])).toEqual(new Array(12).fill(0));
        }
        expect(r.keptPerFrame).toEqual([12, 1, 1]);
        expect(r.kept).toBe(14);
        expect(r.total).toBe(36);
        expect(r.flatMask.length).toBe(36);
        expect(r.distances[0][5]).toBeCloseTo(1.1, 15); // sentinel threshold + 1
    });

    it("one changed 28×28 block → exactly that merged token is kept (raster index over the merged grid)", () => {
        const a = randomU8(2);
        const b = a.slice();
        const by = 2, bx = 1; // merged token 2·4 + 1 = 9
        for (let c = 0; c < C; c++) for (let y = by * 28; y < (by + 1) * 28; y++) for (let x = bx * 28; x < (bx + 1) * 28; x++) b[idx(c, y, x)] += 1;
        const r = referenceDiffFP([toPatches(a), toPatches(b)], gh, gw, m);
        expect(r.mask[1].map((v, k) => (v ? k : -1)).filter((k) => k >= 0)).toEqual([9]);
        // +1 grey level on all 2352 values: d = 2 · 2352 / 2352 = 2
        expect(r.distances[1][9]).toBeCloseTo(2, 12);
        expect(r.keptPerFrame).toEqual([12, 1]);
    });

    it("one changed pixel is attributed to the block that contains it; d = 2·Σ|Δu8|/2352", () => {
        const a = randomU8(3);
        const b = a.slice();
        const y = 70, x = 30; // block (2, 1) → token 9
        b[idx(0, y, x)] += 30; b[idx(1, y, x)] -= 20; b[idx(2, y, x)] += 25; // Σ|Δ| = 75 → d = 150/2352 ≈ 0.0638 < 0.1
        let r = referenceDiffFP([toPatches(a), toPatches(b)], gh, gw, m);
        expect(r.distances[1][9]).toBeCloseTo((2 * 75) / perToken, 13);
        expect(r.mask[1][9]).toBe(false); // below threshold → frame falls back to token 0
        expect(r.mask[1].map((v, k) => (v ? k : -1)).filter((k) => k >= 0)).toEqual([0]);
        // a bigger change at another pixel of a different block: y = 10, x = 100 → block (0, 3) → token 3
        const c2 = b.slice();
        c2[idx(1, 10, 100)] -= 60; // Σ|Δ| vs b = 60 → d = 120/2352 ≈ 0.051 → not kept
        c2[idx(2, 10, 101)] += 59; // Σ|Δ| = 119 → d = 238/2352 ≈ 0.1012 → kept
        r = referenceDiffFP([toPatches(a), toPatches(b), toPatches(c2)], gh, gw, m);
        expect(r.distances[2][3]).toBeCloseTo((2 * 119) / perToken, 13);
        expect(r.mask[2].map((v, k) => (v ? k : -1)).filter((k) => k >= 0)).toEqual([3]);
        // every other token of frame 2 has distance exactly 0 (unchanged vs frame 1)
        expect(r.distances[2].filter((d, k) => k !== 3 && d !== 0).length).toBe(0);
    });

    it("compares with the previous SAMPLED frame, not with the last kept version", () => {
        const a = randomU8(4);
        const b = a.slice(), c = a.slice();
        // token 0 (pixel block y, x < 28): b = a + 1 grey level on 56 values, c = a + 2 on the same values, so
        // Σ|b−a| = Σ|c−b| = 56 → d = 112/2352 ≈ 0.048, but Σ|c−a| = 112 → d = 224/2352 ≈ 0.095.
        for (let x = 0; x < 28; x++) { b[idx(0, 0, x)] += 1; c[idx(0, 0, x)] += 2; }
        for (let x = 0; x < 28; x++) { b[idx(1, 1, x)] += 1; c[idx(1, 1, x)] += 2; }
        // threshold 0.05 separates the two readings; minTokens 0 disables the fallback token
        const r = referenceDiffFP([toPatches(a), toPatches(b), toPatches(c)], gh, gw, m, 0.05, 0);
        expect(r.distances[1][0]).toBeCloseTo(112 / perToken, 13);
        expect(r.distances[2][0]).toBeCloseTo(112 / perToken, 13);
        expect(r.mask[1][0]).toBe(false);
        expect(r.mask[2][0]).toBe(false); // would be true if compared against frame 0 (0.095 > 0.05)
        expect(r.keptPerFrame).toEqual([12, 0, 0]); // minTokens 0 → empty frames allowed
    });

    it("a distance exactly equal to the threshold is NOT kept (strict >)", () => {
        const zero = new Float64Array(gh * gw * C * p * p);
        // dyadic case, exact in binary: every value of token 4 changes by 0.5 → mean 0.5 → d = 127.5 exactly
        const half = zero.slice();
        for (let i = 4 * perToken; i < 5 * perToken; i++) half[i] = 0.5;
        let r = referenceDiffFP([zero, half], gh, gw, m, 127.5, 1);
        expect(r.distances[1][4]).toBe(127.5);
        expect(r.mask[1][4]).toBe(false);
        r = referenceDiffFP([zero, half], gh, gw, m, 127.49, 1);
        expect(r.mask[1][4]).toBe(true);
        // default threshold 0.1: one value of token 7 changes by D where (D / 2352)·255 is the double 0.1
        let D = (0.1 * perToken) / 255;
        const dist = (v: number): number => (v / perToken) * 255;
        const ulp = 2 ** -53; // spacing of doubles in [0.5, 1), where D ≈ 0.922 lies
        for (let guard = 0; guard < 64 && dist(D) !== 0.1; guard++) D += dist(D) > 0.1 ? -ulp : ulp;
        expect(dist(D)).toBe(0.1);
        const edge = zero.slice();
        edge[7 * perToken + 100] = D;
        r = referenceDiffFP([zero, edge], gh, gw, m);
        expect(r.distances[1][7]).toBe(0.1);
        expect(r.mask[1][7]).toBe(false);
        expect(r.mask[1].map((v, k) => (v ? k : -1)).filter((k) => k >= 0)).toEqual([0]);
        // slightly larger → kept (and then the fallback token 0 is not added)
        const above = zero.slice();
        above[7 * perToken + 100] = D * (1 + 1e-12);
        r = referenceDiffFP([zero, above], gh, gw, m);
        expect(r.mask[1].map((v, k) => (v ? k : -1)).filter((k) => k >= 0)).toEqual([7]);
    });

    it("min_tokens follows Python: if fewer kept, the FIRST min_tokens are forced on in addition", () => {
        const a = toPatches(randomU8(5));
        const b = a.slice();
        for (let i = 5 * perToken; i < 6 * perToken; i++) b[i] += 0.01; // token 5: d = 2.55 → kept
        let r = referenceDiffFP([a, a], gh, gw, m, 0.1, 2);
        expect(r.mask[1].map((v, k) => (v ? k : -1)).filter((k) => k >= 0)).toEqual([0, 1]);
        r = referenceDiffFP([a, b], gh, gw, m, 0.1, 2);
        expect(r.mask[1].map((v, k) => (v ? k : -1)).filter((k) => k >= 0)).toEqual([0, 1, 5]); // 1 < 2 → 0,1 forced too
        r = referenceDiffFP([a, b], gh, gw, m, 0.1, 1);
        expect(r.mask[1].map((v, k) => (v ? k : -1)).filter((k) => k >= 0)).toEqual([5]);
        r = referenceDiffFP([a, a], gh, gw, m, 0.1, 100); // slice clamps at the frame size
        expect(r.keptPerFrame).toEqual([12, 12]);
    });

    it("a one-frame video keeps everything", () => {
        const r = referenceDiffFP([toPatches(randomU8(6))], gh, gw, m);
        expect(r.keptPerFrame).toEqual([12]);
        expect(r.total).toBe(12);
    });

    it("rejects inconsistent frames", () => {
        expect(() => referenceDiffFP([], gh, gw, m)).toThrow();
        expect(() => referenceDiffFP([new Float64Array(10), new Float64Array(11)], 1, 1, 1)).toThrow();
        expect(() => referenceDiffFP([new Float64Array(3 * 588)], 1, 3, 2)).toThrow();
    });
});
