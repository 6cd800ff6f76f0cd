/**
 * Model and sampling flags shared by `ask` and `chat`.
 *
 * @internal
 * @module
 */
import { Command, Option } from "commander";
import type { PruneOption } from "../../chat/content.js";
import { Video } from "../../decode/Video.js";
import type { GpuOption } from "../../devices.js";
import { InvalidOptionError } from "../../errors.js";
import { familyOf } from "../../family/index.js";
import type { VisionInfo } from "../../encode/vision.js";
import { DEFAULT_MODEL_REFERENCE } from "../../hub/reference.js";
import { loadModel, type Model } from "../../Model.js";
import { PullReporter } from "../pull-progress.js";
import type { PromptOptions } from "../../Session.js";
import { ProgressBar } from "../progress.js";
import { parseInteger, parseNumber } from "../shared.js";

export interface ModelFlags {
    /** A GGUF path or an hf: reference; commander fills in the default model. */
    model: string;
    mmproj?: string;
    offline?: boolean;
    contextSize?: number;
    threads?: number;
    /** `--gpu <where>` (a string), `--no-gpu` (false) or neither (undefined: auto). */
    gpu?: string | false;
    quiet?: boolean;
}

/** `--gpu <where>` and `--no-gpu`, shared by every command that loads a model or projector. */
export function addGpuFlags(command: Command): Command {
    return command
        .option("--gpu <where>", "auto (default), cpu, cuda, metal, vulkan, vulkan:1 (a backend's second device) or a GPU device index (see vidllama info)")
        .option("--no-gpu", "keep everything on the CPU (same as --gpu cpu)");
}

/** The `gpu` option of loadModel/loadVision for the flags: a digit string is a device index. */
export function gpuOptionOf(flag: string | false | undefined): GpuOption {
    if (flag === undefined) return "auto";
    if (flag === false) return false;
    return /^\d+$/.test(flag) ? Number(flag) : (flag as GpuOption);
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
    return addGpuFlags(command)
        .option("-m, --model <file|hf:ref>", "text model GGUF, or a hub reference hf:<owner>/<repo>[@<revision>][:<type>] (pulled and cached)", DEFAULT_MODEL_REFERENCE)
        .option("--mmproj <file|hf:ref>", "vision projector GGUF (needed for images and videos; an hf: model brings its own)")
        .option("--offline", "hf: references from the cache only, no network (also HF_HUB_OFFLINE=1)")
        .option("-c, --context-size <tokens>", "context window in tokens", parseInteger("--context-size", 16))
        .option("-t, --threads <n>", "CPU threads (default: the physical cores)", parseInteger("--threads", 1, 1024))
        .option("-q, --quiet", "no progress output on stderr");
}

export function addSamplingFlags(command: Command, defaults: { maxTokens?: number } = {}): Command {
    return command
        .option("--temperature <t>", "sampling temperature; 0 = greedy (default 0.8)", parseNumber("--temperature", 0, 100))
        .option("--top-k <k>", "top-k sampling (default 40; 0 = off)", parseInteger("--top-k", 0))
        .option("--top-p <p>", "top-p sampling (default 0.95; 1 = off)", parseNumber("--top-p", 0, 1))
        .option("--min-p <p>", "min-p sampling (default 0.05; 0 = off)", parseNumber("--min-p", 0, 1))
        .option("--repeat-penalty <x>", "repetition penalty (default 1 = off)", parseNumber("--repeat-penalty", 0.01, 100))
        .option("--seed <n>", "random seed for sampling", parseInteger("--seed", 0, 0xffffffff))
        .option("-n, --max-tokens <n>", `maximum tokens to generate (default ${defaults.maxTokens ?? 1024})`, parseInteger("--max-tokens", 0))
        .addOption(new Option("--stop <text...>", "stop strings"));
}

