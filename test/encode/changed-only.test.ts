// prune: { encodeChangedOnly: true } — the encoder computes only the kept 2×2 blocks of each frame, the other blocks'
// layer inputs coming from the frame where they last changed. Checked against an independent float64 statement of
// that algorithm (the reference encoder with each layer's input rows taken from the previous frame except the kept
// blocks'), and its deviation from the exact encoder measured with a stated bound.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError, loadVision, Video, type Vision } from "../../lib/index.js";
import { checkPrune } from "../../lib/chat/content.js";
import { videoLlava } from "../../lib/family/video-llava.js";
import type { FamilyInfo } from "../../lib/family/types.js";
import { seededRandom } from "../reference/tensor.js";
import { normalizePixelU8, patchify, referenceVisionForward, type VisionRefConfig } from "../reference/vision-encoder.js";
import { TINY_VISION } from "../fixtures/hf-checkpoint.js";
import { tinyVl3, type TinyVl3 } from "../vision/fixture.js";

let fixture: TinyVl3;
let vision: Vision;
const config: VisionRefConfig = { hidden: TINY_VISION.hidden, heads: TINY_VISION.heads, layers: TINY_VISION.layers, eps: 1e-6, ropeTheta: 10000, patchSize: 14 };

beforeAll(async () => {
    fixture = await tinyVl3();
    vision = await loadVision({ mmproj: fixture.mmproj, gpu: false });
}, 600_000);

afterAll(async () => {
    await vision?.dispose();
});

const SIDE = 112; // 8×8 patches, 4×4 merged tokens per frame: the video rule keeps this size (checked below)
const BLOCK = 28; // one merged token = 2×2 patches of 14 px

/** A frame: noise everywhere, then the listed 28-px blocks (raster index over the 4×4 grid) repainted with new noise. */
function frames(changes: number[][]): Uint8Array[] {
    const rng = seededRandom(7);
    const base = new Uint8Array(SIDE * SIDE * 3);
    for (let i = 0; i < base.length; i++) base[i] = Math.floor(rng() * 256);
    const out: Uint8Array[] = [];
    let current = base;
    for (const blocks of changes) {
        current = new Uint8Array(current);
        for (const b of blocks) {
            const bx = (b % (SIDE / BLOCK)) * BLOCK;
            const by = Math.floor(b / (SIDE / BLOCK)) * BLOCK;
            for (let y = by; y < by + BLOCK; y++) for (let x = bx; x < bx + BLOCK; x++) for (let c = 0; c < 3; c++) current[(y * SIDE + x) * 3 + c] = Math.floor(rng() * 256);
        }
        out.push(current);
    }
    return out;
}

function patchesOf(rgb: Uint8Array): Float64Array {
    const plane = SIDE * SIDE;
    const chw = new Float64Array(3 * plane);
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) chw[c * plane + p] = normalizePixelU8(rgb[p * 3 + c]!);
    return patchify(chw, 1, 3, SIDE, SIDE, 14, 2);
}

/**
 * The algorithm in float64, plainly: frame by frame, each layer's input is the previous frame's input of that layer
 * with the rows of the computed blocks (all, for the first frame) replaced by this frame's; every row is then
 * computed, and only the kept tokens' outputs are used. Returns the kept tokens' embeddings of each frame, and the
 * exact (whole-frame) embeddings of the same tokens.
 */
function referenceChangedOnly(video: Uint8Array[], kept: number[][]): { approx: Float64Array[]; exact: Float64Array[] } {
    const states: Float64Array[] = [];
    const H = config.hidden;
    const approx: Float64Array[] = [];
    const exact: Float64Array[] = [];
    video.forEach((rgb, f) => {
        const item = { patches: patchesOf(rgb), gridHeight: SIDE / 14, gridWidth: SIDE / 14, mergeSize: 2 };
        const rows = f === 0 ? null : new Set(kept[f]!.flatMap((t) => [4 * t, 4 * t + 1, 4 * t + 2, 4 * t + 3]));
        const result = referenceVisionForward(fixture.weights, item, config, {
            layerInput: (l, x) => {
                if (!rows) {
                    states[l] = Float64Array.from(x);
                    return x;
                }
                const merged = Float64Array.from(states[l]!);
                for (const r of rows) merged.set(x.subarray(r * H, (r + 1) * H), r * H);
                states[l] = merged;
                return merged;
            },
        });
        const full = referenceVisionForward(fixture.weights, item, config);
        const d = result.items[0]!.projDim;
        const pick = (t: Float64Array) => Float64Array.from(kept[f]!.flatMap((k) => Array.from(t.subarray(k * d, (k + 1) * d))));
        approx.push(pick(result.items[0]!.tokens));
        exact.push(pick(full.items[0]!.tokens));
    });
    return { approx, exact };
}

