/**
 * Chat sessions: a conversation with its own KV cache.
 *
 * @module
 */
import { basename, resolve } from "node:path";
import { checkPrune, toContentParts, type ContentPart, type PromptInput, type PruneOption } from "./chat/content.js";
import { VideoHandle } from "./chat/media.js";
import { evaluatePlan, imageHash, ImageProducer, matchPlan, minimumPlanLength, VideoProducer, type FrameReport, type PlanSegment, type VideoProgress } from "./chat/plan.js";
import { ChatTemplate, tokenizePieces, type TemplateContentItem, type TemplateMessage } from "./chat/template.js";
import { Image } from "./decode/Image.js";
import { Video } from "./decode/Video.js";
import { familyOf } from "./family/index.js";
import { KvCache } from "./kv/cache.js";
import { CONTEXT_OPTIONS, createContext, type ContextOptions } from "./kv/context.js";
import { modelIdentity, readStateHeader, saveTarget, writeState } from "./kv/state-file.js";
import { KvTimeline } from "./kv/timeline.js";
import {
    ChatTemplateError,
    ContextFullError,
    DisposedError,
    InvalidOptionError,
    StateFileError,
} from "./errors.js";
import type { Model } from "./Model.js";
import { fromNativeError } from "./native/errors.js";
import { native } from "./native/load.js";
import type { NativeContext } from "./native/types.js";
import { resolveSamplingOptions, type SamplingOptions } from "./sample/options.js";
import { chunkStream } from "./sample/chunks.js";
import { generate, type StopReason } from "./sample/generate.js";
import {
    checkOptionsObject,
    optionalBoolean,
    optionalEnum,
    optionalFunction,
    optionalInteger,
    optionalSignal,
    optionalString,
} from "./validate.js";

/** A message of the conversation. */
export interface ChatMessage {
    role: "system" | "user" | "assistant";
    /** The message text, or its parts when it holds images or videos (user messages). */
    content: string | ContentPart[];
    /**
     * For assistant messages this session generated: the exact token ids of `content`. They let the next turn reuse
     * the KV cache exactly; optional when setting a history.
     */
    tokens?: readonly number[];
}

/** Options of {@link Model.createSession}. */
export interface SessionOptions extends ContextOptions {
    /** System message placed before the conversation. Without it no system message is sent (the template may still add its own default). */
    systemPrompt?: string;
}

const SESSION_OPTIONS = ["systemPrompt", ...CONTEXT_OPTIONS] as const;

export type { StopReason } from "./sample/generate.js";

/** Options of {@link Session.prompt} and {@link Session.stream}. */
export interface PromptOptions extends SamplingOptions {
    /** Maximum number of tokens to generate. Defaults to 1024. */
    maxTokens?: number;
    /** Strings that end the answer when generated; the stop string itself is not included in the text. */
    stop?: readonly string[];
    /**
     * Stops prompt processing (between batches) and generation (between tokens). The call then resolves with what
     * was produced and `stopReason: "abort"`; the session stays usable.
     */
    signal?: AbortSignal;
    /** Called for every generated token with the text it completes (may be `""` while a stop string is pending). */
    onToken?: (chunk: { token: number; text: string }) => void;
    /** Called after each batch of prompt tokens is evaluated. */
    onPromptProgress?: (progress: { evaluated: number; total: number }) => void;
    /**
     * Differential Frame Pruning for the videos of this prompt (a video part's own `prune` wins). Defaults to the
     * projector's settings (VideoLLaMA3: on, threshold 0.1, at least 1 token per frame).
     */
    prune?: PruneOption;
    /** Progress of each video of the prompt: frames decoded and encoded, visual tokens kept. */
    onMediaProgress?: (progress: { media: number; kind: "video" } & VideoProgress) => void;
}

const PROMPT_OPTIONS = [
    "maxTokens", "stop", "signal", "onToken", "onPromptProgress", "prune", "onMediaProgress",
    "temperature", "topK", "topP", "minP", "repeatPenalty", "repeatLastN", "frequencyPenalty", "presencePenalty", "seed",
] as const;

