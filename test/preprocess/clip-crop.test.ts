// lib/preprocess/clip-crop.ts against transformers' formulas, transcribed here on their own from
// image_transforms.py: get_resize_output_image_size(default_to_square=False) and center_crop (with its padding path,
// whose window in the picture's coordinates is what the native crop reads, zeros outside).
import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../lib/errors.js";
import { clipResizeAndCrop } from "../../lib/preprocess/clip-crop.js";
import { Random } from "../fixtures/random.js";

/** get_resize_output_image_size → (height, width) */
function pythonResize(height: number, width: number, size: number): [number, number] {
    const [short, long] = width <= height ? [width, height] : [height, width];
    const newShort = size;
    const newLong = Math.trunc((size * long) / short); // int(size * long / short)
    return width <= height ? [newLong, newShort] : [newShort, newLong];
}

/**
 * center_crop: the rows/columns of the ORIGINAL picture its output starts at. Inside: top = (H − crop) // 2. With
 * padding, the picture sits at top_pad = ceil((new_H − H) / 2) of a zero canvas and the crop starts at canvas row
 * max(0, top + top_pad), i.e. picture row max(0, top + top_pad) − top_pad.
 */
function pythonCropStart(orig: number, crop: number): number {
    const top = Math.floor((orig - crop) / 2);
    if (top >= 0 && top + crop <= orig) return top;
    const newSize = Math.max(crop, orig);
    const pad = Math.ceil((newSize - orig) / 2);
    return Math.max(0, top + pad) - pad;
}

describe("clipResizeAndCrop", () => {
    it.each([
        // width, height → resized, crop left/top (shortest edge 224, crop 224)
        [640, 480, 298, 224, 37, 0],
        [480, 640, 224, 298, 0, 37],
        [224, 224, 224, 224, 0, 0],
        [300, 200, 336, 224, 56, 0],
        [200, 500, 224, 560, 0, 168],
        [1920, 1080, 398, 224, 87, 0],
        [225, 224, 225, 224, 0, 0],
        [1, 1000, 224, 224000, 0, 111888],
        [100, 100, 224, 224, 0, 0],
    ])("%ix%i → %ix%i, crop at (%i, %i)", (w, h, rw, rh, left, top) => {
        expect(clipResizeAndCrop(w, h, 224, 224)).toEqual({ resize: { width: rw, height: rh }, crop: { left, top, width: 224, height: 224 } });
    });

    it("a shortest edge below the crop gives a window reaching outside (transformers pads with zeros)", () => {
        // 300×200 stays 300×200; (200 − 224) // 2 = −12 rows above it
        expect(clipResizeAndCrop(300, 200, 200, 224)).toEqual({ resize: { width: 300, height: 200 }, crop: { left: 38, top: -12, width: 224, height: 224 } });
        // odd padding: 201 → (201 − 224) // 2 = −12 (ceil(23 / 2) = 12 rows of zeros before it)
        expect(clipResizeAndCrop(201, 201, 201, 224).crop).toEqual({ left: -12, top: -12, width: 224, height: 224 });
    });

    it("equals the Python formulas on random sizes", () => {
        const rng = new Random(5);
        for (let i = 0; i < 5000; i++) {
            const w = 1 + rng.int(i % 3 === 0 ? 50 : 5000);
            const h = 1 + rng.int(i % 5 === 0 ? 50 : 5000);
            const edge = [224, 336, 100, 1 + rng.int(400)][i % 4]!;
            const crop = [224, 336, 50, 1 + rng.int(400)][(i >> 2) % 4]!;
            const [rh, rw] = pythonResize(h, w, edge);
            const got = clipResizeAndCrop(w, h, edge, crop);
            expect(got.resize).toEqual({ width: rw, height: rh });
            expect(got.crop).toEqual({ left: pythonCropStart(rw, crop), top: pythonCropStart(rh, crop), width: crop, height: crop });
        }
    });

    it("rejects sizes that are not positive integers", () => {
        expect(() => clipResizeAndCrop(0, 10, 224, 224)).toThrow(InvalidOptionError);
        expect(() => clipResizeAndCrop(10, 1.5, 224, 224)).toThrow(/height/);
        expect(() => clipResizeAndCrop(10, 10, -224, 224)).toThrow(/shortestEdge/);
        expect(() => clipResizeAndCrop(10, 10, 224, Number.NaN)).toThrow(/cropSize/);
        expect(() => clipResizeAndCrop(2 ** 21, 10, 224, 224)).toThrow(InvalidOptionError);
    });
});
