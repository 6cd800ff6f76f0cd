/**
 * Option types and validation for the video decoding layer ({@link Video}, {@link probeVideo}, {@link resolveFfmpeg}).
 *
 * Defaults follow the VideoLLaMA3 reference loader as used by its README and evaluation scripts: 1 frame per second,
 * at most 180 frames.
 *
 * @module
 */
import type { Readable } from "node:stream";
import { InvalidOptionError } from "../errors.js";
import {
    checkOptionsObject,
    optionalFunction,
    optionalInteger,
    optionalNumber,
    optionalSignal,
    optionalString,
} from "../validate.js";

/** Sampling rate used when `fps` is not given: 1 frame per second (the reference's `fps=1`). */
export const DEFAULT_FPS = 1;
/** Frame budget used when `maxFrames` is not given: 180 (the reference's `--max_frames 180`). */
export const DEFAULT_MAX_FRAMES = 180;
/** Milliseconds without any sign of progress from an ffmpeg/ffprobe child before it is considered stalled: 30 s. */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/**
 * Where a video comes from:
 * - a file path (`string`), or a `file:` URL;
 * - an `http:`/`https:` URL, as a string or a `URL` object (read by ffmpeg itself);
 * - the bytes of a whole file, as a `Buffer`/`Uint8Array`, or a Node `Readable` stream of them: written to a
 *   temporary file first (removed by {@link Video.close}), because probing, counting and decoding each read the input,
 *   and because ffmpeg can only seek in a file (MP4 files with their index at the end, `-ss`).
 */
export type VideoSource = string | URL | Uint8Array | Readable;

/** Progress of one {@link Video.frames} pass. */
export interface VideoProgress {
    /**
     * Frames that ffmpeg's `fps` filter has produced so far in this pass (before `maxFrames` subsampling; in the
     * short-range mode, frames selected so far).
     */
    framesDecoded: number;
    /** How many such frames the pass will produce in total, when known (exact after a counting pass, else estimated). */
    framesTotal?: number;
}

/** Options shared by everything that runs ffmpeg. */
export interface FfmpegOptions {
    /**
     * Path to the ffmpeg executable (or to a directory that contains it). Tried first; when it does not work the
     * search continues with `VIDLLAMA_FFMPEG`, `ffmpeg-static` and `PATH`, and {@link Video.warnings} says so.
     */
    ffmpegPath?: string;
}

/** Options of {@link Video.open}. */
export interface VideoOpenOptions extends FfmpegOptions {
    /** Frames sampled per second of video, through ffmpeg's `fps=fps=F:round=down` filter. Default 1. Range (0, 1000]. */
    fps?: number;
    /**
     * Most frames one {@link Video.frames} pass yields. When the `fps` filter produces `n` > maxFrames frames, the
     * reference's `np.linspace(0, n-1, maxFrames, dtype=int)` picks which. Default 180. Integer >= 1.
     */
    maxFrames?: number;
    /**
     * Exactly this many frames, spread evenly over the video (or the `start`..`end` range): of its N frames, frame
     * `floor(i·N/frames)` for i = 0..frames−1 — Video-LLaVA's sampling (the HF examples' `np.arange(0, N, N/8)`).
     * Replaces `fps` and `maxFrames`. Needs the video's frame count and rate (ffprobe). Integer 1..10000.
     */
    frames?: number;
    /** Start of the range to sample, in seconds on the stream's timeline (the timeline of the frame timestamps). */
    start?: number;
    /** End of the range to sample, in seconds on the stream's timeline; must be greater than `start`. */
    end?: number;
    /** Aborts opening (probing) and, unless `frames()` gets its own signal, every `frames()` pass. */
    signal?: AbortSignal;
    /** Called after each frame ffmpeg delivers during a {@link Video.frames} pass. Exceptions propagate to the loop. */
    onProgress?: (progress: VideoProgress) => void;
    /**
     * Upper bound on width × height of the delivered frames. Larger videos are scaled down (aspect ratio kept, ffmpeg's
     * default bicubic scaler) before they leave ffmpeg. Default: no limit (the reference does not pre-scale).
     */
    maxPixels?: number;
    /**
     * Milliseconds an ffmpeg/ffprobe child may go without producing output or progress reports while we wait for it
     * before it is killed (the frames decoded so far are kept, with a warning). Default 30000. Range [100, 3600000].
     */
    stallTimeout?: number;
}

/** Options of {@link Video.frames}. */
export interface VideoFramesOptions {
    /** Aborts this pass: the ffmpeg child is killed and the iterator rejects with `signal.reason`. */
    signal?: AbortSignal;
}

/** Options of {@link probeVideo}. */
export interface ProbeOptions extends FfmpegOptions {
    /** Aborts the probe (the child is killed; rejects with `signal.reason`). */
    signal?: AbortSignal;
    /** Milliseconds the probe may go without output before it is killed. Default 30000. */
    stallTimeout?: number;
}

