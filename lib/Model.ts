/**
 * Loading a model and creating chat sessions on it.
 *
 * @module
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { freemem } from "node:os";
import { basename, resolve } from "node:path";
import { ChatTemplate, tokenizePieces, type PromptPiece, type PromptTokenizer } from "./chat/template.js";
import { familyOf, textModelBannedTokens, type ModelFamily } from "./family/index.js";
import { HUB_OPTIONS, pullForLoad, type HubOptions, type PullProgress } from "./hub/pull.js";
import { isHubReference } from "./hub/reference.js";
import { DisposedError, HubError, InsufficientMemoryError, InvalidOptionError, ModelLoadError, VidllamaError } from "./errors.js";
import { readGguf } from "./gguf/reader.js";
import { native } from "./native/load.js";
import { isNativeError } from "./native/errors.js";
import { gpuRefusal, gpuRequest, type DeviceInfo, type GpuOption } from "./devices.js";
import type { NativeModel, NativeModelInfo } from "./native/types.js";
import { Session, type SessionOptions } from "./Session.js";
import { Stream, type StreamOptions } from "./Stream.js";
import { toImage } from "./decode/Image.js";
import type { ImageInput } from "./chat/content.js";
import { VisionProjector, type EncodeOptions, type EncodeResult, type VisionInfo } from "./encode/vision.js";
import {
    checkOptionsObject,
    optionalBoolean,
    optionalEnum,
    optionalFunction,
    optionalInteger,
    optionalSignal,
    requiredString,
    throwIfAborted,
} from "./validate.js";

/** Progress of {@link loadModel}. */
export interface LoadProgress {
    /**
     * `pull`: an `hf:` reference is being downloaded or converted (details in `pull`); then the files are loaded:
     * the text model (`model`), then the vision projector (`mmproj`).
     */
    phase: "pull" | "model" | "mmproj";
    /** 0..1 of the phase (for `pull`: of the download, then of the conversion). */
    fraction: number;
    /** For `pull`: what the pull reports (file, bytes, speed, ETA, retries, conversion). */
    pull?: PullProgress;
}

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
    /**
     * Path of the text model GGUF (e.g. `VideoLLaMA3-2B-q8_0.gguf`), or a hub reference
     * `hf:<owner>/<repo>[@<revision>][:<type>]` (e.g. `hf:DAMO-NLP-SG/VideoLLaMA3-2B`): pulled into the cache
     * (converted once for a checkpoint, see {@link pullModel}), its projector loaded unless `mmproj` says otherwise.
     */
    model: string;
    /**
     * Path of the vision projector GGUF (e.g. `mmproj-VideoLLaMA3-2B-f16.gguf`), or an `hf:` reference whose
     * projector is used; without it the model is text-only (unless `model` is a reference that has one).
     */
    mmproj?: string;
    /** Cache, token, endpoint and offline settings for `hf:` references. */
    hub?: HubOptions;
    /**
     * Default context size (tokens) of sessions created on this model. Defaults to the model's training context or
     * 8192, whichever is smaller.
     */
    contextSize?: number;
    /**
     * Where to run (see {@link GpuOption}): `"auto"` (default) the best GPU device that passes a small test graph,
     * else the CPU; `"cpu"`/`false`; `"cuda"`, `"metal"`, `"vulkan"` (`"vulkan:1"`: its second device); a number: that
     * GPU device. The text model and the vision projector go to the same device. `model.info.device` says which and why.
     */
    gpu?: GpuOption;
    /** Layers of the text model offloaded to a GPU device (the rest stay on the CPU). Defaults to all. */
    gpuLayers?: number;
    /**
     * CPU threads for generation and prompt processing. Defaults to the physical cores this process may use
     * (`cpuTopology()`): ggml's threads wait for each other at every graph node, so a hyper-thread sharing a core
     * or an efficiency core slows a graph down.
     */
    threads?: number;
    /** Memory-map the model file instead of reading it into memory. Defaults to `true`. */
    useMmap?: boolean;
    /** Aborts loading; the promise then rejects with the signal's reason. */
    signal?: AbortSignal;
    /** Called with loading progress (0..1); throwing from it does not stop loading. */
    onProgress?: (progress: LoadProgress) => void;
}

const LOAD_OPTIONS = ["model", "mmproj", "hub", "contextSize", "gpu", "gpuLayers", "threads", "useMmap", "signal", "onProgress"] as const;

