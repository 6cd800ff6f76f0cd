/**
 * The one owner of a context's KV cache: every change of what the cache holds goes through here, which changes the
 * native cache and its {@link KvTimeline} together (append text, append visual embeddings, truncate, evict a range
 * with re-packing, restore a saved state). `Session` and `Stream` both stand on it; nothing else writes the timeline.
 *
 * Appends pass the position they expect to write at; the native side refuses a position that is not the cache's end,
 * so any drift between the record and the cache is an error at once instead of a wrong answer later.
 *
 * @internal
 * @module
 */
import { ContextFullError, VidllamaError } from "../errors.js";
import { fromNativeError, isNativeError } from "../native/errors.js";
import type { NativeAbortFlag, NativeContext, NativeDecodeResult, NativeEmbeddings, NativeSampler } from "../native/types.js";
import { KvTimeline, type PlanItem, type PrefixMatch, type Segment, type SerializedTimeline } from "./timeline.js";

/** What callers may read of the timeline (writing goes through {@link KvCache}). */
export interface TimelineView {
    readonly length: number;
    readonly segments: readonly Segment[];
    matchPrefix(plan: readonly PlanItem[]): PrefixMatch;
    groups(): Map<number, { start: number; end: number }>;
    textTokens(): number[];
    toJSON(): SerializedTimeline;
}

/** Result of one append: the last native decode, and totals. */
export interface AppendResult {
    /** The last decode (its `token` is the sampled one when a sampler was given and nothing was aborted). */
    result: NativeDecodeResult;
    /** Tokens appended by this call. */
    evaluated: number;
    aborted: boolean;
    /** Sum of the native decode times. */
    ms: number;
}

export interface AppendOptions {
    abort: NativeAbortFlag;
    /** Group recorded on the new segments. */
    group?: number;
    /** Called after each batch with the number of tokens appended by it. */
    onBatch?: (evaluated: number) => void;
}

/** Which object the errors of this cache name (for DisposedError and the like). */
export interface KvCacheOwner {
    object: string;
}

export class KvCache {
    readonly #context: NativeContext;
    readonly #timeline = new KvTimeline();
    readonly #owner: string;
    /** Context window in tokens. */
    readonly contextSize: number;
    /** Tokens per native decode call. */
    readonly batchSize: number;
    /** Whether positions can be shifted (evict with re-packing). */
    readonly canShift: boolean;
    /** Bytes one cached token occupies. */
    readonly bytesPerToken: number;

    constructor(context: NativeContext, owner: KvCacheOwner) {
        const info = context.info();
        this.#context = context;
        this.#owner = owner.object;
        this.contextSize = info.contextSize;
        this.batchSize = info.batchSize;
        this.canShift = info.canShift;
        this.bytesPerToken = info.cacheBytesPerToken;
    }

    /** What the cache holds. */
    get timeline(): TimelineView {
        return this.#timeline;
    }

    /** Positions in use. */
    get length(): number {
        return this.#timeline.length;
    }

    /** Logits of the last token evaluated with logits. */
    logits(): Float32Array {
        return this.#context.logits();
    }

    /**
     * Appends text tokens in batches. The last batch is evaluated with `sampler` (when given), which then samples
     * the next token. Stops after the batch during which `abort` fired.
     */
    async appendText(tokens: readonly number[], o: AppendOptions & { sampler?: NativeSampler; logits?: boolean }): Promise<AppendResult> {
        return this.appendTextRuns([{ tokens, group: o.group }], o);
    }

    /**
     * Appends runs of text tokens that belong to different groups (e.g. the end of one stream message and the start
     * of the next) in the same batches, so that they cost one evaluation instead of one per run.
     */
    async appendTextRuns(runs: ReadonlyArray<{ tokens: readonly number[]; group: number | undefined }>, o: Omit<AppendOptions, "group"> & { sampler?: NativeSampler; logits?: boolean }): Promise<AppendResult> {
        const tokens = runs.flatMap((r) => r.tokens);
        // Group of each token, to record what each batch evaluated.
        const groupAt = (i: number): number | undefined => {
            let n = 0;
            for (const r of runs) {
                n += r.tokens.length;
                if (i < n) return r.group;
            }
            return undefined;
        };
        let result: NativeDecodeResult = { evaluated: 0, aborted: false, ms: 0, token: -1, nPast: this.length };
        let evaluated = 0;
        let ms = 0;
        for (let i = 0; i < tokens.length; i += this.batchSize) {
            const batch = tokens.slice(i, i + this.batchSize);
            const isLast = i + batch.length >= tokens.length;
            this.#ensureRoom(batch.length);
            const options = isLast && o.sampler ? { sampler: o.sampler, position: this.length } : { position: this.length, ...(isLast && o.logits ? { logits: true } : {}) };
            result = await this.#native(() => this.#context.evaluate(Int32Array.from(batch), options, o.abort));
            // Record the evaluated tokens run by run (consecutive tokens of one group as one append).
            let k = 0;
            while (k < result.evaluated) {
                const g = groupAt(i + k);
                let e = k + 1;
                while (e < result.evaluated && groupAt(i + e) === g) e++;
                this.#timeline.appendText(batch.slice(k, e), g);
                k = e;
            }
            evaluated += result.evaluated;
            ms += result.ms;
            callSafely(o.onBatch, result.evaluated);
            if (result.aborted || (!isLast && o.abort.aborted)) return { result: { ...result, aborted: true }, evaluated, aborted: true, ms };
        }
        return { result, evaluated, aborted: false, ms };
    }

