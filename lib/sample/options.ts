/**
 * Sampling options: how the next token is chosen from the model's output.
 *
 * @module
 */
import type { NativeSamplerParams } from "../native/types.js";
import { optionalInteger, optionalNumber } from "../validate.js";

/** How the next token is chosen. Defaults follow llama.cpp's. */
export interface SamplingOptions {
    /** Randomness; 0 picks the most likely token every time (greedy, deterministic). Defaults to 0.8. */
    temperature?: number;
    /** Keep only the k most likely tokens (0 = off). Defaults to 40. */
    topK?: number;
    /** Keep the smallest set of tokens whose probabilities add up to p (1 = off). Defaults to 0.95. */
    topP?: number;
    /** Drop tokens less likely than minP × the most likely one (0 = off). Defaults to 0.05. */
    minP?: number;
    /** Penalty for repeating recent tokens (1 = off). Defaults to 1. */
    repeatPenalty?: number;
    /** How many recent tokens the penalties consider (-1 = the whole context, 0 = off). Defaults to 64. */
    repeatLastN?: number;
    /** OpenAI-style frequency penalty (0 = off). */
    frequencyPenalty?: number;
    /** OpenAI-style presence penalty (0 = off). */
    presencePenalty?: number;
    /** Random seed, for reproducible sampling at temperature > 0. Defaults to a random seed. */
    seed?: number;
}

/** @internal */
export function resolveSamplingOptions(options: SamplingOptions): { native: NativeSamplerParams; penaltyLastN: number } {
    const repeatLastN = optionalInteger("repeatLastN", options.repeatLastN, -1, 2 ** 31 - 1, 64);
    return {
        native: {
            temperature: optionalNumber("temperature", options.temperature, 0, 100, 0.8),
            topK: optionalInteger("topK", options.topK, 0, 2 ** 30, 40),
            topP: optionalNumber("topP", options.topP, 0, 1, 0.95),
            minP: optionalNumber("minP", options.minP, 0, 1, 0.05),
            repeatPenalty: optionalNumber("repeatPenalty", options.repeatPenalty, 0.01, 100, 1),
            frequencyPenalty: optionalNumber("frequencyPenalty", options.frequencyPenalty, -100, 100, 0),
            presencePenalty: optionalNumber("presencePenalty", options.presencePenalty, -100, 100, 0),
            penaltyLastN: repeatLastN,
            seed: optionalInteger("seed", options.seed, 0, 0xffffffff, Math.floor(Math.random() * 0xffffffff)),
        },
        penaltyLastN: repeatLastN,
    };
}