/** Facts about a loaded model. */
export interface ModelInfo {
    /** `general.architecture`, e.g. `"qwen2"`. */
    architecture: string;
    /** `general.name` when present. */
    name: string | undefined;
    /** llama.cpp's one-line description, e.g. `"qwen2 1.5B Q8_0"`. */
    description: string;
    /** Number of parameters. */
    parameters: number;
    /** Size of the weights in bytes. */
    sizeBytes: number;
    /** Context length the model was trained with. */
    trainContextSize: number;
    /** Hidden size of the LLM. */
    embeddingSize: number;
    layers: number;
    heads: number;
    kvHeads: number;
    vocabSize: number;
    /** The Jinja chat template from the GGUF, or `undefined` when it has none. */
    chatTemplate: string | undefined;
    /** Where the text model runs and why there. */
    device: DeviceInfo;
}

/**
 * Loads a GGUF model. The file is checked first (exists, is a GGUF, is complete, has a supported architecture) so
 * that problems are reported as a {@link ModelLoadError} with a precise `reason` before libllama reads it.
 *
 * @example
 * ```ts
 * await using model = await loadModel({ model: "VideoLLaMA3-2B-q8_0.gguf" });
 * const session = await model.createSession();
 * console.log((await session.prompt("Hello!")).text);
 * ```
 * @throws {ModelLoadError} for a missing, malformed, truncated or unsupported file
 * @throws {InvalidOptionError} for bad options
 */
export async function loadModel(options: LoadModelOptions): Promise<Model> {
    checkOptionsObject(options, LOAD_OPTIONS);
    const modelOption = requiredString("model", options?.model);
    const mmprojRaw = options.mmproj === undefined ? undefined : requiredString("mmproj", options.mmproj);
    const hub = checkOptionsObject(options.hub, HUB_OPTIONS, "hub");
    const contextSize = optionalInteger("contextSize", options.contextSize, 16, 2 ** 31);
    const threads = optionalInteger("threads", options.threads, 1, 1024);
    const useMmap = optionalBoolean("useMmap", options.useMmap, true);
    const signal = optionalSignal("signal", options.signal);
    const onProgress = optionalFunction<(p: LoadProgress) => void>("onProgress", options.onProgress);
    const gpu = gpuRequest(options.gpu);
    const gpuLayers = optionalInteger("gpuLayers", options.gpuLayers, 0, 100_000, -1);
    throwIfAborted(signal);

    // hf: references become files in the cache first.
    const pullProgress = (p: PullProgress): void => {
        const fraction = p.phase === "download" || p.phase === "convert" ? p.fraction : p.phase === "done" ? 1 : 0;
        try {
            onProgress?.({ phase: "pull", fraction, pull: p });
        } catch {
            // a listener's exception must not break loading
        }
    };
    let modelPath = modelOption;
    let mmprojPath = mmprojRaw;
    if (isHubReference(modelOption)) {
        const pulled = await pullForLoad(modelOption, { ...hub, ...(signal ? { signal } : {}), onProgress: pullProgress }, "model");
        modelPath = pulled.textModel;
        if (mmprojRaw === undefined) mmprojPath = pulled.mmproj;
    }
    if (mmprojRaw !== undefined && isHubReference(mmprojRaw)) {
        const pulled = await pullForLoad(mmprojRaw, { ...hub, ...(signal ? { signal } : {}), onProgress: pullProgress }, "mmproj");
        if (!pulled.mmproj) throw new HubError("ERR_HUB_NO_FILES", pulled.reference, "it has no vision projector (no mmproj GGUF)");
        mmprojPath = pulled.mmproj;
    }
    const path = resolve(modelPath);
    const mmprojOption = mmprojPath === undefined ? undefined : resolve(mmprojPath);

    const metadata = await checkModelFile(path);
    const addon = native();
    const abort = new addon.AbortFlag();
    const onAbort = () => abort.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    let nativeModel: NativeModel;
    try {
        nativeModel = await addon.loadModel({ path, ...gpu, gpuLayers, useMmap }, (fraction) => {
            try {
                onProgress?.({ phase: "model", fraction });
            } catch {
                // a listener's exception must not break loading
            }
        }, abort);
    } catch (err) {
        if (isNativeError(err, "VL_ABORTED")) throw signal?.reason ?? new DOMException("Model loading was aborted", "AbortError");
        const refusal = gpuRefusal(err, options.gpu);
        if (refusal) throw refusal;
        if (isNativeError(err)) {
            const unsupported = /unknown model architecture|unsupported model architecture/i.test(err.message);
            throw new ModelLoadError(path, unsupported ? "UNSUPPORTED_ARCHITECTURE" : "LOAD_FAILED", err.message, { cause: err });
        }
        throw err;
    } finally {
        signal?.removeEventListener("abort", onAbort);
    }
    // Aborted after libllama finished (progress reports arrive asynchronously): honour the abort all the same.
    if (signal?.aborted) {
        nativeModel.dispose();
        throw signal.reason;
    }
    let vision: VisionProjector | undefined;
    if (mmprojOption) {
        try {
            vision = await VisionProjector.load(mmprojOption, {
                gpu: options.gpu,
                threads,
                signal,
                onProgress: (fraction) => {
                    try {
                        onProgress?.({ phase: "mmproj", fraction });
                    } catch {
                        // a listener's exception must not break loading
                    }
                },
            });
        } catch (err) {
            nativeModel.dispose();
            throw err;
        }
        if (signal?.aborted) {
            await vision.dispose();
            nativeModel.dispose();
            throw signal.reason;
        }
        const width = nativeModel.info().inputEmbeddingSize;
        if (vision.info.projectionDim !== width) {
            await vision.dispose();
            nativeModel.dispose();
            throw new ModelLoadError(
                mmprojOption,
                "WRONG_KIND",
                `the projector outputs ${vision.info.projectionDim}-wide embeddings but ${basename(path)} takes ${width}: they belong to different models`,
            );
        }
    }
    return new Model(path, nativeModel, metadata, { contextSize, threads }, vision);
}

