/**
 * The KV timeline: what occupies which position of a context's KV cache, as run-length segments — runs of text
 * token ids and runs of visual tokens (each run a slice of one image's or one video frame's tokens, named by the
 * slot's key). Positions are always contiguous, 0..length-1: removing a range re-packs everything after it, as the
 * native cache does when the range is removed and the tail shifted (lib/kv/cache.ts keeps the two in step).
 *
 * Segments carry an optional `group` (a number chosen by the writer: a Stream marks each frame, each question and
 * answer, and its sink) and optional frame facts, so that what left the cache stays describable without its source.
 *
 * Pure data: no native calls, unit-tested on its own (test/kv/timeline.test.ts).
 *
 * @internal
 * @module
 */

/** A run of text tokens. */
export interface TextSegment {
    readonly kind: "text";
    readonly tokens: readonly number[];
    readonly group?: number | undefined;
}

/** A run of visual tokens: tokens `first .. first+count-1` of the slot `key` (an image or one video frame). */
export interface VisualSegment {
    readonly kind: "visual";
    readonly key: string;
    readonly first: number;
    readonly count: number;
    readonly group?: number | undefined;
}

export type Segment = TextSegment | VisualSegment;

/** One item of a plan to match against the timeline: text tokens, or the visual tokens of one slot. */
export type PlanItem =
    | { readonly kind: "tokens"; readonly tokens: readonly number[] }
    /** `count` undefined: the slot's size is not known yet (a video frame not encoded yet): it cannot match. */
    | { readonly kind: "visual"; readonly key: string; readonly count: number | undefined };

/** Where a plan stops matching the timeline. */
export interface PrefixMatch {
    /** Positions of the timeline that equal the plan's beginning. */
    readonly length: number;
    /** Index of the first plan item not wholly matched (plan.length when everything matched). */
    readonly item: number;
    /** Tokens of that item already matched. */
    readonly offset: number;
}

/** The compact form stored in state files: text runs as `[group, ...ids]`, visual runs as `{ k, f, n, g }`. */
export type SerializedTimeline = { version: 1; segments: Array<{ t: readonly number[]; g?: number } | { k: string; f: number; n: number; g?: number }> };

/** The cache's contents as a flat list (state files of format version 1): token ids, or visual keys `${key}#${i}`. */
export type LegacyCacheItem = number | string;

export class KvTimeline {
    #segments: Segment[] = [];
    #length = 0;

    /** Positions in use. */
    get length(): number {
        return this.#length;
    }

    /** The segments in position order (read-only views; do not keep them across writes). */
    get segments(): readonly Segment[] {
        return this.#segments;
    }

    /** Appends text tokens at the end. */
    appendText(tokens: readonly number[], group?: number): void {
        if (tokens.length === 0) return;
        for (const t of tokens) if (!Number.isInteger(t) || t < 0) throw new RangeError(`invalid token id ${t}`);
        const last = this.#segments.at(-1);
        if (last?.kind === "text" && last.group === group) {
            // The timeline owns its token arrays (copied on the way in), so growing one in place is safe and keeps
            // token-by-token generation linear.
            for (const t of tokens) (last.tokens as number[]).push(t);
        } else {
            this.#segments.push({ kind: "text", tokens: tokens.slice(), group });
        }
        this.#length += tokens.length;
    }

    /** Appends tokens `first .. first+count-1` of the visual slot `key` at the end. */
    appendVisual(key: string, first: number, count: number, group?: number): void {
        if (count === 0) return;
        if (!(count > 0) || !Number.isInteger(count) || !Number.isInteger(first) || first < 0) throw new RangeError(`invalid visual run ${key} ${first}+${count}`);
        const last = this.#segments.at(-1);
        if (last?.kind === "visual" && last.key === key && last.group === group && last.first + last.count === first) {
            this.#segments[this.#segments.length - 1] = { ...last, count: last.count + count };
        } else {
            this.#segments.push({ kind: "visual", key, first, count, group });
        }
        this.#length += count;
    }

