import { describe, expect, it } from "vitest";
import { Random } from "../fixtures/random.js";

/** Reference mulberry32 (the widely published one-liner), independent of the class under test. */
function mulberry32(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) | 0;
        let t = Math.imul(a ^ (a >>> 15), 1 | a);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

describe("fixture PRNG", () => {
    it("is mulberry32", () => {
        for (const seed of [0, 1, 42, 0xdeadbeef]) {
            const ref = mulberry32(seed);
            const r = new Random(seed);
            for (let i = 0; i < 1000; i++) expect(r.uniform()).toBe(ref());
        }
    });

    it("is deterministic and has the right moments", () => {
        const a = new Random(5).fillNormal(new Float64Array(200_000));
        const b = new Random(5).fillNormal(new Float64Array(200_000));
        expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
        const mean = a.reduce((s, x) => s + x, 0) / a.length;
        const variance = a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length;
        expect(Math.abs(mean)).toBeLessThan(0.01);
        expect(Math.abs(variance - 1)).toBeLessThan(0.02);
        const u = new Random(6);
        let sum = 0;
        for (let i = 0; i < 100_000; i++) sum += u.uniform();
        expect(Math.abs(sum / 100_000 - 0.5)).toBeLessThan(0.01);
        expect(new Random(7).bytes(7)).toHaveLength(7);
    });
});