/** Checks the file before libllama sees it; returns `general.name` and the architecture. */
async function checkModelFile(path: string): Promise<{ architecture: string; name: string | undefined }> {
    let size: number;
    try {
        const stat = statSync(path);
        if (!stat.isFile()) throw new ModelLoadError(path, "NOT_A_FILE", "not a regular file");
        size = stat.size;
    } catch (err) {
        if (err instanceof ModelLoadError) throw err;
        throw new ModelLoadError(path, "NOT_FOUND", "no such file", { cause: err });
    }
    if (size < 8 || !startsWithGgufMagic(path)) {
        throw new ModelLoadError(path, "NOT_GGUF", "not a GGUF file (it does not start with the GGUF magic)");
    }
    let file;
    try {
        file = await readGguf(path);
    } catch (err) {
        if (err instanceof VidllamaError && "reason" in err) {
            const reason = (err as { reason: string }).reason;
            throw new ModelLoadError(path, reason === "TRUNCATED" ? "TRUNCATED" : "CORRUPT", (err as Error).message, { cause: err });
        }
        throw err;
    }
    const architecture = file.getString("general.architecture");
    if (!architecture) throw new ModelLoadError(path, "CORRUPT", "the file has no general.architecture");
    if (architecture === "clip" || file.getString("general.type") === "mmproj") {
        throw new ModelLoadError(path, "WRONG_KIND", "this is a vision projector (mmproj); pass it as `mmproj`, and the text model as `model`");
    }
    return { architecture, name: file.getString("general.name") };
}

function startsWithGgufMagic(path: string): boolean {
    const fd = openSync(path, "r");
    try {
        const magic = Buffer.alloc(4);
        readSync(fd, magic, 0, 4, 0);
        return magic.toString("latin1") === "GGUF";
    } finally {
        closeSync(fd);
    }
}

/** A loaded model. Create sessions with {@link Model.createSession}; free it with {@link Model.dispose}. */
export class Model {
    /** Absolute path of the model file. */
    readonly path: string;
    /** Facts about the model. */
    readonly info: ModelInfo;
    /** @internal */
    readonly defaults: { contextSize: number; threads: number | undefined };

    #native: NativeModel | undefined;
    #nativeInfo: NativeModelInfo;
    #sessions = new Set<Session>();
    #streams = new Set<Stream>();
    #specialTokens: Map<string, number> | undefined;
    #addsSpacePrefix: boolean | undefined;
    #textBannedTokens: number[] | undefined;
    #chatTemplate: ChatTemplate | undefined | null = null;
    #disposed = false;
    #vision: VisionProjector | undefined;