/** Timings of one prompt, in milliseconds. */
export interface PromptTimings {
    /** The whole prompt phase: decoding and encoding media, evaluating the new prompt tokens, sampling the first answer token. */
    promptMs: number;
    /** Within the prompt phase: waiting for video frames from the decoder. */
    decodeMs: number;
    /** Within the prompt phase: running the vision encoder (preprocessing, pruning, encoder, projector). */
    encodeMs: number;
    /** Within the prompt phase: the language model evaluating prompt tokens and visual embeddings. */
    prefillMs: number;
    /** Generating the rest of the answer. */
    generationMs: number;
    totalMs: number;
    /** New prompt tokens per second. */
    promptTokensPerSecond: number;
    /** Generated tokens per second (after the first). */
    tokensPerSecond: number;
}

/** The answer to a prompt. */
export interface PromptResult {
    /** The answer text. */
    text: string;
    /** Why generation stopped. */
    stopReason: StopReason;
    /** Generated token ids (without the final end-of-generation token). */
    tokens: number[];
    /** Token ids evaluated for this prompt: the part of the rendered conversation not already in the KV cache. */
    promptTokens: number[];
    /** Tokens of the rendered conversation that were already in the KV cache and not evaluated again. */
    reusedTokens: number;
    timings: PromptTimings;
    /** The images/videos of this prompt, in order, with the visual tokens each became. */
    media: MediaUsage[];
}

/** How an image or a video of a prompt was turned into visual tokens. */
export type MediaUsage =
    | {
          kind: "image";
          /** Visual tokens (and `<image>` placeholders) the image became. */
          tokens: number;
          /** The merged token grid after the resize rule (tokens = height × width). */
          grid: { height: number; width: number };
          /** Where the image came from (a path, `<Buffer N bytes>`, ...). */
          source: string;
      }
    | {
          kind: "video";
          /** Visual tokens of all frames before pruning. */
          tokens: number;
          /** Visual tokens fed to the language model. */
          keptTokens: number;
          /** Each sampled frame: timestamp, tokens before and after pruning. */
          frames: FrameReport[];
          /** The merged token grid of one frame. */
          grid: { height: number; width: number };
          source: string;
          /** Decoding problems that did not stop the prompt (e.g. a truncated file). */
          warnings: string[];
          /**
           * How the vision encoder ran over the frames encoded for this prompt: `"exact"` (every patch of every frame),
           * or `"changed-only"` (`prune.encodeChangedOnly`: only the kept blocks' patches, an approximation), with the
           * patches it computed out of the frames' patches. Both 0 when every frame's embeddings were already cached.
           */
          encoder: { mode: "exact" | "changed-only"; patchesComputed: number; patches: number };
      };

/** The async iterator returned by {@link Session.stream}; `result` settles when generation ends. */
export interface PromptStream extends AsyncIterable<string> {
    /** The complete result, as {@link Session.prompt} would return it. */
    readonly result: Promise<PromptResult>;
}

const STATE_FORMAT = "vidllama-session-state";
/** 2: the cache is described by a KV timeline; 1 (still read): a flat list of token ids and visual keys. */
const STATE_VERSION = 2;

/**
 * A conversation with a model. Turns reuse the KV cache: each prompt renders the whole conversation with the chat
 * template and evaluates only the tokens that are not already in the cache.
 *
 * Calls are queued: a second `prompt()` waits until the first one is done.
 */
export class Session {
    readonly #model: Model;
    #context: NativeContext | undefined;
    /** The KV cache and its timeline: the only writer of what the cache holds. */
    readonly #cache: KvCache;
    readonly #contextSize: number;
    readonly #template: ChatTemplate;
    #systemPrompt: string | undefined;
    #history: ChatMessage[] = [];
    #queue: Promise<unknown> = Promise.resolve();
    #activeAbort: (() => void) | undefined;
    #epoch = 0;
    #disposed = false;
    #disposeListeners: Array<() => void> = [];
    /** Videos this session opened from paths/URLs given in prompts. */
    #openedVideos = new Map<string, Video>();
    /** What is known of each video of the conversation without its source (plan, identity, frame token counts). */
    #videoHandles = new WeakMap<Video, VideoHandle>();
    #ownedHandles = new Set<VideoHandle>();

