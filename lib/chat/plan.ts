/**
 * Prompt plans: the whole conversation as the model sees it — text token ids and visual slots (one per image or
 * video frame, each standing for its visual tokens) — and its evaluation against a session's KV cache:
 * the longest prefix already in the cache is reused, the rest is evaluated in batches, visual embeddings are
 * produced lazily (only for media not already in the cache) and fed straight from native memory.
 *
 * @internal
 * @module
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { resolve } from "node:path";
import type { Image } from "../decode/Image.js";
import type { Video, VideoPlan } from "../decode/Video.js";
import { native } from "../native/load.js";
import { ContextFullError, InvalidOptionError } from "../errors.js";
import type { VisionProjector } from "../encode/vision.js";
import type { NativeAbortFlag, NativeContext, NativeDecodeResult, NativeEmbeddings, NativeSampler, NativeVisionItem } from "../native/types.js";
import type { TargetSize } from "../preprocess/resize-rule.js";

/** What a KV cache position holds: a text token id, or the key of one visual token. */
export type CacheItem = number | string;

/** Embeddings of one slot (rows [first, first+count) of `embeddings`). */
export interface SlotEmbeddings {
    embeddings: NativeEmbeddings;
    first: number;
    count: number;
}

/** Produces the embeddings of a medium's slots, in order. */
export interface MediaProducer {
    /** Identity of the medium and its preprocessing; visual token i of slot s has key `${key}/${s}#${i}`. */
    readonly key: string;
    /** Visual tokens of each slot when known before encoding (images), else undefined (pruned video frames). */
    slotCounts(): readonly (number | undefined)[];
    /** Embeddings of slots from `fromSlot` on, in order. */
    produce(fromSlot: number, signal: AbortSignal | undefined): AsyncIterable<SlotEmbeddings & { slot: number }>;
}

export type PlanSegment =
    | { kind: "tokens"; tokens: readonly number[] }
    | { kind: "visual"; producer: MediaProducer; slot: number };

export interface EvaluatePlanOptions {
    context: NativeContext;
    batchSize: number;
    contextSize: number;
    /** The session's record of its cache; updated in place to keep matching the KV cache. */
    cache: CacheItem[];
    sampler: NativeSampler;
    abort: NativeAbortFlag;
    signal: AbortSignal | undefined;
    imageTokenId: number;
    onPromptProgress?: (progress: { evaluated: number; total: number }) => void;
}

export interface EvaluatePlanResult {
    /** The last decode (with the sampled token, unless aborted). */
    result: NativeDecodeResult;
    aborted: boolean;
    /** Cache positions reused. */
    reused: number;
    /** Ids evaluated now; visual tokens appear as the image token id. */
    evaluatedTokens: number[];
    /** Time the language model spent evaluating (sum of the native decode times). */
    prefillMs: number;
}

/** Keys of the visual tokens of one slot. */
export function slotKeys(producer: MediaProducer, slot: number, count: number, from = 0): string[] {
    const keys: string[] = [];
    for (let i = from; i < count; i++) keys.push(`${producer.key}/${slot}#${i}`);
    return keys;
}

/** Plan length lower bound (visual slots of unknown size count 1) — to refuse hopeless prompts before any work. */
export function minimumPlanLength(segments: readonly PlanSegment[]): number {
    let n = 0;
    for (const s of segments) n += s.kind === "tokens" ? s.tokens.length : (s.producer.slotCounts()[s.slot] ?? 1);
    return n;
}

/**
 * Reuses the cached prefix of the plan, then evaluates the rest; the last token is evaluated with the sampler.
 * The plan must end with text (a chat template's generation prompt always does).
 */
