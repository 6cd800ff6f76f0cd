/**
 * The typed surface of the native addon (native/bindings/*.cpp). Only lib/ talks to these objects; users see the
 * wrappers (Model, Session, ...). Keep in sync with native/bindings: names and argument order match 1:1.
 *
 * @internal
 * @module
 */

/** Error thrown or rejected by native code: `code` is one of the VL_* codes of native/common/error.cpp. */
export interface NativeError extends Error {
    code: NativeErrorCode;
}

export type NativeErrorCode =
    | "VL_INVALID_ARGUMENT"
    | "VL_MODEL_LOAD"
    | "VL_CONTEXT_CREATE"
    | "VL_CONTEXT_FULL"
    | "VL_DECODE"
    | "VL_ABORTED"
    | "VL_IO"
    | "VL_STATE_MISMATCH"
    | "VL_BUSY"
    | "VL_DISPOSED"
    | "VL_OUT_OF_MEMORY"
    | "VL_INTERNAL";

export interface NativeAbortFlag {
    abort(): void;
    readonly aborted: boolean;
}

/** Where a model or projector runs (native/llm/backend.h DeviceChoice). */
export interface NativeDevice {
    name: string;
    description: string;
    gpu: boolean;
    reason: string;
}

/** What native/llm/backend.cpp found next to the addon and loaded. */
export interface NativeBackends {
    /** The folder the backend modules are loaded from (the addon's). */
    dir: string;
    /** The CPU variant in use ("" if none could be loaded), and why. */
    cpuVariant: string;
    cpuReason: string;
    /** Every CPU module found; score 0 = this CPU lacks an instruction set it needs. */
    cpuVariants: { name: string; file: string; score: number }[];
    /** Every other backend module found, loaded or not. */
    modules: { name: string; file: string; loaded: boolean; devices: number; error?: string }[];
    devices: { name: string; description: string; backend: string; type: "cpu" | "gpu" | "igpu" | "accelerator"; memoryTotal: number; memoryFree: number }[];
}

export interface NativeModelInfo {
    device: NativeDevice;
    description: string;
    parameters: number;
    sizeBytes: number;
    trainContextSize: number;
    embeddingSize: number;
    inputEmbeddingSize: number;
    layers: number;
    heads: number;
    kvHeads: number;
    vocabSize: number;
    bos: number;
    eos: number;
    eot: number;
    addBos: boolean;
    recurrent: boolean;
    canShift: boolean;
    chatTemplate: string | null;
}

export interface NativeContextParams {
    contextSize: number;
    batchSize?: number;
    microBatchSize?: number;
    /** Required: the default is lib/cpu.ts's rule. */
    threads: number;
    batchThreads?: number;
    /** -1 auto, 0 off, 1 on */
    flashAttention?: -1 | 0 | 1;
    /** K and V cache in f32 instead of f16. */
    f32Cache?: boolean;
}

export interface NativeModel {
    info(): NativeModelInfo;
    metadata(): Record<string, string>;
    tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
    detokenize(tokens: Int32Array | readonly number[], renderSpecial: boolean): string;
    tokenPiece(token: number, renderSpecial: boolean): Buffer;
    isEog(token: number): boolean;
    specialTokens(): Array<{ id: number; text: string; control: boolean }>;
    createContext(params: NativeContextParams): Promise<NativeContext>;
    dispose(): void;
}

export interface NativeSamplerParams {
    temperature?: number;
    topK?: number;
    topP?: number;
    minP?: number;
    repeatPenalty?: number;
    frequencyPenalty?: number;
    presencePenalty?: number;
    penaltyLastN?: number;
    seed?: number;
    /** Token ids that are never sampled (logit -inf). */
    banned?: readonly number[];
}

export interface NativeSampler {
    accept(tokens: Int32Array | readonly number[]): void;
}

export interface NativeDecodeResult {
    /** Tokens appended to the cache by this call (all unless aborted). */
    evaluated: number;
    aborted: boolean;
    ms: number;
    /** The sampled token, or -1 (no sampler, or aborted). */
    token: number;
    /** Cache length after the call. */
    nPast: number;
}

