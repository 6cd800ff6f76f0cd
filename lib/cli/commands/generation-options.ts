/**
 * Model and sampling flags shared by `ask` and `chat`.
 *
 * @internal
 * @module
 */
import { Command, Option } from "commander";
import { loadModel, type Model } from "../../Model.js";
import type { PromptOptions } from "../../Session.js";
import { ProgressBar } from "../progress.js";
import { parseInteger, parseNumber } from "../shared.js";

export interface ModelFlags {
    model: string;
    mmproj?: string;
    contextSize?: number;
    threads?: number;
    gpu: boolean;
    quiet?: boolean;
}

export interface SamplingFlags {
    temperature?: number;
    topK?: number;
    topP?: number;
    minP?: number;
    repeatPenalty?: number;
    seed?: number;
    maxTokens?: number;
    stop?: string[];
}

export function addModelFlags(command: Command): Command {
    return command
        .requiredOption("-m, --model <file>", "text model GGUF")
        .option("--mmproj <file>", "vision projector GGUF (needed for images and videos)")
        .option("-c, --context-size <tokens>", "context window in tokens", parseInteger("--context-size", 16))
        .option("-t, --threads <n>", "CPU threads (default: all cores)", parseInteger("--threads", 1, 1024))
        .option("--no-gpu", "keep everything on the CPU even when a GPU backend is available")
        .option("-q, --quiet", "no progress output on stderr");
}

export function addSamplingFlags(command: Command): Command {
    return command
        .option("--temperature <t>", "sampling temperature; 0 = greedy (default 0.8)", parseNumber("--temperature", 0, 100))
        .option("--top-k <k>", "top-k sampling (default 40; 0 = off)", parseInteger("--top-k", 0))
        .option("--top-p <p>", "top-p sampling (default 0.95; 1 = off)", parseNumber("--top-p", 0, 1))
        .option("--min-p <p>", "min-p sampling (default 0.05; 0 = off)", parseNumber("--min-p", 0, 1))
        .option("--repeat-penalty <x>", "repetition penalty (default 1 = off)", parseNumber("--repeat-penalty", 0.01, 100))
        .option("--seed <n>", "random seed for sampling", parseInteger("--seed", 0, 0xffffffff))
        .option("-n, --max-tokens <n>", "maximum tokens to generate (default 1024)", parseInteger("--max-tokens", 0))
        .addOption(new Option("--stop <text...>", "stop strings"));
}

export async function loadModelWithProgress(flags: ModelFlags, signal?: AbortSignal): Promise<Model> {
    const bar = new ProgressBar("loading model", !flags.quiet && process.stderr.isTTY === true);
    try {
        return await loadModel({
            model: flags.model,
            mmproj: flags.mmproj,
            contextSize: flags.contextSize,
            threads: flags.threads,
            gpu: flags.gpu ? "auto" : false,
            signal,
            onProgress: ({ phase, fraction }) => bar.update(fraction, phase === "mmproj" ? "vision projector" : "language model"),
        });
    } finally {
        bar.done();
    }
}

export function promptOptionsFrom(flags: SamplingFlags): PromptOptions {
    const options: PromptOptions = {};
    if (flags.temperature !== undefined) options.temperature = flags.temperature;
    if (flags.topK !== undefined) options.topK = flags.topK;
    if (flags.topP !== undefined) options.topP = flags.topP;
    if (flags.minP !== undefined) options.minP = flags.minP;
    if (flags.repeatPenalty !== undefined) options.repeatPenalty = flags.repeatPenalty;
    if (flags.seed !== undefined) options.seed = flags.seed;
    if (flags.maxTokens !== undefined) options.maxTokens = flags.maxTokens;
    if (flags.stop !== undefined) options.stop = flags.stop;
    return options;
}

/** Collects a repeatable option into an array. */
export function collect(value: string, previous: string[] = []): string[] {
    return [...previous, value];
}
