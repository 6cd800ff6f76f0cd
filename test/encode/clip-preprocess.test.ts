// Video-LLaVA's preprocessing in the native stage (Pillow-exact bicubic shortest-edge resize, centre crop as a
// window of the resized picture, rescale, CLIP mean/std, patch rows) against the reference of transformers'
// VideoLlavaImageProcessor (test/reference/clip-encoder.ts over test/reference/pillow-resize.ts): the same pixels bit
// for bit, then the same tokens through the towers. Also the zero padding of a crop that reaches outside the picture.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { native } from "../../lib/native/load.js";
import type { NativeVision, NativeVisionItem } from "../../lib/native/types.js";
import { clipResizeAndCrop } from "../../lib/preprocess/clip-crop.js";
import { preprocessFrames } from "../../lib/encode/stages.js";
import {
    clipPatchRows,
    errorStats,
    readClipProjector,
    referenceClipForward,
    referenceClipPreprocess,
    resizeOutputSize,
    type ClipProjectorRef,
    type ClipTower,
} from "../reference/clip-encoder.js";
import { TINY_CLIP, testPicture, tinyClipMmproj, type TestPicture } from "../fixtures/tiny-clip-mmproj.js";

const addon = native();
let ref: ClipProjectorRef;
let vision: NativeVision;

beforeAll(async () => {
    const path = await tinyClipMmproj("preprocess", { seed: 21 });
    ref = await readClipProjector(path);
    vision = await addon.loadVision({ path, gpu: "cpu", threads: 2 });
});

afterAll(() => {
    vision?.dispose();
});

function item(v: NativeVision, pic: TestPicture, tower: ClipTower = "image"): NativeVisionItem {
    const hp = v.hparams();
    const { resize, crop } = clipResizeAndCrop(pic.width, pic.height, hp.shortestEdge, hp.imageSize);
    return { rgb: pic.data, width: pic.width, height: pic.height, targetWidth: resize.width, targetHeight: resize.height, crop, merge: 1, tower };
}

/** Undoes the normalisation of patch rows back to the 8-bit pixels (exact: the steps are far apart in f32). */
function rowsToPixels(rows: ArrayLike<number>, hp: { imageMean: number[]; imageStd: number[]; rescaleFactor: number }, p = 14): Uint8Array {
    const rowLen = 3 * p * p;
    const out = new Uint8Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
        const c = Math.floor((i % rowLen) / (p * p));
        out[i] = Math.round((rows[i]! * hp.imageStd[c]! + hp.imageMean[c]!) / hp.rescaleFactor);
    }
    return out;
}

/** Checks the native patch rows of `pic` against the reference preprocessing; returns the reference pixel values. */
async function expectSamePreprocessing(v: NativeVision, r: ClipProjectorRef, pic: TestPicture) {
    const expected = referenceClipPreprocess(pic.data, pic.width, pic.height, r.config.preprocess);
    const nativeItem = item(v, pic);
    // lib's geometry is transformers' get_resize_output_image_size
    expect({ width: nativeItem.targetWidth, height: nativeItem.targetHeight }).toEqual(expected.resized);
    const [patches] = await preprocessFrames(v, [nativeItem]);
    expect(patches!.gridHeight).toBe(16);
    expect(patches!.gridWidth).toBe(16);
    expect(patches!.merge).toBe(1);
    expect(patches!.tokens).toBe(256);
    expect(patches!.tower).toBe("image");
    const rows = patches!.toFloat32Array();
    const refRows = clipPatchRows(expected.pixelValues, 224, 14);
    // The 8-bit pixels of the crop are the reference's exactly (Pillow's fixed-point bicubic, the same window) ...
    const refPixels = rowsToPixels(refRows, v.hparams());
    const ourPixels = rowsToPixels(rows, v.hparams());
    let differing = 0;
    for (let i = 0; i < refPixels.length; i++) if (refPixels[i] !== ourPixels[i]) differing++;
    expect(differing).toBe(0);
    // ... and the normalised values are them in f32 (one pixel step would be 1/255/std ≈ 0.015).
    expect(errorStats(rows, refRows).maxErr).toBeLessThan(2e-6);
    return expected;
}

