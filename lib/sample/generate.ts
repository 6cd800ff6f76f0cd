/**
 * The generation loop shared by Session and Stream: from the first sampled token on, each token is checked for an
 * end of generation, turned into text (UTF-8 across token boundaries, stop strings held back until they are decided),
 * reported, and evaluated to sample the next one — until the end, a stop string, maxTokens, a full context or abort.
 *
 * @internal
 * @module
 */
import type { KvCache } from "../kv/cache.js";
import type { NativeAbortFlag, NativeDecodeResult, NativeModel, NativeSampler } from "../native/types.js";
import { StopStringMatcher } from "./stop.js";

/** Why generation stopped. */
export type StopReason =
    | "eos" // the model ended its turn (an end-of-generation token)
    | "maxTokens" // maxTokens were generated
    | "stop" // a stop string was produced (it is not part of `text`)
    | "abort" // the AbortSignal fired
    | "contextFull"; // the context window is full

export interface GenerateOptions {
    maxTokens: number;
    stop: readonly string[];
    onToken: ((chunk: { token: number; text: string }) => void) | undefined;
    /** Text as it becomes final (stop strings withheld). */
    onChunk: ((chunk: string) => void) | undefined;
    /** Timeline group of the evaluated answer tokens. */
    group?: number;
    /**
     * Drop the space SentencePiece puts before the first word (LLaMA vocabularies: the first token of "The" is
     * "▁The"), as Hugging Face's decode and libllama's detokenize do, so that the text equals the tokens' detokenization.
     */
    stripLeadingSpace?: boolean;
}

export interface Generation {
    /** Generated token ids (without the final end-of-generation token). */
    tokens: number[];
    /** Of those, how many were evaluated into the cache (the last one is not when maxTokens or a stop string ended it). */
    evaluated: number;
    text: string;
    stopReason: StopReason;
    ms: number;
}

/** Runs generation from `first` (the decode that sampled the first token). */
export async function generate(
    model: NativeModel,
    cache: KvCache,
    first: NativeDecodeResult,
    sampler: NativeSampler,
    abort: NativeAbortFlag,
    o: GenerateOptions,
): Promise<Generation> {
    const started = performance.now();
    const tokens: number[] = [];
    let evaluated = 0;
    const decoder = new TextDecoder("utf-8");
    const matcher = new StopStringMatcher(o.stop);
    let result = first;
    let stopReason: StopReason | undefined = first.aborted ? "abort" : undefined;
    while (!stopReason) {
        const token = result.token;
        if (model.isEog(token)) {
            stopReason = "eos";
            break;
        }
        tokens.push(token);
        let piece = decoder.decode(model.tokenPiece(token, false), { stream: true });
        if (tokens.length === 1 && o.stripLeadingSpace && piece.startsWith(" ")) piece = piece.slice(1);
        const released = matcher.push(piece);
        if (released.length > 0) callSafely(o.onChunk, released);
        callSafely(o.onToken, { token, text: released });
        if (matcher.stopped) {
            stopReason = "stop";
            break;
        }
        if (tokens.length >= o.maxTokens) {
            stopReason = "maxTokens";
            break;
        }
        if (cache.length + 1 > cache.contextSize) {
            stopReason = "contextFull";
            break;
        }
        const step = await cache.appendText([token], { sampler, abort, ...(o.group !== undefined ? { group: o.group } : {}) });
        evaluated += step.evaluated;
        result = step.result;
        if (step.aborted) stopReason = "abort";
    }
    if (stopReason !== "stop") {
        const tail = matcher.flush(decoder.decode());
        if (tail.length > 0) callSafely(o.onChunk, tail);
    }
    return { tokens, evaluated, text: matcher.text, stopReason, ms: performance.now() - started };
}

function callSafely<T>(listener: ((value: T) => void) | undefined, value: T): void {
    if (!listener) return;
    try {
        listener(value);
    } catch {
        // A throwing listener must not corrupt the cache's state; generation goes on.
    }
}