/**
 * A libllama context (one sequence). Only lib/kv/cache.ts calls the methods that change what the cache holds
 * (evaluate, evaluateEmbeddings, truncate, remove, shift, loadState).
 */
export interface NativeContext {
    /** `position` (default: the cache's end) must be the cache's end: positions stay contiguous. */
    evaluate(tokens: Int32Array, options: { logits?: boolean; sampler?: NativeSampler; position?: number }, abort?: NativeAbortFlag): Promise<NativeDecodeResult>;
    /** Rows [first, first + count) of an Embeddings object (read in place), or a Float32Array (copied). */
    evaluateEmbeddings(
        embeddings: Float32Array | NativeEmbeddings,
        options: { logits?: boolean; first?: number; count?: number; position?: number },
        abort?: NativeAbortFlag,
    ): Promise<NativeDecodeResult>;
    logits(): Float32Array;
    /** Keeps the first nKeep cache positions; returns the new length. */
    truncate(nKeep: number): number;
    /** Drops the cached tokens at positions [p0, p1) (p1 < 0: to the end); returns the cache's end. */
    remove(p0: number, p1: number): number;
    /** Adds delta to the positions in [p0, p1) (p1 < 0: to the end); VL_INVALID_ARGUMENT when the model cannot shift. */
    shift(p0: number, p1: number, delta: number): number;
    saveState(path: string, header: Buffer): Promise<number>;
    loadState(path: string): Promise<number>;
    info(): { contextSize: number; batchSize: number; nPast: number; canShift: boolean; cacheBytesPerToken: number };
    dispose(): void;
}

/** One ggml tensor type as the addon reports it (`ggmlTypes()`). */
export interface NativeGgmlType {
    /** ggml's name, e.g. "f16", "q8_0", "q4_K". */
    name: string;
    /** The ggml_type enum value (the number stored in GGUF tensor infos). */
    id: number;
    /** Values per block (1 for f32/f16/bf16, 32 for q8_0/q4_0, 256 for k-quants). */
    blockSize: number;
    /** Bytes per block. */
    typeSize: number;
    quantized: boolean;
}

/** Packed RGB8 pixels (rows top to bottom, no padding): `data.length === width * height * 3`. */
export interface NativeRgbImage {
    width: number;
    height: number;
    data: Uint8Array;
}

/** Parameters of `patchify` (from the vision projector's metadata). */
export interface NativePatchifyParams {
    /** Pixels per patch side (14 for VideoLLaMA3). */
    patchSize: number;
    /** Patches per merge-block side (1 for images, 2 for video frames). */
    mergeSize: number;
    /** Per-channel mean subtracted after rescaling (R, G, B). */
    mean: readonly number[];
    /** Per-channel standard deviation divided by (R, G, B). */
    std: readonly number[];
    /** Factor applied to the 0..255 values first (1/255; a float32 rendering of 1/255 counts as exactly 1/255). */
    rescale: number;
}

/** Result of `patchify`: rows of 3 * patchSize^2 values in merge-block order, layout (channel, py, px). */
export interface NativePatches {
    patches: Float32Array;
    /** (h, w) patch coordinates of every row, interleaved: h0, w0, h1, w1, ... */
    positions: Int32Array;
    gridHeight: number;
    gridWidth: number;
}