    /** @internal Use {@link loadModel}. */
    constructor(
        path: string,
        nativeModel: NativeModel,
        metadata: { architecture: string; name: string | undefined },
        defaults: { contextSize?: number; threads?: number },
        vision?: VisionProjector,
    ) {
        this.path = path;
        this.#vision = vision;
        this.#native = nativeModel;
        this.#nativeInfo = nativeModel.info();
        const i = this.#nativeInfo;
        this.info = Object.freeze({
            architecture: metadata.architecture,
            name: metadata.name,
            description: i.description,
            parameters: i.parameters,
            sizeBytes: i.sizeBytes,
            trainContextSize: i.trainContextSize,
            embeddingSize: i.embeddingSize,
            layers: i.layers,
            heads: i.heads,
            kvHeads: i.kvHeads,
            vocabSize: i.vocabSize,
            chatTemplate: i.chatTemplate ?? undefined,
            device: Object.freeze({ ...i.device }),
        });
        // With a vision projector the default context holds a full visual budget plus room for text.
        const preferred = vision ? vision.info.imageMaxTokens + 4096 : 8192;
        this.defaults = {
            contextSize: defaults.contextSize ?? Math.min(i.trainContextSize > 0 ? i.trainContextSize : preferred, preferred),
            threads: defaults.threads,
        };
    }

    /** True after {@link Model.dispose}. */
    get disposed(): boolean {
        return this.#disposed;
    }

    /** The vision projector's settings (patch size, merge sizes, token budget, ...), or undefined for a text-only model. */
    get visionInfo(): VisionInfo | undefined {
        return this.#vision?.info;
    }

