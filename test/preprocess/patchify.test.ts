/**
 * Normalisation + patch order (native/preprocess/patchify.cpp through the patchify binding and preprocessImage)
 * against an independent TypeScript computation that follows the reference literally: channels-first image,
 * `reshape(t, C, gh/m, m, p, gw/m, m, p)`, `transpose(0, 2, 5, 3, 6, 1, 4, 7)`, `reshape(t·gh·gw, C·p·p)`, with
 * transformers' float arithmetic (float64 rescale rounded to float32, then float32 subtract and divide).
 */
import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../lib/errors.js";
import { native } from "../../lib/native/load.js";
import { preprocessImage } from "../../lib/preprocess/preprocess.js";
import { preprocessParams, visionPreprocessConfig, type PreprocessParams } from "../../lib/preprocess/params.js";
import { targetSizes } from "../../lib/preprocess/resize-rule.js";
import { hasPil, noiseImage, pilResize, smoothImage, type Pixels } from "../fixtures/images.js";
import { Random } from "../fixtures/random.js";

const addon = native();

const SIGLIP: PreprocessParams = { patchSize: 14, mergeSize: 1, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], rescale: 1 / 255 };
const CLIP: PreprocessParams = {
    patchSize: 14,
    mergeSize: 1,
    mean: [0.48145466, 0.4578275, 0.40821073],
    std: [0.26862954, 0.26130258, 0.27577711],
    rescale: 1 / 255,
};

/** numpy-style transpose of a row-major array: out[i0..i7] = in[index permuted by `axes`]. */
function transpose(data: Float32Array, shape: number[], axes: number[]): { data: Float32Array; shape: number[] } {
    const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    const outShape = axes.map((a) => shape[a]!);
    const outStrides = axes.map((a) => strides[a]!);
    const out = new Float32Array(data.length);
    const index = new Array<number>(outShape.length).fill(0);
    for (let o = 0; o < out.length; o++) {
        let src = 0;
        for (let d = 0; d < index.length; d++) src += index[d]! * outStrides[d]!;
        out[o] = data[src]!;
        for (let d = index.length - 1; d >= 0; d--) {
            if (++index[d]! < outShape[d]!) break;
            index[d] = 0;
        }
    }
    return { data: out, shape: outShape };
}

/** The reference's `_preprocess` for one image already at its target size (t = 1). */
function referencePatches(img: Pixels, p: PreprocessParams): { patches: Float32Array; hpos: number[]; wpos: number[] } {
    const { width: W, height: H } = img;
    // rescale: (image.astype(float64) * scale).astype(float32); normalize: (x - mean) / std in float32
    const chw = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++) {
        const mean = Math.fround(p.mean[c]!);
        const std = Math.fround(p.std[c]!);
        for (let y = 0; y < H; y++) {
            for (let x = 0; x < W; x++) {
                const r = Math.fround(img.data[(y * W + x) * 3 + c]! * p.rescale);
                chw[c * H * W + y * W + x] = Math.fround(Math.fround(r - mean) / std);
            }
        }
    }
    const m = p.mergeSize;
    const ps = p.patchSize;
    const gh = H / ps;
    const gw = W / ps;
    const shape = [1, 3, gh / m, m, ps, gw / m, m, ps];
    const patches = transpose(chw, shape, [0, 2, 5, 3, 6, 1, 4, 7]).data;
    // positions as the encoder builds them: hpos = arange(gh)[:, None].expand(gh, gw), then
    // reshape(gh/m, m, gw/m, m).permute(0, 2, 1, 3).flatten(); the same for wpos
    const hGrid = new Float32Array(gh * gw);
    const wGrid = new Float32Array(gh * gw);
    for (let y = 0; y < gh; y++) {
        for (let x = 0; x < gw; x++) {
            hGrid[y * gw + x] = y;
            wGrid[y * gw + x] = x;
        }
    }
    const order = [gh / m, m, gw / m, m];
    const hpos = Array.from(transpose(hGrid, order, [0, 2, 1, 3]).data);
    const wpos = Array.from(transpose(wGrid, order, [0, 2, 1, 3]).data);
    return { patches, hpos, wpos };
}