export interface NativeAddon extends NativeVisionAddon {
    systemInfo(): string;
    readonly backends: NativeBackends;
    chooseDevice(gpu: string, gpuIndex: number): NativeDevice;
    loadModel(
        params: { path: string; gpu?: string; gpuIndex?: number; gpuLayers?: number; useMmap?: boolean; vocabOnly?: boolean },
        onProgress?: (fraction: number) => void,
        abort?: NativeAbortFlag,
    ): Promise<NativeModel>;
    AbortFlag: new () => NativeAbortFlag;
    Sampler: new (model: NativeModel, params: NativeSamplerParams) => NativeSampler;
    /** The ggml tensor types this build can convert from f32 and back. */
    ggmlTypes(): NativeGgmlType[];
    /**
     * Converts nRows rows of nPerRow f32 values to ggml `type` (by name, case-insensitive) with ggml's own
     * quantizers on `threads` threads (default: all cores). nPerRow must be a multiple of the type's block size.
     * The source array must not be modified until the promise settles.
     */
    quantize(type: string, src: Float32Array, nRows: number, nPerRow: number, threads?: number): Promise<Buffer>;
    /** Converts nElements values stored as ggml `type` back to f32 (synchronous). */
    dequantize(type: string, data: Uint8Array, nElements: number): Float32Array;
    /**
     * libllama's whole-model quantizer (`llama_model_quantize`, default parameters) from GGUF inPath to outPath;
     * ftype is a llama_ftype number (7 Q8_0, 2 Q4_0, 15 Q4_K_M, 1 F16, ...).
     */
    quantizeModel(inPath: string, outPath: string, ftype: number, threads?: number): Promise<void>;
    /**
     * Decodes a JPEG/PNG/BMP/GIF (first frame)/WebP file (path) or in-memory encoded image to RGB8. Images with more
     * than maxPixels pixels (default 100,000,000) are refused from their header, before decoding. Rejects with
     * VL_INVALID_ARGUMENT (unrecognised, corrupt, truncated or too large data) or VL_IO (unreadable file).
     * A Uint8Array input must not be modified until the promise settles.
     */
    decodeImage(input: string | Uint8Array, options?: { maxPixels?: number }): Promise<NativeRgbImage>;
    /**
     * Pillow-exact bicubic resize (`Image.resize((newWidth, newHeight), BICUBIC)`) of packed RGB8; a new array.
     * `portable: true` forces the plain C++ kernels (tests compare them with the SIMD ones). With `window`, only that
     * window of the resized picture is computed and returned (equal to cutting it from the whole, zeros outside the
     * picture), and `newWidth`/`newHeight` may then be up to 2^30.
     */
    resizeRgb(
        data: Uint8Array,
        width: number,
        height: number,
        newWidth: number,
        newHeight: number,
        options?: { portable?: boolean; window?: NativeCropRect },
    ): Promise<Uint8Array>;
    /** Normalises and cuts an RGB8 image (sides multiples of patchSize * mergeSize) into patch rows. */
    patchify(data: Uint8Array, width: number, height: number, params: NativePatchifyParams): Promise<NativePatches>;
    /** What this build's image code supports. */
    imageSupport(): { webp: boolean; webpAnimation: boolean; resizeAvx2: boolean };
}

// ---- vision (native/bindings/vision-wrap.cpp) ----------------------------------------------------------------------

/** The model family of a vision projector (its `clip.projector_type`). */
export type NativeVisionFamily = "videollama3" | "video_llava";

/** Which tower encodes an item: Video-LLaVA has one per kind; VideoLLaMA3 has one for both and ignores it. */
export type NativeVisionTower = "image" | "video";

/**
 * Hyper-parameters and preprocessing settings read from the mmproj GGUF.
 *
 * Video-LLaVA (CLIP) files: `imageMergeSize` = `videoMergeSize` = 1; `imageMinTokens` = `imageMaxTokens` = the
 * patch tokens of the one fixed grid, (imageSize / patchSize)² (256), the class token not counted; `videoFps` 0
 * (frames are sampled by count) and `videoMaxFrames` = `videoFrames`; `ropeTheta` 0 (no RoPE).
 */
