/**
 * The vision pipeline's stages, one native call each: preprocess (Pillow-exact bicubic resize, normalize,
 * patchify), prune (Differential Frame Pruning of one frame against the previous one) and encode (encoder, merge,
 * token selection, projector). They run the same C++ stage functions as `NativeVision.encode`, which does all three
 * in one task, so composing them gives the same embeddings bit for bit. Apart, they let a caller preprocess the next
 * batch while one is encoded, look at the keep masks before encoding, or encode the same patches again.
 *
 * Patches stay in native memory between the stages ({@link NativePatchesHandle}); only the keep masks and the
 * embeddings' counts cross into JS.
 *
 * @internal
 * @module
 */
import { isNativeError } from "../native/errors.js";
import { native } from "../native/load.js";
import type {
    NativeAbortFlag,
    NativeEncodePatchesItem,
    NativeEncodeResult,
    NativeEncoderReuse,
    NativeFrameState,
    NativePatchesHandle,
    NativePreprocessItem,
    NativePruneParams,
    NativePruneResult,
    NativeVision,
} from "../native/types.js";

/** Options of {@link encodePatches}. */
export interface EncodePatchesOptions {
    /** Stops encoding (between encoder batches, and inside one on the CPU); rejects with the signal's reason. */
    signal?: AbortSignal;
    /** (items done, items total), after each encoder batch. */
    onProgress?: (done: number, total: number) => void;
    /** Upper bound on patches per encoder batch (bounds compute memory); default 4096. */
    maxBatchPatches?: number;
    /**
     * Compute only the kept blocks of each frame, the others' encoder states coming from the earlier frames of the
     * same video (NaViT projectors; frames in their order, one `reuse` per video). An approximation: see
     * VisionEncoder::encode_changed.
     */
    reuse?: NativeEncoderReuse;
}

/**
 * Stage 1: resizes each image or frame to its target size, normalizes it and cuts it into patch rows, on a worker
 * thread. Needs only the projector's settings, so it may run while the encoder works on an earlier batch.
 */
export function preprocessFrames(vision: NativeVision, items: readonly NativePreprocessItem[], signal?: AbortSignal): Promise<NativePatchesHandle[]> {
    return withAbort(signal, "Preprocessing was aborted", (abort) => vision.preprocess([...items], abort));
}

/**
 * Stage 2: the DiffFP keep mask of one video frame against the frame `frameState` holds (none, or one of another
 * grid: a first frame, all kept); this frame then replaces it. Frames must be pruned in their order on the timeline.
 */
export function pruneFrame(vision: NativeVision, patches: NativePatchesHandle, frameState: NativeFrameState, params: NativePruneParams = {}): NativePruneResult {
    return vision.prune(patches, frameState, params);
}

/** Stage 3: the encoder and projector over preprocessed items, each restricted to its kept tokens. */
export function encodePatches(vision: NativeVision, items: readonly NativeEncodePatchesItem[], options: EncodePatchesOptions = {}): Promise<NativeEncodeResult> {
    return withAbort(options.signal, "Encoding was aborted", (abort) =>
        vision.encodePatches(
            [...items],
            { ...(options.maxBatchPatches ? { maxBatchPatches: options.maxBatchPatches } : {}), ...(options.reuse ? { reuse: options.reuse } : {}) },
            options.onProgress,
            abort,
        ),
    );
}

/**
 * Runs a native call with an AbortFlag that follows `signal`; the call's VL_ABORTED rejection becomes the signal's
 * reason (an AbortError DOMException when it has none).
 */
export async function withAbort<T>(signal: AbortSignal | undefined, message: string, call: (abort: NativeAbortFlag) => Promise<T>): Promise<T> {
    const abort = new (native().AbortFlag)();
    const onAbort = () => abort.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) abort.abort();
    try {
        return await call(abort);
    } catch (err) {
        if (isNativeError(err, "VL_ABORTED")) throw signal?.reason ?? new DOMException(message, "AbortError");
        throw err;
    } finally {
        signal?.removeEventListener("abort", onAbort);
    }
}
