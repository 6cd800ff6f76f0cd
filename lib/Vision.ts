/**
 * A vision projector on its own: image → visual token embeddings, without a language model (for users who want
 * the features, and `vidllama embed`).
 *
 * @module
 */
import { resolve } from "node:path";
import type { ImageInput } from "./chat/content.js";
import { toImage } from "./decode/Image.js";
import { VisionProjector, type EncodeOptions, type EncodeResult, type VisionInfo } from "./encode/vision.js";
import { DisposedError } from "./errors.js";
import { checkOptionsObject, optionalFunction, optionalInteger, optionalSignal, requiredString, throwIfAborted } from "./validate.js";

export type { EncodeOptions, EncodeResult } from "./encode/vision.js";

/** Options of {@link loadVision}. */
export interface LoadVisionOptions {
    /** Path of the vision projector GGUF (`mmproj-*.gguf`). */
    mmproj: string;
    /** Run on the GPU when vidllama was built with a GPU backend and one is present. Defaults to true. */
    gpu?: boolean;
    /** CPU threads. Defaults to the number of cores. */
    threads?: number;
    signal?: AbortSignal;
    /** Loading progress, 0..1. */
    onProgress?: (fraction: number) => void;
}

/**
 * Loads a vision projector alone.
 *
 * @example
 * ```ts
 * await using vision = await loadVision({ mmproj: "mmproj-VideoLLaMA3-2B-f16.gguf" });
 * const { embeddings, tokens, grid } = await vision.encode("cat.jpg");
 * ```
 * @throws {ModelLoadError} for a missing, malformed or unsupported file
 */
export async function loadVision(options: LoadVisionOptions): Promise<Vision> {
    checkOptionsObject(options, ["mmproj", "gpu", "threads", "signal", "onProgress"]);
    const path = resolve(requiredString("mmproj", options?.mmproj));
    const signal = optionalSignal("signal", options.signal);
    const threads = optionalInteger("threads", options.threads, 1, 1024);
    const onProgress = optionalFunction<(f: number) => void>("onProgress", options.onProgress);
    throwIfAborted(signal);
    const projector = await VisionProjector.load(path, {
        gpu: options.gpu !== false,
        threads,
        signal,
        onProgress: (f) => {
            try {
                onProgress?.(f);
            } catch {
                // a listener's exception must not break loading
            }
        },
    });
    return new Vision(projector);
}

/** A loaded vision projector. */
export class Vision {
    #projector: VisionProjector | undefined;
    /** Absolute path of the projector file. */
    readonly path: string;
    /** Hyper-parameters and preprocessing settings from the file. */
    readonly info: VisionInfo;

    /** @internal Use {@link loadVision}. */
    constructor(projector: VisionProjector) {
        this.#projector = projector;
        this.path = projector.path;
        this.info = projector.info;
    }

    get disposed(): boolean {
        return this.#projector === undefined;
    }

    /**
     * Encodes one image (a path, `file:` URL, encoded bytes, raw pixels or an {@link Image}), resized by the model's
     * rule for a single image.
     */
    async encode(image: ImageInput, options: EncodeOptions = {}): Promise<EncodeResult> {
        checkOptionsObject(options, ["signal"]);
        const projector = this.#projector;
        if (!projector) throw new DisposedError("Vision");
        return projector.encodeImage(toImage(image), optionalSignal("signal", options.signal));
    }

    /** Largest compute buffer the encoder has used so far, in bytes. */
    computeBytes(): number {
        return this.#projector?.computeBytes() ?? 0;
    }

    async dispose(): Promise<void> {
        const projector = this.#projector;
        this.#projector = undefined;
        await projector?.dispose();
    }

    async [Symbol.asyncDispose](): Promise<void> {
        await this.dispose();
    }
}
