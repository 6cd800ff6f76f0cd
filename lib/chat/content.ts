/**
 * What a prompt can contain: text, images and (with a vision projector) videos, in any order.
 *
 * @module
 */
import { Image, toImage, type RawPixels } from "../decode/Image.js";
import { Video } from "../decode/Video.js";
import { InvalidOptionError } from "../errors.js";

/** Anything accepted where an image is expected: an {@link Image}, a file path or `file:` URL, encoded bytes, raw pixels. */
export type ImageInput = Image | string | URL | Uint8Array | RawPixels;

/**
 * Differential Frame Pruning of a video's visual tokens: `false` keeps every token; `true` prunes with the
 * projector's settings; an object prunes with its values overriding the projector's (`threshold`: mean absolute
 * change of a merged token's patches against the previous frame, in normalized units × 255, above which it is kept —
 * 0.1 by default; `minTokensPerFrame`: tokens always kept; `encodeChangedOnly`: see below). Left out: the model
 * family's default — on for VideoLLaMA3 (trained with it), off for Video-LLaVA (not trained with it).
 *
 * `encodeChangedOnly: true` (VideoLLaMA3 only; default false) also spares the vision encoder the blocks pruning drops:
 * each frame computes only its kept 2×2 blocks, whose queries attend to every patch of the frame, the unchanged
 * blocks' per-layer states coming from the frame where they last changed. The encoder's cost then follows the kept
 * ratio (a screen recording keeps ~6 %), at the price of an approximation: the kept tokens' embeddings differ from
 * the exact encoder's by what the unchanged blocks would have learned from this frame's changes (measured in
 * test/encode/changed-only.test.ts and bench/README.md). A prompt's `result.media` says which encoder ran.
 */
export type PruneOption = boolean | { threshold?: number; minTokensPerFrame?: number; encodeChangedOnly?: boolean };

/**
 * One part of a prompt. Strings are text (a path must be wrapped: `{ image: "photo.jpg" }`, `{ video: "clip.mp4" }`);
 * an `Image`, a `Buffer`/`Uint8Array` (an encoded image file) or `{ image }` is an image; a {@link Video} or
 * `{ video, prune? }` is a video (a path or URL is opened with the projector's default fps and maxFrames).
 */
export type PromptPart = string | Image | Video | Uint8Array | { text: string } | { image: ImageInput } | { video: Video | string | URL; prune?: PruneOption };

/** A prompt: text, or a list of parts (e.g. `["What is in this photo?", Image.fromFile("cat.jpg")]`). */
export type PromptInput = string | readonly PromptPart[];

/** A part of a message as the session keeps it. */
export type ContentPart =
    | { type: "text"; text: string }
    | { type: "image"; image: Image }
    | { type: "video"; video: Video | string | URL; prune?: PruneOption };

/** Normalizes user input to content parts; media are validated but not decoded yet. */
export function toContentParts(input: PromptInput, option = "prompt"): ContentPart[] {
    if (typeof input === "string") return [{ type: "text", text: input }];
    if (!Array.isArray(input)) throw new InvalidOptionError(option, "a string or an array of prompt parts", input);
    if (input.length === 0) throw new InvalidOptionError(option, "a non-empty array of prompt parts", input);
    return input.map((part, i): ContentPart => {
        const name = `${option}[${i}]`;
        if (typeof part === "string") return { type: "text", text: part };
        if (part instanceof Image) return { type: "image", image: part };
        if (part instanceof Uint8Array) return { type: "image", image: Image.fromBuffer(part) };
        if (part instanceof Video) return { type: "video", video: part };
        if (typeof part === "object" && part !== null) {
            const keys = Object.keys(part);
            if (keys.length === 1 && keys[0] === "text") {
                const text = (part as { text: unknown }).text;
                if (typeof text !== "string") throw new InvalidOptionError(`${name}.text`, "a string", text);
                return { type: "text", text };
            }
            if (keys.length === 1 && keys[0] === "image") return { type: "image", image: toImage((part as { image: ImageInput }).image) };
            if (keys.includes("video") && keys.every((k) => k === "video" || k === "prune")) {
                const { video, prune } = part as { video: unknown; prune?: unknown };
                if (!(video instanceof Video) && typeof video !== "string" && !(video instanceof URL)) {
                    throw new InvalidOptionError(`${name}.video`, "a Video, a path or a URL", video);
                }
                return { type: "video", video, ...(prune !== undefined ? { prune: checkPrune(prune, `${name}.prune`) } : {}) };
            }
        }
        throw new InvalidOptionError(name, "a string, an Image, a Video, a Buffer, { text }, { image } or { video }", part);
    });
}

/** The text of a message's parts joined (media omitted). */
export function textOf(parts: readonly ContentPart[]): string {
    return parts.map((p) => (p.type === "text" ? p.text : "")).join("");
}

/** Validates a prune option. */
export function checkPrune(value: unknown, option: string): PruneOption {
    if (typeof value === "boolean") return value;
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InvalidOptionError(option, "true, false or { threshold, minTokensPerFrame, encodeChangedOnly }", value);
    const { threshold, minTokensPerFrame, encodeChangedOnly, ...rest } = value as Record<string, unknown>;
    const unknown = Object.keys(rest)[0];
    if (unknown !== undefined) throw new InvalidOptionError(`${option}.${unknown}`, "threshold, minTokensPerFrame or encodeChangedOnly", rest[unknown]);
    if (encodeChangedOnly !== undefined && typeof encodeChangedOnly !== "boolean") throw new InvalidOptionError(`${option}.encodeChangedOnly`, "a boolean", encodeChangedOnly);
    if (threshold !== undefined && (typeof threshold !== "number" || !Number.isFinite(threshold) || threshold < 0)) {
        throw new InvalidOptionError(`${option}.threshold`, "a number >= 0", threshold);
    }
    if (minTokensPerFrame !== undefined && (typeof minTokensPerFrame !== "number" || !Number.isInteger(minTokensPerFrame) || minTokensPerFrame < 0)) {
        throw new InvalidOptionError(`${option}.minTokensPerFrame`, "an integer >= 0", minTokensPerFrame);
    }
    return {
        ...(threshold !== undefined ? { threshold } : {}),
        ...(minTokensPerFrame !== undefined ? { minTokensPerFrame } : {}),
        ...(encodeChangedOnly !== undefined ? { encodeChangedOnly } : {}),
    };
}
