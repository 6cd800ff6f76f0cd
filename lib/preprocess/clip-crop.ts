/**
 * Resize and centre crop of CLIP image processors (Video-LLaVA's `VideoLlavaImageProcessor`, and its video
 * processor per frame), reproduced with the same IEEE double arithmetic as transformers. Pure arithmetic, no I/O.
 *
 * 1. `get_resize_output_image_size(image, size=shortest_edge, default_to_square=False)`: the shortest side becomes
 *    `shortestEdge`, the other `int(shortestEdge * long / short)` (truncated, not rounded); a square stays square.
 * 2. The picture is resized to that size (Pillow bicubic, in native/preprocess/resize).
 * 3. `center_crop(image, (cropSize, cropSize))`: `top = (H - cropSize) // 2`, `left = (W - cropSize) // 2` (Python
 *    floor division). When the resized picture is smaller than the crop in a dimension, transformers pads it with
 *    zeros first, centred (`ceil((crop - H) / 2)` rows before it); in the picture's own coordinates that is the same
 *    floor formula, giving a negative `top`/`left`, with the window's part outside the picture read as 0. The native
 *    crop ({@link NativeCropRect}) does exactly that. With `shortestEdge >= cropSize` (Video-LLaVA: 224 and 224) the
 *    window always lies inside the picture.
 *
 * @module
 */
import { InvalidOptionError } from "../errors.js";
import type { NativeCropRect } from "../native/types.js";

/** The size a picture is resized to and the window of it that is encoded. */
export interface ClipResizeAndCrop {
    /** Size after the shortest-edge resize (`targetWidth` / `targetHeight` of a native item). */
    resize: { width: number; height: number };
    /** The `cropSize`² window of the resized picture (`crop` of a native item); may reach outside it, see the module. */
    crop: NativeCropRect;
}

function checkSide(option: string, value: unknown): number {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1 || value > 1 << 20) {
        throw new InvalidOptionError(option, "an integer between 1 and 1048576", value);
    }
    return value;
}

/** Python's `a // b` for integers (floor division, also of negatives). */
function floorDiv(a: number, b: number): number {
    return Math.floor(a / b);
}

/**
 * The shortest-edge resize and centre crop of a `width` × `height` picture (see the module): what transformers'
 * CLIP-style processors do with `size={"shortest_edge": shortestEdge}` and `crop_size={"height": cropSize, "width":
 * cropSize}`.
 */
export function clipResizeAndCrop(width: number, height: number, shortestEdge: number, cropSize: number): ClipResizeAndCrop {
    checkSide("width", width);
    checkSide("height", height);
    checkSide("shortestEdge", shortestEdge);
    checkSide("cropSize", cropSize);
    // get_resize_output_image_size: short, long = (width, height) if width <= height else (height, width)
    const short = width <= height ? width : height;
    const long = width <= height ? height : width;
    // new_short, new_long = requested_new_short, int(requested_new_short * long / short)
    const newLong = Math.trunc((shortestEdge * long) / short);
    const resize = width <= height ? { width: shortestEdge, height: newLong } : { width: newLong, height: shortestEdge };
    return {
        resize,
        crop: { left: floorDiv(resize.width - cropSize, 2), top: floorDiv(resize.height - cropSize, 2), width: cropSize, height: cropSize },
    };
}
