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
import { checkPrune, type PruneOption } from "./chat/content.js";
import { VideoHandle } from "./chat/media.js";
import { VideoProducer, type FrameReport, type MediaTimings, type VideoProgress } from "./chat/plan.js";
import { familyOf } from "./family/index.js";
import { Video } from "./decode/Video.js";
import { DisposedError, HubError, InvalidOptionError } from "./errors.js";
import { HUB_OPTIONS, pullForLoad, type HubOptions, type PullProgress } from "./hub/pull.js";
import { isHubReference } from "./hub/reference.js";
import { gpuRequest, type GpuOption } from "./devices.js";
import { checkOptionsObject, optionalFunction, optionalInteger, optionalSignal, requiredString, throwIfAborted } from "./validate.js";

export type { EncodeOptions, EncodeResult } from "./encode/vision.js";

/** Options of {@link Vision.encodeVideo}. */
export interface EncodeVideoOptions {
    signal?: AbortSignal;
    /** Differential Frame Pruning: `false` keeps every token; defaults to the projector's settings. */
    prune?: PruneOption;
    /** Frames decoded / encoded and tokens kept so far. */
    onProgress?: (progress: VideoProgress) => void;
}

/** Visual tokens of a video: the kept tokens of every frame, frame after frame. */
export interface EncodeVideoResult {
    /** `tokens × width` floats. */
    embeddings: Float32Array;
    /** Kept tokens of all frames. */
    tokens: number;
    width: number;
    /** Each frame's timestamp and its tokens before and after pruning. */
    frames: FrameReport[];
    /** Merged token grid of one frame (tokens before pruning = height × width, plus a class token where the model keeps it). */
    grid: { height: number; width: number };
    /** Pixel size of what was encoded of each frame (after the resize, and Video-LLaVA's centre crop). */
    size: { height: number; width: number };
    /** Time waiting for frames and running the encoder. */
    timings: MediaTimings;
    /** How the encoder ran: exact, or only the kept blocks (`prune.encodeChangedOnly`), with the patches computed. */
    encoder: { mode: "exact" | "changed-only"; patchesComputed: number; patches: number };
}

/** Options of {@link loadVision}. */
export interface LoadVisionOptions {
    /** Path of the vision projector GGUF (`mmproj-*.gguf`), or an `hf:` reference whose projector is used. */
    mmproj: string;
    /** Cache, token, endpoint and offline settings for an `hf:` reference. */
    hub?: HubOptions;
    /** Where to run, as {@link LoadModelOptions.gpu}: `"auto"` (default), `"cpu"`/`false`, a backend or a device index. */
    gpu?: GpuOption;
    /** CPU threads. Defaults to the physical cores this process may use (`cpuTopology()`). */
    threads?: number;
    signal?: AbortSignal;
    /** Loading progress, 0..1. */
    onProgress?: (fraction: number) => void;
    /** Progress of pulling an `hf:` reference (before loading). */
    onPullProgress?: (progress: PullProgress) => void;
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
    checkOptionsObject(options, ["mmproj", "hub", "gpu", "threads", "signal", "onProgress", "onPullProgress"]);
    let mmproj = requiredString("mmproj", options?.mmproj);
    const hub = checkOptionsObject(options.hub, HUB_OPTIONS, "hub");
    const signal = optionalSignal("signal", options.signal);
    const threads = optionalInteger("threads", options.threads, 1, 1024);
    gpuRequest(options.gpu); // a bad value is reported before anything is pulled or read
    const onProgress = optionalFunction<(f: number) => void>("onProgress", options.onProgress);
    const onPullProgress = optionalFunction<(p: PullProgress) => void>("onPullProgress", options.onPullProgress);
    throwIfAborted(signal);
    if (isHubReference(mmproj)) {
        const pulled = await pullForLoad(mmproj, { ...hub, ...(signal ? { signal } : {}), ...(onPullProgress ? { onProgress: onPullProgress } : {}) }, "mmproj");
        if (!pulled.mmproj) throw new HubError("ERR_HUB_NO_FILES", pulled.reference, "it has no vision projector (no mmproj GGUF)");
        mmproj = pulled.mmproj;
    }
    const path = resolve(mmproj);
    const projector = await VisionProjector.load(path, {
        gpu: options.gpu,
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

    /**
     * Encodes a video the way a prompt does: frames sampled by the {@link Video}, resized by the video rule (the budget
     * shared by all frames), pruned by Differential Frame Pruning unless `prune: false`, encoded with the video merge
     * size. Returns the kept tokens of every frame, in order.
     */
    async encodeVideo(video: Video, options: EncodeVideoOptions = {}): Promise<EncodeVideoResult> {
        checkOptionsObject(options, ["signal", "prune", "onProgress"]);
        const projector = this.#projector;
        if (!projector) throw new DisposedError("Vision");
        if (!(video instanceof Video)) throw new InvalidOptionError("video", "a Video (Video.open / Video.fromFrames)", video);
        const signal = optionalSignal("signal", options.signal);
        const prune = options.prune === undefined ? undefined : checkPrune(options.prune, "prune");
        const onProgress = optionalFunction<(p: VideoProgress) => void>("onProgress", options.onProgress);
        const handle = await VideoHandle.of(video, signal);
        const family = familyOf(this.info);
        const [geometry] = family.requestGeometry([{ kind: "video", height: video.height, width: video.width, frames: handle.plan.count }], this.info);
        const producer = new VideoProducer(projector, handle, geometry!, family.resolvePrune(prune, this.info), onProgress);
        const chunks: Float32Array[] = [];
        let tokens = 0;
        for await (const slot of producer.produce(0, signal)) {
            chunks.push(slot.embeddings.toFloat32Array(slot.first, slot.count));
            tokens += slot.count;
        }
        const embeddings = new Float32Array(tokens * this.info.projectionDim);
        let offset = 0;
        for (const c of chunks) {
            embeddings.set(c, offset);
            offset += c.length;
        }
        const size = geometry!.crop ?? geometry!.resize;
        return {
            embeddings,
            tokens,
            width: this.info.projectionDim,
            frames: producer.frames.map((fr) => ({ ...fr })),
            grid: { ...geometry!.grid },
            size: { height: size.height, width: size.width },
            timings: { ...producer.timings },
            encoder: { mode: producer.prune?.encodeChangedOnly ? "changed-only" : "exact", ...producer.encoderWork },
        };
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
