/**
 * Image → vision-encoder input: Pillow-exact bicubic resize to the target size, then rescale/normalise and cut into
 * patches in merge-block order (both in native code, off the JS thread).
 *
 * @module
 */
import { InvalidOptionError } from "../errors.js";
import { native } from "../native/load.js";
import type { PreprocessParams } from "./params.js";

export type { PreprocessParams } from "./params.js";

/** Packed RGB8 pixels: `data.length === width * height * 3`, rows top to bottom. */
export interface RgbPixels {
    /** Width in pixels. */
    readonly width: number;
    /** Height in pixels. */
    readonly height: number;
    /** R, G, B bytes of each pixel, row after row. */
    readonly data: Uint8Array;
}

/** The encoder input of one image or video frame. */
export interface PreprocessedImage {
    /**
     * `gridHeight * gridWidth` rows of `3 * patchSize²` floats, layout (channel, py, px), rows in merge-block order:
     * merge blocks in raster order, inside a block its `mergeSize²` patches in raster order.
     */
    readonly patches: Float32Array;
    /** The (h, w) patch coordinates of every row, interleaved: h0, w0, h1, w1, … (for the 2D RoPE). */
    readonly positions: Int32Array;
    /** Patches per column (`targetHeight / patchSize`). */
    readonly gridHeight: number;
    /** Patches per row (`targetWidth / patchSize`). */
    readonly gridWidth: number;
    /** The resized image the patches were cut from. */
    readonly resized: RgbPixels;
}

function checkDimension(option: string, value: unknown): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 1 << 20) {
        throw new InvalidOptionError(option, "an integer between 1 and 1048576", value);
    }
    return value;
}

/**
 * Resizes `rgb` to `targetWidth × targetHeight` like `PIL.Image.resize(..., BICUBIC)` (skipped when the size does not
 * change: PIL returns an unchanged copy then) and turns it into normalised patches.
 *
 * @param rgb the decoded image (see `Image.decode()`), not modified
 * @param targetHeight height in pixels, a multiple of `patchSize * mergeSize` (from the resize rule)
 * @param targetWidth width in pixels, a multiple of `patchSize * mergeSize`
 * @param params patch size, merge size and normalisation from the projector ({@link preprocessParams})
 */
export async function preprocessImage(
    rgb: RgbPixels,
    targetHeight: number,
    targetWidth: number,
    params: PreprocessParams,
): Promise<PreprocessedImage> {
    if (typeof rgb !== "object" || rgb === null || !(rgb.data instanceof Uint8Array)) {
        throw new InvalidOptionError("rgb", "an object { width, height, data: Uint8Array }", rgb);
    }
    const width = checkDimension("rgb.width", rgb.width);
    const height = checkDimension("rgb.height", rgb.height);
    if (rgb.data.length !== width * height * 3) {
        throw new InvalidOptionError("rgb.data", `${width * height * 3} bytes (${width}x${height} RGB)`, rgb.data);
    }
    checkDimension("targetHeight", targetHeight);
    checkDimension("targetWidth", targetWidth);
    const factor = params.patchSize * params.mergeSize;
    if (!Number.isInteger(factor) || factor < 1 || targetHeight % factor !== 0 || targetWidth % factor !== 0) {
        throw new InvalidOptionError(
            "targetHeight/targetWidth",
            `multiples of patchSize * mergeSize = ${factor}`,
            `${targetWidth}x${targetHeight}`,
        );
    }
    const addon = native();
    const data =
        targetWidth === width && targetHeight === height
            ? rgb.data
            : await addon.resizeRgb(rgb.data, width, height, targetWidth, targetHeight);
    const out = await addon.patchify(data, targetWidth, targetHeight, {
        patchSize: params.patchSize,
        mergeSize: params.mergeSize,
        mean: params.mean,
        std: params.std,
        rescale: params.rescale,
    });
    return {
        patches: out.patches,
        positions: out.positions,
        gridHeight: out.gridHeight,
        gridWidth: out.gridWidth,
        resized: { width: targetWidth, height: targetHeight, data },
    };
}
