/**
 * Live video: frames enter the KV cache as they arrive, questions can be asked at any time, and memory stays bounded
 * however long the stream runs.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { checkPrune, type PruneOption } from "./chat/content.js";
import type { TemplateMessage } from "./chat/template.js";
import { copyToRgb } from "./decode/Image.js";
import { Video } from "./decode/Video.js";
import type { VisionProjector } from "./encode/vision.js";
import { DisposedError, InvalidOptionError, StateFileError, VidllamaError } from "./errors.js";
import { familyOf, geometryItem, type ModelFamily, type PruneSettings, type VisualGeometry } from "./family/index.js";
import { KvCache } from "./kv/cache.js";
import { CONTEXT_OPTIONS, createContext, type ContextOptions } from "./kv/context.js";
import { modelIdentity, readStateHeader, saveTarget, writeState } from "./kv/state-file.js";
import { KvTimeline } from "./kv/timeline.js";
import type { Model } from "./Model.js";
import { native } from "./native/load.js";
import type { NativeEncoderReuse, NativeFrameState } from "./native/types.js";
import { chunkStream } from "./sample/chunks.js";
import { generate, type StopReason } from "./sample/generate.js";
import { resolveSamplingOptions, type SamplingOptions } from "./sample/options.js";
import { planEviction, type StreamEntry, type WindowPolicy } from "./stream/eviction.js";
import { StreamLayout } from "./stream/layout.js";
import { findFfmpeg, liveFrames, StreamSourceError, type LiveSourceSpec } from "./stream/live-source.js";
import {
    checkOptionsObject,
    optionalBoolean,
    optionalEnum,
    optionalFunction,
    optionalInteger,
    optionalSignal,
    optionalString,
} from "./validate.js";

export { StreamSourceError } from "./stream/live-source.js";

/** How much of the stream the KV cache keeps (frames older than the window leave it; positions are re-packed). */
export interface StreamWindow {
    /** Most frames kept. */
    frames?: number;
    /** Frames more than this many seconds (stream time) older than the newest one leave. */
    seconds?: number;
    /** Most cache positions the kept frames may occupy. */
    tokens?: number;
}

/** What happens to frames that arrive while the stream is busy (a question, or frames ahead of them). */
export interface StreamQueueOptions {
    /** Frames waiting to be ingested, at most. Default 4. */
    size?: number;
    /**
     * When the queue is full: `"drop-oldest"` (default: the newest frames win, latency stays bounded),
     * `"drop-newest"` (the arriving frame is dropped), or `"wait"` (`pushFrame` waits for room: back-pressure,
     * nothing is dropped — for sources that can wait, such as files).
     */
    policy?: "drop-oldest" | "drop-newest" | "wait";
}

/** Options of {@link Model.createStream}. */
export interface StreamOptions extends ContextOptions {
    /** System message at the start of the stream; it is never evicted. */
    systemPrompt?: string;
    /**
     * Write each frame's stream time before it (`Time 12.0s: <image>`). Default false: VideoLLaMA3's streaming
     * training samples have no time text in stream messages, so frames are laid out as the model saw them.
     * Video-LLaVA's prompt format has no timestamps (true is an error there).
     */
    timestamps?: boolean;
    /**
     * Frames are resized by the video rule as one of this many frames sharing the model's visual token budget.
     * Default: the projector's max frames (VideoLLaMA3: 180, e.g. 1280×720 → 336×196, 84 tokens per frame).
     * Video-LLaVA sizes every frame alike (224×224 after the crop, 257 tokens) and ignores it.
     */
    budgetFrames?: number;
    /** Differential Frame Pruning against the previous ingested frame (default: the projector's settings). */
    prune?: PruneOption;
    /**
     * The frame window. Default `{ tokens: 3072 }` (at most the context minus the reserve): the time to the first
     * token of a question grows with what the cache holds (attention over every cached position); measured on a
     * 2-core CPU with the 2B shapes, 3,013 positions gave 1.40× an empty stream's and 6,013 gave 2.56×
     * (bench/README.md). A larger window remembers more at that cost; `{ frames }` and `{ seconds }` bound it by
     * count or stream time instead.
     */
    window?: StreamWindow;
    /** Cache positions kept for questions and answers, which outlive frames. Default 1024. */
    textWindow?: number;
    /** Positions always left free for the next question and its answer. Default: min(1024, contextSize / 4). */
    reserve?: number;
    queue?: StreamQueueOptions;
}

const STREAM_OPTIONS = ["systemPrompt", "timestamps", "budgetFrames", "prune", "window", "textWindow", "reserve", "queue", ...CONTEXT_OPTIONS] as const;

/** A frame pushed by the caller. */
export interface StreamFrame {
    /** Pixels, row-major, 3 (`"rgb"`) or 4 (`"rgba"`, alpha ignored) bytes per pixel. */
    data: Uint8Array | Uint8ClampedArray;
    width: number;
    height: number;
    /** Seconds on the source's timeline (not the wall clock); never less than the previous frame's. */
    timestamp: number;
    /** Pixel layout; default inferred from the data length. */
    format?: "rgb" | "rgba";
}

/** Where {@link Stream.ingest} reads frames from. */
export type StreamSource =
    | Video
    /** A file (followed while it grows with `follow: true`), or a URL: rtsp://, rtmp://, http(s):// (HLS too), udp://, srt://, … */
    | string
    | URL
    /** Encoded video on a stream (e.g. `process.stdin`). */
    | Readable
    /** A capture device through ffmpeg: `{ format: "v4l2", device: "/dev/video0" }`, `{ format: "avfoundation", device: "0" }`, `{ format: "x11grab", device: ":0.0" }`, `{ format: "dshow", device: "video=…" }`, `{ format: "gdigrab", device: "desktop" }`. */
    | { format: string; device: string };

/** Options of {@link Stream.ingest}. */
export interface IngestOptions {
    /** Frames sampled per second of source time (ffmpeg's fps filter, as for videos). Default: the projector's (VideoLLaMA3: 1; Video-LLaVA: 1). */
    fps?: number;
    /** ffmpeg to use (else VIDLLAMA_FFMPEG, ffmpeg-static, PATH). */
    ffmpegPath?: string;
    /** A file path: keep reading as it grows, until it has not grown for `idleTimeout`. Default false. */
    follow?: boolean;
    /** ffmpeg input options before `-i` (e.g. `["-video_size", "640x480", "-framerate", "30"]` for a device). */
    inputOptions?: readonly string[];
    /** Milliseconds without data after which a followed file ends or a URL read fails. Default 10000. */
    idleTimeout?: number;
    /** URLs: reconnect after a failure with exponential back-off. `true`: 5 attempts from 500 ms up to 8 s. */
    reconnect?: boolean | { attempts?: number; delayMs?: number; maxDelayMs?: number };
    /** Stops this ingestion (ffmpeg is killed); what was ingested stays. */
    signal?: AbortSignal;
}