export async function evaluatePlan(segments: readonly PlanSegment[], o: EvaluatePlanOptions): Promise<EvaluatePlanResult> {
    const last = segments.at(-1);
    if (!last || last.kind !== "tokens" || last.tokens.length === 0) throw new Error("internal: a prompt plan must end with text");

    // 1. The longest prefix of the plan already in the cache.
    let cursor = 0;
    let startSegment = segments.length;
    let startOffset = 0;
    outer: for (let s = 0; s < segments.length; s++) {
        const seg = segments[s]!;
        if (seg.kind === "tokens") {
            for (let i = 0; i < seg.tokens.length; i++) {
                if (o.cache[cursor] !== seg.tokens[i]) {
                    startSegment = s;
                    startOffset = i;
                    break outer;
                }
                cursor++;
            }
        } else {
            const count = seg.producer.slotCounts()[seg.slot];
            const prefix = `${seg.producer.key}/${seg.slot}#`;
            let i = 0;
            while (count !== undefined && i < count && o.cache[cursor] === `${prefix}${i}`) {
                i++;
                cursor++;
            }
            if (count === undefined || i < count) {
                startSegment = s;
                startOffset = i;
                break outer;
            }
        }
    }
    if (startSegment === segments.length) {
        // Everything is cached: evaluate the last token again to get fresh logits.
        cursor--;
        startSegment = segments.length - 1;
        startOffset = last.tokens.length - 1;
    }
    if (cursor < o.cache.length) {
        o.context.truncate(cursor);
        o.cache.length = cursor;
    }
    const reused = cursor;

    // 2. Evaluate the rest, segment by segment, in batches.
    const evaluatedTokens: number[] = [];
    let total = 0;
    for (let s = startSegment; s < segments.length; s++) {
        const seg = segments[s]!;
        total += seg.kind === "tokens" ? seg.tokens.length : (seg.producer.slotCounts()[seg.slot] ?? 0);
    }
    total -= startOffset;
    let done = 0;
    let prefillMs = 0;
    let result: NativeDecodeResult = { evaluated: 0, aborted: false, ms: 0, token: -1, nPast: o.cache.length };
    const progress = () => {
        if (!o.onPromptProgress) return;
        try {
            o.onPromptProgress({ evaluated: done, total: Math.max(total, done) });
        } catch {
            // a listener's exception must not break evaluation
        }
    };
    const ensureRoom = (n: number) => {
        if (o.cache.length + n > o.contextSize) throw new ContextFullError(o.contextSize, o.cache.length + n);
    };

    // Visual slots of one medium are produced by one stream, consumed in order.
    const streams = new Map<MediaProducer, AsyncIterator<SlotEmbeddings & { slot: number }>>();
    try {
        for (let s = startSegment; s < segments.length && !result.aborted; s++) {
            const seg = segments[s]!;
            const offset = s === startSegment ? startOffset : 0;
            if (seg.kind === "tokens") {
                for (let i = offset; i < seg.tokens.length && !result.aborted; i += o.batchSize) {
                    const batch = seg.tokens.slice(i, i + o.batchSize);
                    const isLast = s === segments.length - 1 && i + batch.length === seg.tokens.length;
                    ensureRoom(batch.length);
                    result = await o.context.evaluate(Int32Array.from(batch), isLast ? { sampler: o.sampler } : {}, o.abort);
                    prefillMs += result.ms;
                    const evaluated = batch.slice(0, result.evaluated);
                    o.cache.push(...evaluated);
                    evaluatedTokens.push(...evaluated);
                    done += result.evaluated;
                    progress();
                    if (!isLast && o.abort.aborted) result = { ...result, aborted: true };
                }
            } else {
                let stream = streams.get(seg.producer);
                if (!stream) {
                    stream = seg.producer.produce(seg.slot, o.signal)[Symbol.asyncIterator]();
                    streams.set(seg.producer, stream);
                }
                const next = await stream.next();
                if (next.done || next.value.slot !== seg.slot) throw new Error(`internal: ${seg.producer.key} did not produce slot ${seg.slot}`);
                const produced = next.value;
                const keys = slotKeys(seg.producer, seg.slot, produced.count);
                for (let i = offset; i < produced.count && !result.aborted; i += o.batchSize) {
                    const count = Math.min(o.batchSize, produced.count - i);
                    ensureRoom(count);
                    result = await o.context.evaluateEmbeddings(produced.embeddings, { first: produced.first + i, count }, o.abort);
                    prefillMs += result.ms;
                    o.cache.push(...keys.slice(i, i + result.evaluated));
                    for (let k = 0; k < result.evaluated; k++) evaluatedTokens.push(o.imageTokenId);
                    done += result.evaluated;
                    progress();
                    if (o.abort.aborted) result = { ...result, aborted: true };
                }
            }
        }
    } catch (err) {
        if ((err as Error)?.name === "AbortError" || o.abort.aborted) {
            // aborted while producing embeddings (decoding / encoding): the cache holds what was evaluated
            result = { ...result, aborted: true };
        } else {
            throw err;
        }
    } finally {
        for (const stream of streams.values()) await stream.return?.();
    }
    return { result, aborted: result.aborted, reused, evaluatedTokens, prefillMs };
}

