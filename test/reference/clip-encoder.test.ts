// Checks of the CLIP reference's own helpers (test/reference/clip-encoder.ts) on hand-computed values, so that the
// encoder tests compare against something known to be right.
import { describe, expect, it } from "vitest";
import { centerCrop, clipPatchRows, f16BitsToNumber, quickGelu, resizeOutputSize } from "./clip-encoder.js";
import { f32ToF16Bits } from "../fixtures/tiny-qwen2.js";

describe("CLIP reference helpers", () => {
    it("quick_gelu is x·sigmoid(1.702x)", () => {
        expect(quickGelu(0)).toBe(0);
        expect(quickGelu(1)).toBeCloseTo(1 / (1 + Math.exp(-1.702)), 15);
        expect(quickGelu(-1)).toBeCloseTo(-1 / (1 + Math.exp(1.702)), 15);
        expect(quickGelu(20)).toBeCloseTo(20, 12);
        expect(quickGelu(-20)).toBeCloseTo(0, 12);
    });

    it("f16 decoding inverts the fixture's encoding", () => {
        expect(f16BitsToNumber(0x3c00)).toBe(1);
        expect(f16BitsToNumber(0xc000)).toBe(-2);
        expect(f16BitsToNumber(0x7bff)).toBe(65504);
        expect(f16BitsToNumber(0x0001)).toBe(2 ** -24);
        expect(f16BitsToNumber(0x7c00)).toBe(Infinity);
        for (const v of [0.1, -0.3333, 1e-5, 123.456, -7e-7]) {
            const back = f16BitsToNumber(f32ToF16Bits(v));
            expect(Math.abs(back - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 2 ** -25);
        }
    });

    it("shortest-edge resize sizes", () => {
        expect(resizeOutputSize(640, 480, 224)).toEqual({ width: 298, height: 224 });
        expect(resizeOutputSize(480, 640, 224)).toEqual({ width: 224, height: 298 });
        expect(resizeOutputSize(300, 300, 224)).toEqual({ width: 224, height: 224 });
    });

    it("center crop inside the picture and with zero padding", () => {
        // 4×3 picture, pixel value = 10·y + x in every channel
        const rgb = new Uint8Array(4 * 3 * 3);
        for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) rgb.fill(10 * y + x + 1, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
        const inside = centerCrop(rgb, 4, 3, 1, 2); // top (3 − 1) // 2 = 1, left (4 − 2) // 2 = 1
        expect(Array.from(inside.data.filter((_, i) => i % 3 === 0))).toEqual([12, 13]);
        // 5×5 of a 4×3 picture: top_pad ceil(2/2) = 1, left_pad ceil(1/2) = 1
        const padded = centerCrop(rgb, 4, 3, 5, 5);
        expect(padded.width).toBe(5);
        expect(padded.height).toBe(5);
        const r = Array.from(padded.data.filter((_, i) => i % 3 === 0));
        expect(r).toEqual([0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 11, 12, 13, 14, 0, 21, 22, 23, 24, 0, 0, 0, 0, 0]);
    });

    it("patch rows are (c, py, px) of raster-ordered patches", () => {
        // 3 channels of a 4×4 picture, patch 2: value = 100·c + 10·y + x
        const pv = new Float64Array(3 * 16);
        for (let c = 0; c < 3; c++) for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) pv[(c * 4 + y) * 4 + x] = 100 * c + 10 * y + x;
        const rows = clipPatchRows(pv, 4, 2);
        // patch 1 = top right: rows y 0-1, columns x 2-3
        expect(Array.from(rows.subarray(12, 24))).toEqual([2, 3, 12, 13, 102, 103, 112, 113, 202, 203, 212, 213]);
    });
});