function relRms(a: ArrayLike<number>, b: ArrayLike<number>): number {
    let num = 0;
    let den = 0;
    for (let i = 0; i < b.length; i++) {
        num += (a[i]! - b[i]!) ** 2;
        den += b[i]! ** 2;
    }
    return Math.sqrt(num / den);
}

describe("prune.encodeChangedOnly", () => {
    // Frame 0 whole; frame 1 changes block 5; frame 2 blocks 0 and 15; frame 3 nothing (min 1 token kept: the first).
    const changes = [[], [5], [0, 15], []];
    const expectedKept = [[...Array(16).keys()], [5], [0, 15], [0]];

    it("computes only the kept blocks, matches the float64 statement of the algorithm, and stays near the exact encoder", async () => {
        const video = frames(changes);
        const make = () => Video.fromFrames(video.map((data) => ({ data, width: SIDE, height: SIDE })), { fps: 1 });
        const changed = await vision.encodeVideo(await make(), { prune: { encodeChangedOnly: true } });
        const exact = await vision.encodeVideo(await make(), { prune: true });
        expect(changed.size).toEqual({ width: SIDE, height: SIDE });
        expect(changed.frames.map((f) => f.keptTokens)).toEqual(expectedKept.map((k) => k.length));
        expect(exact.frames.map((f) => f.keptTokens)).toEqual(expectedKept.map((k) => k.length));
        // The encoder's work: frame 0 whole (64 patches), then 4 patches per kept block.
        expect(changed.encoder).toEqual({ mode: "changed-only", patches: 4 * 64, patchesComputed: 64 + 4 + 8 + 4 });
        expect(exact.encoder).toEqual({ mode: "exact", patches: 4 * 64, patchesComputed: 4 * 64 });

        const ref = referenceChangedOnly(video, expectedKept);
        const d = changed.width;
        let offset = 0;
        for (let f = 0; f < video.length; f++) {
            const n = expectedKept[f]!.length * d;
            const ours = changed.embeddings.subarray(offset, offset + n);
            const oursExact = exact.embeddings.subarray(offset, offset + n);
            offset += n;
            const vsReference = relRms(ours, ref.approx[f]!);
            const exactVsReference = relRms(oursExact, ref.exact[f]!);
            const deviation = relRms(ref.approx[f]!, ref.exact[f]!);
            console.info(`frame ${f}: changed-only vs its float64 statement ${vsReference.toExponential(2)}; exact vs float64 ${exactVsReference.toExponential(2)}; the approximation's deviation from exact ${deviation.toExponential(2)}`);
            // f32 against float64: the same algorithm agrees to f32 rounding
            expect(vsReference).toBeLessThan(1e-4);
            expect(exactVsReference).toBeLessThan(1e-4);
            if (f === 0) {
                expect(deviation).toBe(0); // a first frame is encoded whole: exact
            } else {
                // The approximation is really used (the other blocks' states are stale) — and stays close to exact.
                expect(deviation).toBeGreaterThan(1e-4);
                expect(deviation).toBeLessThan(0.2);
            }
        }
        expect(offset).toBe(changed.embeddings.length);
    });

    it("is validated: a boolean, VideoLLaMA3 only", () => {
        expect(() => checkPrune({ encodeChangedOnly: "yes" }, "prune")).toThrow(InvalidOptionError);
        expect(checkPrune({ encodeChangedOnly: true }, "prune")).toEqual({ encodeChangedOnly: true });
        const info = { tokenCompression: false, diffThreshold: 0.1, minTokensPerFrame: 1 } as unknown as FamilyInfo;
        expect(() => videoLlava.resolvePrune({ encodeChangedOnly: true }, info)).toThrow(/Video-LLaVA/);
        expect(videoLlava.resolvePrune({ threshold: 0.2 }, info)).toEqual({ threshold: 0.2, minTokens: 1, encodeChangedOnly: false });
    });
});