// ---- images ------------------------------------------------------------------------------------------------------

const imageHashes = new WeakMap<Image, Promise<string>>();

/** A content hash of an image's decoded pixels (cached per Image object). */
export function imageHash(image: Image): Promise<string> {
    let hash = imageHashes.get(image);
    if (!hash) {
        hash = image.decode().then((d) => createHash("sha1").update(`${d.width}x${d.height}:`).update(d.data).digest("hex").slice(0, 20));
        imageHashes.set(image, hash);
        hash.catch(() => imageHashes.delete(image));
    }
    return hash;
}

/** One image as a medium: a single slot, encoded when first needed. */
export class ImageProducer implements MediaProducer {
    readonly key: string;
    readonly #image: Image;
    readonly #target: TargetSize;
    readonly #merge: number;
    readonly #projector: VisionProjector;
    readonly #count: number;
    /** Time spent encoding, when this prompt encoded the image. */
    encodeMs = 0;

    constructor(projector: VisionProjector, image: Image, hash: string, target: TargetSize, merge: number) {
        this.#projector = projector;
        this.#image = image;
        this.#target = target;
        this.#merge = merge;
        this.key = `img:${hash}:${target.width}x${target.height}:m${merge}`;
        const f = projector.info.patchSize * merge;
        this.#count = (target.width / f) * (target.height / f);
    }

    /** Visual tokens of the image. */
    get tokens(): number {
        return this.#count;
    }

    /** Size the image is resized to. */
    get target(): TargetSize {
        return this.#target;
    }

    get mergeSize(): number {
        return this.#merge;
    }

