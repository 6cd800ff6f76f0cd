/**
 * The vision projector (mmproj GGUF): loading, its preprocessing settings, and encoding images and video frames
 * into embeddings for the language model.
 *
 * @module
 */
import { statSync } from "node:fs";
import { defaultThreadCount } from "../cpu.js";
import { ModelLoadError } from "../errors.js";
import { readGguf } from "../gguf/reader.js";
import { gpuRefusal, gpuRequest, type DeviceInfo, type GpuOption } from "../devices.js";
import { isNativeError } from "../native/errors.js";
import { native } from "../native/load.js";
import type { NativeEncodeResult, NativeEncoderReuse, NativeFrameState, NativeVision, NativeVisionHparams, NativeVisionItem } from "../native/types.js";
import type { Image } from "../decode/Image.js";
import { familyOf, geometryItem } from "../family/index.js";
import { encodePatches, preprocessFrames, pruneFrame } from "./stages.js";

/** Options of {@link Model.encode} and {@link Vision.encode}. */
export interface EncodeOptions {
    /** Stops encoding (between encoder batches, and inside one on the CPU); the call rejects with the signal's reason. */
    signal?: AbortSignal;
}

/** Visual token embeddings of one image. */
export interface EncodeResult {
    /** `tokens × width` floats, row by row in raster order of the merged patch grid. */
    embeddings: Float32Array;
    /** Number of visual tokens. */
    tokens: number;
    /** Floats per token (the language model's embedding size). */
    width: number;
    /** Patch grid after merging (`tokens = height × width`). */
    grid: { height: number; width: number };
    /** Pixel size the image was resized to. */
    size: { height: number; width: number };
}

/** Hyper-parameters and preprocessing settings of a vision projector, all read from its GGUF. */
export type VisionInfo = Readonly<NativeVisionHparams> & {
    /** Where the encoder runs and why there. */
    readonly device: DeviceInfo;
    /** Bytes of weights. */
    readonly weightsBytes: number;
};

/** @internal */
export class VisionProjector {
    readonly path: string;
    readonly info: VisionInfo;
    #native: NativeVision | undefined;
    #queue: Promise<unknown> = Promise.resolve();

    private constructor(path: string, nativeVision: NativeVision) {
        this.path = path;
        this.#native = nativeVision;
        const i = nativeVision.info();
        this.info = Object.freeze({ ...nativeVision.hparams(), device: i.device, weightsBytes: i.weightsBytes });
    }

    static async load(
        path: string,
        options: { gpu?: GpuOption; threads?: number; signal?: AbortSignal; onProgress?: (fraction: number) => void },
    ): Promise<VisionProjector> {
        const gpu = gpuRequest(options.gpu);
        await checkProjectorFile(path);
        const addon = native();
        const abort = new addon.AbortFlag();
        const onAbort = () => abort.abort();
        options.signal?.addEventListener("abort", onAbort, { once: true });
        try {
            const nativeVision = await addon.loadVision({ path, ...gpu, threads: options.threads ?? defaultThreadCount() }, options.onProgress, abort);
            return new VisionProjector(path, nativeVision);
        } catch (err) {
            if (isNativeError(err, "VL_ABORTED")) throw options.signal?.reason ?? new DOMException("Loading was aborted", "AbortError");
            const refusal = gpuRefusal(err, options.gpu);
            if (refusal) throw refusal;
            if (isNativeError(err)) throw new ModelLoadError(path, "LOAD_FAILED", err.message.replace(`${path}: `, ""), { cause: err });
            throw err;
        } finally {
            options.signal?.removeEventListener("abort", onAbort);
        }
    }