/** How an ingestion ended. */
export interface IngestResult {
    /** `"end"`: the source ended; `"abort"`: the signal fired; `"closed"`: the stream was closed; `"error"`: the source failed. */
    reason: "end" | "abort" | "closed" | "error";
    /** Frames the source delivered. */
    frames: number;
    /** The failure, for `"error"` (a {@link StreamSourceError} for ffmpeg and network failures). */
    error?: Error;
}

/** Options of {@link Stream.ask} and {@link Stream.askStream}. */
export interface AskOptions extends SamplingOptions {
    /** Maximum tokens of the answer. Default 256. */
    maxTokens?: number;
    stop?: readonly string[];
    /** Stops prompt processing and generation; the answer then has `stopReason: "abort"`. */
    signal?: AbortSignal;
    /**
     * Keep the question and its answer in the stream (later questions can refer to them; they are evicted after
     * frames, see {@link StreamOptions.textWindow}). Default true; false answers without changing the stream's cache.
     */
    keep?: boolean;
    onToken?: (chunk: { token: number; text: string }) => void;
    /** Return the logits of the first answer token (for scoring and tests). */
    logits?: boolean;
    /**
     * First ingest the frames already queued when the question is asked (default false: the question is answered
     * from what the cache holds now, ahead of queued frames — the lowest latency).
     */
    waitForFrames?: boolean;
}

const ASK_OPTIONS = ["maxTokens", "stop", "signal", "keep", "onToken", "logits", "waitForFrames", "temperature", "topK", "topP", "minP", "repeatPenalty", "repeatLastN", "frequencyPenalty", "presencePenalty", "seed"] as const;

/** An answer to a question about the stream. */
export interface StreamAnswer {
    text: string;
    stopReason: StopReason;
    tokens: number[];
    /** Stream time of the newest frame the question saw (NaN before the first frame). */
    timestamp: number;
    /** Frames in the cache when the question was asked. */
    frames: number;
    /** Milliseconds from the call to the first answer token (waiting for a frame in progress included). */
    ttftMs: number;
    /** Milliseconds of evaluating the question's tokens. */
    promptMs: number;
    /** Tokens of the question as the template lays it out (user turn and generation prompt). */
    promptTokens: number;
    generationMs: number;
    /** The logits of the first answer token, with `logits: true`. */
    logits?: Float32Array;
}

/** The async iterator returned by {@link Stream.askStream}. */
export interface AnswerStream extends AsyncIterable<string> {
    readonly result: Promise<StreamAnswer>;
}

/** A frame entered the cache. */
export interface FrameEvent {
    timestamp: number;
    /** Visual tokens of the frame before pruning. */
    tokens: number;
    /** Visual tokens kept (after Differential Frame Pruning). */
    keptTokens: number;
    /** Preprocessing, pruning, encoder and projector. */
    encodeMs: number;
    /** The language model evaluating the frame's tokens. */
    appendMs: number;
    /** Cache positions the frame occupies (its kept visual tokens and the stream message around them). */
    positions: number;
    /** Frames still waiting. */
    queueDepth: number;
}

/** Frames (and text turns) left the cache. */
export interface EvictEvent {
    frames: number;
    turns: number;
    /** Cache positions freed. */
    tokens: number;
    /** Stream time of the first and last evicted frame (NaN when no frame left). */
    from: number;
    to: number;
}

/** A frame was dropped without being ingested. */
export interface DropEvent {
    timestamp: number;
    reason: "queue-full";
}

/** A URL source failed and is tried again (see {@link IngestOptions.reconnect}). */
export interface ReconnectEvent {
    source: string;
    attempt: number;
    error: Error;
}

export interface StreamEvents {
    frame: FrameEvent;
    reconnect: ReconnectEvent;
    evict: EvictEvent;
    drop: DropEvent;
    answer: StreamAnswer & { question: string };
    /** A source failed (ingestion ended; what was ingested stays, questions still work). */
    error: Error;
}

/** Counters and sizes of a stream. */
export interface StreamStats {
    /** Cache positions in use, and the context size. */
    kvTokens: number;
    contextSize: number;
    /** Bytes of K and V the used positions occupy. */
    kvBytes: number;
    framesSeen: number;
    /** Frames ingested into the cache (ever). */
    framesIngested: number;
    /** Frames in the cache now. */
    framesInCache: number;
    framesEvicted: number;
    framesDropped: number;
    /** Visual tokens kept / before pruning, over all ingested frames. */
    tokensKept: number;
    tokensTotal: number;
    queueDepth: number;
    /** Frames ingested per second of ingest work (encode + append), over the last 32 frames. */
    ingestFps: number;
    /** Time to first token of the last question, ms (NaN before one). */
    lastTtftMs: number;
    /** Stream time of the oldest and newest frame in the cache (NaN when none). */
    window: { from: number; to: number };
    /** Stream time range of the evicted frames (NaN when none). */
    evicted: { from: number; to: number; turns: number };
}

type Listener<T> = (value: T) => void;

interface EntryInfo extends StreamEntry {
    keptTokens?: number;
    frameTokens?: number;
    question?: string;
}

/** The source size of the frames and the size they are resized to. */
interface FrameSize {
    width: number;
    height: number;
    geometry: VisualGeometry;
}

interface QueuedFrame {
    rgb: Uint8Array;
    width: number;
    height: number;
    timestamp: number;
    /** Called once the frame has been ingested, dropped, or the stream closed. */
    done: Array<() => void>;
}

/** What a stream was created with, resolved (see {@link Stream.settings}). */
export interface StreamSettings {
    systemPrompt: string | null;
    timestamps: boolean;
    budgetFrames: number;
    prune: { threshold: number; minTokens: number } | null;
    window: StreamWindow;
    textWindow: number;
    /** Positions kept free for a question and its answer. */
    reserve: number;
    contextSize: number;
    queue: { size: number; policy: "drop-oldest" | "drop-newest" | "wait" };
}

interface QueuedQuestion {
    run: () => Promise<void>;
}

/** Default frame window, in cache positions (see {@link StreamOptions.window}). */
const DEFAULT_WINDOW_TOKENS = 3072;

const STATE_FORMAT = "vidllama-stream-state";
const STATE_VERSION = 1;