describe("Video-LLaVA preprocessing vs transformers' image processor", () => {
    const cases: Array<[string, number, number]> = [
        ["landscape, downscaled and cropped left/right", 300, 200],
        ["portrait, cropped top/bottom", 200, 500],
        ["the crop size already", 224, 224],
        ["one pixel too wide (crop offset 0)", 225, 224],
        ["small, upscaled then cropped", 100, 60],
        ["odd sizes", 333, 251],
        ["a narrow strip (a 22,400-pixel-high resize, of which only the crop is computed)", 12, 1200],
    ];
    for (const [label, w, h] of cases) {
        it(`${label}: ${w}x${h}`, async () => {
            const pic = testPicture(w, h, w * 7 + h);
            const resized = resizeOutputSize(w, h, 224);
            const expected = await expectSamePreprocessing(vision, ref, pic);
            expect(expected.resized).toEqual(resized);
            if (w !== 12) {
                const ours = await vision.encode([item(vision, pic, "image"), item(vision, pic, "video")], {});
                const [img, vid] = referenceClipForward(ref.weights, [{ pixelValues: expected.pixelValues, tower: "image" }, { pixelValues: expected.pixelValues, tower: "video" }], ref.config);
                expect(Array.from(ours.counts)).toEqual([256, 257]);
                const values = ours.embeddings.toFloat32Array();
                const D = TINY_CLIP.projDim;
                expect(errorStats(values.subarray(0, 256 * D), img!.tokens).relative).toBeLessThan(1e-4);
                expect(errorStats(values.subarray(256 * D), vid!.tokens).relative).toBeLessThan(1e-4);
            }
        });
    }

    it("the native resize + crop equals resizeRgb of the whole picture cut at the crop", async () => {
        const pic = testPicture(300, 200, 5);
        const it = item(vision, pic);
        const whole = await addon.resizeRgb(pic.data, 300, 200, it.targetWidth, it.targetHeight);
        const { left, top } = it.crop!;
        const [patches] = await preprocessFrames(vision, [it]);
        const pixels = rowsToPixels(patches!.toFloat32Array(), vision.hparams());
        // patch rows (c, py, px) of raster patches back to packed RGB
        for (let y = 0; y < 224; y += 37) {
            for (let x = 0; x < 224; x += 29) {
                for (let c = 0; c < 3; c++) {
                    const row = Math.floor(y / 14) * 16 + Math.floor(x / 14);
                    const v = pixels[row * 588 + (c * 14 + (y % 14)) * 14 + (x % 14)];
                    expect(v).toBe(whole[((y + top) * it.targetWidth + x + left) * 3 + c]);
                }
            }
        }
    });
});

describe("a crop that reaches outside the resized picture reads zeros (transformers pads)", () => {
    let small: NativeVision;
    let smallRef: ClipProjectorRef;

    beforeAll(async () => {
        // shortest edge 200 < crop 224: every picture is padded by center_crop
        const path = await tinyClipMmproj("preprocess-short-edge", { seed: 21, shortestEdge: 200 });
        smallRef = await readClipProjector(path);
        small = await addon.loadVision({ path, gpu: "cpu", threads: 2 });
    });

    afterAll(() => {
        small?.dispose();
    });

    it.each([
        [300, 200], // no resize; crop left 38, top -12
        [150, 180], // resized to 200×240; crop left -12, top 8
        [200, 200], // no resize; padded on all four sides
    ])("%ix%i", async (w, h) => {
        expect(small.hparams().shortestEdge).toBe(200);
        const pic = testPicture(w, h, w + h);
        const it = item(small, pic);
        expect(it.crop!.left < 0 || it.crop!.top < 0).toBe(true);
        const expected = await expectSamePreprocessing(small, smallRef, pic);
        // the padding is there: black pixels in the reference's crop
        expect(expected.cropped.subarray(0, 3)).toEqual(new Uint8Array(3));
        const ours = await small.encode([it], {});
        const r = referenceClipForward(smallRef.weights, [{ pixelValues: expected.pixelValues, tower: "image" }], smallRef.config)[0]!;
        expect(errorStats(ours.embeddings.toFloat32Array(), r.tokens).relative).toBeLessThan(1e-4);
    });

    it("a crop wholly outside the picture is all zeros before normalisation", async () => {
        const pic = testPicture(300, 224, 3);
        const hp = vision.hparams();
        const [patches] = await preprocessFrames(vision, [
            { rgb: pic.data, width: 300, height: 224, targetWidth: 300, targetHeight: 224, crop: { left: 5000, top: -3000, width: 224, height: 224 }, merge: 1 },
        ]);
        const rows = patches!.toFloat32Array();
        expect(rowsToPixels(rows, hp).every((v) => v === 0)).toBe(true);
        expect(rows[0]).toBeCloseTo(-hp.imageMean[0]! / hp.imageStd[0]!, 5);
    });
});
