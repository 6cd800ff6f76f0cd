/**
 * What a prompt can contain: text, images and (with a vision projector) videos, in any order.
 *
 * @module
 */
import { Image, toImage, type RawPixels } from "../decode/Image.js";
import { InvalidOptionError } from "../errors.js";

/** Anything accepted where an image is expected: an {@link Image}, a file path or `file:` URL, encoded bytes, raw pixels. */
export type ImageInput = Image | string | URL | Uint8Array | RawPixels;

/**
 * One part of a prompt. Strings are text (a path must be wrapped: `{ image: "photo.jpg" }`); an `Image`, a
 * `Buffer`/`Uint8Array` (an encoded file) or `{ image }` is an image.
 */
export type PromptPart = string | Image | Uint8Array | { text: string } | { image: ImageInput };

/** A prompt: text, or a list of parts (e.g. `["What is in this photo?", Image.fromFile("cat.jpg")]`). */
export type PromptInput = string | readonly PromptPart[];

/** A part of a message as the session keeps it. */
export type ContentPart =
    | { type: "text"; text: string }
    | { type: "image"; image: Image };

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
        if (typeof part === "object" && part !== null) {
            const keys = Object.keys(part);
            if (keys.length === 1 && keys[0] === "text") {
                const text = (part as { text: unknown }).text;
                if (typeof text !== "string") throw new InvalidOptionError(`${name}.text`, "a string", text);
                return { type: "text", text };
            }
            if (keys.length === 1 && keys[0] === "image") return { type: "image", image: toImage((part as { image: ImageInput }).image) };
        }
        throw new InvalidOptionError(name, "a string, an Image, a Buffer, { text } or { image }", part);
    });
}

/** The text of a message's parts joined (media omitted). */
export function textOf(parts: readonly ContentPart[]): string {
    return parts.map((p) => (p.type === "text" ? p.text : "")).join("");
}