    /** @internal */
    get vision(): VisionProjector | undefined {
        if (this.#disposed) throw new DisposedError("Model");
        return this.#vision;
    }

    /**
     * Runs the vision encoder and projector on one image, resized by the model's rule for a single image, and returns
     * the visual token embeddings the language model would receive.
     *
     * @example
     * ```ts
     * const { embeddings, tokens, grid } = await model.encode(Image.fromFile("cat.jpg"));
     * // embeddings.length === tokens * model.info.embeddingSize
     * ```
     * @throws {InvalidOptionError} when the model has no vision projector
     * @throws {MediaDecodeError} when the image cannot be decoded
     */
    async encode(image: ImageInput, options: EncodeOptions = {}): Promise<EncodeResult> {
        checkOptionsObject(options, ["signal"]);
        const signal = optionalSignal("signal", options.signal);
        const vision = this.vision;
        if (!vision) throw new InvalidOptionError("mmproj", "a vision projector loaded with the model", undefined, "loadModel was called without mmproj");
        return vision.encodeImage(toImage(image), signal);
    }

    /** @internal */
    get nativeModel(): NativeModel {
        if (this.#disposed || !this.#native) throw new DisposedError("Model");
        return this.#native;
    }

    /** @internal */
    get nativeInfo(): NativeModelInfo {
        return this.#nativeInfo;
    }

    /** All GGUF metadata as strings (llama.cpp's rendering of each value). */
    metadata(): Record<string, string> {
        return this.nativeModel.metadata();
    }

    /**
     * Text to token ids. `special: true` parses special-token text such as `<|im_start|>` into its id; by default
     * it is treated as plain text.
     */
    tokenize(text: string, options: { special?: boolean } = {}): number[] {
        checkOptionsObject(options, ["special"]);
        return Array.from(this.nativeModel.tokenize(requiredStringAllowEmpty("text", text), false, optionalBoolean("special", options.special, false)));
    }

    /** Token ids to text. `special: true` renders special tokens (e.g. `<|im_end|>`) instead of dropping them. */
    detokenize(tokens: readonly number[], options: { special?: boolean } = {}): string {
        checkOptionsObject(options, ["special"]);
        return this.nativeModel.detokenize(Int32Array.from(tokens), optionalBoolean("special", options.special, false));
    }

    /** @internal Special token strings the chat template may write. */
    specialTokens(): ReadonlyMap<string, number> {
        if (!this.#specialTokens) {
            this.#specialTokens = new Map(this.nativeModel.specialTokens().map((t) => [t.text, t.id]));
        }
        return this.#specialTokens;
    }

    /** @internal Whether the vocabulary writes a space before the first word (SentencePiece's dummy prefix). */
    get addsSpacePrefix(): boolean {
        if (this.#addsSpacePrefix === undefined) {
            const m = this.nativeModel.metadata();
            this.#addsSpacePrefix = m["tokenizer.ggml.model"] === "llama" && m["tokenizer.ggml.add_space_prefix"] !== "false";
        }
        return this.#addsSpacePrefix;
    }

    /** @internal The model family of the vision projector (undefined for a text-only model). */
    get family(): ModelFamily | undefined {
        return this.#vision ? familyOf(this.#vision.info) : undefined;
    }

    /**
     * @internal How rendered prompts become token ids: template text with special tokens parsed, message text
     * without, and the BOS token first when the vocabulary asks for it (LLaMA's SentencePiece does, Qwen2's does not).
     */
    promptTokenizer(): PromptTokenizer {
        const model = this.nativeModel;
        return {
            tokenizeText: (t) => Array.from(model.tokenize(t, false, false)),
            specialTokens: () => this.specialTokens(),
            prefix: this.#nativeInfo.addBos && this.#nativeInfo.bos >= 0 ? [this.#nativeInfo.bos] : [],
        };
    }

    /** @internal The token ids of a whole rendered conversation (see {@link promptTokenizer}). */
    tokenizeConversation(pieces: readonly PromptPiece[]): number[] {
        return tokenizePieces(pieces, this.promptTokenizer());
    }

    /**
     * @internal Token ids never sampled: the family's placeholders (and Video-LLaVA's padding rows), from the
     * projector, or for a text-only load from the text model's own metadata.
     */
    bannedTokens(): number[] {
        const vision = this.#vision;
        if (vision) return familyOf(vision.info).bannedTokens(vision.info, this.#nativeInfo.vocabSize);
        this.#textBannedTokens ??= textModelBannedTokens(this.nativeModel.metadata(), this.#nativeInfo.vocabSize);
        return this.#textBannedTokens;
    }

    /** @internal The compiled chat template of the GGUF (undefined when the model has none). */
    chatTemplate(): ChatTemplate | undefined {
        if (this.#chatTemplate === null) {
            this.#chatTemplate = this.info.chatTemplate ? new ChatTemplate(this.info.chatTemplate) : undefined;
        }
        return this.#chatTemplate;
    }

    /**
     * Creates a chat session with its own context (KV cache).
     *
     * @throws {InsufficientMemoryError} when the context would not fit in the memory available now
     */
    async createSession(options: SessionOptions = {}): Promise<Session> {
        if (this.#disposed) throw new DisposedError("Model");
        const session = await Session.create(this, options);
        this.#sessions.add(session);
        session.onDispose(() => this.#sessions.delete(session));
        return session;
    }

    /**
     * Creates a live stream: frames enter its KV cache as they arrive and questions can be asked at any time (needs
     * the vision projector). See {@link Stream}.
     *
     * @example
     * ```ts
     * await using stream = await model.createStream({ window: { seconds: 120 } });
     * void stream.ingest("rtsp://camera.local/stream", { fps: 1, reconnect: true });
     * const { text } = await stream.ask("What is happening right now?");
     * ```
     */
    async createStream(options: StreamOptions = {}): Promise<Stream> {
        if (this.#disposed) throw new DisposedError("Model");
        const stream = await Stream.create(this, options);
        this.#streams.add(stream);
        stream.onDispose(() => this.#streams.delete(stream));
        return stream;
    }

    /** @internal Estimated bytes of a context of `contextSize` tokens (f16 K and V) plus its compute buffers. */
    estimateContextBytes(contextSize: number, batchSize: number): number {
        const i = this.#nativeInfo;
        const headDim = i.heads > 0 ? i.embeddingSize / i.heads : 0;
        const kvBytes = contextSize * i.layers * 2 * i.kvHeads * headDim * 2;
        const computeBytes = batchSize * (i.vocabSize * 4 + i.embeddingSize * 4 * 16);
        return kvBytes + computeBytes;
    }

    /** @internal Throws InsufficientMemoryError when a context of this size cannot fit now. */
    checkContextMemory(contextSize: number, batchSize: number): void {
        const required = this.estimateContextBytes(contextSize, batchSize);
        const available = freemem();
        if (required > available) {
            throw new InsufficientMemoryError(`A context of ${contextSize} tokens for ${basename(this.path)}`, required, available);
        }
    }

    /**
     * Frees the model and every session created on it. Idempotent. Work in flight is aborted first.
     */
    async dispose(): Promise<void> {
        if (this.#disposed) return;
        this.#disposed = true;
        await Promise.all([...this.#sessions].map((s) => s.dispose()));
        await Promise.all([...this.#streams].map((s) => s.close()));
        await this.#vision?.dispose();
        this.#vision = undefined;
        this.#native?.dispose();
        this.#native = undefined;
    }

    async [Symbol.asyncDispose](): Promise<void> {
        await this.dispose();
    }
}

function requiredStringAllowEmpty(option: string, value: unknown): string {
    if (typeof value !== "string") return requiredString(option, value);
    return value;
}