    /**
     * Encodes images/frames (one call at a time; calls queue). Aborting rejects with the signal's reason.
     *
     * The three stages of lib/encode/stages.ts in turn: every item preprocessed, then the frames with `prune` pruned in
     * order (the first against `frameState`'s frame; without a frameState, against none), then all encoded. An abort
     * during preprocessing leaves `frameState` as it was; one during encoding leaves it at the last frame pruned
     * (callers that abort start over with a fresh FrameState, as prompts do).
     */
    encode(
        items: NativeVisionItem[],
        options: {
            signal?: AbortSignal;
            onProgress?: (done: number, total: number) => void;
            frameState?: NativeFrameState;
            maxBatchPatches?: number;
            /** Compute only each frame's kept blocks, from the states of the video's earlier frames (see encodePatches). */
            reuse?: NativeEncoderReuse;
        } = {},
    ): Promise<NativeEncodeResult> {
        const run = this.#queue.then(async () => {
            const nativeVision = this.#native;
            if (!nativeVision) throw new ModelLoadError(this.path, "LOAD_FAILED", "the vision projector was disposed");
            const { signal } = options;
            const patches = await preprocessFrames(nativeVision, items, signal);
            // Pruning is synchronous, so the frames are pruned all or none: the abort can only come before.
            if (signal?.aborted) throw signal.reason;
            const frameState = items.some((item) => item.prune) ? (options.frameState ?? new (native().FrameState)()) : undefined;
            const inputs = patches.map((p, i) => {
                const prune = items[i]!.prune;
                return { patches: p, keep: prune ? pruneFrame(nativeVision, p, frameState!, prune).keep : null };
            });
            return encodePatches(nativeVision, inputs, {
                ...(signal ? { signal } : {}),
                ...(options.onProgress ? { onProgress: options.onProgress } : {}),
                ...(options.maxBatchPatches ? { maxBatchPatches: options.maxBatchPatches } : {}),
                ...(options.reuse ? { reuse: options.reuse } : {}),
            });
        });
        this.#queue = run.catch(() => {});
        return run;
    }

    /** Encodes one image resized by the rule for a single image (what {@link Model.encode} returns). */
    async encodeImage(image: Image, signal: AbortSignal | undefined): Promise<EncodeResult> {
        if (signal?.aborted) throw signal.reason;
        const decoded = await image.decode();
        const geometry = familyOf(this.info).imageGeometry(decoded.width, decoded.height, this.info);
        const encoded = await this.encode([{ rgb: decoded.data, width: decoded.width, height: decoded.height, ...geometryItem(geometry) }], { signal });
        const size = geometry.crop ?? geometry.resize;
        return {
            embeddings: encoded.embeddings.toFloat32Array(),
            tokens: encoded.counts[0]!,
            width: encoded.embeddings.width,
            grid: { ...geometry.grid },
            size: { height: size.height, width: size.width },
        };
    }

    /** Compute buffer bytes the encoder has used so far (its largest batch). */
    computeBytes(): number {
        return this.#native?.info().computeBytes ?? 0;
    }

    async dispose(): Promise<void> {
        await this.#queue.catch(() => {});
        this.#native?.dispose();
        this.#native = undefined;
    }
}

async function checkProjectorFile(path: string): Promise<void> {
    try {
        if (!statSync(path).isFile()) throw new ModelLoadError(path, "NOT_A_FILE", "not a regular file");
    } catch (err) {
        if (err instanceof ModelLoadError) throw err;
        throw new ModelLoadError(path, "NOT_FOUND", "no such file", { cause: err });
    }
    let file;
    try {
        file = await readGguf(path);
    } catch (err) {
        const reason = (err as { reason?: string }).reason;
        throw new ModelLoadError(path, reason === "NOT_GGUF" ? "NOT_GGUF" : reason === "TRUNCATED" ? "TRUNCATED" : "CORRUPT", (err as Error).message, { cause: err });
    }
    if (file.getString("general.architecture") !== "clip") {
        throw new ModelLoadError(path, "WRONG_KIND", `this is not a vision projector (general.architecture is "${file.getString("general.architecture") ?? "missing"}"); pass the text model as \`model\``);
    }
    const projector = file.getString("clip.projector_type");
    if (projector !== "videollama3" && projector !== "video_llava") {
        throw new ModelLoadError(
            path,
            "UNSUPPORTED_ARCHITECTURE",
            `projector type "${projector ?? "missing"}" is not supported (vidllama runs VideoLLaMA3 and Video-LLaVA projectors)`,
        );
    }
}
