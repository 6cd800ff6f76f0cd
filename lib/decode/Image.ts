/**
 * Images as prompt inputs: from a file, from an encoded buffer (JPEG, PNG, BMP, GIF — first frame —, WebP) or from
 * raw RGB/RGBA pixels. Decoding happens in native code off the JS thread, lazily on first use, and is cached.
 *
 * The decoded pixels are what the reference pipeline gets from `PIL.Image.open(path).convert("RGB")`: alpha is
 * dropped (not blended with a background), grey is replicated into R, G and B, palettes are expanded.
 *
 * @module
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidOptionError, MediaDecodeError } from "../errors.js";
import { isNativeError } from "../native/errors.js";
import { native } from "../native/load.js";
import { checkOptionsObject, optionalInteger } from "../validate.js";

/** Default limit on decoded pixels (width × height): 100 megapixels. */
export const DEFAULT_MAX_IMAGE_PIXELS = 100_000_000;

/** Options of {@link Image.fromFile}, {@link Image.fromBuffer} and {@link toImage}. */
export interface ImageOptions {
    /**
     * Largest accepted width × height in pixels; a larger image is refused from its header, before any pixel memory
     * is allocated (decompression-bomb protection). Default {@link DEFAULT_MAX_IMAGE_PIXELS} (100,000,000).
     */
    maxPixels?: number;
}

/** Raw pixels for {@link Image.fromPixels}. */
export interface RawPixels {
    /** Pixel bytes, row after row, no padding: `width * height * 3` (rgb) or `* 4` (rgba) bytes. */
    data: Uint8Array | Uint8ClampedArray;
    /** Width in pixels. */
    width: number;
    /** Height in pixels. */
    height: number;
    /** Channel layout: `"rgb"` or `"rgba"` (alpha is dropped, as `convert("RGB")` does). */
    format: "rgb" | "rgba";
}

/** A decoded image: packed RGB8. Shared by every caller of {@link Image.decode}: do not modify `data`. */
export interface DecodedImage {
    /** Width in pixels. */
    readonly width: number;
    /** Height in pixels. */
    readonly height: number;
    /** R, G, B bytes of each pixel, rows top to bottom: `width * height * 3` bytes. */
    readonly data: Uint8Array;
}

type Source =
    | { kind: "file"; path: string }
    | { kind: "buffer"; bytes: Uint8Array }
    | { kind: "pixels"; decoded: DecodedImage };

const OPTION_KEYS = ["maxPixels"] as const;

function parseOptions(options: ImageOptions | undefined): number {
    const o = checkOptionsObject(options, OPTION_KEYS);
    return optionalInteger("maxPixels", o.maxPixels, 1, Number.MAX_SAFE_INTEGER, DEFAULT_MAX_IMAGE_PIXELS);
}

/**
 * An image to put in a prompt. Create it with {@link Image.fromFile}, {@link Image.fromBuffer} or
 * {@link Image.fromPixels} (or pass a path/buffer where an image is expected: see {@link toImage}).
 */
export class Image {
    /** What the image is, for messages: the file path, `"<Buffer N bytes>"` or `"<pixels WxH rgb>"`. */
    readonly source: string;
    readonly #input: Source;
    readonly #maxPixels: number;
    #decoded: Promise<DecodedImage> | undefined;

    private constructor(input: Source, source: string, maxPixels: number) {
        this.#input = input;
        this.source = source;
        this.#maxPixels = maxPixels;
        if (input.kind === "pixels") this.#decoded = Promise.resolve(input.decoded);
    }

    /**
     * An image file (JPEG, PNG, BMP, GIF — first frame —, or WebP; the format comes from the content, not the name).
     * Nothing is read until {@link decode}; a relative path is resolved against the current working directory now.
     *
     * @param path a file path (relative to the working directory) or a `file:` URL
     */
    static fromFile(path: string | URL, options?: ImageOptions): Image {
        const maxPixels = parseOptions(options);
        let p: string;
        if (path instanceof URL) {
            if (path.protocol !== "file:") throw new InvalidOptionError("path", "a file path or a file: URL", path.href);
            p = fileURLToPath(path);
        } else if (typeof path === "string" && path.length > 0) {
            p = path;
        } else {
            throw new InvalidOptionError("path", "a non-empty string or a file: URL", path);
        }
        // Resolved now, so that a later change of the working directory does not change which file is read.
        return new Image({ kind: "file", path: resolve(p) }, p, maxPixels);
    }

    /**
     * An encoded image held in memory (the bytes of a JPEG, PNG, BMP, GIF or WebP file). The bytes are not copied:
     * do not modify them until the image is decoded.
     */
    static fromBuffer(buffer: Uint8Array, options?: ImageOptions): Image {
        if (!(buffer instanceof Uint8Array)) throw new InvalidOptionError("buffer", "a Buffer or Uint8Array", buffer);
        const maxPixels = parseOptions(options);
        return new Image({ kind: "buffer", bytes: buffer }, `<Buffer ${buffer.byteLength} bytes>`, maxPixels);
    }