/**
 * A live video stream on a model: frames (pushed, from a `Video`, or from a live ffmpeg source) are resized,
 * encoded, pruned against the previous frame and appended to the KV cache as they arrive, each as its own `stream`
 * message of the model's chat template; questions are answered at any moment from what the cache holds. Old frames
 * leave the cache (positions re-packed) so memory and positions stay bounded.
 *
 * All work on the cache runs one step at a time: a frame being appended finishes before a question starts; frames
 * that arrive meanwhile wait in a bounded queue.
 */
export class Stream implements AsyncDisposable {
    readonly #model: Model;
    readonly #vision: VisionProjector;
    /** The model family's rules (frame size, layout, placeholders). */
    readonly #family: ModelFamily;
    readonly #cache: KvCache;
    readonly #layout: StreamLayout;
    readonly #systemPrompt: string | undefined;
    readonly #timestamps: boolean;
    readonly #budgetFrames: number;
    readonly #prune: PruneSettings;
    readonly #policy: WindowPolicy;
    readonly #queueSize: number;
    readonly #queuePolicy: "drop-oldest" | "drop-newest" | "wait";
    readonly #listeners = new Map<keyof StreamEvents, Set<Listener<never>>>();
    #frameState: NativeFrameState;
    /** The encoder's states of the previous frames, when the stream encodes only changed blocks. */
    #encoderReuse: NativeEncoderReuse | undefined;
    #context: { dispose(): void } | undefined;
    #entries: EntryInfo[] = [];
    #nextGroup = 1;
    /** The last message appended (the template context of the next one). */
    #previous: TemplateMessage | undefined;
    /**
     * Text that closes the last frame's message, appended together with whatever comes next (the next frame's
     * opening text, or a question) so that a frame costs one text evaluation instead of two.
     */
    #pending: { tokens: number[]; group: number } | undefined;
    #frameSize: FrameSize | undefined;
    #lastTimestamp = -Infinity;
    #frames: QueuedFrame[] = [];
    #waitingForRoom: Array<() => void> = [];
    #questions: QueuedQuestion[] = [];
    #pumping: Promise<void> | undefined;
    #idle: Array<() => void> = [];
    #ingesting = new Set<AbortController>();
    #activeAbort: (() => void) | undefined;
    /** Aborted by close(): stops the frame being encoded or appended. */
    readonly #closing = new AbortController();
    #closed = false;
    #stats = {
        framesSeen: 0,
        framesIngested: 0,
        framesEvicted: 0,
        framesDropped: 0,
        tokensKept: 0,
        tokensTotal: 0,
        lastTtftMs: NaN,
        evictedFrom: NaN,
        evictedTo: NaN,
        turnsEvicted: 0,
        recent: [] as number[],
    };
    #disposeListeners: Array<() => void> = [];

    private constructor(init: {
        model: Model;
        vision: VisionProjector;
        cache: KvCache;
        context: { dispose(): void };
        layout: StreamLayout;
        systemPrompt: string | undefined;
        timestamps: boolean;
        budgetFrames: number;
        prune: PruneSettings;
        policy: WindowPolicy;
        queueSize: number;
        queuePolicy: "drop-oldest" | "drop-newest" | "wait";
    }) {
        this.#model = init.model;
        this.#vision = init.vision;
        this.#family = familyOf(init.vision.info);
        this.#cache = init.cache;
        this.#context = init.context;
        this.#layout = init.layout;
        this.#systemPrompt = init.systemPrompt;
        this.#timestamps = init.timestamps;
        this.#budgetFrames = init.budgetFrames;
        this.#prune = init.prune;
        this.#policy = init.policy;
        this.#queueSize = init.queueSize;
        this.#queuePolicy = init.queuePolicy;
        this.#frameState = new (native().FrameState)();
        this.#encoderReuse = init.prune?.encodeChangedOnly ? new (native().EncoderReuse)() : undefined;
    }

    /** @internal Use {@link Model.createStream}. */
    static async create(model: Model, options: StreamOptions): Promise<Stream> {
        checkOptionsObject(options, STREAM_OPTIONS);
        const vision = model.vision;
        if (!vision) throw new InvalidOptionError("mmproj", "a vision projector loaded with the model", undefined, "a stream needs images: pass mmproj to loadModel");
        const systemPrompt = optionalString("systemPrompt", options.systemPrompt);
        const family = familyOf(vision.info);
        const timestamps = optionalBoolean("timestamps", options.timestamps, false);
        const timestampProblem = timestamps ? family.streamTimestampProblem() : undefined;
        if (timestampProblem) throw new InvalidOptionError("timestamps", "false", true, timestampProblem);
        const budgetFrames = optionalInteger("budgetFrames", options.budgetFrames, 1, 1 << 20, vision.info.videoMaxFrames)!;
        const prune = family.resolvePrune(options.prune === undefined ? undefined : checkPrune(options.prune, "prune"), vision.info);
        const window = checkWindow(options.window);
        const textWindow = optionalInteger("textWindow", options.textWindow, 0, 2 ** 31 - 1, 1024)!;
        const queue = options.queue === undefined ? {} : checkOptionsObject(options.queue, ["size", "policy"], "queue");
        const queueSize = optionalInteger("queue.size", queue.size, 0, 1 << 20, 4)!;
        const queuePolicy = optionalEnum("queue.policy", queue.policy, ["drop-oldest", "drop-newest", "wait"] as const) ?? "drop-oldest";
        // Positions must stay inside the range the model was trained on, however long the stream runs.
        const trained = model.info.trainContextSize > 0 ? model.info.trainContextSize : Infinity;
        if (options.contextSize !== undefined && options.contextSize > trained) {
            throw new InvalidOptionError("contextSize", `at most the model's trained context (${trained})`, options.contextSize);
        }
        const { context, template } = await createContext(model, options);
        try {
            const templateProblem = family.streamTemplateProblem(template.source);
            if (templateProblem) {
                throw new InvalidOptionError("chatTemplate", "a chat template with a `stream` role (VideoLLaMA3's)", undefined, `this model's template cannot lay out live frames: ${templateProblem}`);
            }
            const cache = new KvCache(context, { object: "Stream" });
            const reserve = optionalInteger("reserve", options.reserve, 1, cache.contextSize - 1, Math.min(1024, Math.floor(cache.contextSize / 4)))!;
            const layout = new StreamLayout(
                template,
                model.promptTokenizer(),
                family,
                vision.info,
                model.nativeModel.detokenize(Int32Array.of(vision.info.imageTokenId), true),
                systemPrompt,
            );
            const stream = new Stream({
                model,
                vision,
                cache,
                context,
                layout,
                systemPrompt,
                timestamps,
                budgetFrames,
                prune,
                policy: {
                    ...(window.frames === undefined && window.seconds === undefined && window.tokens === undefined ? { tokens: Math.min(DEFAULT_WINDOW_TOKENS, cache.contextSize - reserve) } : window),
                    textTokens: textWindow,
                    ceiling: cache.contextSize - reserve,
                },
                queueSize,
                queuePolicy,
            });
            if (layout.sink.length >= cache.contextSize - reserve) {
                throw new InvalidOptionError("systemPrompt", `a prompt shorter than the context minus the reserve (${cache.contextSize - reserve} tokens)`, `${layout.sink.length} tokens`);
            }
            await stream.#appendSink();
            return stream;
        } catch (err) {
            context.dispose();
            throw err;
        }
    }

    /** The model this stream runs on. */
    get model(): Model {
        return this.#model;
    }

    /** True after {@link close}. */
    get closed(): boolean {
        return this.#closed;
    }

    /** The settings in force (options resolved against the model's defaults). */
    get settings(): StreamSettings {
        const { frames, seconds, tokens, textTokens, ceiling } = this.#policy;
        return {
            ...this.#settings(),
            window: { ...(frames !== undefined ? { frames } : {}), ...(seconds !== undefined ? { seconds } : {}), ...(tokens !== undefined ? { tokens } : {}) },
            textWindow: textTokens,
            reserve: this.#cache.contextSize - ceiling,
            contextSize: this.#cache.contextSize,
            queue: { size: this.#queueSize, policy: this.#queuePolicy },
        };
    }

    /** Subscribes to an event; returns a function that unsubscribes. Listener exceptions are ignored. */
    on<E extends keyof StreamEvents>(event: E, listener: (value: StreamEvents[E]) => void): () => void {
        if (!["frame", "evict", "drop", "answer", "error", "reconnect"].includes(event)) {
            throw new InvalidOptionError("event", '"frame", "evict", "drop", "answer", "error" or "reconnect"', event);
        }
        if (typeof listener !== "function") throw new InvalidOptionError("listener", "a function", listener);
        let set = this.#listeners.get(event);
        if (!set) this.#listeners.set(event, (set = new Set()));
        set.add(listener as Listener<never>);
        return () => set!.delete(listener as Listener<never>);
    }

    /**
     * Pushes a frame you decoded (a camera, WebCodecs in Electron, your own decoder). Resolves when the frame is
     * accepted into the queue (`accepted: false` when the queue policy dropped it); with `queue.policy: "wait"` it
     * waits for room — back-pressure.
     */
    async pushFrame(frame: StreamFrame): Promise<{ accepted: boolean }> {
        this.#checkAlive();
        const { rgb, width, height, timestamp } = checkStreamFrame(frame, this.#lastTimestamp);
        this.#lastTimestamp = timestamp;
        return this.#enqueueFrame(rgb, width, height, timestamp, this.#queuePolicy);
    }

    /**
     * Reads frames from a source until it ends, feeding them in as they arrive: a {@link Video} (its sampled frames;
     * the queue waits for the encoder, nothing is dropped), or a live source decoded by ffmpeg (a capture device, a
     * URL, a growing file, stdin), sampled at `fps` and fed through the queue policy so that a slow machine drops
     * frames instead of falling behind. Resolves when ingestion ends; a failing source resolves with `reason: "error"`
     * (also emitted as an `error` event) and the stream stays usable.
     *
     * @throws {FfmpegNotFoundError} when a live source needs ffmpeg and none is found
     */
    async ingest(source: StreamSource, options: IngestOptions = {}): Promise<IngestResult> {
        this.#checkAlive();
        checkOptionsObject(options, ["fps", "ffmpegPath", "follow", "inputOptions", "idleTimeout", "reconnect", "signal"]);
        const signal = optionalSignal("signal", options.signal);
        const controller = new AbortController();
        const combined = signal ? AbortSignal.any([signal, controller.signal]) : controller.signal;
        let frames = 0;
        let iterator: AsyncIterable<{ data: Uint8Array; width: number; height: number; timestamp: number }>;
        let policy = this.#queuePolicy;
        if (source instanceof Video) {
            iterator = source.frames({ signal: combined });
            policy = "wait";
        } else {
            const spec = liveSpec(source, optionalBoolean("follow", options.follow, false));
            // A finished file can wait for the encoder; live sources go through the queue policy.
            if (spec.kind === "file" && !spec.follow) policy = "wait";
            const fps = checkFps(options.fps, this.#family.streamFps(this.#vision.info));
            const idleTimeoutMs = optionalInteger("idleTimeout", options.idleTimeout, 100, 3_600_000, 10_000)!;
            const inputOptions = options.inputOptions ?? [];
            if (!Array.isArray(inputOptions) || inputOptions.some((a) => typeof a !== "string")) throw new InvalidOptionError("inputOptions", "an array of strings", inputOptions);
            const ffmpeg = await findFfmpeg(optionalString("ffmpegPath", options.ffmpegPath), signal);
            iterator = liveFrames(spec, {
                fps,
                ffmpeg,
                inputOptions,
                idleTimeoutMs,
                reconnect: checkReconnect(options.reconnect),
                signal: combined,
                onReconnect: (attempt, error) => this.#emit("reconnect", { source: spec.description, attempt, error }),
            });
        }
        this.#ingesting.add(controller);
        // A source whose clock starts before the stream's last frame (a second file, a restarted camera) continues
        // the stream's timeline one sampling interval after it.
        const defaultFps = this.#family.streamFps(this.#vision.info);
        const step = 1 / (source instanceof Video ? defaultFps : checkFps(options.fps, defaultFps));
        let offset: number | undefined;
        try {
            for await (const f of iterator) {
                if (this.#closed) break;
                frames++;
                offset ??= Number.isFinite(this.#lastTimestamp) && f.timestamp <= this.#lastTimestamp ? this.#lastTimestamp - f.timestamp + step : 0;
                const timestamp = Math.max(f.timestamp + offset, Number.isFinite(this.#lastTimestamp) ? this.#lastTimestamp : -Infinity);
                this.#lastTimestamp = timestamp;
                await this.#enqueueFrame(f.data, f.width, f.height, timestamp, policy);
            }
            return { reason: this.#closed ? "closed" : "end", frames };
        } catch (err) {
            if (this.#closed) return { reason: "closed", frames };
            if (combined.aborted) return { reason: "abort", frames };
            const error = err instanceof Error ? err : new VidllamaError("ERR_STREAM_SOURCE", String(err));
            this.#emit("error", error);
            return { reason: "error", frames, error };
        } finally {
            this.#ingesting.delete(controller);
        }
    }

    /** Resolves when every queued frame has been ingested and no question is running. */
    async idle(): Promise<void> {
        if (!this.#pumping) return;
        await new Promise<void>((r) => this.#idle.push(r));
    }

    /**
     * Answers a question about what the stream has shown so far. It waits only for the frame being appended, then
     * evaluates the question's own tokens; frames arriving meanwhile wait in the queue.
     */
    async ask(question: string, options: AskOptions = {}): Promise<StreamAnswer> {
        this.#checkAlive();
        return this.#ask(question, options, undefined);
    }

    /** Like {@link ask}, yielding the answer as text chunks; breaking out of the loop stops generation. */
    askStream(question: string, options: AskOptions = {}): AnswerStream {
        this.#checkAlive();
        return chunkStream(options.signal, (onChunk, signal) => this.#ask(question, { ...options, signal }, onChunk));
    }

    /**
     * The token ids the cache holds, in position order, each visual token as its frame's placeholder id (what
     * `promptTokens` shows for a Session): the stream as the model sees it, for inspection and tests.
     */
    cachedTokens(): number[] {
        const image = this.#family.streamFramePlaceholder(this.#vision.info);
        const out: number[] = [];
        for (const s of this.#cache.timeline.segments) {
            if (s.kind === "text") out.push(...s.tokens);
            else for (let i = 0; i < s.count; i++) out.push(image);
        }
        // The closing text of the last frame, evaluated with what comes next.
        if (this.#pending) out.push(...this.#pending.tokens);
        return out;
    }

    /** Counters and sizes (see {@link StreamStats}). */
    stats(): StreamStats {
        const frames = this.#entries.filter((e) => e.kind === "frame");
        const s = this.#stats;
        const recent = s.recent;
        const recentMs = recent.reduce((a, b) => a + b, 0);
        return {
            kvTokens: this.#cache.length,
            contextSize: this.#cache.contextSize,
            kvBytes: this.#cache.length * this.#cache.bytesPerToken,
            framesSeen: s.framesSeen,
            framesIngested: s.framesIngested,
            framesInCache: frames.length,
            framesEvicted: s.framesEvicted,
            framesDropped: s.framesDropped,
            tokensKept: s.tokensKept,
            tokensTotal: s.tokensTotal,
            queueDepth: this.#frames.length,
            ingestFps: recentMs > 0 ? (recent.length / recentMs) * 1000 : 0,
            lastTtftMs: s.lastTtftMs,
            window: { from: frames[0]?.timestamp ?? NaN, to: frames.at(-1)?.timestamp ?? NaN },
            evicted: { from: s.evictedFrom, to: s.evictedTo, turns: s.turnsEvicted },
        };
    }

    /**
     * Saves the stream (its cache, what it holds, its counters) so that {@link load} continues it without evaluating
     * anything again. The frames queued when it is called are ingested first.
     */
    async save(path: string, options: { overwrite?: boolean } = {}): Promise<{ bytes: number }> {
        this.#checkAlive();
        checkOptionsObject(options, ["overwrite"]);
        const target = saveTarget(path, optionalBoolean("overwrite", options.overwrite, false));
        await this.#queuedFrames();
        return this.#exclusive(async () => {
            await this.#flushPending();
            const header = {
                format: STATE_FORMAT,
                version: STATE_VERSION,
                model: modelIdentity(this.#model),
                contextSize: this.#cache.contextSize,
                settings: this.#settings(),
                timeline: this.#cache.timeline.toJSON(),
                entries: this.#entries,
                previous: this.#previous ?? null,
                frameSize: this.#frameSize ? { width: this.#frameSize.width, height: this.#frameSize.height, target: { ...this.#frameSize.geometry.resize } } : null,
                lastTimestamp: Number.isFinite(this.#lastTimestamp) ? this.#lastTimestamp : null,
                nextGroup: this.#nextGroup,
                stats: { ...this.#stats, recent: [] },
            };
            return writeState(this.#cache, target, header);
        });
    }

    /**
     * Continues a stream saved by {@link save} (same model, same stream settings) in this stream, replacing what it
     * holds. The first frame after loading is kept whole (pruning has no previous frame to compare with).
     * @throws {StateFileError} for another model's or another stream configuration's state, or a damaged file
     */
    async load(path: string): Promise<void> {
        this.#checkAlive();
        const target = saveTarget(path, true);
        return this.#exclusive(async () => {
            const h = readStateHeader(target, "stream");
            if (h.format !== STATE_FORMAT || h.version !== STATE_VERSION) throw new StateFileError(target, `has an unsupported format (${String(h.format)} v${String(h.version)})`);
            if (JSON.stringify(h.model) !== JSON.stringify(modelIdentity(this.#model))) throw new StateFileError(target, `it was saved from another model (${JSON.stringify(h.model)})`);
            if (JSON.stringify(h.settings) !== JSON.stringify(this.#settings())) {
                throw new StateFileError(target, `it was saved by a stream with other settings (${JSON.stringify(h.settings)}; this one: ${JSON.stringify(this.#settings())})`);
            }
            let timeline: KvTimeline;
            try {
                timeline = KvTimeline.fromJSON(h.timeline);
            } catch (err) {
                throw new StateFileError(target, `has a corrupt cache record (${(err as Error).message})`, { cause: err });
            }
            if (timeline.length > this.#cache.contextSize) throw new StateFileError(target, `it holds ${timeline.length} tokens but this stream's context is ${this.#cache.contextSize}`);
            try {
                await this.#cache.load(target, timeline);
            } catch (err) {
                // The cache is empty now: start over from the sink.
                this.#entries = [];
                this.#previous = undefined;
                this.#pending = undefined;
                await this.#appendSink().catch(() => {});
                throw new StateFileError(target, (err as Error).message, { cause: err });
            }
            this.#pending = undefined;
            this.#entries = (h.entries as EntryInfo[]) ?? [];
            this.#previous = (h.previous as TemplateMessage | null) ?? undefined;
            const size = h.frameSize as { width: number; height: number } | null;
            this.#frameSize = size ? this.#frameSizeOf(size.width, size.height) : undefined;
            this.#lastTimestamp = typeof h.lastTimestamp === "number" ? h.lastTimestamp : -Infinity;
            this.#nextGroup = Number(h.nextGroup) || 1;
            Object.assign(this.#stats, h.stats as object, { recent: [] });
            this.#frameState.reset();
            this.#encoderReuse?.reset();
        });
    }

    /** Stops ingestion (killing ffmpeg children), aborts a running question, drops queued frames and frees the cache. */
    async close(): Promise<void> {
        if (this.#closed) return;
        this.#closed = true;
        this.#closing.abort(new DisposedError("Stream"));
        for (const c of this.#ingesting) c.abort(new DisposedError("Stream"));
        this.#activeAbort?.();
        for (const f of this.#frames) for (const d of f.done) d();
        this.#frames = [];
        for (const w of this.#waitingForRoom) w();
        this.#waitingForRoom = [];
        for (const q of this.#questions) void q.run().catch(() => {});
        await this.#pumping?.catch(() => {});
        this.#context?.dispose();
        this.#context = undefined;
        for (const r of this.#idle) r();
        this.#idle = [];
        for (const l of this.#disposeListeners) l();
    }

    async [Symbol.asyncDispose](): Promise<void> {
        await this.close();
    }

    /** @internal */
    onDispose(listener: () => void): void {
        this.#disposeListeners.push(listener);
    }

    // ---- internals ----------------------------------------------------------------------------------------------

    #settings() {
        return { systemPrompt: this.#systemPrompt ?? null, timestamps: this.#timestamps, budgetFrames: this.#budgetFrames, prune: this.#prune ?? null };
    }

    #checkAlive(): void {
        if (this.#closed) throw new DisposedError("Stream");
        if (this.#model.disposed) throw new DisposedError("Model");
    }

    #emit<E extends keyof StreamEvents>(event: E, value: StreamEvents[E]): void {
        const set = this.#listeners.get(event);
        if (!set) return;
        for (const l of [...set]) {
            try {
                (l as Listener<StreamEvents[E]>)(value);
            } catch {
                // a listener's exception must not break the stream
            }
        }
    }

    async #appendSink(): Promise<void> {
        const abort = new (native().AbortFlag)();
        await this.#cache.appendText(this.#layout.sink, { abort, group: 0 });
    }

    /** The pending closing text followed by `tokens` of `group`, as runs for one evaluation. */
    #withPending(tokens: readonly number[], group: number): Array<{ tokens: readonly number[]; group: number }> {
        const runs = this.#pending ? [this.#pending, { tokens, group }] : [{ tokens, group }];
        this.#pending = undefined;
        return runs;
    }

    async #flushPending(): Promise<void> {
        if (!this.#pending) return;
        await this.#cache.appendTextRuns(this.#withPending([], 0).slice(0, 1), { abort: new (native().AbortFlag)() });
    }

    #enqueueFrame(rgb: Uint8Array, width: number, height: number, timestamp: number, policy: "drop-oldest" | "drop-newest" | "wait"): Promise<{ accepted: boolean }> {
        this.#stats.framesSeen++;
        const busy = this.#pumping !== undefined;
        if (busy && this.#frames.length >= this.#queueSize) {
            // (With no queue at all, "drop-oldest" has nothing older to drop: the arriving frame goes.)
            if (policy === "drop-newest" || (policy === "drop-oldest" && this.#frames.length === 0)) {
                this.#drop(timestamp);
                return Promise.resolve({ accepted: false });
            }
            if (policy === "drop-oldest") {
                const oldest = this.#frames.shift();
                if (oldest) {
                    this.#drop(oldest.timestamp);
                    for (const d of oldest.done) d();
                }
            } else {
                return new Promise<void>((r) => this.#waitingForRoom.push(r)).then(() => {
                    if (this.#closed) return { accepted: false };
                    this.#stats.framesSeen--;
                    return this.#enqueueFrame(rgb, width, height, timestamp, policy);
                });
            }
        }
        return new Promise((resolve) => {
            this.#frames.push({ rgb, width, height, timestamp, done: [] });
            resolve({ accepted: true });
            this.#pump();
        });
    }

    #drop(timestamp: number): void {
        this.#stats.framesDropped++;
        this.#emit("drop", { timestamp, reason: "queue-full" });
    }

    /** Runs queued work (questions first, then frames) one step at a time. */
    #pump(): void {
        if (this.#pumping) return;
        this.#pumping = (async () => {
            try {
                for (;;) {
                    if (this.#closed) break;
                    const question = this.#questions.shift();
                    if (question) {
                        await question.run();
                        continue;
                    }
                    const frame = this.#frames.shift();
                    if (!frame) break;
                    const room = this.#waitingForRoom.shift();
                    room?.();
                    try {
                        await this.#ingestFrame(frame);
                    } catch (err) {
                        if (!this.#closed) this.#emit("error", err instanceof Error ? err : new VidllamaError("ERR_STREAM", String(err)));
                    } finally {
                        for (const d of frame.done) d();
                    }
                }
            } finally {
                this.#pumping = undefined;
                if (this.#frames.length > 0 || this.#questions.length > 0) this.#pump();
                else {
                    const idle = this.#idle;
                    this.#idle = [];
                    for (const r of idle) r();
                }
            }
        })();
    }

    /** Resolves when the frames queued now have been ingested (or dropped); with none queued, after the step in progress. */
    #queuedFrames(): Promise<void> {
        const last = this.#frames.at(-1);
        if (last) return new Promise<void>((r) => last.done.push(r));
        return this.#pumping ? this.#exclusive(async () => {}) : Promise.resolve();
    }

    /** Runs `task` as the next step of the pump (after the frame in progress). */
    #exclusive<T>(task: () => Promise<T>): Promise<T> {
        return new Promise<T>((resolve, reject) => {
            this.#questions.push({
                run: async () => {
                    if (this.#closed) return reject(new DisposedError("Stream"));
                    try {
                        resolve(await task());
                    } catch (err) {
                        reject(err);
                    }
                },
            });
            this.#pump();
        });
    }

    /** How frames of this size are resized and encoded. */
    #frameSizeOf(width: number, height: number): FrameSize {
        return { width, height, geometry: this.#family.streamFrameGeometry(width, height, this.#budgetFrames, this.#vision.info) };
    }

    async #ingestFrame(frame: QueuedFrame): Promise<void> {
        if (!this.#frameSize || this.#frameSize.width !== frame.width || this.#frameSize.height !== frame.height) {
            this.#frameSize = this.#frameSizeOf(frame.width, frame.height);
        }
        const geometry = this.#frameSize.geometry;
        const frameTokens = geometry.tokens;
        const layout = this.#layout.frame(this.#timestamps ? frame.timestamp : undefined, this.#previous);
        const needed = layout.before.length + frameTokens + layout.after.length;
        if (this.#layout.sink.length + needed > this.#policy.ceiling) {
            throw new InvalidOptionError("budgetFrames", `a frame size that fits the context (a frame needs ${needed} positions)`, this.#budgetFrames);
        }
        // Room first: the oldest frames leave before this one comes in.
        this.#evict(needed);
        const started = performance.now();
        const encoded = await this.#vision.encode(
            [{ rgb: frame.rgb, width: frame.width, height: frame.height, ...geometryItem(geometry), ...(this.#prune ? { prune: { threshold: this.#prune.threshold, minTokens: this.#prune.minTokens } } : {}) }],
            { frameState: this.#frameState, signal: this.#closing.signal, ...(this.#encoderReuse ? { reuse: this.#encoderReuse } : {}) },
        );
        const encodeMs = performance.now() - started;
        const kept = encoded.counts[0]!;
        const group = this.#nextGroup++;
        const abort = new (native().AbortFlag)();
        const onClose = () => abort.abort();
        this.#closing.signal.addEventListener("abort", onClose, { once: true });
        const start = this.#cache.length;
        let appendMs = 0;
        const pending = this.#pending;
        try {
            appendMs += (await this.#cache.appendTextRuns(this.#withPending(layout.before, group), { abort })).ms;
            appendMs += (await this.#cache.appendVisual(encoded.embeddings, { first: 0, count: kept }, { key: `frame:${group}`, keyFirst: 0 }, { abort, group })).ms;
            // The closing text waits for the next message (see #pending).
            this.#pending = { tokens: layout.after.slice(), group };
        } catch (err) {
            this.#cache.truncate(start);
            this.#pending = pending;
            throw err;
        } finally {
            this.#closing.signal.removeEventListener("abort", onClose);
        }
        if (abort.aborted) {
            this.#cache.truncate(start);
            this.#pending = pending;
            return;
        }
        // Positions of this frame: its opening text, visual tokens and (pending) closing text.
        const positions = this.#cache.length - start - (pending?.tokens.length ?? 0) + layout.after.length;
        this.#entries.push({ group, kind: "frame", tokens: positions, timestamp: frame.timestamp, keptTokens: kept, frameTokens });
        this.#previous = this.#family.streamFrameMessage(undefined);
        const s = this.#stats;
        s.framesIngested++;
        s.tokensKept += kept;
        s.tokensTotal += frameTokens;
        s.recent.push(encodeMs + appendMs);
        if (s.recent.length > 32) s.recent.shift();
        this.#evict(0);
        this.#emit("frame", { timestamp: frame.timestamp, tokens: frameTokens, keptTokens: kept, encodeMs, appendMs, positions, queueDepth: this.#frames.length });
    }

    /** Evicts what the policy says must go, leaving room for `incoming` more positions (or under `ceiling`). */
    #evict(incoming: number, ceiling = this.#policy.ceiling - incoming): void {
        const policy = { ...this.#policy, ceiling };
        const victims = planEviction(this.#layout.sink.length, this.#entries, policy);
        if (victims.length === 0) return;
        const ranges = this.#cache.timeline.groups();
        const gone = new Set(victims.map((v) => v.group));
        // Evict contiguous runs of victims with one remove + shift each, newest run first so earlier ranges stay valid.
        const spans: Array<{ start: number; end: number }> = [];
        for (const v of victims) {
            const r = ranges.get(v.group);
            if (!r) continue;
            const last = spans.at(-1);
            if (last && last.end === r.start) last.end = r.end;
            else spans.push({ ...r });
        }
        for (const span of spans.reverse()) this.#cache.evict(span.start, span.end);
        let frames = 0;
        let turns = 0;
        let tokens = 0;
        let from = NaN;
        let to = NaN;
        for (const v of victims) {
            tokens += v.tokens;
            if (v.kind === "frame") {
                frames++;
                if (Number.isNaN(from)) from = v.timestamp!;
                to = v.timestamp!;
            } else turns++;
        }
        this.#entries = this.#entries.filter((e) => !gone.has(e.group));
        if (this.#pending && gone.has(this.#pending.group)) this.#pending = undefined;
        const s = this.#stats;
        s.framesEvicted += frames;
        s.turnsEvicted += turns;
        if (frames > 0) {
            if (Number.isNaN(s.evictedFrom)) s.evictedFrom = from;
            s.evictedTo = to;
        }
        this.#emit("evict", { frames, turns, tokens, from, to });
    }

    #ask(question: string, options: AskOptions, onChunk: ((chunk: string) => void) | undefined): Promise<StreamAnswer> {
        if (typeof question !== "string" || question.length === 0) throw new InvalidOptionError("question", "a non-empty string", question);
        checkOptionsObject(options, ASK_OPTIONS);
        const maxTokens = optionalInteger("maxTokens", options.maxTokens, 0, 2 ** 31 - 1, 256)!;
        const stop = options.stop ?? [];
        if (!Array.isArray(stop) || stop.some((s) => typeof s !== "string" || s.length === 0)) throw new InvalidOptionError("stop", "an array of non-empty strings", stop);
        const signal = optionalSignal("signal", options.signal);
        const keep = optionalBoolean("keep", options.keep, true);
        const wantLogits = optionalBoolean("logits", options.logits, false);
        const onToken = optionalFunction<(chunk: { token: number; text: string }) => void>("onToken", options.onToken);
        const waitForFrames = optionalBoolean("waitForFrames", options.waitForFrames, false);
        const sampling = resolveSamplingOptions(options);
        const called = performance.now();
        const queued = waitForFrames ? this.#queuedFrames() : Promise.resolve();
        return queued.then(() => this.#exclusive(async () => {
            const addon = native();
            const abort = new addon.AbortFlag();
            const onAbort = () => abort.abort();
            signal?.addEventListener("abort", onAbort, { once: true });
            this.#activeAbort = onAbort;
            if (signal?.aborted) abort.abort();
            const frames = this.#entries.filter((e) => e.kind === "frame");
            const timestamp = frames.at(-1)?.timestamp ?? NaN;
            try {
                const tokens = this.#layout.question(question, this.#previous);
                // Room for the question and its answer (the reserve is for that): the oldest frames leave first.
                this.#evict(0, this.#cache.contextSize - 1 - tokens.length - Math.min(maxTokens, this.#cache.contextSize));
                if (this.#cache.length + tokens.length + 1 > this.#cache.contextSize) {
                    throw new InvalidOptionError("question", `a question that fits the context (${this.#cache.contextSize - this.#cache.length - 1} positions left)`, `${tokens.length} tokens`);
                }
                const group = this.#nextGroup++;
                const pending = this.#pending;
                // Where the question starts (after the last frame's closing text, evaluated with it).
                const start = this.#cache.length + (pending?.tokens.length ?? 0);
                const sampler = new addon.Sampler(this.#model.nativeModel, { ...sampling.native, banned: this.#model.bannedTokens() });
                const lastN = sampling.penaltyLastN;
                if (lastN !== 0) {
                    const text = [...this.#cache.timeline.textTokens(), ...(pending?.tokens ?? []), ...tokens];
                    sampler.accept(Int32Array.from(lastN < 0 ? text : text.slice(-lastN)));
                }
                const prompt = await this.#cache.appendTextRuns(this.#withPending(tokens, group), { abort, sampler });
                const ttftMs = performance.now() - called;
                const logits = wantLogits && !prompt.aborted ? this.#cache.logits() : undefined;
                const generation = await generate(this.#model.nativeModel, this.#cache, prompt.result, sampler, abort, {
                    maxTokens,
                    stop,
                    onToken,
                    onChunk,
                    group,
                    stripLeadingSpace: this.#model.addsSpacePrefix,
                });
                if (keep && !prompt.aborted) {
                    // Close the answer as the template renders it (e.g. `<|im_end|>\n`) so the next message follows.
                    const evaluatedAnswer = generation.tokens.slice(0, generation.evaluated);
                    const end = this.#layout.answerEnd(question, evaluatedAnswer, this.#model.nativeModel.detokenize(Int32Array.from(evaluatedAnswer), false), this.#previous);
                    await this.#cache.appendText(end, { abort: new addon.AbortFlag(), group });
                    this.#entries.push({ group, kind: "turn", tokens: this.#cache.length - start, question });
                    this.#previous = { role: "assistant", content: "" };
                    this.#evict(0);
                } else {
                    this.#cache.truncate(start);
                }
                this.#stats.lastTtftMs = ttftMs;
                const answer: StreamAnswer = {
                    text: generation.text,
                    stopReason: generation.stopReason,
                    tokens: generation.tokens,
                    timestamp,
                    frames: frames.length,
                    ttftMs,
                    promptMs: prompt.ms,
                    promptTokens: tokens.length,
                    generationMs: generation.ms,
                    ...(logits ? { logits } : {}),
                };
                this.#emit("answer", { ...answer, question });
                return answer;
            } finally {
                signal?.removeEventListener("abort", onAbort);
                this.#activeAbort = undefined;
            }
        }));
    }
}

function checkWindow(value: unknown): StreamWindow {
    if (value === undefined) return {};
    const w = checkOptionsObject(value as StreamWindow, ["frames", "seconds", "tokens"], "window");
    const out: StreamWindow = {};
    if (w.frames !== undefined) out.frames = optionalInteger("window.frames", w.frames, 1, 2 ** 31 - 1, 1)!;
    if (w.tokens !== undefined) out.tokens = optionalInteger("window.tokens", w.tokens, 1, 2 ** 31 - 1, 1)!;
    if (w.seconds !== undefined) {
        if (typeof w.seconds !== "number" || !(w.seconds > 0) || !Number.isFinite(w.seconds)) throw new InvalidOptionError("window.seconds", "a number > 0", w.seconds);
        out.seconds = w.seconds;
    }
    return out;
}

function checkFps(value: unknown, fallback: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !(value > 0) || value > 1000) throw new InvalidOptionError("fps", "a number in (0, 1000]", value);
    return value;
}

function checkReconnect(value: IngestOptions["reconnect"]): { attempts: number; delayMs: number; maxDelayMs: number } | undefined {
    if (value === undefined || value === false) return undefined;
    if (value === true) return { attempts: 5, delayMs: 500, maxDelayMs: 8000 };
    const o = checkOptionsObject(value, ["attempts", "delayMs", "maxDelayMs"], "reconnect");
    const delayMs = optionalInteger("reconnect.delayMs", o.delayMs, 1, 3_600_000, 500)!;
    return {
        attempts: optionalInteger("reconnect.attempts", o.attempts, 0, 1_000_000, 5)!,
        delayMs,
        maxDelayMs: optionalInteger("reconnect.maxDelayMs", o.maxDelayMs, delayMs, 3_600_000, Math.max(delayMs, 8000))!,
    };
}

function liveSpec(source: Exclude<StreamSource, Video>, follow: boolean): LiveSourceSpec {
    if (typeof source === "string" || source instanceof URL) {
        const text = String(source);
        if (text.length === 0) throw new InvalidOptionError("source", "a path, a URL, a Readable, a Video or { format, device }", source);
        if (/^file:/i.test(text)) {
            const path = decodeURIComponent(new URL(text).pathname);
            return { kind: "file", path, follow, description: path };
        }
        if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return { kind: "url", url: text, description: text.replace(/\/\/[^/@]*@/, "//***@") };
        return { kind: "file", path: text, follow, description: text };
    }
    if (typeof source === "object" && source !== null && typeof (source as Readable).pipe === "function") {
        return { kind: "stdin", stream: source as Readable, description: "<Readable stream>" };
    }
    if (typeof source === "object" && source !== null && typeof (source as { format?: unknown }).format === "string" && typeof (source as { device?: unknown }).device === "string") {
        const { format, device } = source as { format: string; device: string };
        return { kind: "device", format, device, description: `${format}:${device}` };
    }
    throw new InvalidOptionError("source", "a Video, a path, a URL, a Readable or { format, device }", source);
}

function checkStreamFrame(frame: StreamFrame, last: number): { rgb: Uint8Array; width: number; height: number; timestamp: number } {
    if (typeof frame !== "object" || frame === null) throw new InvalidOptionError("frame", "an object { data, width, height, timestamp }", frame);
    checkOptionsObject(frame, ["data", "width", "height", "timestamp", "format"], "frame");
    const { data, width, height, timestamp, format } = frame;
    for (const [name, value] of [["width", width], ["height", height]] as const) {
        if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 1 << 15) throw new InvalidOptionError(`frame.${name}`, "an integer between 1 and 32768", value);
    }
    if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) throw new InvalidOptionError("frame.data", "a Uint8Array, Uint8ClampedArray or Buffer", data);
    if (typeof timestamp !== "number" || !Number.isFinite(timestamp) || timestamp < 0) throw new InvalidOptionError("frame.timestamp", "seconds on the source's timeline (a number >= 0)", timestamp);
    if (timestamp < last) throw new InvalidOptionError("frame.timestamp", `a time not before the previous frame's (${last})`, timestamp);
    const pixels = width * height;
    const channels = format === "rgb" ? 3 : format === "rgba" ? 4 : format === undefined ? (data.length === pixels * 4 ? 4 : 3) : -1;
    if (channels < 0) throw new InvalidOptionError("frame.format", '"rgb" or "rgba"', format);
    if (data.length !== pixels * channels) throw new InvalidOptionError("frame.data", `${pixels * channels} bytes (${width} x ${height} x ${channels})`, data, `it has ${data.length} bytes`);
    const rgb = copyToRgb(data, pixels, channels as 3 | 4);
    return { rgb, width, height, timestamp };
}
