/**
 * Which parts of a live stream leave the KV cache. The cache holds the sink, then frames and text turns (questions
 * with their answers) in arrival order. The policy keeps the sink always, the most recent window of frames (by
 * count, seconds of stream time or tokens), and text turns longer than frames (their own token window); and it keeps
 * the whole cache under a ceiling that leaves room for the next question and answer, evicting the oldest frames first
 * and the oldest text turns only when no frame is left to evict.
 *
 * Pure: it looks at the entries and returns the ones to evict, oldest first.
 *
 * @internal
 * @module
 */

/** One thing in the cache after the sink, in position order. */
export interface StreamEntry {
    /** The timeline group of the entry. */
    group: number;
    kind: "frame" | "turn";
    /** Cache positions it occupies. */
    tokens: number;
    /** Frames: stream time in seconds. */
    timestamp?: number;
}

/** How much of the stream the cache keeps. */
export interface WindowPolicy {
    /** Most frames kept. */
    frames?: number;
    /** Frames older than this many seconds of stream time (before the newest frame) leave. */
    seconds?: number;
    /** Most cache positions the kept frames occupy. */
    tokens?: number;
    /** Most cache positions the kept text turns occupy (they outlive frames). */
    textTokens: number;
    /** Most cache positions in use after an eviction (sink included): the context minus room for a question. */
    ceiling: number;
}

/** The entries to evict (oldest first) so that `entries` after `sinkTokens` satisfy `policy`. */
export function planEviction(sinkTokens: number, entries: readonly StreamEntry[], policy: WindowPolicy): StreamEntry[] {
    const evict = new Set<StreamEntry>();
    const frames = entries.filter((e) => e.kind === "frame");
    const turns = entries.filter((e) => e.kind === "turn");
    // Frame window: newest first, keep while within every bound.
    const newest = frames.at(-1)?.timestamp;
    let keptFrames = 0;
    let keptFrameTokens = 0;
    for (let i = frames.length - 1; i >= 0; i--) {
        const f = frames[i]!;
        const tooMany = policy.frames !== undefined && keptFrames + 1 > policy.frames;
        const tooOld = policy.seconds !== undefined && newest !== undefined && f.timestamp !== undefined && newest - f.timestamp >= policy.seconds;
        const tooBig = policy.tokens !== undefined && keptFrameTokens + f.tokens > policy.tokens;
        if (tooMany || tooOld || tooBig) {
            for (let j = i; j >= 0; j--) evict.add(frames[j]!);
            break;
        }
        keptFrames++;
        keptFrameTokens += f.tokens;
    }
    // Text window.
    let keptText = 0;
    for (let i = turns.length - 1; i >= 0; i--) {
        const t = turns[i]!;
        if (keptText + t.tokens > policy.textTokens) {
            for (let j = i; j >= 0; j--) evict.add(turns[j]!);
            break;
        }
        keptText += t.tokens;
    }
    // Ceiling: oldest frames first, then oldest turns.
    let used = sinkTokens;
    for (const e of entries) if (!evict.has(e)) used += e.tokens;
    for (const pool of [frames, turns]) {
        for (const e of pool) {
            if (used <= policy.ceiling) break;
            if (evict.has(e)) continue;
            evict.add(e);
            used -= e.tokens;
        }
    }
    return entries.filter((e) => evict.has(e));
}