export interface NativeVisionHparams {
    /** `clip.projector_type`. */
    family: NativeVisionFamily;
    hidden: number;
    ffn: number;
    layers: number;
    heads: number;
    patchSize: number;
    projectionDim: number;
    eps: number;
    ropeTheta: number;
    imageMean: [number, number, number];
    imageStd: [number, number, number];
    rescaleFactor: number;
    imageMergeSize: number;
    videoMergeSize: number;
    imageMinTokens: number;
    imageMaxTokens: number;
    resample: string;
    videoFps: number;
    videoMaxFrames: number;
    tokenCompression: boolean;
    diffThreshold: number;
    minTokensPerFrame: number;
    imageTokenId: number;
    /** The encoder MLP's activation: `gelu_pytorch_tanh` or `gelu` (VideoLLaMA3), `quick_gelu` or `gelu` (`clip.use_gelu`). */
    visionAct: "gelu_pytorch_tanh" | "gelu" | "quick_gelu";
    /** The square crop the CLIP towers see (`clip.vision.image_size`, 224); 0 for VideoLLaMA3 (any size). */
    imageSize: number;
    /** Shortest edge after the resize, before the centre crop (224); 0 for VideoLLaMA3. */
    shortestEdge: number;
    /** Frames per video (`video_llava.video.num_frames`, 8); 0 for VideoLLaMA3. */
    videoFrames: number;
    /** The image tower's output keeps the class token (Video-LLaVA: false, 256 tokens); false for VideoLLaMA3. */
    imageKeepCls: boolean;
    /** The video tower's output keeps the class token (Video-LLaVA: true, 257 tokens a frame); false for VideoLLaMA3. */
    videoKeepCls: boolean;
    /** `<video>` placeholder (Video-LLaVA); -1 for VideoLLaMA3. */
    videoTokenId: number;
    /** The file holds Video-LLaVA's video tower (`v.video.`); false for VideoLLaMA3 (one tower for both kinds). */
    hasVideoTower: boolean;
}

/** Encoder output held in native memory (n tokens × width floats). */
export interface NativeEmbeddings {
    readonly nTokens: number;
    readonly width: number;
    toFloat32Array(firstToken?: number, count?: number): Float32Array;
}

/**
 * A window of the resized picture, in its pixels. Parts outside the picture read as 0 (transformers' `center_crop`
 * pads a too-small picture with zeros), so `left`/`top` may be negative.
 */
export interface NativeCropRect {
    left: number;
    top: number;
    width: number;
    height: number;
}

export interface NativeVisionItem {
    /** Decoded RGB8 pixels. */
    rgb: Uint8Array;
    width: number;
    height: number;
    /**
     * Size after the resize rule (multiples of patchSize × merge, unless a crop follows; up to 2^20, or 2^30 with a
     * crop, of which only the crop is computed).
     */
    targetWidth: number;
    targetHeight: number;
    merge: number;
    /**
     * Cut out after the resize (Video-LLaVA's centre crop); its size, not the target's, must then be a multiple of
     * patchSize × merge (for Video-LLaVA: imageSize × imageSize).
     */
    crop?: NativeCropRect;
    /** The tower that encodes it (default "image"); a "video" item needs `hasVideoTower` on Video-LLaVA files. */
    tower?: NativeVisionTower;
    /** Video frames: Differential Frame Pruning against the previous frame. */
    prune?: { threshold: number; minTokens: number };
}

export interface NativeEncodeResult {
    embeddings: NativeEmbeddings;
    /** Output tokens per item (after pruning; with the class token where the item's tower keeps it). */
    counts: Int32Array;
    /** Output tokens per item before pruning: merged tokens, plus the class token where the tower keeps it. */
    merged: Int32Array;
    /** Kept (merged patch) token indices per item, or null when every token was kept. */
    kept: Array<Int32Array | null>;
    /** With `reuse`: patches computed per item (all of a frame encoded whole; the kept blocks' otherwise). */
    rowsComputed?: Int32Array;
}

/**
 * The encoder's per-layer states of one video's frames so far (native memory, in the projector's backend), for
 * `encodePatches(items, { reuse })`: each frame then computes only its kept blocks.
 */
export interface NativeEncoderReuse {
    /** Forgets the frames: the next one is computed whole. */
    reset(): void;
}

/** The last pruned video frame, kept in native memory so DiffFP can compare across calls. */
export interface NativeFrameState {
    /** Forgets the frame: the next one is a first frame (all kept). */
    reset(): void;
}

