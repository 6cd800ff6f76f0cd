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

export interface NativeModelInfo {
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
    threads?: number;
    batchThreads?: number;
    /** -1 auto, 0 off, 1 on */
    flashAttention?: -1 | 0 | 1;
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

export interface NativeContext {
    evaluate(tokens: Int32Array, options: { logits?: boolean; sampler?: NativeSampler }, abort?: NativeAbortFlag): Promise<NativeDecodeResult>;
    evaluateEmbeddings(embeddings: Float32Array, options: { logits?: boolean }, abort?: NativeAbortFlag): Promise<NativeDecodeResult>;
    logits(): Float32Array;
    /** Keeps the first nKeep cache positions; returns the new length. */
    truncate(nKeep: number): number;
    saveState(path: string, header: Buffer): Promise<number>;
    loadState(path: string): Promise<number>;
    info(): { contextSize: number; batchSize: number; nPast: number };
    dispose(): void;
}

export interface NativeAddon {
    systemInfo(): string;
    readonly gpuBackend: "cpu" | "cuda" | "metal" | "vulkan";
    loadModel(
        params: { path: string; gpuLayers?: number; useMmap?: boolean; vocabOnly?: boolean },
        onProgress?: (fraction: number) => void,
        abort?: NativeAbortFlag,
    ): Promise<NativeModel>;
    AbortFlag: new () => NativeAbortFlag;
    Sampler: new (model: NativeModel, params: NativeSamplerParams) => NativeSampler;
}
