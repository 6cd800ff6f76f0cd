/**
 * Self-tests of the float64 helpers: erf / GELU against tabulated values, Linear / LayerNorm against hand-computed
 * values, and the generic permute against hand-written index loops.
 */
import { describe, expect, it } from "vitest";
import { bf16BitsToNumber, erf, geluErf, geluTanh, layerNorm, linear, permute, seededRandom, randomArray } from "./tensor.js";

describe("erf", () => {
    // Tabulated values (Abramowitz & Stegun table 7.1 / any math library): erf and erfc = 1 − erf.
    const table: Array<[number, number]> = [
        [0, 0],
        [0.1, 0.1124629160182849],
        [0.5, 0.5204998778130465],
        [1, 0.8427007929497149],
        [1.5, 0.9661051464753108],
        [2, 0.9953222650189527],
        [2.5, 0.999593047982555],
        [3, 0.9999779095030014],
        [3.5, 0.9999992569016276],
        [4, 0.9999999845827421],
        [5, 0.9999999999984626],
    ];
    it("matches tabulated values to ~1e-15, and is odd", () => {
        for (const [x, v] of table) {
            expect(Math.abs(erf(x) - v)).toBeLessThan(2e-15);
            expect(Math.abs(erf(-x) + v)).toBeLessThan(2e-15);
        }
        expect(erf(-3)).toBeCloseTo(-0.9999779095030014, 15);
        expect(erf(10)).toBe(1);
        expect(erf(-40)).toBe(-1);
    });
    it("has a relatively accurate tail: 1 − erf(x) = erfc(x)", () => {
        // erfc(4) = 1.541725790028002e-8, erfc(5) = 1.5374597944280351e-12 (tabulated)
        expect(Math.abs((1 - erf(4)) / 1.541725790028002e-8 - 1)).toBeLessThan(1e-7);
        expect(Math.abs((1 - erf(5)) / 1.5374597944280351e-12 - 1)).toBeLessThan(1e-3);
    });
    it("is continuous across the series / continued-fraction switch at 3", () => {
        const below = erf(3 - 1e-12);
        const above = erf(3 + 1e-12);
        // derivative 2/√π·e^(−9) ≈ 1.39e-4, so the true jump over 2e-12 is ~3e-16
        expect(Math.abs(above - below)).toBeLessThan(2e-15);
    });
    it("matches small-x Taylor expansion 2/√π (x − x³/3)", () => {
        const x = 1e-4;
        expect(Math.abs(erf(x) - (2 / Math.sqrt(Math.PI)) * (x - (x * x * x) / 3))).toBeLessThan(1e-19);
    });
});

describe("GELU", () => {
    // Values of x·Φ(x) (exact) and of the tanh approximation, from their definitions evaluated independently.
    const exact: Array<[number, number]> = [
        [-3, -0.00404969409489031],
        [-1, -0.15865525393145707],
        [-0.5, -0.15426876936299344],
        [0, 0],
        [0.5, 0.34573123063700656],
        [1, 0.8413447460685429],
        [2, 1.9544997361036416],
        [3, 2.99595030590511],
    ];
    const tanhApprox: Array<[number, number]> = [
        [-3, -0.0036373920817729943],
        [-1, -0.15880800939172324],
        [-0.5, -0.15428599017485606],
        [0, 0],
        [0.5, 0.34571400982514394],
        [1, 0.8411919906082768],
        [2, 1.954597694087775],
        [3, 2.996362607918227],
    ];
    it("erf form matches x·Φ(x)", () => {
        for (const [x, v] of exact) expect(Math.abs(geluErf(x) - v)).toBeLessThan(1e-15);
    });
    it("tanh form matches gelu_pytorch_tanh", () => {
        for (const [x, v] of tanhApprox) expect(Math.abs(geluTanh(x) - v)).toBeLessThan(1e-15);
    });
    it("the two forms really differ (so a swap would be caught)", () => {
        expect(Math.abs(geluErf(1) - geluTanh(1))).toBeGreaterThan(1e-4);
        expect(Math.abs(geluErf(-3) - geluTanh(-3))).toBeGreaterThan(1e-4);
    });
});

describe("linear / layerNorm", () => {
    it("linear uses the PyTorch [out, in] layout and adds the bias", () => {
        // x = [[1, 2, 3]], W = [[1, 0, 0], [0, 1, 1]], b = [10, 20] → [1 + 10, 2 + 3 + 20]
        const y = linear(new Float64Array([1, 2, 3]), 1, 3, new Float64Array([1, 0, 0, 0, 1, 1]), new Float64Array([10, 20]), 2);
        expect(Array.from(y)).toEqual([11, 25]);
    });
    it("layerNorm uses the biased variance and eps inside the sqrt", () => {
        // x = [1, 2, 3, 4]: mean 2.5, biased var 1.25 → (x − 2.5)/sqrt(1.25 + eps)
        const eps = 0.75; // var + eps = 2 → divide by √2
        const y = layerNorm(new Float64Array([1, 2, 3, 4]), 1, 4, new Float64Array([1, 1, 2, 1]), new Float64Array([0, 0, 0, 5]), eps);
        const s = Math.SQRT2;
        const expected = [-1.5 / s, -0.5 / s, (2 * 0.5) / s, 1.5 / s + 5];
        for (let i = 0; i < 4; i++) expect(y[i]).toBeCloseTo(expected[i], 15);
    });
});

describe("permute", () => {
    it("equals a hand-written 4-D transpose loop", () => {
        const shape = [2, 3, 4, 5];
        const rng = seededRandom(7);
        const data = randomArray(rng, 120);
        const { data: out, shape: outShape } = permute(data, shape, [2, 0, 3, 1]);
        expect(outShape).toEqual([4, 2, 5, 3]);
        for (let a = 0; a < 2; a++)
            for (let b = 0; b < 3; b++)
                for (let c = 0; c < 4; c++)
                    for (let d = 0; d < 5; d++) {
                        // out[c][a][d][b] = in[a][b][c][d]
                        expect(out[((c * 2 + a) * 5 + d) * 3 + b]).toBe(data[((a * 3 + b) * 4 + c) * 5 + d]);
                    }
    });
    it("rejects invalid permutations", () => {
        expect(() => permute(new Float64Array(6), [2, 3], [0, 0])).toThrow();
    });
});

describe("bf16", () => {
    it("decodes known bit patterns", () => {
        expect(bf16BitsToNumber(0x3f80)).toBe(1);
        expect(bf16BitsToNumber(0xc000)).toBe(-2);
        expect(bf16BitsToNumber(0x3e80)).toBe(0.25);
        expect(bf16BitsToNumber(0x3fc0)).toBe(1.5);
    });
});