/** Options of {@link Video.fromFrames}. */
export interface FromFramesOptions {
    /** Frame rate used to invent timestamps (`index / fps`) for frames that have none. Default 1. */
    fps?: number;
    /**
     * Most frames a pass yields. An array longer than this is subsampled with the reference's
     * `np.linspace(0, n-1, maxFrames, dtype=int)`; any other iterable that yields more frames is an error (it cannot be
     * subsampled without being held in memory). Default 180.
     */
    maxFrames?: number;
    /** Aborts reading an async iterable of frames. */
    signal?: AbortSignal;
}

/** @internal Validated {@link VideoOpenOptions}. */
export interface ResolvedOpenOptions {
    fps: number;
    maxFrames: number;
    /** Evenly spread frame count (replaces fps/maxFrames), when given. */
    frames: number | undefined;
    start: number | undefined;
    end: number | undefined;
    ffmpegPath: string | undefined;
    signal: AbortSignal | undefined;
    onProgress: ((progress: VideoProgress) => void) | undefined;
    maxPixels: number | undefined;
    stallTimeout: number;
}

const OPEN_KEYS = ["fps", "maxFrames", "frames", "start", "end", "ffmpegPath", "signal", "onProgress", "maxPixels", "stallTimeout"] as const;

/** @internal Validates the options of {@link Video.open}; throws {@link InvalidOptionError}. */
export function resolveOpenOptions(options: VideoOpenOptions | undefined): ResolvedOpenOptions {
    const o = checkOptionsObject(options, OPEN_KEYS) as VideoOpenOptions;
    const fps = optionalPositive("fps", o.fps, 1000, DEFAULT_FPS);
    const maxFrames = optionalInteger("maxFrames", o.maxFrames, 1, 1_000_000, DEFAULT_MAX_FRAMES);
    const frames = optionalInteger("frames", o.frames, 1, 10_000);
    if (frames !== undefined && (o.fps !== undefined || o.maxFrames !== undefined)) {
        throw new InvalidOptionError("frames", "frames alone, or fps and maxFrames", frames, "frames replaces fps and maxFrames; give one or the other");
    }
    const start = optionalNumber("start", o.start, 0, 1e9);
    const end = optionalNumber("end", o.end, 0, 1e9);
    if (start !== undefined && end !== undefined && end <= start) {
        throw new InvalidOptionError("end", `a number greater than start (${start})`, end);
    }
    const ffmpegPath = optionalString("ffmpegPath", o.ffmpegPath);
    if (ffmpegPath !== undefined && ffmpegPath.length === 0) throw new InvalidOptionError("ffmpegPath", "a non-empty string", ffmpegPath);
    return {
        fps,
        maxFrames,
        frames,
        start,
        end,
        ffmpegPath,
        signal: optionalSignal("signal", o.signal),
        onProgress: optionalFunction<(p: VideoProgress) => void>("onProgress", o.onProgress),
        maxPixels: optionalInteger("maxPixels", o.maxPixels, 1, Number.MAX_SAFE_INTEGER),
        stallTimeout: optionalInteger("stallTimeout", o.stallTimeout, 100, 3_600_000, DEFAULT_STALL_TIMEOUT_MS),
    };
}

/** @internal Validates the options of {@link Video.frames}. */
export function resolveFramesOptions(options: VideoFramesOptions | undefined): { signal: AbortSignal | undefined } {
    const o = checkOptionsObject(options, ["signal"]) as VideoFramesOptions;
    return { signal: optionalSignal("signal", o.signal) };
}

/** @internal Validates the options of {@link probeVideo}. */
export function resolveProbeOptions(options: ProbeOptions | undefined): { ffmpegPath: string | undefined; signal: AbortSignal | undefined; stallTimeout: number } {
    const o = checkOptionsObject(options, ["ffmpegPath", "signal", "stallTimeout"]) as ProbeOptions;
    const ffmpegPath = optionalString("ffmpegPath", o.ffmpegPath);
    if (ffmpegPath !== undefined && ffmpegPath.length === 0) throw new InvalidOptionError("ffmpegPath", "a non-empty string", ffmpegPath);
    return {
        ffmpegPath,
        signal: optionalSignal("signal", o.signal),
        stallTimeout: optionalInteger("stallTimeout", o.stallTimeout, 100, 3_600_000, DEFAULT_STALL_TIMEOUT_MS),
    };
}

/** @internal Validates the options of {@link Video.fromFrames}. */
export function resolveFromFramesOptions(options: FromFramesOptions | undefined): { fps: number; maxFrames: number; signal: AbortSignal | undefined } {
    const o = checkOptionsObject(options, ["fps", "maxFrames", "signal"]) as FromFramesOptions;
    return {
        fps: optionalPositive("fps", o.fps, 1000, DEFAULT_FPS),
        maxFrames: optionalInteger("maxFrames", o.maxFrames, 1, 1_000_000, DEFAULT_MAX_FRAMES),
        signal: optionalSignal("signal", o.signal),
    };
}

/** A finite number in (0, max]. */
function optionalPositive(option: string, value: unknown, max: number, fallback: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > max) {
        throw new InvalidOptionError(option, `a number greater than 0 and at most ${max}`, value);
    }
    return value;
}