function checkAgainstReference(img: Pixels, params: PreprocessParams, out: { patches: Float32Array; positions: Int32Array; gridHeight: number; gridWidth: number }): void {
    const ref = referencePatches(img, params);
    expect(out.gridHeight).toBe(img.height / params.patchSize);
    expect(out.gridWidth).toBe(img.width / params.patchSize);
    expect(out.patches.length).toBe(ref.patches.length);
    let mismatches = 0;
    for (let i = 0; i < ref.patches.length; i++) if (!Object.is(out.patches[i], ref.patches[i])) mismatches++;
    expect(mismatches).toBe(0);
    const h = Array.from(out.positions.filter((_, i) => i % 2 === 0));
    const w = Array.from(out.positions.filter((_, i) => i % 2 === 1));
    expect(h).toEqual(ref.hpos);
    expect(w).toEqual(ref.wpos);
}

describe("patchify vs the reference's reshape/transpose", () => {
    it.each([
        [14, 1, 56, 42, SIGLIP],
        [14, 2, 84, 56, SIGLIP],
        [14, 1, 28, 70, CLIP],
        [4, 3, 24, 36, CLIP],
        [2, 1, 6, 4, SIGLIP],
        [3, 2, 12, 6, CLIP],
        [1, 1, 1, 1, SIGLIP],
    ])("patch %i, merge %i, %i x %i", async (patchSize, mergeSize, width, height, base) => {
        const params = { ...base, patchSize, mergeSize };
        const img = noiseImage(new Random(patchSize * 100 + mergeSize), width, height);
        const out = await addon.patchify(img.data, width, height, params);
        checkAgainstReference(img, params, out);
    });

    it("treats a float32 rescale of 1/255 (as stored in GGUF) as exactly 1/255", async () => {
        const img = noiseImage(new Random(3), 28, 28);
        const exact = await addon.patchify(img.data, 28, 28, SIGLIP);
        const f32 = await addon.patchify(img.data, 28, 28, { ...SIGLIP, rescale: Math.fround(1 / 255) });
        expect(Buffer.from(f32.patches.buffer).equals(Buffer.from(exact.patches.buffer))).toBe(true);
        // SigLIP normalisation maps 0 -> -1 and 255 -> 1 exactly
        const ends = await addon.patchify(new Uint8Array([0, 255, 0, 255, 0, 255]), 2, 1, { ...SIGLIP, patchSize: 1 });
        expect(Array.from(ends.patches)).toEqual([-1, 1, -1, 1, -1, 1]);
    });

    it("rejects sizes that are not multiples of patch * merge (synchronously, like other argument errors)", () => {
        const img = new Uint8Array(30 * 28 * 3);
        expect(() => addon.patchify(img, 30, 28, SIGLIP)).toThrow(expect.objectContaining({ code: "VL_INVALID_ARGUMENT" }));
        expect(() => addon.patchify(new Uint8Array(28 * 42 * 3), 28, 42, { ...SIGLIP, mergeSize: 2 })).toThrow(/multiple of/);
        expect(() => addon.patchify(img, 28, 28, SIGLIP)).toThrow(/bytes/);
        expect(() => addon.patchify(new Uint8Array(28 * 28 * 3), 28, 28, { ...SIGLIP, mean: [0.5, 0.5] })).toThrow(/3 values/);
    });
});