    /**
     * Raw pixels, e.g. from a canvas (`ctx.getImageData()` gives rgba) or another decoder. The pixels are copied (and
     * RGBA converted to RGB by dropping alpha) now, so the caller may reuse its buffer.
     *
     * @throws InvalidOptionError when the object is malformed or `data` does not hold exactly `width * height`
     * pixels of the format.
     */
    static fromPixels(pixels: RawPixels): Image {
        if (typeof pixels !== "object" || pixels === null) {
            throw new InvalidOptionError("pixels", "an object { data, width, height, format }", pixels);
        }
        checkOptionsObject(pixels, ["data", "width", "height", "format"], "pixels");
        const { data, width, height, format } = pixels;
        if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) {
            throw new InvalidOptionError("pixels.data", "a Uint8Array, Uint8ClampedArray or Buffer", data);
        }
        for (const [name, value] of [["width", width], ["height", height]] as const) {
            if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 1 << 20) {
                throw new InvalidOptionError(`pixels.${name}`, "an integer between 1 and 1048576", value);
            }
        }
        if (format !== "rgb" && format !== "rgba") throw new InvalidOptionError("pixels.format", '"rgb" or "rgba"', format);
        const channels = format === "rgb" ? 3 : 4;
        const expected = width * height * channels;
        if (data.length !== expected) {
            throw new InvalidOptionError(
                "pixels.data",
                `${expected} bytes (${width} x ${height} x ${channels} for ${format})`,
                data,
                `it has ${data.length} bytes`,
            );
        }
        const rgb = copyToRgb(data, width * height, channels);
        return new Image({ kind: "pixels", decoded: { width, height, data: rgb } }, `<pixels ${width}x${height} ${format}>`, 0);
    }

    /**
     * The decoded RGB8 pixels. Decodes on the first call (off the JS thread) and returns the same result afterwards;
     * after a failure the next call tries again.
     *
     * @throws MediaDecodeError (with {@link Image.source}) when the data is not a supported image, is corrupt or
     * truncated, exceeds `maxPixels`, or the file cannot be read.
     */
    decode(): Promise<DecodedImage> {
        if (this.#decoded) return this.#decoded;
        const input = this.#input;
        const options = { maxPixels: this.#maxPixels };
        let promise: Promise<DecodedImage>;
        try {
            const addon = native();
            if (input.kind === "file") promise = addon.decodeImage(input.path, options);
            else if (input.kind === "buffer") promise = addon.decodeImage(input.bytes, options);
            else return Promise.resolve(input.decoded);
        } catch (err) {
            return Promise.reject(err);
        }
        const decoded = promise.then(
            (rgb): DecodedImage => Object.freeze({ width: rgb.width, height: rgb.height, data: rgb.data }),
            (err: unknown) => {
                if (this.#decoded === decoded) this.#decoded = undefined;
                if (isNativeError(err)) throw new MediaDecodeError(this.source, err.message, { cause: err });
                throw err;
            },
        );
        this.#decoded = decoded;
        return decoded;
    }

    /** The source description. */
    toString(): string {
        return `Image(${this.source})`;
    }
}

/**
 * Accepts what users pass as an image: an {@link Image}, a file path (string or `file:` URL), a Buffer/Uint8Array
 * holding an encoded image, or a {@link RawPixels} object.
 *
 * @param options applied when a new Image is created (ignored for an existing Image)
 */
/**
 * A packed RGB8 copy of `pixels` pixels of 3- or 4-channel data (alpha dropped): the caller's buffer is never kept,
 * so it may reuse it at once.
 * @internal
 */
export function copyToRgb(data: Uint8Array | Uint8ClampedArray, pixels: number, channels: 3 | 4): Uint8Array {
    const rgb = new Uint8Array(pixels * 3);
    if (channels === 3) {
        rgb.set(data.subarray(0, pixels * 3));
        return rgb;
    }
    for (let i = 0, j = 0; i < pixels; i++, j += 4) {
        rgb[i * 3] = data[j]!;
        rgb[i * 3 + 1] = data[j + 1]!;
        rgb[i * 3 + 2] = data[j + 2]!;
    }
    return rgb;
}

export function toImage(value: Image | string | URL | Uint8Array | RawPixels, options?: ImageOptions): Image {
    if (value instanceof Image) return value;
    if (typeof value === "string" || value instanceof URL) return Image.fromFile(value, options);
    if (value instanceof Uint8Array) return Image.fromBuffer(value, options);
    if (typeof value === "object" && value !== null && "data" in value && "width" in value && "height" in value) {
        return Image.fromPixels(value as RawPixels);
    }
    throw new InvalidOptionError(
        "image",
        "an Image, a file path, a Buffer/Uint8Array with an encoded image, or { data, width, height, format }",
        value,
    );
}
