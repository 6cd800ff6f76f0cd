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
import type { Image } from "../decode/Image.js";
import type { Video, VideoPlan } from "../decode/Video.js";
import type { VideoHandle } from "./media.js";
import { native } from "../native/load.js";
import { InvalidOptionError } from "../errors.js";
import type { KvCache, TimelineView } from "../kv/cache.js";
import type { PlanItem } from "../kv/timeline.js";
import type { VisionProjector } from "../encode/vision.js";
import type { NativeAbortFlag, NativeDecodeResult, NativeEmbeddings, NativeSampler, NativeVisionItem } from "../native/types.js";
import { geometryItem, geometryKey, type PruneSettings, type VisualGeometry } from "../family/types.js";

/** Embeddings of one slot (rows [first, first+count) of `embeddings`). */
export interface SlotEmbeddings {
    embeddings: NativeEmbeddings;
    first: number;
    count: number;
}

/** Produces the embeddings of a medium's slots, in order. */
export interface MediaProducer {
    /** Identity of the medium and its preprocessing; slot s is named `${key}/${s}` in the KV timeline. */
    readonly key: string;
    /** Visual tokens of each slot when known before encoding (images), else undefined (pruned video frames). */
    slotCounts(): readonly (number | undefined)[];
    /**
     * Makes sure the medium's pixels can be produced (re-opening a closed video from its path or URL); throws a
     * {@link MediaUnavailableError} naming the medium when they cannot. Called before any work is done.
     */
    prepare(signal: AbortSignal | undefined): Promise<void>;
    /** Embeddings of slots from `fromSlot` on, in order. */
    produce(fromSlot: number, signal: AbortSignal | undefined): AsyncIterable<SlotEmbeddings & { slot: number }>;
}

export type PlanSegment =
    | { kind: "tokens"; tokens: readonly number[] }
    | { kind: "visual"; producer: MediaProducer; slot: number; /** The placeholder token standing for it (in `evaluatedTokens`); default the image token. */ token?: number };

/** The name of slot `slot` of a medium in the KV timeline. */
export function slotKey(producer: MediaProducer, slot: number): string {
    return `${producer.key}/${slot}`;
}

/** Plan length lower bound (visual slots of unknown size count 1) — to refuse hopeless prompts before any work. */
export function minimumPlanLength(segments: readonly PlanSegment[]): number {
    let n = 0;
    for (const s of segments) n += s.kind === "tokens" ? s.tokens.length : (s.producer.slotCounts()[s.slot] ?? 1);
    return n;
}

/** Where a plan departs from what the cache holds, and which media must produce embeddings from there on. */
export interface PlanMatch {
    /** Positions reused. */
    reused: number;
    /** First segment to evaluate, and the tokens of it already cached. */
    segment: number;
    offset: number;
    /** Media with slots to produce (in plan order). */
    producers: MediaProducer[];
}

/**
 * Matches the plan against the cache's timeline. When everything is cached, the last token is evaluated again (for
 * fresh logits). Pure: nothing is evaluated or truncated yet.
 */
export function matchPlan(segments: readonly PlanSegment[], timeline: TimelineView): PlanMatch {
    const last = segments.at(-1);
    if (!last || last.kind !== "tokens" || last.tokens.length === 0) throw new Error("internal: a prompt plan must end with text");
    const items: PlanItem[] = segments.map((seg) =>
        seg.kind === "tokens" ? seg : { kind: "visual", key: slotKey(seg.producer, seg.slot), count: seg.producer.slotCounts()[seg.slot] },
    );
    const m = timeline.matchPrefix(items);
    let { length: reused, item: segment, offset } = m;
    if (segment === segments.length) {
        reused--;
        segment = segments.length - 1;
        offset = last.tokens.length - 1;
    }
    const producers: MediaProducer[] = [];
    for (let s = segment; s < segments.length; s++) {
        const seg = segments[s]!;
        if (seg.kind === "visual" && !producers.includes(seg.producer)) producers.push(seg.producer);
    }
    return { reused, segment, offset, producers };
}

export interface EvaluatePlanOptions {
    /** The KV cache: the plan's evaluation is appended to it. */
    cache: KvCache;
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
    /** Ids evaluated now; visual tokens appear as their placeholder's id. */
    evaluatedTokens: number[];
    /** Time the language model spent evaluating (sum of the native decode times). */
    prefillMs: number;
}

/**
 * Reuses the cached prefix of the plan (as {@link matchPlan} found it), then evaluates the rest; the last token is
 * evaluated with the sampler. The plan must end with text (a chat template's generation prompt always does).
 */
