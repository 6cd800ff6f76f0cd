/**
 * Pillow-compatible bicubic resize (native/preprocess/resize.cpp, through the resizeRgb binding) against
 * - an independent TypeScript statement of Pillow's algorithm (test/reference/pillow-resize.ts): its fixed-point mode
 *   must agree bit for bit, its float64 mode within ±1 grey level;
 * - real Pillow (`Image.resize(size, Image.BICUBIC)`) run by the system Python, when it has PIL: bit for bit.
 * Also the SIMD and portable kernels against each other, concurrency, and speed.
 */
import { describe, expect, it } from "vitest";
import { native } from "../../lib/native/load.js";
import { hasPil, noiseImage, pil, pilInfo, smoothImage, type Pixels } from "../fixtures/images.js";
import { Random } from "../fixtures/random.js";
import { pillowBicubicResize } from "../reference/pillow-resize.js";
import { compareBytes } from "../fixtures/images.js";

const addon = native();

// [width, height, newWidth, newHeight]: odd sizes, down- and up-scaling, non-uniform ratios, one axis only,
// identity, single pixels, extreme ratios, the spec's preprocessing sizes.
const CASES: [number, number, number, number][] = [
    [64, 48, 31, 17],
    [64, 48, 130, 99],
    [37, 53, 37, 20],
    [37, 53, 11, 53],
    [37, 53, 37, 53],
    [1, 1, 5, 3],
    [5, 3, 1, 1],
    [2, 2, 1, 1],
    [101, 67, 14, 28],
    [200, 150, 199, 151],
    [7, 300, 300, 7],
    [333, 222, 111, 444],
    [3, 97, 2, 250],
    [640, 480, 644, 476],
    [100, 100, 98, 98],
    [320, 180, 84, 56],
    [257, 129, 28, 14],
    [45, 1, 90, 3],
];

function image(rng: Random, i: number, w: number, h: number): Pixels {
    return i % 2 === 0 ? noiseImage(rng, w, h) : smoothImage(w, h, i * 13);
}

