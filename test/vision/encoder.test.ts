// The C++/ggml vision encoder against the independent float64 TypeScript reference (test/reference), on a tiny
// VideoLLaMA3 checkpoint converted by our converter: preprocessing (Pillow bicubic, normalize, patchify), encoder with
// 2D RoPE and per-item attention, post-layernorm, merge, projector.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, loadVision, type Vision } from "../../lib/index.js";
import { targetSizes } from "../../lib/preprocess/resize-rule.js";
import { pillowBicubicResize } from "../reference/pillow-resize.js";
import { seededRandom } from "../reference/tensor.js";
import { normalizePixelU8, patchify, referenceVisionForward, type VisionRefConfig } from "../reference/vision-encoder.js";
import { TINY_VISION } from "../fixtures/hf-checkpoint.js";
import { tinyVl3, type TinyVl3 } from "./fixture.js";

let fixture: TinyVl3;
let vision: Vision;
const config: VisionRefConfig = { hidden: TINY_VISION.hidden, heads: TINY_VISION.heads, layers: TINY_VISION.layers, eps: 1e-6, ropeTheta: 10000, patchSize: 14 };

beforeAll(async () => {
    fixture = await tinyVl3();
    vision = await loadVision({ mmproj: fixture.mmproj });
}, 600_000);

afterAll(async () => {
    await vision?.dispose();
});

/** A deterministic image with structure (gradients) and noise, so every patch differs. */
function testImage(width: number, height: number, seed: number): Image {
    const rng = seededRandom(seed);
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
            const i = (y * width + x) * 3;
            data[i] = (x * 255) / Math.max(1, width - 1);
            data[i + 1] = (y * 255) / Math.max(1, height - 1);
            data[i + 2] = Math.floor(rng() * 256);
        }
    }
    return Image.fromPixels({ data, width, height, format: "rgb" });
}

/** The reference pipeline: resize rule → Pillow bicubic (TS) → normalize → patchify → float64 forward. */
async function reference(image: Image) {
    const { width, height, data } = await image.decode();
    const [target] = targetSizes([{ width, height, mergeSize: 1 }], { patchSize: 14, minTokens: fixture.minTokens, maxTokens: fixture.maxTokens });
    const resized = pillowBicubicResize(data, width, height, target!.width, target!.height);
    const chw = new Float64Array(3 * target!.width * target!.height);
    const plane = target!.width * target!.height;
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) chw[c * plane + p] = normalizePixelU8(resized[p * 3 + c]!);
    const gh = target!.height / 14;
    const gw = target!.width / 14;
    const patches = patchify(chw, 1, 3, target!.height, target!.width, 14, 1);
    const result = referenceVisionForward(fixture.weights, { patches, gridHeight: gh, gridWidth: gw, mergeSize: 1 }, config);
    return { target: target!, tokens: result.items[0]!.tokens, n: result.items[0]!.nTokens };
}

function compare(ours: Float32Array, ref: Float64Array) {
    let maxErr = 0;
    let sumSq = 0;
    for (let i = 0; i < ref.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(ours[i]! - ref[i]!));
        sumSq += ref[i]! * ref[i]!;
    }
    return { maxErr, rms: Math.sqrt(sumSq / ref.length) };
}

describe("vision encoder vs float64 reference", () => {
    const cases: Array<[string, number, number]> = [
        ["square, exact multiple of the patch", 56, 56],
        ["non-square, resized", 75, 40],
        ["tiny, below the minimum token budget (upscaled)", 20, 13],
        ["huge, above the maximum token budget (downscaled)", 1200, 800],
        ["tall and narrow", 30, 170],
    ];
    for (const [label, w, h] of cases) {
        it(`${label}: ${w}x${h}`, async () => {
            const image = testImage(w, h, w * 1000 + h);
            const ref = await reference(image);
            const ours = await vision.encode(image);
            expect(ours.size).toEqual({ width: ref.target.width, height: ref.target.height });
            expect(ours.tokens).toBe(ref.n);
            expect(ours.grid.height * ours.grid.width).toBe(ref.n);
            expect(ours.embeddings.length).toBe(ref.tokens.length);
            const { maxErr, rms } = compare(ours.embeddings, ref.tokens);
            console.info(`${w}x${h} → ${ref.target.width}x${ref.target.height}, ${ref.n} tokens: max abs error ${maxErr.toExponential(2)}, rms ${rms.toFixed(3)}`);
            // f32 (and flash attention) against float64: errors far below the activations' scale
            expect(rms).toBeGreaterThan(0.05);
            expect(maxErr / rms).toBeLessThan(2e-3);
            if (label.startsWith("tiny")) expect(ref.n).toBeGreaterThanOrEqual(fixture.minTokens);
            if (label.startsWith("huge")) {
                expect(ref.n).toBeLessThanOrEqual(fixture.maxTokens);
                expect(ref.target.width * ref.target.height).toBeLessThan(w * h);
            }
        });
    }

    it("gives different embeddings for different images (the comparison is not trivially satisfied)", async () => {
        const a = await vision.encode(testImage(56, 56, 1));
        const b = await vision.encode(testImage(56, 56, 2));
        expect(compare(a.embeddings, Float64Array.from(b.embeddings)).maxErr).toBeGreaterThan(0.01);
    });
});

describe("token counts of the real model's budget", () => {
    // The spec's worked examples (patch 14, merge 1, min 16, max 16384 tokens)
    const budget = { patchSize: 14, minTokens: 16, maxTokens: 16384 };
    it.each([
        [1920, 1080, 10549],
        [640, 480, 1564],
        [224, 224, 256],
        [100, 100, 49],
    ])("%ix%i → %i tokens", (width, height, tokens) => {
        const [t] = targetSizes([{ width, height, mergeSize: 1 }], budget);
        expect((t!.width / 14) * (t!.height / 14)).toBe(tokens);
    });
});