describe("preprocessImage", () => {
    it("skips the resize when the size is unchanged (PIL returns an unchanged copy)", async () => {
        const img = smoothImage(56, 28, 1);
        const out = await preprocessImage(img, 28, 56, SIGLIP);
        expect(out.resized.data).toBe(img.data);
        checkAgainstReference(img, SIGLIP, out);
    });

    it("resizes like resizeRgb, then patchifies in merge-block order", async () => {
        const img = noiseImage(new Random(8), 100, 70);
        const params = { ...SIGLIP, mergeSize: 2 };
        const out = await preprocessImage(img, 56, 112, params);
        const resized = await addon.resizeRgb(img.data, 100, 70, 112, 56);
        expect(Buffer.from(out.resized.data).equals(Buffer.from(resized))).toBe(true);
        checkAgainstReference({ width: 112, height: 56, data: resized }, params, out);
    });

    it.skipIf(!hasPil())("reproduces the reference pipeline: Pillow resize + normalise + patch order", async () => {
        const img = smoothImage(640, 480, 2);
        const [size] = targetSizes([{ width: 640, height: 480, mergeSize: 1 }], { patchSize: 14, minTokens: 16, maxTokens: 16384 });
        expect(size).toEqual({ width: 644, height: 476 });
        const out = await preprocessImage(img, size!.height, size!.width, SIGLIP);
        const pilResized = pilResize(img, 644, 476);
        checkAgainstReference({ width: 644, height: 476, data: pilResized }, SIGLIP, out);
        expect(out.gridHeight * out.gridWidth).toBe(1564);
    });

    it("produces a video frame's grid (merge 2) for the spec's 1280x720 / 180-frame example", async () => {
        const [size] = targetSizes([{ width: 1280, height: 720, frames: 180, mergeSize: 2 }], { patchSize: 14, minTokens: 16, maxTokens: 16384 });
        const frame = smoothImage(1280, 720, 4);
        const params = { ...SIGLIP, mergeSize: 2 };
        const out = await preprocessImage(frame, size!.height, size!.width, params);
        expect([out.gridHeight, out.gridWidth]).toEqual([14, 24]);
        expect(out.patches.length).toBe(14 * 24 * 588);
        // the first merge block: patches (0,0), (0,1), (1,0), (1,1)
        expect(Array.from(out.positions.subarray(0, 8))).toEqual([0, 0, 0, 1, 1, 0, 1, 1]);
        checkAgainstReference(out.resized as Pixels, params, out);
    });

    it("validates its arguments", async () => {
        const img = smoothImage(28, 28);
        await expect(preprocessImage(img, 30, 28, SIGLIP)).rejects.toThrow(InvalidOptionError);
        await expect(preprocessImage({ ...img, width: 27 }, 28, 28, SIGLIP)).rejects.toThrow(InvalidOptionError);
        await expect(preprocessImage(img, 0, 28, SIGLIP)).rejects.toThrow(InvalidOptionError);
    });
});

describe("preprocessing parameters from the projector metadata", () => {
    function fakeGguf(values: Record<string, number | Float32Array>) {
        return {
            path: "mmproj.gguf",
            getNumber: (key: string) => values[key] as number | undefined,
            getArray: (key: string) => values[key] as Float32Array | undefined,
        } as Parameters<typeof visionPreprocessConfig>[0];
    }
    const complete = {
        "clip.vision.patch_size": 14,
        "videollama3.image.merge_size": 1,
        "videollama3.video.merge_size": 2,
        "clip.vision.image_mean": new Float32Array([0.5, 0.5, 0.5]),
        "clip.vision.image_std": new Float32Array([0.5, 0.5, 0.5]),
        "videollama3.image.rescale_factor": Math.fround(1 / 255),
        "videollama3.image.min_tokens": 16,
        "videollama3.image.max_tokens": 16384,
    };

    it("reads the keys of docs/gguf-format.md", () => {
        const config = visionPreprocessConfig(fakeGguf(complete));
        expect(preprocessParams(config, "video")).toEqual({ patchSize: 14, mergeSize: 2, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], rescale: Math.fround(1 / 255) });
        expect(preprocessParams(config, "image").mergeSize).toBe(1);
        expect([config.minTokens, config.maxTokens]).toEqual([16, 16384]);
    });

    it("names a missing or malformed key", () => {
        const { ["videollama3.image.max_tokens"]: _omit, ...missing } = complete;
        expect(() => visionPreprocessConfig(fakeGguf(missing))).toThrow(/videollama3.image.max_tokens/);
        expect(() => visionPreprocessConfig(fakeGguf({ ...complete, "clip.vision.image_std": new Float32Array([0.5, 0, 0.5]) }))).toThrow(/image_std/);
        expect(() => visionPreprocessConfig(fakeGguf({ ...complete, "clip.vision.image_mean": new Float32Array([0.5]) }))).toThrow(/3 floats/);
    });
});