describe("resizeRgb vs the TypeScript reference of Pillow's algorithm", () => {
    it.each(CASES.map((c, i) => [i, ...c]))("case %i: %i x %i -> %i x %i", async (i, w, h, nw, nh) => {
        const rng = new Random(100 + i);
        const src = image(rng, i, w, h);
        const ours = await addon.resizeRgb(src.data, w, h, nw, nh);
        const portable = await addon.resizeRgb(src.data, w, h, nw, nh, { portable: true });
        expect(ours.length).toBe(nw * nh * 3);
        expect(Buffer.from(portable).equals(Buffer.from(ours))).toBe(true);
        const fixed = pillowBicubicResize(src.data, w, h, nw, nh, 3, "fixed");
        expect(compareBytes(ours, fixed).maxDiff).toBe(0);
        // float64 weights: ±1 per pass; a ±1 difference in the 8-bit intermediate can reach ±2 after the second
        // pass (the cubic's weights sum to 1 but their absolute values to more).
        const float = compareBytes(ours, pillowBicubicResize(src.data, w, h, nw, nh, 3, "float"));
        expect(float.maxDiff).toBeLessThanOrEqual(w !== nw && h !== nh ? 2 : 1);
        expect(float.meanDiff).toBeLessThan(0.05);
    });

    // A window of the resized picture (the shortest-edge resize + centre crop of CLIP models) must equal cutting it
    // from the whole resized picture, bit for bit, with zeros where it reaches outside; both kernels.
    it.each(CASES.map((c, i) => [i, ...c]))("window of case %i: %i x %i -> %i x %i equals the cut of the whole", async (i, w, h, nw, nh) => {
        const rng = new Random(300 + i);
        const src = image(rng, i, w, h);
        const whole = await addon.resizeRgb(src.data, w, h, nw, nh);
        const windows = [
            { left: Math.floor(nw / 4), top: Math.floor(nh / 3), width: Math.max(1, Math.ceil(nw / 2)), height: Math.max(1, Math.ceil(nh / 2)) },
            { left: 0, top: 0, width: nw, height: nh },
            { left: -2, top: -3, width: nw + 5, height: nh + 4 }, // reaches outside on every side
            { left: nw - 1, top: nh - 1, width: 3, height: 2 },
        ];
        for (const win of windows) {
            const expected = new Uint8Array(win.width * win.height * 3);
            for (let y = 0; y < win.height; y++) {
                for (let x = 0; x < win.width; x++) {
                    const sx = win.left + x;
                    const sy = win.top + y;
                    if (sx < 0 || sy < 0 || sx >= nw || sy >= nh) continue;
                    for (let c = 0; c < 3; c++) expected[(y * win.width + x) * 3 + c] = whole[(sy * nw + sx) * 3 + c]!;
                }
            }
            for (const portable of [false, true]) {
                const cut = await addon.resizeRgb(src.data, w, h, nw, nh, { window: win, portable });
                expect(compareBytes(cut, expected).maxDiff).toBe(0);
            }
        }
    });

    it("computes a window of a picture too large to exist (50,000 × 2 shortest-edge-resized to 5,600,000 × 224)", async () => {
        const src = noiseImage(new Random(9), 50000, 2);
        const win = { left: (5600000 - 224) >> 1, top: 0, width: 224, height: 224 };
        const cut = await addon.resizeRgb(src.data, 50000, 2, 5600000, 224, { window: win });
        expect(cut.length).toBe(224 * 224 * 3);
        // The same window of a resize of only the source columns it depends on (centre ± the kernel's reach): the
        // horizontal scale is 112, so output column X reads source columns near X / 112.
        const x0 = Math.floor(win.left / 112) - 3;
        const part = new Uint8Array(10 * 2 * 3);
        for (let y = 0; y < 2; y++) part.set(src.data.subarray((y * 50000 + x0) * 3, (y * 50000 + x0 + 10) * 3), y * 30);
        // Upscaling by an integer factor from column x0: output column X of the whole is column X - 112·x0 of the part's resize.
        const partWhole = await addon.resizeRgb(part, 10, 2, 1120, 224);
        const inner = { left: win.left - 112 * x0, top: 0, width: 224, height: 224 };
        const expected = await addon.resizeRgb(partWhole, 1120, 224, 1120, 224, { window: inner });
        expect(compareBytes(cut, expected).maxDiff).toBe(0);
        await expect(Promise.resolve().then(() => addon.resizeRgb(src.data, 50000, 2, 5600000, 224))).rejects.toThrow(RangeError);
    });

    it("returns an unchanged copy when the size does not change", async () => {
        const src = noiseImage(new Random(5), 31, 17);
        const out = await addon.resizeRgb(src.data, 31, 17, 31, 17);
        expect(out).not.toBe(src.data);
        expect(Buffer.from(out).equals(Buffer.from(src.data))).toBe(true);
    });

    it("rejects inconsistent arguments", async () => {
        const src = new Uint8Array(10 * 10 * 3);
        expect(() => addon.resizeRgb(src, 10, 11, 5, 5)).toThrow(/bytes/);
        expect(() => addon.resizeRgb(src, 10, 10, 0, 5)).toThrow(RangeError);
        expect(() => addon.resizeRgb(new Float32Array(300) as unknown as Uint8Array, 10, 10, 5, 5)).toThrow(TypeError);
    });

    it("gives the same results when many resizes run concurrently", async () => {
        const rng = new Random(77);
        const jobs = Array.from({ length: 12 }, (_, i) => ({ src: noiseImage(rng, 150 + i * 7, 90 + i * 3), nw: 60 + i * 11, nh: 200 - i * 9 }));
        const sequential: Uint8Array[] = [];
        for (const j of jobs) sequential.push(await addon.resizeRgb(j.src.data, j.src.width, j.src.height, j.nw, j.nh));
        const parallel = await Promise.all(jobs.map((j) => addon.resizeRgb(j.src.data, j.src.width, j.src.height, j.nw, j.nh)));
        parallel.forEach((p, i) => expect(Buffer.from(p).equals(Buffer.from(sequential[i]!))).toBe(true));
    });
});