    private constructor(model: Model, context: NativeContext, template: ChatTemplate, systemPrompt: string | undefined) {
        this.#model = model;
        this.#context = context;
        this.#cache = new KvCache(context, { object: "Session" });
        this.#contextSize = this.#cache.contextSize;
        this.#template = template;
        this.#systemPrompt = systemPrompt;
    }

    /** @internal Use {@link Model.createSession}. */
    static async create(model: Model, options: SessionOptions): Promise<Session> {
        checkOptionsObject(options, SESSION_OPTIONS);
        const systemPrompt = optionalString("systemPrompt", options.systemPrompt);
        const { context, template } = await createContext(model, options);
        return new Session(model, context, template, systemPrompt);
    }

    /** The model this session runs on. */
    get model(): Model {
        return this.#model;
    }

    /** Context window in tokens (llama.cpp may round the requested size up). */
    get contextSize(): number {
        return this.#contextSize;
    }

    /** Number of tokens currently held in the KV cache. */
    get cachedTokens(): number {
        return this.#cache.length;
    }

    /** True after {@link Session.dispose}. */
    get disposed(): boolean {
        return this.#disposed;
    }

    /** The system prompt, if any. */
    get systemPrompt(): string | undefined {
        return this.#systemPrompt;
    }

    /** A copy of the conversation so far (without the system prompt). */
    get history(): ChatMessage[] {
        return this.#history.map((m) => ({
            ...m,
            content: typeof m.content === "string" ? m.content : m.content.map((p) => ({ ...p })),
            ...(m.tokens ? { tokens: [...m.tokens] } : {}),
        }));
    }

    /** Replaces the conversation. The KV cache is reused up to where the new conversation differs. */
    setHistory(messages: readonly ChatMessage[]): void {
        this.#checkAlive();
        this.#history = validateHistory(messages);
        this.#epoch++;
    }

    /** Forgets the conversation (the system prompt stays). */
    reset(): void {
        this.#checkAlive();
        this.#history = [];
        this.#epoch++;
    }

    /**
     * Sends one user turn and generates the answer.
     *
     * @example
     * ```ts
     * const { text, stopReason } = await session.prompt("Why is the sky blue?", { maxTokens: 200, temperature: 0 });
     * ```
     * @throws {ContextFullError} when the conversation does not fit in the context window
     */
    async prompt(input: PromptInput, options: PromptOptions = {}): Promise<PromptResult> {
        this.#checkAlive();
        const parts = toContentParts(input);
        const resolved = this.#resolvePromptOptions(options);
        return this.#enqueue(() => this.#run(parts, resolved, undefined));
    }

    /**
     * Like {@link Session.prompt}, but yields the answer as text chunks while it is generated. Breaking out of the
     * loop stops generation (the result then has `stopReason: "abort"`).
     *
     * @example
     * ```ts
     * for await (const chunk of session.stream("Tell me a story")) process.stdout.write(chunk);
     * ```
     */
    stream(input: PromptInput, options: PromptOptions = {}): PromptStream {
        this.#checkAlive();
        const parts = toContentParts(input);
        const resolved = this.#resolvePromptOptions(options);
        return chunkStream(resolved.signal, (onChunk, signal) => this.#enqueue(() => this.#run(parts, { ...resolved, signal }, onChunk)));
    }

    /**
     * Saves the conversation and its KV cache to a file, so that {@link Session.load} can continue it later without
     * evaluating it again.
     *
     * @param options.overwrite replace an existing file (default false: an existing file is an error)
     */
    async save(path: string, options: { overwrite?: boolean } = {}): Promise<{ bytes: number }> {
        this.#checkAlive();
        checkOptionsObject(options, ["overwrite"]);
        const target = saveTarget(path, optionalBoolean("overwrite", options.overwrite, false));
        return this.#enqueue(async () => {
            const header = {
                format: STATE_FORMAT,
                version: STATE_VERSION,
                model: modelIdentity(this.#model),
                contextSize: this.#contextSize,
                systemPrompt: this.#systemPrompt ?? null,
                history: this.#history.map(serializeMessage),
                timeline: this.#cache.timeline.toJSON(),
            };
            this.#ctx();
            try {
                return await writeState(this.#cache, target, header);
            } catch (err) {
                throw fromNativeError(err, { object: "Session" });
            }
        });
    }

    /**
     * Restores a conversation saved by {@link Session.save} into this session (replacing its conversation).
     *
     * @throws {StateFileError} when the file is not a session state, was saved from another model, or does not fit
     */
    async load(path: string): Promise<void> {
        this.#checkAlive();
        const target = resolve(path);
        return this.#enqueue(async () => {
            const header = checkSessionHeader(target, readStateHeader(target, "session"));
            const identity = modelIdentity(this.#model);
            if (JSON.stringify(header.model) !== JSON.stringify(identity)) {
                throw new StateFileError(target, `it was saved from another model (${JSON.stringify(header.model)})`);
            }
            let timeline: KvTimeline;
            try {
                timeline = header.version === 1 ? KvTimeline.fromLegacyItems(header.cacheTokens!) : KvTimeline.fromJSON(header.timeline);
            } catch (err) {
                throw new StateFileError(target, `has a corrupt cache record (${(err as Error).message})`, { cause: err });
            }
            if (timeline.length > this.#contextSize) {
                throw new StateFileError(target, `it holds ${timeline.length} tokens but this session's context is ${this.#contextSize}`);
            }
            const history = validateHistory(header.history.map(deserializeMessage));
            this.#ctx();
            try {
                await this.#cache.load(target, timeline);
            } catch (err) {
                throw new StateFileError(target, (err as Error).message, { cause: err });
            }
            this.#history = history;
            this.#systemPrompt = header.systemPrompt ?? undefined;
            this.#epoch++;
        });
    }

    /** Frees the session's context. Idempotent; a prompt in flight is aborted first. */
    async dispose(): Promise<void> {
        if (this.#disposed) return;
        this.#disposed = true;
        this.#activeAbort?.();
        await this.#queue.catch(() => {});
        this.#context?.dispose();
        this.#context = undefined;
        await Promise.all([...this.#openedVideos.values()].map((v) => v.close()));
        this.#openedVideos.clear();
        await Promise.all([...this.#ownedHandles].map((h) => h.dispose()));
        this.#ownedHandles.clear();
        for (const listener of this.#disposeListeners) listener();
    }

    async [Symbol.asyncDispose](): Promise<void> {
        await this.dispose();
    }

    /** @internal */
    onDispose(listener: () => void): void {
        this.#disposeListeners.push(listener);
    }

    // ---- internals ----------------------------------------------------------------------------------------------

    #checkAlive(): void {
        if (this.#disposed) throw new DisposedError("Session");
        if (this.#model.disposed) throw new DisposedError("Model");
    }

    #ctx(): NativeContext {
        if (!this.#context) throw new DisposedError("Session");
        return this.#context;
    }

    #enqueue<T>(task: () => Promise<T>): Promise<T> {
        const run = this.#queue.then(() => {
            this.#checkAlive();
            return task();
        });
        this.#queue = run.catch(() => {});
        return run;
    }

    #resolvePromptOptions(options: PromptOptions): ResolvedPromptOptions {
        checkOptionsObject(options, PROMPT_OPTIONS);
        const stop = options.stop;
        if (stop !== undefined && (!Array.isArray(stop) || stop.some((s) => typeof s !== "string" || s.length === 0))) {
            throw new InvalidOptionError("stop", "an array of non-empty strings", stop);
        }
        return {
            maxTokens: optionalInteger("maxTokens", options.maxTokens, 0, 2 ** 31 - 1, 1024),
            stop: stop ?? [],
            signal: optionalSignal("signal", options.signal),
            onToken: optionalFunction<(chunk: { token: number; text: string }) => void>("onToken", options.onToken),
            onPromptProgress: optionalFunction<(p: { evaluated: number; total: number }) => void>("onPromptProgress", options.onPromptProgress),
            prune: options.prune === undefined ? undefined : checkPrune(options.prune, "prune"),
            onMediaProgress: optionalFunction<NonNullable<PromptOptions["onMediaProgress"]>>("onMediaProgress", options.onMediaProgress),
            sampling: resolveSamplingOptions(options),
        };
    }

    /**
     * The whole conversation plus a new user turn as a plan: text token ids and visual slots. New media are decoded
     * (images) or planned (videos: frame count and timestamps) and sized here; media of earlier turns are described by
     * what the session recorded when they were planned, so their sources are not touched (a closed Video is fine).
     * The resize budget is shared by every image and video frame of the conversation, as the reference processor
     * shares it within a request.
     */
    async #buildPlan(messages: readonly ChatMessage[], options: ResolvedPromptOptions): Promise<{ segments: PlanSegment[]; producers: Map<ContentPart, ImageProducer | VideoProducer> }> {
        const media: Array<{ part: Extract<ContentPart, { type: "image" | "video" }>; messageIndex: number }> = [];
        messages.forEach((m, i) => {
            if (typeof m.content !== "string") for (const p of m.content) if (p.type !== "text") media.push({ part: p, messageIndex: i < this.#history.length ? i : -1 });
        });
        const producers = new Map<ContentPart, ImageProducer | VideoProducer>();
        const vision = this.#model.vision;
        if (media.length > 0) {
            if (!vision) {
                const first = media[0]!.part;
                throw new InvalidOptionError(
                    "prompt",
                    "text only",
                    first.type === "image" ? first.image : first.video,
                    `${basename(this.#model.path)} was loaded without a vision projector; pass mmproj to loadModel to give it ${first.type}s`,
                );
            }
            const hp = vision.info;
            const family = familyOf(hp);
            const described = await Promise.all(
                media.map(async ({ part, messageIndex }) => {
                    if (part.type === "image") {
                        const d = await part.image.decode();
                        return { part, messageIndex, shape: { kind: "image" as const, height: d.height, width: d.width }, hash: await imageHash(part.image) };
                    }
                    const handle = await this.#videoHandle(part, options.signal);
                    return { part, messageIndex, shape: { kind: "video" as const, height: handle.height, width: handle.width, frames: handle.plan.count }, handle };
                }),
            );
            const geometries = family.requestGeometry(described.map((d) => d.shape), hp);
            described.forEach((d, i) => {
                if (d.part.type === "image") {
                    producers.set(d.part, new ImageProducer(vision, d.part.image, d.hash!, geometries[i]!));
                } else {
                    const prune = family.resolvePrune(d.part.prune ?? options.prune, hp);
                    const index = i;
                    const onProgress = (p: VideoProgress) => options.onMediaProgress?.({ media: index, kind: "video", ...p });
                    producers.set(d.part, new VideoProducer(vision, d.handle!, geometries[i]!, prune, onProgress, d.messageIndex));
                }
            });
        }

        const family = vision ? familyOf(vision.info) : undefined;
        const templateMessages: TemplateMessage[] = [];
        if (this.#systemPrompt !== undefined) templateMessages.push({ role: "system", content: this.#systemPrompt });
        // The placeholder tokens the template must write, in order, each with the visual slots it stands for.
        const expected: Array<{ token: number; slots: Array<{ producer: ImageProducer | VideoProducer; slot: number; token: number }> }> = [];
        for (const m of messages) {
            if (typeof m.content === "string") {
                const content = m.role === "assistant" && !m.tokens && family ? family.assistantContent(m.content) : m.content;
                templateMessages.push({ role: m.role, content, ...(m.tokens ? { contentTokens: m.tokens } : {}) });
                continue;
            }
            const items: TemplateContentItem[] = [];
            for (const p of m.content) {
                if (p.type === "text") {
                    items.push({ type: "text", text: p.text });
                    continue;
                }
                const producer = producers.get(p)!;
                const frames = producer instanceof VideoProducer ? producer.plan.count : 1;
                items.push(producer instanceof VideoProducer ? family!.videoContent(producer.plan.timestamps) : family!.imageContent());
                for (const ph of family!.placeholders(p.type, frames, vision!.info)) expected.push({ token: ph.token, slots: ph.slots.map((slot) => ({ producer, slot, token: ph.token })) });
            }
            templateMessages.push({ role: m.role, content: items });
        }
        const placeholderTokens = new Set(family && vision ? family.placeholderTokens(vision.info) : []);
        const variables: Record<string, unknown> = {};
        if (vision) variables.image_token = this.#model.nativeModel.detokenize(Int32Array.of(vision.info.imageTokenId), true);
        const pieces = this.#template.renderPieces(templateMessages, { addGenerationPrompt: true, variables });
        const tokens = this.#model.tokenizeConversation(pieces);

        // Each placeholder token the template wrote stands for the visual slots of the next expected placeholder.
        const segments: PlanSegment[] = [];
        let run: number[] = [];
        let k = 0;
        for (const t of tokens) {
            if (!placeholderTokens.has(t)) {
                run.push(t);
                continue;
            }
            const next = expected[k++];
            if (!next) throw new ChatTemplateError("The chat template wrote more image/video placeholders than the conversation has images and videos");
            if (next.token !== t) throw new ChatTemplateError(`The chat template wrote placeholder ${t} where the conversation's media need ${next.token}`);
            if (run.length > 0) segments.push({ kind: "tokens", tokens: run });
            run = [];
            for (const slot of next.slots) segments.push({ kind: "visual", ...slot });
        }
        if (k !== expected.length) {
            throw new ChatTemplateError(`The chat template placed ${k} of the conversation's ${expected.length} image/video placeholders; it does not support this media`);
        }
        segments.push({ kind: "tokens", tokens: run });
        return { segments, producers };
    }

    /**
     * The handle of a video part: recorded when the video was first planned (so a later turn needs nothing of it), or
     * made now — a path or URL is opened once per session with the projector's sampling defaults.
     */
    async #videoHandle(part: Extract<ContentPart, { type: "video" }>, signal: AbortSignal | undefined): Promise<VideoHandle> {
        if (!(part.video instanceof Video)) {
            const key = String(part.video);
            let video = this.#openedVideos.get(key);
            if (!video) {
                const vision = this.#model.vision!;
                video = await Video.open(part.video, { ...familyOf(vision.info).videoSampling(vision.info), ...(signal ? { signal } : {}) });
                this.#openedVideos.set(key, video);
            }
            part.video = video;
        }
        const video = part.video;
        let handle = this.#videoHandles.get(video);
        if (!handle) {
            handle = await VideoHandle.of(video, signal);
            this.#videoHandles.set(video, handle);
            this.#ownedHandles.add(handle);
        }
        return handle;
    }

    async #run(parts: ContentPart[], options: ResolvedPromptOptions, onChunk: ((chunk: string) => void) | undefined): Promise<PromptResult> {
        const started = performance.now();
        const epoch = this.#epoch;
        const userMessage: ChatMessage = {
            role: "user",
            content: parts.every((p) => p.type === "text") ? parts.map((p) => (p as { text: string }).text).join("") : parts,
        };
        const conversation = [...this.#history, userMessage];
        const { segments, producers } = await this.#buildPlan(conversation, options);
        const minimum = minimumPlanLength(segments);
        if (minimum >= this.#contextSize) throw new ContextFullError(this.#contextSize, minimum + 1);
        this.#ctx();
        // What the cache already holds, and which media must produce embeddings: those get their pixels now (a closed
        // video is re-opened from its path or URL), before anything is truncated or evaluated.
        const match = matchPlan(segments, this.#cache.timeline);
        for (const producer of match.producers) await producer.prepare(options.signal);

        const addon = native();
        const abort = new addon.AbortFlag();
        const onAbort = () => abort.abort();
        options.signal?.addEventListener("abort", onAbort, { once: true });
        this.#activeAbort = onAbort;
        if (options.signal?.aborted) abort.abort();

        try {
            const sampler = new addon.Sampler(this.#model.nativeModel, { ...options.sampling.native, banned: this.#model.bannedTokens() });
            // Like llama-cli, the repetition penalties also see the prompt's last text tokens (-1: the whole prompt).
            const lastN = options.sampling.penaltyLastN;
            if (lastN !== 0) {
                const textTokens = segments.flatMap((s) => (s.kind === "tokens" ? s.tokens : []));
                sampler.accept(Int32Array.from(lastN < 0 ? textTokens : textTokens.slice(-lastN)));
            }
            const promptStarted = performance.now();
            const evaluation = await evaluatePlan(segments, match, {
                cache: this.#cache,
                sampler,
                abort,
                signal: options.signal,
                imageTokenId: this.#model.vision?.info.imageTokenId ?? -1,
                onPromptProgress: options.onPromptProgress,
            });
            const reused = evaluation.reused;
            const promptMs = performance.now() - promptStarted;
            const promptTokens = evaluation.evaluatedTokens;
            const mediaUsage: MediaUsage[] = [];
            let decodeMs = 0;
            let encodeMs = 0;
            if (typeof userMessage.content !== "string") {
                for (const p of userMessage.content) {
                    const producer = producers.get(p);
                    if (!producer) continue;
                    const grid = { ...producer.geometry.grid };
                    if (producer instanceof ImageProducer) {
                        mediaUsage.push({ kind: "image", tokens: producer.tokens, grid, source: (p as { image: Image }).image.source });
                    } else {
                        const frames = producer.frames.filter(Boolean);
                        mediaUsage.push({
                            kind: "video",
                            source: producer.handle.source,
                            grid,
                            frames: frames.map((fr) => ({ ...fr })),
                            tokens: frames.reduce((a, fr) => a + fr.tokens, 0),
                            keptTokens: frames.reduce((a, fr) => a + fr.keptTokens, 0),
                            warnings: [...producer.handle.warnings],
                            encoder: { mode: producer.prune?.encodeChangedOnly ? "changed-only" : "exact", ...producer.encoderWork },
                        });
                        decodeMs += producer.timings.decodeMs;
                        encodeMs += producer.timings.encodeMs;
                    }
                }
            }
            for (const producer of producers.values()) if (producer instanceof ImageProducer) encodeMs += producer.encodeMs;

            const generationStarted = performance.now();
            const model = this.#model.nativeModel;
            const generation = await generate(model, this.#cache, evaluation.result, sampler, abort, {
                stripLeadingSpace: this.#model.addsSpacePrefix,
                maxTokens: options.maxTokens,
                stop: options.stop,
                onToken: options.onToken,
                onChunk,
            });
            const generated = generation.tokens;
            const stopReason = generation.stopReason;
            const answer = generation.text;
            const finished = performance.now();

            // The conversation moves on unless nothing was answered (aborted during the prompt) or it was reset meanwhile.
            if (epoch === this.#epoch && !(evaluation.aborted && generated.length === 0)) {
                const exact = model.detokenize(Int32Array.from(generated), false) === answer;
                this.#history.push(userMessage, { role: "assistant", content: answer, ...(exact ? { tokens: generated.slice() } : {}) });
            }
            const generationMs = finished - generationStarted;
            return {
                text: answer,
                stopReason,
                tokens: generated,
                promptTokens,
                reusedTokens: reused,
                media: mediaUsage,
                timings: {
                    promptMs,
                    decodeMs,
                    encodeMs,
                    prefillMs: evaluation.prefillMs,
                    generationMs,
                    totalMs: finished - started,
                    promptTokensPerSecond: promptMs > 0 ? (promptTokens.length / promptMs) * 1000 : 0,
                    tokensPerSecond: generationMs > 0 && generated.length > 1 ? ((generated.length - 1) / generationMs) * 1000 : 0,
                },
            };
        } finally {
            options.signal?.removeEventListener("abort", onAbort);
            this.#activeAbort = undefined;
        }
    }
}

interface ResolvedPromptOptions {
    maxTokens: number;
    stop: readonly string[];
    signal: AbortSignal | undefined;
    onToken: ((chunk: { token: number; text: string }) => void) | undefined;
    onPromptProgress: ((progress: { evaluated: number; total: number }) => void) | undefined;
    prune: PruneOption | undefined;
    onMediaProgress: PromptOptions["onMediaProgress"];
    sampling: ReturnType<typeof resolveSamplingOptions>;
}

/**
 * History as stored in a state file: images and videos are referenced by their file path (they are read again, and
 * recognised by their content, when the conversation continues).
 */
function serializeMessage(m: ChatMessage): unknown {
    if (typeof m.content === "string") return m;
    return {
        ...m,
        content: m.content.map((p) => {
            if (p.type === "text") return p;
            if (p.type === "image") {
                if (p.image.source.startsWith("<")) {
                    throw new InvalidOptionError("history", "images loaded from files (to be saved by path)", p.image.source, "a conversation with in-memory images cannot be saved");
                }
                return { type: "image", file: resolve(p.image.source) };
            }
            const source = p.video instanceof Video ? p.video.source : String(p.video);
            if (source.startsWith("<")) {
                throw new InvalidOptionError("history", "videos opened from files or URLs (to be saved by reference)", source, "a conversation with in-memory videos cannot be saved");
            }
            return { type: "video", file: source, ...(p.prune !== undefined ? { prune: p.prune } : {}) };
        }),
    };
}

function deserializeMessage(m: ChatMessage): ChatMessage {
    if (typeof m.content === "string" || !Array.isArray(m.content)) return m;
    return {
        ...m,
        content: (m.content as Array<Record<string, unknown>>).map((p): ContentPart => {
            if (p.type === "image" && typeof p.file === "string") return { type: "image", image: Image.fromFile(p.file) };
            if (p.type === "video" && typeof p.file === "string") return { type: "video", video: p.file, ...(p.prune !== undefined ? { prune: p.prune as PruneOption } : {}) };
            return p as ContentPart;
        }),
    };
}

function validateHistory(messages: readonly ChatMessage[]): ChatMessage[] {
    if (!Array.isArray(messages)) throw new InvalidOptionError("history", "an array of messages", messages);
    return messages.map((m, i) => {
        if (typeof m !== "object" || m === null) throw new InvalidOptionError(`history[${i}]`, "a message object", m);
        const role = optionalEnum(`history[${i}].role`, m.role, ["system", "user", "assistant"] as const);
        if (!role) throw new InvalidOptionError(`history[${i}].role`, '"system", "user" or "assistant"', m.role);
        let content: string | ContentPart[];
        if (typeof m.content === "string") content = m.content;
        else if (Array.isArray(m.content) && role === "user") {
            content = (m.content as unknown[]).map((p: any, j: number): ContentPart => {
                if (p?.type === "text" && typeof p.text === "string") return { type: "text", text: p.text };
                if (p?.type === "image" && p.image instanceof Image) return { type: "image", image: p.image };
                if (p?.type === "video" && (p.video instanceof Video || typeof p.video === "string" || p.video instanceof URL)) {
                    return { type: "video", video: p.video, ...(p.prune !== undefined ? { prune: checkPrune(p.prune, `history[${i}].content[${j}].prune`) } : {}) };
                }
                throw new InvalidOptionError(`history[${i}].content[${j}]`, '{ type: "text", text }, { type: "image", image: Image } or { type: "video", video }', p);
            });
        } else throw new InvalidOptionError(`history[${i}].content`, "a string (or, for user messages, content parts)", m.content);
        if (m.tokens !== undefined && (!Array.isArray(m.tokens) || (m.tokens as unknown[]).some((t) => !Number.isInteger(t) || (t as number) < 0))) {
            throw new InvalidOptionError(`history[${i}].tokens`, "an array of token ids", m.tokens);
        }
        return { role, content, ...(m.tokens && typeof content === "string" ? { tokens: [...m.tokens] } : {}) };
    });
}

interface StateHeader {
    format: string;
    version: number;
    model: unknown;
    contextSize: number;
    systemPrompt: string | null;
    history: ChatMessage[];
    /** Version 2: the KV timeline. */
    timeline?: unknown;
    /** Version 1: the cache as a flat list of token ids and visual keys. */
    cacheTokens?: Array<number | string>;
}

/** The header of a session state file, checked. */
function checkSessionHeader(path: string, header: Record<string, unknown>): StateHeader {
    const h = header as unknown as StateHeader;
    const cacheOk = h.version === 1 ? Array.isArray(h.cacheTokens) : h.version === STATE_VERSION && typeof h.timeline === "object";
    if (h.format !== STATE_FORMAT || !cacheOk || !Array.isArray(h.history)) {
        throw new StateFileError(path, `has an unsupported format (${String(h.format)} v${String(h.version)})`);
    }
    return h;
}