/**
 * One image or frame after resize, normalize and patchify (`Vision.preprocess`), held in native memory: the float
 * patch rows travel to `prune` and `encodePatches` without a copy through JS.
 */
export interface NativePatchesHandle {
    /** Patch rows (pixels / patch size). */
    readonly gridHeight: number;
    readonly gridWidth: number;
    /** Patches per merge-block side. */
    readonly merge: number;
    /** Merged tokens = (gridHeight / merge) × (gridWidth / merge) (patch tokens: a class token is not counted). */
    readonly tokens: number;
    /** The tower named when preprocessing: what `encodePatches` uses unless its item names another. */
    readonly tower: NativeVisionTower;
    /** A copy of the rows: gridHeight × gridWidth rows of 3·patchSize² values in merge-block order (for tests). */
    toFloat32Array(): Float32Array;
}

/** One image or frame for `Vision.preprocess`: {@link NativeVisionItem} without the pruning settings (its tower is recorded in the Patches). */
export type NativePreprocessItem = Omit<NativeVisionItem, "prune">;

/** DiffFP settings; what is left out takes the projector's own (diffThreshold, minTokensPerFrame). */
export interface NativePruneParams {
    /** A merged token is kept when its mean |Δ| × 255 against the previous frame is above this. */
    threshold?: number;
    /** A frame keeps at least this many tokens (the first ones). */
    minTokens?: number;
}

export interface NativePruneResult {
    /** Ascending indices of the kept merged tokens, or null when all are kept (a first frame, or nothing dropped). */
    keep: Int32Array | null;
    /** Per merged token: mean |Δ| × 255 against the previous frame; absent for a first frame. */
    distances?: Float32Array;
}

export interface NativeEncodePatchesItem {
    patches: NativePatchesHandle;
    /**
     * Merged tokens to project (ascending, as `prune` returns them); null or absent: all. For Video-LLaVA these are
     * patch tokens: the class token, where the tower keeps it, is always kept and comes first.
     */
    keep?: Int32Array | null;
    /** The tower that encodes it; absent: the one the patches were preprocessed for. */
    tower?: NativeVisionTower;
}

export interface NativeVision {
    hparams(): NativeVisionHparams;
    info(): { device: NativeDevice; weightsBytes: number; computeBytes: number };
    encode(
        items: NativeVisionItem[],
        options: { maxBatchPatches?: number },
        onProgress?: (done: number, total: number) => void,
        abort?: NativeAbortFlag,
        frameState?: NativeFrameState,
    ): Promise<NativeEncodeResult>;
    /** Stage 1: resize, normalize and patchify on a worker thread (may run while the encoder works). */
    preprocess(items: NativePreprocessItem[], abort?: NativeAbortFlag): Promise<NativePatchesHandle[]>;
    /**
     * Stage 2 (synchronous): DiffFP of one frame against the frame `frameState` holds (none, or another grid: a first
     * frame, all kept); this frame then replaces it.
     */
    prune(patches: NativePatchesHandle, frameState: NativeFrameState, params?: NativePruneParams): NativePruneResult;
    /** Stage 3: encoder, merge, token selection and projector; one call at a time per projector (VL_BUSY). */
    encodePatches(
        items: NativeEncodePatchesItem[],
        options?: { maxBatchPatches?: number; reuse?: NativeEncoderReuse },
        onProgress?: (done: number, total: number) => void,
        abort?: NativeAbortFlag,
    ): Promise<NativeEncodeResult>;
    dispose(): void;
}

export interface NativeVisionAddon {
    loadVision(
        params: { path: string; gpu?: string; gpuIndex?: number; /** Required: the default is lib/cpu.ts's rule. */ threads: number },
        onProgress?: (fraction: number) => void,
        abort?: NativeAbortFlag,
    ): Promise<NativeVision>;
    FrameState: new () => NativeFrameState;
    EncoderReuse: new () => NativeEncoderReuse;
    /** Made by `Vision.preprocess` only (for instanceof checks). */
    Patches: abstract new () => NativePatchesHandle;
}