    /**
     * Appends rows [first, first+count) of `embeddings` as tokens `keyFirst ..` of the visual slot `key`, in batches.
     */
    async appendVisual(
        embeddings: NativeEmbeddings | Float32Array,
        rows: { first: number; count: number },
        slot: { key: string; keyFirst: number },
        o: AppendOptions & { logits?: boolean },
    ): Promise<AppendResult> {
        let result: NativeDecodeResult = { evaluated: 0, aborted: false, ms: 0, token: -1, nPast: this.length };
        let evaluated = 0;
        let ms = 0;
        for (let i = 0; i < rows.count; i += this.batchSize) {
            const count = Math.min(this.batchSize, rows.count - i);
            const isLast = i + count >= rows.count;
            this.#ensureRoom(count);
            const options = { first: rows.first + i, count, position: this.length, ...(isLast && o.logits ? { logits: true } : {}) };
            result = await this.#native(() => this.#context.evaluateEmbeddings(embeddings, options, o.abort));
            this.#timeline.appendVisual(slot.key, slot.keyFirst + i, result.evaluated, o.group);
            evaluated += result.evaluated;
            ms += result.ms;
            callSafely(o.onBatch, result.evaluated);
            if (result.aborted || o.abort.aborted) return { result: { ...result, aborted: true }, evaluated, aborted: true, ms };
        }
        return { result, evaluated, aborted: false, ms };
    }

    /** Keeps the first `n` positions. */
    truncate(n: number): void {
        if (n >= this.length) return;
        this.#nativeSync(() => this.#context.truncate(n));
        this.#timeline.truncate(n);
    }

    /**
     * Removes positions [p0, p1) and re-packs what follows (its positions move down by p1 - p0, its keys are
     * re-rotated by libllama at the next evaluation), so positions stay contiguous and bounded.
     * @throws {VidllamaError} ERR_CANNOT_SHIFT when the model's cache cannot shift (M-RoPE, recurrent)
     */
    evict(p0: number, p1: number): void {
        p1 = Math.min(p1, this.length);
        if (p0 < 0 || p0 >= p1) return;
        if (p1 === this.length) {
            this.truncate(p0);
            return;
        }
        if (!this.canShift) {
            throw new VidllamaError("ERR_CANNOT_SHIFT", "This model's KV cache cannot shift positions (M-RoPE or recurrent memory), so a middle range cannot be evicted");
        }
        const end = this.length;
        this.#nativeSync(() => this.#context.remove(p0, p1));
        this.#nativeSync(() => this.#context.shift(p1, end, p0 - p1));
        this.#timeline.remove(p0, p1);
    }

    /** Writes the native state with `header` (a JSON buffer that should include {@link timeline}'s JSON). */
    async save(path: string, header: Buffer): Promise<number> {
        return this.#native(() => this.#context.saveState(path, header));
    }

    /** Restores a state saved by {@link save}, whose cache holds `timeline`. On failure the cache is empty. */
    async load(path: string, timeline: KvTimeline): Promise<void> {
        try {
            const nPast = await this.#context.loadState(path);
            if (nPast !== timeline.length) throw new VidllamaError("ERR_STATE_MISMATCH", `the state holds ${nPast} positions but its record ${timeline.length}`);
        } catch (err) {
            this.#clear();
            throw err;
        }
        this.#timeline.truncate(0);
        for (const s of timeline.segments) {
            if (s.kind === "text") this.#timeline.appendText(s.tokens, s.group);
            else this.#timeline.appendVisual(s.key, s.first, s.count, s.group);
        }
    }

    #clear(): void {
        try {
            this.#context.truncate(0);
        } catch {
            // the context is gone; the record follows it
        }
        this.#timeline.truncate(0);
    }

    #ensureRoom(n: number): void {
        if (this.length + n > this.contextSize) throw new ContextFullError(this.contextSize, this.length + n);
    }

    /** After a failed native call the cache may have lost its tail: make the record match it again. */
    #resync(): void {
        const nPast = this.#context.info().nPast;
        if (nPast >= 0 && nPast < this.length) this.#timeline.truncate(nPast);
    }

    async #native<T>(call: () => Promise<T>): Promise<T> {
        try {
            return await call();
        } catch (err) {
            this.#resync();
            throw this.#mapError(err);
        }
    }

    #nativeSync<T>(call: () => T): T {
        try {
            return call();
        } catch (err) {
            this.#resync();
            throw this.#mapError(err);
        }
    }

    #mapError(err: unknown): unknown {
        if (isNativeError(err, "VL_CONTEXT_FULL")) return new ContextFullError(this.contextSize, this.length + 1);
        return fromNativeError(err, { object: this.#owner, contextSize: this.contextSize });
    }
}

function callSafely<T>(listener: ((value: T) => void) | undefined, value: T): void {
    if (!listener) return;
    try {
        listener(value);
    } catch {
        // a listener's exception must not break evaluation
    }
}