describe.skipIf(!hasPil())("resizeRgb vs Pillow", () => {
    it("is bit-exact on random images of odd sizes (down, up, non-uniform)", async () => {
        const rng = new Random(2024);
        const cases: { src: Pixels; nw: number; nh: number }[] = CASES.map(([w, h, nw, nh], i) => ({ src: image(rng, i, w, h), nw, nh }));
        for (let i = 0; i < 40; i++) {
            const w = 1 + rng.int(400);
            const h = 1 + rng.int(300);
            const nw = 1 + rng.int(i % 3 === 0 ? 900 : 250);
            const nh = 1 + rng.int(i % 4 === 0 ? 700 : 250);
            cases.push({ src: image(rng, i, w, h), nw, nh });
        }
        const results = pil(cases.map((c) => ({ job: { op: "resize", width: c.src.width, height: c.src.height, newWidth: c.nw, newHeight: c.nh }, input: c.src.data })));
        let total = 0;
        let exact = 0;
        let maxDiff = 0;
        for (let i = 0; i < cases.length; i++) {
            const c = cases[i]!;
            const r = results[i]!;
            if (!r.ok) throw new Error(r.error);
            const ours = await addon.resizeRgb(c.src.data, c.src.width, c.src.height, c.nw, c.nh);
            const cmp = compareBytes(ours, r.data);
            maxDiff = Math.max(maxDiff, cmp.maxDiff);
            exact += cmp.exact * ours.length;
            total += ours.length;
        }
        console.log(
            `resize vs Pillow ${pilInfo().version}: ${cases.length} cases, ${total} values, max |diff| ${maxDiff}, ` +
                `exact ${((100 * exact) / total).toFixed(4)}%`,
        );
        expect(maxDiff).toBe(0);
    });

    it("is bit-exact on a 1920x1080 -> 1918x1078 photo-like frame", async () => {
        const src = smoothImage(1920, 1080, 3);
        const [r] = pil([{ job: { op: "resize", width: 1920, height: 1080, newWidth: 1918, newHeight: 1078 }, input: src.data }]);
        if (!r!.ok) throw new Error(r!.error);
        const ours = await addon.resizeRgb(src.data, 1920, 1080, 1918, 1078);
        expect(compareBytes(ours, r!.data).maxDiff).toBe(0);
    });
});

describe("resizeRgb speed", () => {
    /** Median wall time and median process CPU time (user + system, all threads) of `runs` calls, in ms. */
    async function median(fn: () => Promise<unknown>, runs = 5): Promise<{ wall: number; cpu: number }> {
        const wall: number[] = [];
        const cpu: number[] = [];
        for (let i = 0; i < runs; i++) {
            const c0 = process.cpuUsage();
            const t0 = performance.now();
            await fn();
            wall.push(performance.now() - t0);
            const c = process.cpuUsage(c0);
            cpu.push((c.user + c.system) / 1000);
        }
        const mid = (v: number[]) => v.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
        return { wall: mid(wall), cpu: mid(cpu) };
    }

    it("resizes HD and 4K frames in tens of milliseconds", async () => {
        const rng = new Random(9);
        const hd = noiseImage(rng, 1920, 1080);
        const uhd = noiseImage(rng, 3840, 2160);
        const cases = [
            ["1920x1080 -> 1918x1078", hd, 1918, 1078],
            ["1920x1080 -> 336x196", hd, 336, 196],
            ["3840x2160 -> 2380x1344", uhd, 2380, 1344],
            ["3840x2160 -> 420x224", uhd, 420, 224],
        ] as const;
        const lines: string[] = [];
        for (const [name, src, nw, nh] of cases) {
            const t = await median(() => addon.resizeRgb(src.data, src.width, src.height, nw, nh));
            lines.push(`${name}: ${t.wall.toFixed(1)} ms (cpu ${t.cpu.toFixed(1)} ms)`);
            // Generous bound (shared CI machines): catches a fallback to a pathologically slow path.
            expect(t.wall).toBeLessThan(1000);
        }
        console.log(`resize timings (median of 5, avx2=${addon.imageSupport().resizeAvx2}): ${lines.join("; ")}`);
    });
});