export async function loadModelWithProgress(flags: ModelFlags, signal?: AbortSignal): Promise<Model> {
    const bar = new ProgressBar("loading model", !flags.quiet && process.stderr.isTTY === true);
    const pull = new PullReporter({ quiet: flags.quiet });
    try {
        return await loadModel({
            model: flags.model,
            mmproj: flags.mmproj,
            ...(flags.offline ? { hub: { offline: true } } : {}),
            contextSize: flags.contextSize,
            threads: flags.threads,
            gpu: gpuOptionOf(flags.gpu),
            signal,
            onProgress: ({ phase, fraction, pull: p }) => {
                if (p) pull.report(p);
                else bar.update(fraction, phase === "mmproj" ? "vision projector" : "language model");
            },
        });
    } finally {
        pull.done();
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

/** Video sampling and pruning flags shared by `ask` and `embed`. */
export interface VideoFlags {
    video: string[];
    fps?: number;
    maxFrames?: number;
    frames?: number;
    start?: number;
    end?: number;
    pruneThreshold?: number;
    /** --prune / --no-prune; undefined: the model family's default (VideoLLaMA3 on, Video-LLaVA off). */
    prune?: boolean;
    /** --encode-changed-only (implies --prune). */
    encodeChangedOnly?: boolean;
    ffmpeg?: string;
}

export function addVideoFlags(command: Command, what: string): Command {
    return command
        .option("--video <file>", `${what} (repeatable; needs ffmpeg)`, collect, [])
        .option("--fps <n>", "frames sampled per second of video (default: the projector's: VideoLLaMA3 1)", parseNumber("--fps", 0.001, 1000))
        .option("--max-frames <n>", "at most this many frames per video, evenly subsampled (default: the projector's: VideoLLaMA3 180)", parseInteger("--max-frames", 1, 100000))
        .option("--frames <n>", "exactly this many frames, evenly spread over the video (default for Video-LLaVA: 8)", parseInteger("--frames", 1, 10000))
        .option("--start <seconds>", "start of the video range", parseNumber("--start", 0, 1e9))
        .option("--end <seconds>", "end of the video range", parseNumber("--end", 0, 1e9))
        .option("--prune-threshold <x>", "Differential Frame Pruning threshold (default: the projector's, 0.1)", parseNumber("--prune-threshold", 0, 1e6))
        .option("--prune", "Differential Frame Pruning of video frames (default: on for VideoLLaMA3, off for Video-LLaVA)")
        .option("--no-prune", "keep every visual token of every frame")
        .option("--encode-changed-only", ENCODE_CHANGED_ONLY_HELP)
        .option("--ffmpeg <path>", "the ffmpeg executable to use (else $VIDLLAMA_FFMPEG, ffmpeg-static, PATH)");
}

/**
 * Opens the --video sources with the flags' sampling (defaults from the projector) and appends them to `opened`,
 * which the caller closes: also the ones opened before a later source fails.
 */
export async function openVideos(flags: VideoFlags, vision: VisionInfo | undefined, signal: AbortSignal, opened: Video[]): Promise<void> {
    for (const source of flags.video) {
        opened.push(
            await Video.open(source, {
                ...videoSamplingFrom(flags, vision),
                ...(flags.start !== undefined ? { start: flags.start } : {}),
                ...(flags.end !== undefined ? { end: flags.end } : {}),
                ...(flags.ffmpeg ? { ffmpegPath: flags.ffmpeg } : {}),
                signal,
            }),
        );
    }
}

/** The frame sampling the flags ask for: --frames, or --fps/--max-frames, else the model family's default. */
export function videoSamplingFrom(flags: VideoFlags, vision: VisionInfo | undefined): { frames: number } | { fps: number; maxFrames: number } {
    if (flags.frames !== undefined) {
        if (flags.fps !== undefined || flags.maxFrames !== undefined) throw new InvalidOptionError("--frames", "--frames alone, or --fps/--max-frames", flags.frames, "--frames replaces --fps and --max-frames; give one or the other");
        return { frames: flags.frames };
    }
    if (flags.fps === undefined && flags.maxFrames === undefined && vision) return familyOf(vision).videoSampling(vision);
    return { fps: flags.fps ?? (vision?.videoFps || 1), maxFrames: flags.maxFrames ?? (vision?.videoMaxFrames || 180) };
}

/** Help of --encode-changed-only (ask, chat and stream). */
export const ENCODE_CHANGED_ONLY_HELP =
    "VideoLLaMA3: the vision encoder computes only the blocks pruning keeps, reusing the other blocks' states from earlier frames (faster, approximate; implies --prune)";

/**
 * The prune setting the flags ask for (undefined: the model family's default); --prune-threshold and
 * --encode-changed-only imply --prune.
 */
export function pruneFrom(flags: Pick<VideoFlags, "prune" | "pruneThreshold" | "encodeChangedOnly">): PruneOption | undefined {
    if (flags.prune === false) {
        if (flags.pruneThreshold !== undefined) throw new InvalidOptionError("--prune-threshold", "no --no-prune", flags.pruneThreshold, "--prune-threshold and --no-prune cannot be used together");
        if (flags.encodeChangedOnly) throw new InvalidOptionError("--encode-changed-only", "no --no-prune", true, "--encode-changed-only and --no-prune cannot be used together");
        return false;
    }
    if (flags.pruneThreshold !== undefined || flags.encodeChangedOnly) {
        return { ...(flags.pruneThreshold !== undefined ? { threshold: flags.pruneThreshold } : {}), ...(flags.encodeChangedOnly ? { encodeChangedOnly: true } : {}) };
    }
    return flags.prune;
}
