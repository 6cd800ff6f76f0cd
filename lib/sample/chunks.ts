/**
 * The async iterator of text chunks that `Session.stream` and `Stream.askStream` return: chunks are queued as the
 * answer is generated and handed out as the consumer reads; breaking out of the loop aborts the generation; a
 * failure is rethrown by the iterator (and by `result`).
 *
 * @internal
 * @module
 */

/** An async iterable of text chunks with the final result. */
export interface ChunkStream<T> extends AsyncIterable<string> {
    readonly result: Promise<T>;
}

/**
 * Starts `run` with a chunk callback and a signal that also fires when the consumer stops reading early.
 */
export function chunkStream<T>(userSignal: AbortSignal | undefined, run: (onChunk: (chunk: string) => void, signal: AbortSignal) => Promise<T>): ChunkStream<T> {
    const chunks: string[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    const internalAbort = new AbortController();
    const signal = userSignal ? AbortSignal.any([userSignal, internalAbort.signal]) : internalAbort.signal;
    const result = run((chunk) => {
        chunks.push(chunk);
        wake?.();
    }, signal).finally(() => {
        finished = true;
        wake?.();
    });
    // Errors surface through the iterator; avoid an unhandled rejection when only the iterator is used.
    result.catch(() => {});
    return {
        result,
        async *[Symbol.asyncIterator]() {
            try {
                for (;;) {
                    if (chunks.length > 0) {
                        yield chunks.shift()!;
                        continue;
                    }
                    if (finished) break;
                    await new Promise<void>((r) => (wake = r));
                    wake = undefined;
                }
                await result; // rethrow a failure
            } finally {
                if (!finished) internalAbort.abort(new DOMException("The consumer stopped reading", "AbortError"));
            }
        },
    };
}