export async function evaluatePlan(segments: readonly PlanSegment[], match: PlanMatch, o: EvaluatePlanOptions): Promise<EvaluatePlanResult> {
    const cache = o.cache;
    cache.truncate(match.reused);
    const { reused, segment: startSegment, offset: startOffset } = match;

    const evaluatedTokens: number[] = [];
    let total = 0;
    for (let s = startSegment; s < segments.length; s++) {
        const seg = segments[s]!;
        total += seg.kind === "tokens" ? seg.tokens.length : (seg.producer.slotCounts()[seg.slot] ?? 0);
    }
    total -= startOffset;
    let done = 0;
    let prefillMs = 0;
    let result: NativeDecodeResult = { evaluated: 0, aborted: false, ms: 0, token: -1, nPast: cache.length };
    const progress = (n: number) => {
        done += n;
        if (!o.onPromptProgress) return;
        try {
            o.onPromptProgress({ evaluated: done, total: Math.max(total, done) });
        } catch {
            // a listener's exception must not break evaluation
        }
    };

    // Visual slots of one medium are produced by one stream, consumed in order.
    const streams = new Map<MediaProducer, AsyncIterator<SlotEmbeddings & { slot: number }>>();
    let aborted = false;
    try {
        for (let s = startSegment; s < segments.length && !aborted; s++) {
            const seg = segments[s]!;
            const offset = s === startSegment ? startOffset : 0;
            if (seg.kind === "tokens") {
                const tokens = offset > 0 ? seg.tokens.slice(offset) : seg.tokens;
                const isLast = s === segments.length - 1;
                const appended = await cache.appendText(tokens, { abort: o.abort, onBatch: progress, ...(isLast ? { sampler: o.sampler } : {}) });
                result = appended.result;
                prefillMs += appended.ms;
                evaluatedTokens.push(...tokens.slice(0, appended.evaluated));
                aborted = appended.aborted;
            } else {
                let stream = streams.get(seg.producer);
                if (!stream) {
                    stream = seg.producer.produce(seg.slot, o.signal)[Symbol.asyncIterator]();
                    streams.set(seg.producer, stream);
                }
                const next = await stream.next();
                if (next.done || next.value.slot !== seg.slot) throw new Error(`internal: ${seg.producer.key} did not produce slot ${seg.slot}`);
                const produced = next.value;
                if (offset >= produced.count) continue;
                const appended = await cache.appendVisual(
                    produced.embeddings,
                    { first: produced.first + offset, count: produced.count - offset },
                    { key: slotKey(seg.producer, seg.slot), keyFirst: offset },
                    { abort: o.abort, onBatch: progress },
                );
                result = appended.result;
                prefillMs += appended.ms;
                for (let k = 0; k < appended.evaluated; k++) evaluatedTokens.push(seg.token ?? o.imageTokenId);
                aborted = appended.aborted;
            }
        }
    } catch (err) {
        if ((err as Error)?.name === "AbortError" || o.abort.aborted) {
            // aborted while producing embeddings (decoding / encoding): the cache holds what was evaluated
            aborted = true;
        } else {
            throw err;
        }
    } finally {
        for (const stream of streams.values()) await stream.return?.();
    }
    if (aborted) result = { ...result, aborted: true };
    return { result, aborted, reused, evaluatedTokens, prefillMs };
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
    /** How the image is resized, cut and encoded. */
    readonly geometry: VisualGeometry;
    readonly #image: Image;
    readonly #projector: VisionProjector;
    /** Time spent encoding, when this prompt encoded the image. */
    encodeMs = 0;

    constructor(projector: VisionProjector, image: Image, hash: string, geometry: VisualGeometry) {
        this.#projector = projector;
        this.#image = image;
        this.geometry = geometry;
        this.key = `img:${hash}:${geometryKey(geometry)}`;
    }

    /** Visual tokens of the image. */
    get tokens(): number {
        return this.geometry.tokens;
    }

    slotCounts(): readonly number[] {
        return [this.geometry.tokens];
    }

    /** Decodes the image (kept by the Image object), so a file that became unreadable fails before any work. */
    async prepare(): Promise<void> {
        await this.#image.decode();
    }

    async *produce(fromSlot: number, signal: AbortSignal | undefined): AsyncGenerator<SlotEmbeddings & { slot: number }> {
        if (fromSlot !== 0) throw new InvalidOptionError("slot", "0 for an image", fromSlot);
        const decoded = await this.#image.decode();
        const started = performance.now();
        const encoded = await this.#projector.encode([{ rgb: decoded.data, width: decoded.width, height: decoded.height, ...geometryItem(this.geometry) }], { signal });
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

/** One video as a medium: one slot per sampled frame, decoded, pruned and encoded while the prompt is evaluated. */
export class VideoProducer implements MediaProducer {
    readonly key: string;
    /** The video's facts and access to its frames. */
    readonly handle: VideoHandle;
    readonly plan: VideoPlan;
    /** How each frame is resized, cut and encoded. */
    readonly geometry: VisualGeometry;
    readonly prune: PruneSettings;
    /** Patches the encoder computed for the produced frames, and the frames' patches (equal unless encodeChangedOnly). */
    readonly encoderWork = { patchesComputed: 0, patches: 0 };
    /** One entry per produced frame. */
    readonly frames: FrameReport[] = [];
    readonly timings: MediaTimings = { decodeMs: 0, encodeMs: 0 };
    readonly #projector: VisionProjector;
    readonly #counts: (number | undefined)[];
    readonly #merged: number;
    readonly #onProgress: ((p: VideoProgress) => void) | undefined;
    readonly #messageIndex: number;
    #video: Video | undefined;

    /** `messageIndex`: where the video is in the conversation (named by errors; -1 for the new prompt). */
    constructor(
        projector: VisionProjector,
        handle: VideoHandle,
        geometry: VisualGeometry,
        prune: PruneSettings,
        onProgress?: (p: VideoProgress) => void,
        messageIndex = -1,
    ) {
        this.#projector = projector;
        this.handle = handle;
        this.plan = handle.plan;
        this.geometry = geometry;
        this.prune = prune;
        this.#onProgress = onProgress;
        this.#messageIndex = messageIndex;
        const plan = handle.plan;
        this.key = `vid:${handle.identity}:${plan.count}:${handle.stamps}:${geometryKey(geometry)}:` + (prune ? `p${prune.threshold}/${prune.minTokens}${prune.encodeChangedOnly ? "/changed-only" : ""}` : "all");
        this.#merged = geometry.tokens;
        if (prune) {
            // Shared by every producer of this layout: counts learned while encoding stay known in later turns.
            let counts = handle.counts.get(this.key);
            if (!counts) handle.counts.set(this.key, (counts = new Array<number | undefined>(plan.count).fill(undefined)));
            this.#counts = counts;
        } else {
            this.#counts = new Array<number>(plan.count).fill(this.#merged);
        }
    }

    /** Visual tokens per frame before pruning. */
    get tokensPerFrame(): number {
        return this.#merged;
    }

    slotCounts(): readonly (number | undefined)[] {
        return this.#counts;
    }

    /** Gets an open Video (re-opening a closed one from its path or URL). */
    async prepare(signal: AbortSignal | undefined): Promise<void> {
        this.#video = await this.handle.open(this.#messageIndex, signal);
    }

    async *produce(fromSlot: number, signal: AbortSignal | undefined): AsyncGenerator<SlotEmbeddings & { slot: number }> {
        if (!this.#video || this.#video.closed) await this.prepare(signal);
        const video = this.#video!;
        const addon = native();
        const frameState = addon.FrameState ? new addon.FrameState() : undefined;
        // Only the kept blocks of each frame are computed, from the states of this pass's earlier frames.
        const reuse = this.prune?.encodeChangedOnly ? new addon.EncoderReuse() : undefined;
        const total = this.plan.count;
        // Frames are encoded in batches (bounded in patches and in source pixels); the frame before `fromSlot` is
        // encoded too when pruning, as the reference of the first frame produced.
        const first = this.prune ? Math.max(0, fromSlot - 1) : fromSlot;
        const g = this.geometry;
        const maxBatchFrames = Math.max(1, Math.min(32, Math.floor(4096 / (g.grid.height * g.grid.width * g.merge * g.merge))));
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
        const frames = prefetch(video.frames({ signal: decodeSignal }), maxBatchFrames + 2, stop);

        const flush = async function* (this: VideoProducer): AsyncGenerator<SlotEmbeddings & { slot: number }> {
            if (batch.length === 0) return;
            const started = performance.now();
            const result = await this.#projector.encode(batch.map((b) => b.item), { signal, ...(frameState ? { frameState } : {}), ...(reuse ? { reuse } : {}) });
            this.timings.encodeMs += performance.now() - started;
            let offset = 0;
            const produced: Array<SlotEmbeddings & { slot: number }> = [];
            for (let i = 0; i < batch.length; i++) {
                const { index } = batch[i]!;
                const count = result.counts[i]!;
                if (index >= fromSlot) {
                    const patches = this.geometry.grid.height * this.geometry.grid.width * this.geometry.merge * this.geometry.merge;
                    this.encoderWork.patches += patches;
                    this.encoderWork.patchesComputed += result.rowsComputed ? result.rowsComputed[i]! : patches;
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
                    ...geometryItem(this.geometry),
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
                if (!last) throw new Error(`internal: ${video.source} produced no frames`);
                video.warnings.push(`only ${seen} of the ${total} planned frames could be decoded; the last one is repeated for the rest`);
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