    /** Keeps the first `n` positions. */
    truncate(n: number): void {
        if (n >= this.#length) return;
        this.remove(Math.max(0, n), this.#length);
    }

    /** Removes positions [p0, p1); what follows moves down by p1 - p0. */
    remove(p0: number, p1: number): void {
        if (!Number.isInteger(p0) || !Number.isInteger(p1) || p0 < 0 || p1 < p0) throw new RangeError(`invalid range [${p0}, ${p1})`);
        p1 = Math.min(p1, this.#length);
        if (p0 >= p1) return;
        const out: Segment[] = [];
        let pos = 0;
        for (const s of this.#segments) {
            const n = s.kind === "text" ? s.tokens.length : s.count;
            const start = pos;
            const end = pos + n;
            pos = end;
            if (end <= p0 || start >= p1) {
                pushMerged(out, s);
                continue;
            }
            // Keep the parts of s before p0 and after p1.
            const cutFrom = Math.max(p0, start) - start;
            const cutTo = Math.min(p1, end) - start;
            if (cutFrom > 0) pushMerged(out, slice(s, 0, cutFrom));
            if (cutTo < n) pushMerged(out, slice(s, cutTo, n));
        }
        this.#segments = out;
        this.#length -= p1 - p0;
    }

    /** Position ranges of each group, in order (a group's range is from its first to its last position). */
    groups(): Map<number, { start: number; end: number }> {
        const ranges = new Map<number, { start: number; end: number }>();
        let pos = 0;
        for (const s of this.#segments) {
            const n = s.kind === "text" ? s.tokens.length : s.count;
            if (s.group !== undefined) {
                const r = ranges.get(s.group);
                if (r) r.end = pos + n;
                else ranges.set(s.group, { start: pos, end: pos + n });
            }
            pos += n;
        }
        return ranges;
    }

    /** Every text token id in position order (what repetition penalties see of the prompt). */
    textTokens(): number[] {
        const out: number[] = [];
        for (const s of this.#segments) if (s.kind === "text") out.push(...s.tokens);
        return out;
    }

    /**
     * How much of `plan` the timeline already holds, from position 0: text tokens must be equal, visual tokens must
     * be the same tokens of the same slot. A visual slot may match partly (an evaluation aborted inside it).
     */
    matchPrefix(plan: readonly PlanItem[]): PrefixMatch {
        let si = 0; // timeline segment
        let so = 0; // offset inside it
        let length = 0;
        const segs = this.#segments;
        for (let item = 0; item < plan.length; item++) {
            const p = plan[item]!;
            if (p.kind === "tokens") {
                for (let i = 0; i < p.tokens.length; i++) {
                    const s = segs[si];
                    if (!s || s.kind !== "text" || s.tokens[so] !== p.tokens[i]) return { length, item, offset: i };
                    length++;
                    if (++so === s.tokens.length) {
                        si++;
                        so = 0;
                    }
                }
            } else {
                const count = p.count;
                let i = 0;
                while (count !== undefined && i < count) {
                    const s = segs[si];
                    if (!s || s.kind !== "visual" || s.key !== p.key || s.first + so !== i) break;
                    const take = Math.min(s.count - so, count - i);
                    i += take;
                    length += take;
                    so += take;
                    if (so === s.count) {
                        si++;
                        so = 0;
                    }
                }
                if (count === undefined || i < count) return { length, item, offset: i };
            }
        }
        return { length, item: plan.length, offset: 0 };
    }

    toJSON(): SerializedTimeline {
        return {
            version: 1,
            segments: this.#segments.map((s) =>
                s.kind === "text"
                    ? { t: s.tokens, ...(s.group !== undefined ? { g: s.group } : {}) }
                    : { k: s.key, f: s.first, n: s.count, ...(s.group !== undefined ? { g: s.group } : {}) },
            ),
        };
    }

    /** Restores a timeline from {@link toJSON}'s output; throws a RangeError on malformed data. */
    static fromJSON(data: unknown): KvTimeline {
        const t = new KvTimeline();
        const d = data as SerializedTimeline;
        if (typeof d !== "object" || d === null || d.version !== 1 || !Array.isArray(d.segments)) throw new RangeError("not a serialized KV timeline");
        for (const s of d.segments as Array<Record<string, unknown>>) {
            const group = s.g === undefined ? undefined : Number(s.g);
            if (group !== undefined && !Number.isInteger(group)) throw new RangeError("invalid group in a serialized KV timeline");
            if (Array.isArray(s.t)) t.appendText(s.t as number[], group);
            else if (typeof s.k === "string") t.appendVisual(s.k, Number(s.f), Number(s.n), group);
            else throw new RangeError("invalid segment in a serialized KV timeline");
        }
        return t;
    }

    /** A timeline from the flat list of state files of format version 1 (visual tokens as `${key}#${i}` strings). */
    static fromLegacyItems(items: readonly LegacyCacheItem[]): KvTimeline {
        const t = new KvTimeline();
        for (const item of items) {
            if (typeof item === "number") {
                t.appendText([item]);
                continue;
            }
            const hash = typeof item === "string" ? item.lastIndexOf("#") : -1;
            if (hash < 0) throw new RangeError(`invalid cache item ${String(item)}`);
            t.appendVisual(item.slice(0, hash), Number(item.slice(hash + 1)), 1);
        }
        return t;
    }
}

function slice(s: Segment, from: number, to: number): Segment {
    if (s.kind === "text") return { kind: "text", tokens: s.tokens.slice(from, to), group: s.group };
    return { kind: "visual", key: s.key, first: s.first + from, count: to - from, group: s.group };
}

/** Appends `s`, merging it into the last segment when they continue each other (same kind, group and slot). */
function pushMerged(out: Segment[], s: Segment): void {
    const last = out.at(-1);
    if (last && last.group === s.group) {
        if (last.kind === "text" && s.kind === "text") {
            out[out.length - 1] = { kind: "text", tokens: [...last.tokens, ...s.tokens], group: s.group };
            return;
        }
        if (last.kind === "visual" && s.kind === "visual" && last.key === s.key && last.first + last.count === s.first) {
            out[out.length - 1] = { ...last, count: last.count + s.count };
            return;
        }
    }
    out.push(s);
}