    slotCounts(): readonly number[] {
        return [this.#count];
    }

    async *produce(fromSlot: number, signal: AbortSignal | undefined): AsyncGenerator<SlotEmbeddings & { slot: number }> {
        if (fromSlot !== 0) throw new InvalidOptionError("slot", "0 for an image", fromSlot);
        const decoded = await this.#image.decode();
        const started = performance.now();
        const encoded = await this.#projector.encode(
            [{ rgb: decoded.data, width: decoded.width, height: decoded.height, targetWidth: this.#target.width, targetHeight: this.#target.height, merge: this.#merge }],
            { signal },
        );
        this.encodeMs += performance.now() - started;
        yield { slot: 0, embeddings: encoded.embeddings, first: 0, count: encoded.counts[0]! };
    }
}

// ---- videos ------------------------------------------------------------------------------------------------------

/** Per-frame result of a video's encoding. */
export interface FrameReport {
    /** Seconds on the video's timeline. */
    timestamp: number;
    /** Visual tokens of the frame before pruning. */
    tokens: number;
    /** Visual tokens kept (fed to the language model). */
    keptTokens: number;
}

/** Time spent producing a medium's embeddings. */
export interface MediaTimings {
    /** Waiting for decoded frames/pixels. */
    decodeMs: number;
    /** Running the vision encoder (preprocessing, pruning, encoder, projector). */
    encodeMs: number;
}

/** Progress of a video being prepared for the language model. */
export interface VideoProgress {
    framesDecoded: number;
    framesEncoded: number;
    framesTotal: number;
    /** Visual tokens kept so far / before pruning so far. */
    tokensKept: number;
    tokensTotal: number;
}

const videoIds = new WeakMap<object, number>();
let nextVideoId = 1;
/** Frame token counts of video layouts already produced, so later turns can match the cache without decoding. */
const producedCounts = new WeakMap<Video, Map<string, (number | undefined)[]>>();

/** A stable identity of a video source: a file's path, size and modification time; otherwise the object itself. */
export function videoIdentity(video: Video): string {
    const source = video.source;
    if (!source.startsWith("<") && !/^[a-z]+:\/\//i.test(source)) {
        try {
            const st = statSync(source);
            return `file:${resolve(source)}:${st.size}:${st.mtimeMs}`;
        } catch {
            // fall through to the object's identity
        }
    }
    let id = videoIds.get(video);
    if (id === undefined) videoIds.set(video, (id = nextVideoId++));
    return `obj:${id}`;
}

/** One video as a medium: one slot per sampled frame, decoded, pruned and encoded while the prompt is evaluated. */
export class VideoProducer implements MediaProducer {
    readonly key: string;
    readonly video: Video;
    readonly plan: VideoPlan;
    readonly target: TargetSize;
    readonly merge: number;
    readonly prune: { threshold: number; minTokens: number } | undefined;
    /** One entry per produced frame. */
    readonly frames: FrameReport[] = [];
    readonly timings: MediaTimings = { decodeMs: 0, encodeMs: 0 };
    readonly #projector: VisionProjector;
    readonly #counts: (number | undefined)[];
    readonly #merged: number;
    readonly #onProgress: ((p: VideoProgress) => void) | undefined;

    constructor(
        projector: VisionProjector,
        video: Video,
        plan: VideoPlan,
        target: TargetSize,
        merge: number,
        prune: { threshold: number; minTokens: number } | undefined,
        onProgress?: (p: VideoProgress) => void,
    ) {
        this.#projector = projector;
        this.video = video;
        this.plan = plan;
        this.target = target;
        this.merge = merge;
        this.prune = prune;
        this.#onProgress = onProgress;
        const stamps = createHash("sha1").update(plan.timestamps.join(",")).digest("hex").slice(0, 12);
        this.key = `vid:${videoIdentity(video)}:${plan.count}:${stamps}:${target.width}x${target.height}:m${merge}:` +
            (prune ? `p${prune.threshold}/${prune.minTokens}` : "all");
        const f = projector.info.patchSize * merge;
        this.#merged = (target.width / f) * (target.height / f);
        if (prune) {
            // Shared by every producer of this layout: counts learned while encoding stay known in later turns.
            let byKey = producedCounts.get(video);
            if (!byKey) producedCounts.set(video, (byKey = new Map()));
            let counts = byKey.get(this.key);
            if (!counts) byKey.set(this.key, (counts = new Array<number | undefined>(plan.count).fill(undefined)));
            this.#counts = counts;
        } else {
            this.#counts = new Array<number>(plan.count).fill(this.#merged);
        }
    }

    get mergeSize(): number {
        return this.merge;
    }

    /** Visual tokens per frame before pruning. */
    get tokensPerFrame(): number {
        return this.#merged;
    }

    slotCounts(): readonly (number | undefined)[] {
        return this.#counts;
    }

    async *produce(fromSlot: number, signal: AbortSignal | undefined): AsyncGenerator<SlotEmbeddings & { slot: number }> {
        const addon = native();
        const frameState = addon.FrameState ? new addon.FrameState() : undefined;
        const total = this.plan.count;
        // Frames are encoded in batches (bounded in patches and in source pixels); the frame before `fromSlot` is
        // encoded too when pruning, as the reference of the first frame produced.
        const first = this.prune ? Math.max(0, fromSlot - 1) : fromSlot;
        const maxBatchFrames = Math.max(1, Math.min(32, Math.floor(4096 / (this.#merged * this.merge * this.merge))));
        const maxBatchBytes = 96 * 1024 * 1024;
        let batch: Array<{ index: number; item: NativeVisionItem }> = [];
        let batchBytes = 0;
        let decoded = 0;
        let encoded = 0;
        let kept = 0;
        let seen = 0;
        let last: { data: Uint8Array; width: number; height: number } | undefined;
        // Decoding runs ahead of encoding by up to a batch of frames, so ffmpeg works while frames are encoded and
        // prefilled (it stops when the queue is full: memory stays bounded by one batch of source frames).
        const stop = new AbortController();
        const decodeSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
        const frames = prefetch(this.video.frames({ signal: decodeSignal }), maxBatchFrames + 2, stop);

        const flush = async function* (this: VideoProducer): AsyncGenerator<SlotEmbeddings & { slot: number }> {
            if (batch.length === 0) return;
            const started = performance.now();
            const result = await this.#projector.encode(batch.map((b) => b.item), { signal, ...(frameState ? { frameState } : {}) });
            this.timings.encodeMs += performance.now() - started;
            let offset = 0;
            const produced: Array<SlotEmbeddings & { slot: number }> = [];
            for (let i = 0; i < batch.length; i++) {
                const { index } = batch[i]!;
                const count = result.counts[i]!;
                if (index >= fromSlot) {
                    this.#counts[index] = count;
                    this.frames[index] = { timestamp: this.plan.timestamps[index]!, tokens: this.#merged, keptTokens: count };
                    kept += count;
                    produced.push({ slot: index, embeddings: result.embeddings, first: offset, count });
                }
                offset += count;
            }
            encoded += batch.length;
            batch = [];
            batchBytes = 0;
            this.#report(decoded, encoded, total, kept);
            yield* produced;
        }.bind(this);

        const add = async function* (this: VideoProducer, index: number, frame: { data: Uint8Array; width: number; height: number }) {
            batch.push({
                index,
                item: {
                    rgb: frame.data,
                    width: frame.width,
                    height: frame.height,
                    targetWidth: this.target.width,
                    targetHeight: this.target.height,
                    merge: this.merge,
                    ...(this.prune ? { prune: { threshold: this.prune.threshold, minTokens: this.prune.minTokens } } : {}),
                },
            });
            batchBytes += frame.data.byteLength;
            if (batch.length >= maxBatchFrames || batchBytes >= maxBatchBytes) yield* flush();
        }.bind(this);

        try {
            for (;;) {
                const waitStarted = performance.now();
                const next = await frames.next();
                this.timings.decodeMs += performance.now() - waitStarted;
                if (next.done) break;
                const frame = next.value;
                if (seen >= total) continue; // never more than planned (frames() uses the same plan)
                decoded = ++seen;
                last = frame;
                if (frame.index < first) {
                    this.#report(decoded, encoded, total, kept);
                    continue;
                }
                yield* add(seen - 1, frame);
            }
            // A truncated or corrupt file delivered fewer frames than planned: the prompt already names every planned
            // frame, so the last decoded frame stands in for the missing ones (pruning then keeps minTokens of each).
            if (seen < total) {
                if (!last) throw new Error(`internal: ${this.video.source} produced no frames`);
                this.video.warnings.push(`only ${seen} of the ${total} planned frames could be decoded; the last one is repeated for the rest`);
                for (let index = seen; index < total; index++) yield* add(index, last);
            }
            yield* flush();
        } finally {
            await frames.return(undefined);
        }
    }

    #report(framesDecoded: number, framesEncoded: number, framesTotal: number, tokensKept: number): void {
        if (!this.#onProgress) return;
        try {
            this.#onProgress({ framesDecoded, framesEncoded, framesTotal, tokensKept, tokensTotal: framesEncoded * this.#merged });
        } catch {
            // a listener's exception must not break encoding
        }
    }
}

/**
 * Pulls from `source` ahead of the consumer, keeping at most `depth` items queued. Ending the consumer's loop aborts
 * `stop` (which the source watches) and waits for the source to finish.
 */
async function* prefetch<T>(source: AsyncGenerator<T, void, undefined>, depth: number, stop: AbortController): AsyncGenerator<T, void, undefined> {
    const queue: T[] = [];
    let finished = false;
    let failure: { error: unknown } | undefined;
    let wakeConsumer: (() => void) | undefined;
    let wakeProducer: (() => void) | undefined;
    const pump = (async () => {
        try {
            for (;;) {
                while (queue.length >= depth && !stop.signal.aborted) await new Promise<void>((r) => (wakeProducer = r));
                if (stop.signal.aborted) break;
                const next = await source.next();
                if (next.done) break;
                queue.push(next.value);
                wakeConsumer?.();
            }
        } catch (error) {
            if (!stop.signal.aborted) failure = { error };
        } finally {
            finished = true;
            wakeConsumer?.();
        }
    })();
    try {
        for (;;) {
            if (queue.length > 0) {
                const item = queue.shift()!;
                wakeProducer?.();
                yield item;
                continue;
            }
            if (failure) throw failure.error;
            if (finished) return;
            await new Promise<void>((r) => (wakeConsumer = r));
            wakeConsumer = undefined;
        }
    } finally {
        stop.abort();
        wakeProducer?.();
        await pump;
        await source.return(undefined).catch(() => {});
    }
}
