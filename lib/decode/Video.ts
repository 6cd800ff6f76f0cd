/**
 * {@link Video}: frames of a video file, sampled exactly like the VideoLLaMA3 reference loader, streamed one at a time
 * through ffmpeg (or supplied by the caller with {@link Video.fromFrames}).
 *
 * Sampling (reference `load_video`):
 * - ffmpeg `[-ss S] [-t T] -i … -vf fps=fps=F:round=down -f rawvideo -pix_fmt rgb24`: output frame k is the last
 *   decoded frame whose timestamp rounds down to k/F; its timestamp is reported as `start + k/F` (numpy `arange`).
 * - When that yields n > maxFrames frames, frames `np.linspace(0, n-1, maxFrames, dtype=int)` are kept. n must be
 *   known before the first frame after frame 0 is kept or skipped, and frames are never buffered, so n is predicted:
 *   from a demux-only ffprobe packet scan (timestamps only, no decoding: seconds for hours of video) simulated
 *   through ffmpeg's timestamp shift, `-ss`/`-t` trimming and the fps filter's round-down slots; without ffprobe (or
 *   packet timestamps) by a counting pass that runs the very same ffmpeg command and counts bytes. The count runs
 *   concurrently with decoding, and only when subsampling is possible (estimate within 2 frames of maxFrames, or
 *   unknown, or ≤ 1). The decoded count is verified at the end; if it differs (ffmpeg seeks imprecisely in some
 *   containers, e.g. MPEG-TS), a warning says so, and if the stream ended early the last decoded frame (the
 *   reference's index n−1) is still delivered.
 * - `start`/`end` become input `-ss`/`-t` like the reference (whose `-ss` is relative to the container start; here
 *   both are on the stream's timeline, which differs only for files whose timeline does not start at 0). When both are
 *   given and `end − start < 1`, the reference switches to decord frame indices; so do we ({@link decordFrameIndices}),
 *   finding frame i by its timestamp `start_time + i/avg_fps` (exact for constant frame rate) with a `select` filter.
 * - Inputs are always files or URLs: bytes and streams are written to a temporary file first (see
 *   {@link materializeSource} for why not ffmpeg's stdin).
 *
 * Deviations from the reference, on purpose: rotated videos are delivered upright with their real size (the reference
 * reshapes auto-rotated frames with the stored size and scrambles them); a clip shorter than one sampling interval
 * yields its first frame with a warning (the reference gets no frame); `maxPixels` can pre-scale.
 *
 * @module
 */
import { rm } from "node:fs/promises";
import { resolve as resolvePath } from "node:path";
import { Readable } from "node:stream";
import { DisposedError, InvalidOptionError, MediaDecodeError } from "../errors.js";
import { throwIfAborted } from "../validate.js";
import {
    describeExit,
    formatSeconds,
    hasFpsMode,
    lastLines,
    resolveFfmpeg,
    resolveFfprobe,
    runTool,
    secondsStringToMicros,
    ToolProcess,
    type FfmpegSource,
} from "./ffmpeg.js";
import {
    resolveFramesOptions,
    resolveFromFramesOptions,
    resolveOpenOptions,
    type FromFramesOptions,
    type ResolvedOpenOptions,
    type VideoFramesOptions,
    type VideoOpenOptions,
    type VideoSource,
} from "./options.js";
import {
    checkInputExists,
    decordFrameIndices,
    ffmpegRate,
    inputTarget,
    linspaceIndices,
    materializeSource,
    normalizeSource,
    predictFpsFrameCount,
    probeInput,
    publicProbe,
    rotationFilters,
    scanPackets,
    type DecodeInput,
    type ProbeDetails,
    type Tools,
    type VideoProbe,
} from "./probe.js";

/** One frame delivered by {@link Video.frames}. */
export interface RgbFrame {
    /** 0-based position of this frame in the pass. */
    index: number;
    /**
     * Position in the sequence ffmpeg's fps filter produced, before `maxFrames` subsampling (equals `index` when
     * nothing was dropped). In the short-range (decord) mode and for {@link Video.fromFrames}, the source frame index.
     */
    sampleIndex: number;
    /** Seconds on the stream's timeline: `start + k/fps` as the reference computes it (`start` = stream start time or the requested start). */
    timestamp: number;
    /** Width in pixels. */
    width: number;
    /** Height in pixels. */
    height: number;
    /** Pixels, row-major RGB24: `width * height * 3` bytes. */
    data: Uint8Array;
}

/** What {@link Video.frames} will deliver, known before decoding. */
export interface VideoPlan {
    /** Number of sampled frames (after `maxFrames` subsampling). */
    count: number;
    /** Timestamp of each sampled frame, in seconds on the stream's timeline. */
    timestamps: number[];
    /** How the count was obtained: ffprobe's packet timestamps, a counting decode pass, or given frames. */
    from: "scan" | "decode" | "frames" | "range";
}

/** A frame the caller decoded (e.g. with WebCodecs), for {@link Video.fromFrames}. */
export interface InputFrame {
    /** Pixels, row-major, 3 (`"rgb"`) or 4 (`"rgba"`, alpha ignored) bytes per pixel. */
    data: Uint8Array | Uint8ClampedArray;
    /** Width in pixels (integer >= 1); the same for every frame. */
    width: number;
    /** Height in pixels (integer >= 1); the same for every frame. */
    height: number;
    /** Seconds; default `index / fps`. */
    timestamp?: number;
    /** Pixel layout; default inferred from the data length. */
    format?: "rgb" | "rgba";
}

/** The ffmpeg a {@link Video} uses. */
export interface VideoFfmpegInfo {
    /** Absolute path of the executable. */
    path: string;
    /** Where it was found. */
    source: FfmpegSource;
    /** Its version string. */
    version: string;
}

type FpsPlan = { mode: "fps"; rangeStart: number; ss: string | undefined; t: string | undefined; estimate: number | undefined };
type IdsPlan = { mode: "ids"; ids: number[]; timestamps: number[]; ss: string | undefined; t: string; select: string };

interface FileBacking {
    kind: "file";
    input: DecodeInput;
    tools: Tools;
    probe: ProbeDetails;
    options: ResolvedOpenOptions;
    plan: FpsPlan | IdsPlan;
    outWidth: number;
    outHeight: number;
}

interface FramesBacking {
    kind: "frames";
    fps: number;
    maxFrames: number;
    signal: AbortSignal | undefined;
    /** Validated frames of an array source (already subsampled to maxFrames), with their source indices. */
    array: { frame: InputFrame; sourceIndex: number }[] | undefined;
    /** A one-shot iterator (first element already taken). */
    iterator: AsyncIterator<InputFrame> | Iterator<InputFrame> | undefined;
    first: InputFrame | undefined;
    consumed: boolean;
}

const CONSTRUCT = Symbol("Video");
const USE_PROGRESS_FD = process.platform !== "win32";

/** Removes spooled temporary files of Videos that were never closed. */
const tempCleanup = new FinalizationRegistry<string>((dir) => {
    void rm(dir, { recursive: true, force: true }).catch(() => {});
});

/**
 * A video opened for sampling. Create with {@link Video.open} (decoded by ffmpeg) or {@link Video.fromFrames}.
 * Iterate {@link Video.frames} (any number of times; each pass runs its own ffmpeg), then {@link Video.close}
 * (or `await using`).
 */
export class Video implements AsyncDisposable {
    /** A description of the source: a path, a URL, `"<Buffer 1234 bytes>"`, `"<Readable stream>"`, `"<frames>"`. */
    readonly source: string;
    /** Duration in seconds (the container's); `NaN` when unknown (e.g. `fromFrames` with a non-array iterable). */
    readonly duration: number;
    /** Width of the delivered frames (upright, after `maxPixels`). */
    readonly width: number;
    /** Height of the delivered frames (upright, after `maxPixels`). */
    readonly height: number;
    /** The source's average frame rate (frames per second); for `fromFrames`, the `fps` option. */
    readonly fps: number;
    /** Number of frames in the source (container count, else estimated from duration × fps); `undefined` if unknown. */
    readonly frameCount: number | undefined;
    /** The ffmpeg in use and where it was found; `undefined` for {@link Video.fromFrames}. */
    readonly ffmpeg: VideoFfmpegInfo | undefined;
    /** What ffprobe/ffmpeg reported about the stream; `undefined` for {@link Video.fromFrames}. */
    readonly probe: VideoProbe | undefined;
    /** Problems that did not stop decoding (corrupt data, fallbacks, count mismatches), appended by each pass. */
    readonly warnings: string[] = [];

    readonly #backing: FileBacking | FramesBacking;
    readonly #children = new Set<ToolProcess>();
    readonly #tempDir: string | undefined;
    #closed = false;
    /** The exact count of fps-filter outputs, once {@link plan} has established it (shared with {@link frames}). */
    #counted: { n: number; how: "scan" | "decode" } | undefined;
    #planned: Promise<VideoPlan> | undefined;
    /** How to open this video again: its path or URL and the options it was opened with (none for bytes/streams/frames). */
    #reopen: { source: string | URL; options: VideoOpenOptions } | undefined;

    /** Use {@link Video.open} or {@link Video.fromFrames}. */
    private constructor(
        token: symbol,
        init: {
            source: string;
            duration: number;
            width: number;
            height: number;
            fps: number;
            frameCount: number | undefined;
            ffmpeg: VideoFfmpegInfo | undefined;
            probe: VideoProbe | undefined;
            backing: FileBacking | FramesBacking;
            tempDir?: string;
            warnings?: string[];
        },
    ) {
        if (token !== CONSTRUCT) throw new TypeError("Use Video.open() or Video.fromFrames()");
        this.source = init.source;
        this.duration = init.duration;
        this.width = init.width;
        this.height = init.height;
        this.fps = init.fps;
        this.frameCount = init.frameCount;
        this.ffmpeg = init.ffmpeg;
        this.probe = init.probe;
        this.#backing = init.backing;
        this.#tempDir = init.tempDir;
        if (init.warnings) this.warnings.push(...init.warnings);
        if (init.tempDir) tempCleanup.register(this, init.tempDir, this);
    }

    /**
     * Opens a video: finds ffmpeg, probes the source and plans the sampling. Nothing is decoded yet.
     *
     * @param source a file path, `file:`/`http(s):` URL (string or `URL`), the file's bytes, or a `Readable` of them.
     * @throws {InvalidOptionError} for invalid options or a range outside the video.
     * @throws {MediaDecodeError} when the file is missing (checked before anything is spawned) or unreadable.
     * @throws {FfmpegNotFoundError} when no working ffmpeg is found.
     */
    static async open(source: VideoSource, options?: VideoOpenOptions): Promise<Video> {
        const o = resolveOpenOptions(options);
        throwIfAborted(o.signal);
        const spec = source instanceof Readable ? source : normalizeSource(source);
        if (!(spec instanceof Readable)) await checkInputExists(spec);
        const ffmpeg = await resolveFfmpeg({ ffmpegPath: o.ffmpegPath, signal: o.signal });
        const ffprobe = await resolveFfprobe(ffmpeg);
        const warnings: string[] = [];
        if (o.ffmpegPath !== undefined && ffmpeg.source !== "option") {
            warnings.push(`ffmpegPath was not usable (${ffmpeg.rejected[0]}); using ${ffmpeg.path} (${ffmpeg.source})`);
        }
        const { input, tempDir } = await materializeSource(spec, o.signal);
        try {
            const tools: Tools = { ffmpeg, ffprobe };
            const probe = await probeInput(input, tools, { signal: o.signal, stallTimeout: o.stallTimeout });
            const plan = makePlan(probe, o, warnings);
            const [outWidth, outHeight] = outputSize(probe.width, probe.height, o.maxPixels);
            if (outWidth !== probe.width || outHeight !== probe.height) {
                warnings.push(`frames are scaled from ${probe.width}x${probe.height} to ${outWidth}x${outHeight} (maxPixels=${o.maxPixels})`);
            }
            const video = new Video(CONSTRUCT, {
                source: input.description,
                duration: probe.duration,
                width: outWidth,
                height: outHeight,
                fps: probe.fps,
                frameCount: probe.frameCount,
                ffmpeg: { path: ffmpeg.path, source: ffmpeg.source, version: ffmpeg.version },
                probe: publicProbe(probe),
                backing: { kind: "file", input, tools, probe, options: o, plan, outWidth, outHeight },
                tempDir,
                warnings,
            });
            if (!(spec instanceof Readable) && !tempDir && (typeof source === "string" || source instanceof URL)) {
                const { signal: _signal, onProgress: _onProgress, ...rest } = options ?? {};
                // A relative path is resolved now, so that a later change of directory does not change the file.
                const again = typeof source === "string" && !/^[a-z][a-z0-9+.-]*:/i.test(source) ? resolvePath(source) : source;
                video.#reopen = { source: again, options: { ...rest, ...(o.ffmpegPath === undefined ? {} : { ffmpegPath: ffmpeg.path }) } };
            }
            return video;
        } catch (error) {
            if (tempDir) await rm(tempDir, { recursive: true, force: true }).catch(() => {});
            throw error;
        }
    }

    /**
     * Wraps frames the caller already decoded. An array is validated up front (and subsampled with the reference's
     * linspace when longer than `maxFrames`) and can be iterated any number of times; any other (async) iterable is
     * read lazily, once, and validated frame by frame (its first frame is read now to learn the size).
     *
     * @throws {InvalidOptionError} when a frame is malformed (size, data length, format, timestamp) or sizes differ.
     * @throws {MediaDecodeError} when there is no frame.
     */
    static async fromFrames(frames: Iterable<InputFrame> | AsyncIterable<InputFrame>, options?: FromFramesOptions): Promise<Video> {
        const o = resolveFromFramesOptions(options);
        throwIfAborted(o.signal);
        if (Array.isArray(frames)) {
            if (frames.length === 0) throw new MediaDecodeError("<frames>", "no frames");
            const first = frames[0] as InputFrame;
            checkInputFrame(first, 0, undefined);
            frames.forEach((f: InputFrame, i: number) => checkInputFrame(f, i, first));
            const picks = frames.length > o.maxFrames ? linspaceIndices(frames.length, o.maxFrames) : frames.map((_, i) => i);
            const array = picks.map((i) => ({ frame: frames[i] as InputFrame, sourceIndex: i }));
            const t0 = first.timestamp ?? 0;
            const last = frames[frames.length - 1] as InputFrame;
            const tLast = last.timestamp ?? (frames.length - 1) / o.fps;
            return new Video(CONSTRUCT, {
                source: "<frames>",
                duration: tLast - t0 + 1 / o.fps,
                width: first.width,
                height: first.height,
                fps: o.fps,
                frameCount: frames.length,
                ffmpeg: undefined,
                probe: undefined,
                backing: { kind: "frames", fps: o.fps, maxFrames: o.maxFrames, signal: o.signal, array, iterator: undefined, first: undefined, consumed: false },
            });
        }
        let iterator: AsyncIterator<InputFrame> | Iterator<InputFrame>;
        if (frames && typeof (frames as AsyncIterable<InputFrame>)[Symbol.asyncIterator] === "function") {
            iterator = (frames as AsyncIterable<InputFrame>)[Symbol.asyncIterator]();
        } else if (frames && typeof (frames as Iterable<InputFrame>)[Symbol.iterator] === "function") {
            iterator = (frames as Iterable<InputFrame>)[Symbol.iterator]();
        } else {
            throw new InvalidOptionError("frames", "an array, iterable or async iterable of frames", frames);
        }
        const r = await iterator.next();
        if (r.done) throw new MediaDecodeError("<frames>", "no frames");
        checkInputFrame(r.value, 0, undefined);
        return new Video(CONSTRUCT, {
            source: "<frames>",
            duration: NaN,
            width: r.value.width,
            height: r.value.height,
            fps: o.fps,
            frameCount: undefined,
            ffmpeg: undefined,
            probe: undefined,
            backing: { kind: "frames", fps: o.fps, maxFrames: o.maxFrames, signal: o.signal, array: undefined, iterator, first: r.value, consumed: false },
        });
    }

    /**
     * Decodes and yields the sampled frames one at a time (RGB24). At most a couple of frames are read ahead of the
     * consumer. Leaving the loop early (`break`, an exception), aborting, or {@link close} kills and reaps the ffmpeg
     * child. A corrupt or truncated file yields what could be decoded and appends to {@link warnings}.
     *
     * @throws {MediaDecodeError} when no frame at all could be decoded.
     * @throws the signal's `reason` when aborted; {@link DisposedError} after {@link close}.
     */
    async *frames(options?: VideoFramesOptions): AsyncGenerator<RgbFrame, void, undefined> {
        const own = resolveFramesOptions(options).signal;
        const b = this.#backing;
        const base = b.kind === "file" ? b.options.signal : b.signal;
        const signal = own && base ? AbortSignal.any([own, base]) : (own ?? base);
        this.#checkAlive(signal);
        if (b.kind === "frames") {
            yield* this.#userFramesPass(b, signal);
        } else if (b.plan.mode === "ids") {
            yield* this.#idsPass(b, b.plan, signal);
        } else {
            yield* this.#fpsPass(b, b.plan, signal);
        }
    }

    /**
     * The number of sampled frames and their timestamps, worked out before decoding (ffprobe's packet timestamps,
     * else a counting pass of the same ffmpeg command). Prompts need it to lay out the video (timestamps, resize budget)
     * before its frames are decoded. Cached; {@link frames} then uses the same count. For {@link Video.fromFrames}
     * with a one-shot iterable, the frames are collected (at most `maxFrames`).
     */
    plan(options?: VideoFramesOptions): Promise<VideoPlan> {
        const signal = resolveFramesOptions(options).signal;
        this.#checkAlive(signal);
        if (!this.#planned) {
            const planned = this.#makePlan(signal);
            this.#planned = planned;
            planned.catch(() => {
                if (this.#planned === planned) this.#planned = undefined;
            });
        }
        return abortable(this.#planned, signal);
    }

    async #makePlan(signal: AbortSignal | undefined): Promise<VideoPlan> {
        const b = this.#backing;
        if (b.kind === "frames") {
            if (!b.array) {
                if (b.consumed) throw new MediaDecodeError("<frames>", "the frames iterable was already consumed by a previous frames() pass");
                const collected: { frame: InputFrame; sourceIndex: number }[] = [{ frame: b.first!, sourceIndex: 0 }];
                for (;;) {
                    const r = await abortable(Promise.resolve(b.iterator!.next()), signal);
                    if (r.done) break;
                    checkInputFrame(r.value, collected.length, b.first);
                    if (collected.length >= b.maxFrames) {
                        throw new InvalidOptionError("frames", `at most maxFrames=${b.maxFrames} frames (pass an array to have longer sequences subsampled)`, `more than ${b.maxFrames} frames`);
                    }
                    collected.push({ frame: r.value, sourceIndex: collected.length });
                }
                b.array = collected;
                b.iterator = undefined;
            }
            return {
                count: b.array.length,
                timestamps: b.array.map(({ frame, sourceIndex }) => frame.timestamp ?? sourceIndex / b.fps),
                from: "frames",
            };
        }
        if (b.plan.mode === "ids") return { count: b.plan.ids.length, timestamps: b.plan.timestamps.slice(), from: "range" };
        const plan = b.plan;
        const pass = new AbortController();
        const passSignal = signal ? AbortSignal.any([signal, pass.signal]) : pass.signal;
        let counted: { n: number; how: "scan" | "decode" } | undefined;
        try {
            counted = await this.#countFrames(b, plan, b.outWidth * b.outHeight * 3, passSignal);
        } finally {
            pass.abort();
        }
        this.#checkAlive(signal);
        if (!counted) throw new MediaDecodeError(b.input.description, "could not count the sampled frames (ffmpeg made no progress)");
        this.#counted = counted;
        const timestamp = arangeTimestamps(plan.rangeStart, b.options.fps);
        if (counted.n === 0) return { count: 1, timestamps: [plan.rangeStart], from: counted.how }; // see #firstFramePass
        const indices = counted.n > b.options.maxFrames ? linspaceIndices(counted.n, b.options.maxFrames) : Array.from({ length: counted.n }, (_, k) => k);
        return { count: indices.length, timestamps: indices.map(timestamp), from: counted.how };
    }

    /** True after {@link close}. */
    get closed(): boolean {
        return this.#closed;
    }

    /** Whether {@link reopen} can open this video again (it was opened from a path or URL). */
    get reopenable(): boolean {
        return this.#reopen !== undefined;
    }

    /**
     * Opens the same path or URL again with the same options (a new Video, which the caller closes); used by sessions
     * that must rebuild their KV cache after the caller closed the video.
     *
     * @throws {InvalidOptionError} when the video was not opened from a path or URL ({@link reopenable} is false).
     */
    async reopen(options: { signal?: AbortSignal } = {}): Promise<Video> {
        if (!this.#reopen) throw new InvalidOptionError("video", "a video opened from a path or URL", this.source, "it cannot be opened again");
        return Video.open(this.#reopen.source, { ...this.#reopen.options, ...(options.signal ? { signal: options.signal } : {}) });
    }

    /** Kills and reaps every running ffmpeg/ffprobe child of this video and removes temporary files. Idempotent. */
    async close(): Promise<void> {
        if (this.#closed) return;
        this.#closed = true;
        await Promise.all([...this.#children].map((c) => c.kill("closed")));
        if (this.#tempDir) {
            tempCleanup.unregister(this);
            await rm(this.#tempDir, { recursive: true, force: true }).catch(() => {});
        }
    }

    /** Same as {@link close}, for `await using video = await Video.open(…)`. */
    async [Symbol.asyncDispose](): Promise<void> {
        await this.close();
    }

    #checkAlive(signal: AbortSignal | undefined): void {
        throwIfAborted(signal);
        if (this.#closed) throw new DisposedError("Video");
    }

    #track = (p: ToolProcess): (() => void) => {
        this.#children.add(p);
        if (this.#closed) void p.kill("closed");
        return () => this.#children.delete(p);
    };

    // -----------------------------------------------------------------------------------------------------------
    // fps mode
    // -----------------------------------------------------------------------------------------------------------

    async *#fpsPass(b: FileBacking, plan: FpsPlan, signal: AbortSignal | undefined): AsyncGenerator<RgbFrame, void, undefined> {
        const o = b.options;
        const M = o.maxFrames;
        const frameSize = b.outWidth * b.outHeight * 3;
        const pass = new AbortController();
        const passSignal = signal ? AbortSignal.any([signal, pass.signal]) : pass.signal;
        const counted = this.#counted;
        const needCount = !counted && (plan.estimate === undefined || plan.estimate + 2 >= M || plan.estimate <= 1);
        const countPromise = needCount ? this.#countFrames(b, plan, frameSize, passSignal) : undefined;
        countPromise?.catch(() => {});
        const run = new DecodeRun(b, decodeArgs(b, { kind: "fps", plan }), frameSize, o.stallTimeout, this.#track, signal);
        const timestamp = arangeTimestamps(plan.rangeStart, o.fps);

        let n: number | undefined = counted ? counted.n : needCount ? undefined : plan.estimate;
        let nFrom: "scan" | "decode" | "estimate" | undefined = counted ? counted.how : needCount ? undefined : "estimate";
        let selection: Set<number> | undefined = counted && counted.n > M ? new Set(linspaceIndices(counted.n, M)) : undefined;
        let countSettled = !needCount;
        const settleCount = async (): Promise<void> => {
            const c = await abortable(countPromise!, passSignal);
            countSettled = true;
            if (c) {
                n = c.n;
                nFrom = c.how;
            } else if (plan.estimate !== undefined) {
                n = plan.estimate;
                nFrom = "estimate";
                this.warnings.push(`could not count the sampled frames exactly; maxFrames subsampling uses the estimate ${n} from the duration`);
            } else {
                this.warnings.push(`could not count the sampled frames; if there are more than maxFrames=${M}, only the first ${M} are delivered`);
            }
            if (n !== undefined && n > M) selection = new Set(linspaceIndices(n, M));
        };

        let k = 0;
        let emitted = 0;
        let capped = false;
        const scratch: (Uint8Array | undefined)[] = [undefined, undefined];
        let heldSlot = -1;
        let heldK = -1;
        try {
            for (;;) {
                if (k >= 1 && !countSettled) await settleCount();
                this.#checkAlive(signal);
                const take = emitted < M && (selection ? selection.has(k) : true);
                let buf: Uint8Array;
                let slot = -1;
                if (take) {
                    buf = new Uint8Array(frameSize);
                } else {
                    slot = heldSlot === 0 ? 1 : 0;
                    buf = scratch[slot] ??= new Uint8Array(frameSize);
                }
                const got = await run.read(buf);
                this.#checkAlive(signal);
                if (got < frameSize) break;
                if (!take && !selection) {
                    // More frames than maxFrames although the estimate said otherwise: never deliver more than maxFrames.
                    capped = true;
                    break;
                }
                k++;
                o.onProgress?.({ framesDecoded: k, ...(n !== undefined ? { framesTotal: n } : {}) });
                if (take) {
                    heldSlot = -1;
                    emitted++;
                    yield { index: emitted - 1, sampleIndex: k - 1, timestamp: timestamp(k - 1), width: b.outWidth, height: b.outHeight, data: buf };
                } else {
                    heldSlot = slot;
                    heldK = k - 1;
                }
            }
            if (capped) await run.child.kill("enough frames");
            const end = await run.finish();
            this.#checkAlive(signal);
            if (!countSettled && countPromise && !capped) await settleCount();
            this.#checkAlive(signal);
            this.#reportRun(run, end, k, "sampled frames");
            if (selection && emitted < M && heldSlot >= 0) {
                // The stream ended before the predicted last frame: the reference's last index is the last frame decoded.
                const buf = scratch[heldSlot]!;
                emitted++;
                this.warnings.push(`ffmpeg stopped before the predicted sampled frame ${n! - 1}; delivering the last decoded frame (${heldK}) instead`);
                yield { index: emitted - 1, sampleIndex: heldK, timestamp: timestamp(heldK), width: b.outWidth, height: b.outHeight, data: buf };
            }
            if (capped) {
                this.warnings.push(`ffmpeg produced more than maxFrames=${M} sampled frames although ${n ?? "fewer"} were expected; stopped after ${M}`);
            } else if (n !== undefined && nFrom !== "estimate" && k !== n && !run.stalled) {
                this.warnings.push(
                    `expected ${n} sampled frames (${nFrom === "scan" ? "from the packet timestamps" : "from a counting pass"}) but ffmpeg produced ${k}` +
                        (selection ? "; the maxFrames subsampling may differ from the reference's" : ""),
                );
            }
            if (emitted === 0) {
                if (run.stalled) throw new MediaDecodeError(b.input.description, `ffmpeg made no progress for ${o.stallTimeout} ms; no frame was decoded`);
                if (end.exit.error) throw new MediaDecodeError(b.input.description, `cannot run ffmpeg: ${end.exit.error.message}`, { cause: end.exit.error });
                const got = yield* this.#firstFramePass(b, plan, signal);
                if (got === 0) {
                    throw new MediaDecodeError(
                        b.input.description,
                        `no frame could be decoded${end.stderr ? `: ${lastLines(end.stderr, 3)}` : end.exit.code !== 0 ? ` (${describeExit(end.exit)})` : ""}`,
                    );
                }
            }
        } finally {
            pass.abort();
            await run.dispose();
            if (countPromise) await countPromise.catch(() => {});
        }
    }

    /** Decodes one frame at the start of the range (for clips shorter than one sampling interval). Returns 0 or 1. */
    async *#firstFramePass(b: FileBacking, plan: FpsPlan, signal: AbortSignal | undefined): AsyncGenerator<RgbFrame, number, undefined> {
        const frameSize = b.outWidth * b.outHeight * 3;
        const run = new DecodeRun(b, decodeArgs(b, { kind: "first", plan }), frameSize, b.options.stallTimeout, this.#track, signal);
        try {
            const buf = new Uint8Array(frameSize);
            const got = await run.read(buf);
            this.#checkAlive(signal);
            if (got < frameSize) return 0;
            await run.finish();
            this.#checkAlive(signal);
            this.warnings.push(
                `the ${b.options.start !== undefined || b.options.end !== undefined ? "range" : "video"} is shorter than one sampling interval ` +
                    `(1/${b.options.fps} s): ffmpeg's fps filter (and so the reference loader) yields no frame; delivering its first frame instead`,
            );
            b.options.onProgress?.({ framesDecoded: 1, framesTotal: 1 });
            yield { index: 0, sampleIndex: 0, timestamp: plan.rangeStart, width: b.outWidth, height: b.outHeight, data: buf };
            return 1;
        } finally {
            await run.dispose();
        }
    }

    /** Runs the count the subsampling needs: packet scan (ffprobe) or, failing that, the same decode counting bytes. */
    async #countFrames(b: FileBacking, plan: FpsPlan, frameSize: number, signal: AbortSignal): Promise<{ n: number; how: "scan" | "decode" } | undefined> {
        try {
            return await this.#countFramesUnsafe(b, plan, frameSize, signal);
        } catch (error) {
            if (signal.aborted) throw error;
            return undefined;
        }
    }

    async #countFramesUnsafe(b: FileBacking, plan: FpsPlan, frameSize: number, signal: AbortSignal): Promise<{ n: number; how: "scan" | "decode" } | undefined> {
        const opts = { signal, stallTimeout: b.options.stallTimeout, track: this.#track };
        if (b.tools.ffprobe && b.probe.timeBase) {
            const frames = await scanPackets(b.input, b.tools.ffprobe, b.probe.streamIndex, opts);
            if (frames) {
                const trim = {
                    ss: plan.ss === undefined ? undefined : secondsStringToMicros(plan.ss),
                    t: plan.t === undefined ? undefined : secondsStringToMicros(plan.t),
                };
                return { n: predictFpsFrameCount(frames, b.probe.timeBase, b.probe.formatStartMicros, trim, ffmpegRate(b.options.fps)), how: "scan" };
            }
        }
        const args = decodeArgs(b, { kind: "fps", plan }, false);
        let bytes = 0;
        const r = await runTool(b.tools.ffmpeg.path, args, { ...opts, onStdout: (c) => void (bytes += c.length) });
        if (r.stalled) return undefined;
        return { n: Math.floor(bytes / frameSize), how: "decode" };
    }

    // -----------------------------------------------------------------------------------------------------------
    // short-range (decord) mode
    // -----------------------------------------------------------------------------------------------------------

    async *#idsPass(b: FileBacking, plan: IdsPlan, signal: AbortSignal | undefined): AsyncGenerator<RgbFrame, void, undefined> {
        const frameSize = b.outWidth * b.outHeight * 3;
        const total = plan.ids.length;
        // A frame wanted twice (fewer frames than requested) is decoded once and delivered for each of its places.
        const unique = [...new Set(plan.ids)];
        const expected = unique.length;
        const run = new DecodeRun(b, decodeArgs(b, { kind: "ids", plan }), frameSize, b.options.stallTimeout, this.#track, signal);
        let k = 0;
        let delivered = 0;
        try {
            while (k < expected) {
                const buf = new Uint8Array(frameSize);
                const got = await run.read(buf);
                this.#checkAlive(signal);
                if (got < frameSize) break;
                const id = unique[k]!;
                k++;
                b.options.onProgress?.({ framesDecoded: k, framesTotal: expected });
                let copies = 0;
                while (delivered < total && plan.ids[delivered] === id) {
                    yield { index: delivered, sampleIndex: id, timestamp: plan.timestamps[delivered]!, width: b.outWidth, height: b.outHeight, data: copies++ === 0 ? buf : buf.slice() };
                    delivered++;
                }
            }
            const extra = k === expected ? await run.read(new Uint8Array(frameSize)) : 0;
            if (extra > 0) await run.child.kill("enough frames");
            const end = await run.finish();
            this.#checkAlive(signal);
            this.#reportRun(run, end, k, "frames");
            if (k !== expected && !run.stalled) {
                this.warnings.push(`expected the ${expected} frames [${unique.join(", ")}] but ffmpeg delivered ${k}`);
            } else if (extra > 0) {
                this.warnings.push(`ffmpeg matched more than the ${expected} frames expected; the extra ones were dropped`);
            }
            if (k === 0) {
                throw new MediaDecodeError(b.input.description, `no frame could be decoded in the range${end.stderr ? `: ${lastLines(end.stderr, 3)}` : ""}`);
            }
        } finally {
            await run.dispose();
        }
    }

    #reportRun(run: DecodeRun, end: RunEnd, produced: number, what: string): void {
        if (run.stalled) {
            this.warnings.push(`ffmpeg made no progress for ${run.stallTimeout} ms and was stopped after ${produced} ${what}`);
        } else if (end.exit.code !== 0 && !run.child.killedByUs && !end.exit.error) {
            this.warnings.push(`ffmpeg failed (${describeExit(end.exit)}) after ${produced} ${what}${end.stderr ? `: ${lastLines(end.stderr, 3)}` : ""}`);
        } else if (end.stderr) {
            this.warnings.push(`ffmpeg reported errors while decoding (${produced} ${what} delivered): ${lastLines(end.stderr, 3)}`);
        }
        if (run.partialBytes > 0) {
            this.warnings.push(`the output ended inside a frame (${run.partialBytes} of ${run.frameSize} bytes); that frame was dropped`);
        }
    }

    // -----------------------------------------------------------------------------------------------------------
    // user frames
    // -----------------------------------------------------------------------------------------------------------

    async *#userFramesPass(b: FramesBacking, signal: AbortSignal | undefined): AsyncGenerator<RgbFrame, void, undefined> {
        const toRgb = (f: InputFrame): Uint8Array => {
            const bytes = f.data instanceof Uint8Array ? f.data : new Uint8Array(f.data.buffer, f.data.byteOffset, f.data.byteLength);
            if (bytes.length === f.width * f.height * 3) return bytes;
            const out = new Uint8Array(f.width * f.height * 3);
            for (let i = 0, j = 0; j < out.length; i += 4, j += 3) {
                out[j] = bytes[i]!;
                out[j + 1] = bytes[i + 1]!;
                out[j + 2] = bytes[i + 2]!;
            }
            return out;
        };
        if (b.array) {
            for (let i = 0; i < b.array.length; i++) {
                this.#checkAlive(signal);
                const { frame, sourceIndex } = b.array[i]!;
                yield {
                    index: i,
                    sampleIndex: sourceIndex,
                    timestamp: frame.timestamp ?? sourceIndex / b.fps,
                    width: frame.width,
                    height: frame.height,
                    data: toRgb(frame),
                };
            }
            return;
        }
        if (b.consumed) throw new MediaDecodeError("<frames>", "the frames iterable was already consumed by a previous frames() pass (pass an array to iterate more than once)");
        b.consumed = true;
        const it = b.iterator!;
        const first = b.first!;
        let i = 0;
        let finished = false;
        let inFlight = false;
        try {
            let frame: InputFrame = first;
            for (;;) {
                this.#checkAlive(signal);
                if (i > 0) checkInputFrame(frame, i, first);
                if (i >= b.maxFrames) {
                    throw new InvalidOptionError("frames", `at most maxFrames=${b.maxFrames} frames (pass an array to have longer sequences subsampled)`, `more than ${b.maxFrames} frames`);
                }
                yield { index: i, sampleIndex: i, timestamp: frame.timestamp ?? i / b.fps, width: frame.width, height: frame.height, data: toRgb(frame) };
                i++;
                inFlight = true;
                const r = await abortable(Promise.resolve(it.next()), signal);
                inFlight = false;
                if (r.done) {
                    finished = true;
                    return;
                }
                frame = r.value;
            }
        } finally {
            // Close the source. If a next() is still pending (abort), return() would wait for it: do not await then.
            const closing = finished ? undefined : Promise.resolve(it.return?.()).catch(() => {});
            if (closing && !inFlight) await closing;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------

interface RunEnd {
    exit: { code: number | null; signal: NodeJS.Signals | null; error?: Error };
    stderr: string;
}

/** One streaming ffmpeg decode: reads whole frames from stdout with a stall watchdog; abort kills the child. */
class DecodeRun {
    readonly child: ToolProcess;
    readonly frameSize: number;
    readonly stallTimeout: number;
    stalled = false;
    partialBytes = 0;
    private readonly iterator: AsyncIterator<Buffer>;
    private rest: Buffer | undefined;
    private eof = false;
    private waitingSince = 0;
    private readonly timer: NodeJS.Timeout;
    private readonly untrack: () => void;
    private readonly signal: AbortSignal | undefined;
    private readonly onAbort = (): void => void this.child.kill("aborted");

    constructor(
        b: FileBacking,
        args: string[],
        frameSize: number,
        stallTimeout: number,
        track: (p: ToolProcess) => () => void,
        signal: AbortSignal | undefined,
    ) {
        this.frameSize = frameSize;
        this.stallTimeout = stallTimeout;
        this.child = new ToolProcess(b.tools.ffmpeg.path, args, { progressFd: USE_PROGRESS_FD });
        this.untrack = track(this.child);
        this.iterator = this.child.stdout[Symbol.asyncIterator]();
        this.signal = signal;
        signal?.addEventListener("abort", this.onAbort, { once: true });
        this.timer = setInterval(
            () => {
                if (this.waitingSince && Date.now() - Math.max(this.child.lastActivity, this.waitingSince) > stallTimeout) {
                    this.stalled = true;
                    void this.child.kill("stalled");
                }
            },
            Math.min(1000, Math.max(50, stallTimeout / 4)),
        );
    }

    /** Fills `dst` with the next frame; returns the bytes read (less than a frame at the end of the output). */
    async read(dst: Uint8Array): Promise<number> {
        let filled = 0;
        this.waitingSince = Date.now();
        try {
            while (filled < dst.length) {
                if (!this.rest || this.rest.length === 0) {
                    if (this.eof) break;
                    let r: IteratorResult<Buffer>;
                    try {
                        r = await this.iterator.next();
                    } catch {
                        r = { done: true, value: undefined };
                    }
                    if (r.done) {
                        this.eof = true;
                        break;
                    }
                    this.child.touch();
                    this.rest = r.value;
                }
                const n = Math.min(this.rest.length, dst.length - filled);
                dst.set(this.rest.subarray(0, n), filled);
                this.rest = this.rest.subarray(n);
                filled += n;
            }
        } finally {
            this.waitingSince = 0;
        }
        if (filled > 0 && filled < dst.length) this.partialBytes = filled;
        return filled;
    }

    /** Waits for the child to exit (it does right after closing its output); kills it if it lingers. */
    async finish(): Promise<RunEnd> {
        let timeout: NodeJS.Timeout | undefined;
        const lingering = new Promise<void>((resolve) => {
            timeout = setTimeout(resolve, this.stallTimeout);
        });
        const exited = await Promise.race([this.child.exited.then(() => true), lingering.then(() => false)]);
        clearTimeout(timeout);
        if (!exited) {
            this.stalled = true;
            await this.child.kill("stalled");
        }
        return { exit: await this.child.exited, stderr: this.child.stderr.text() };
    }

    /** Kills (if needed) and reaps the child, and releases listeners. */
    async dispose(): Promise<void> {
        clearInterval(this.timer);
        this.signal?.removeEventListener("abort", this.onAbort);
        await this.child.kill();
        this.untrack();
    }
}

/** ffmpeg arguments for a decode pass. */
function decodeArgs(
    b: FileBacking,
    what: { kind: "fps"; plan: FpsPlan } | { kind: "first"; plan: FpsPlan } | { kind: "ids"; plan: IdsPlan },
    progress = USE_PROGRESS_FD,
): string[] {
    const { pre, target } = inputTarget(b.input, b.options.stallTimeout);
    const p = what.plan;
    const inputOptions: string[] = [];
    if (p.ss !== undefined) inputOptions.push("-ss", p.ss);
    if (p.t !== undefined) inputOptions.push("-t", p.t);
    const filters: string[] = [];
    if (what.kind === "fps") filters.push(`fps=fps=${String(b.options.fps)}:round=down`);
    if (what.kind === "ids") filters.push(`select='${what.plan.select}'`);
    filters.push(...rotationFilters(b.probe.rotation));
    const args = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        ...pre,
        ...inputOptions,
        "-noautorotate",
        "-i",
        target,
        "-map",
        `0:${b.probe.streamIndex}`,
        ...(filters.length > 0 ? ["-vf", filters.join(",")] : []),
        ...(what.kind === "ids" ? (hasFpsMode(b.tools.ffmpeg.version) ? ["-fps_mode", "passthrough"] : ["-vsync", "passthrough"]) : []),
        ...(what.kind === "first" ? ["-frames:v", "1"] : []),
        "-an",
        "-sn",
        "-dn",
        // The delivered size, always explicit: frames can never disagree with the byte count we read.
        "-s",
        `${b.outWidth}x${b.outHeight}`,
        ...(progress ? ["-progress", "pipe:3"] : []),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ];
    return args;
}

/** Plans the sampling of an opened video (see the module notes). */
/**
 * The frames `ids` (indices on the stream, ascending, possibly repeated) found by their timestamps
 * `start_time + i/avg_fps` with a `select` filter (exact for constant frame rate).
 */
function idsPlan(ids: number[], probe: ProbeDetails, formatStart: number): IdsPlan {
    const times = ids.map((i) => probe.startTime + i / probe.fps);
    const seekRel = Math.max(0, times[0]! - formatStart - 1);
    const ss = seekRel > 0 ? formatSeconds(seekRel) : undefined;
    const shift = formatStart + (ss === undefined ? 0 : Number(ss));
    const half = formatSeconds(0.5 / probe.fps);
    const select = [...new Set(times)].map((t) => `lt(abs(t-${formatSeconds(t - shift)}),${half})`).join("+");
    // Stop decoding one second after the last wanted frame.
    const t = formatSeconds(times[times.length - 1]! - shift + 1);
    return { mode: "ids", ids, timestamps: times, ss, t, select };
}

/**
 * `frames` evenly spread over the N frames of the video or range: `np.arange(0, N, N/frames).astype(int)` (float
 * steps, truncated, as numpy computes them), Video-LLaVA's sampling.
 */
export function evenFrameIndices(n: number, frames: number): number[] {
    const step = n / frames;
    return Array.from({ length: frames }, (_, i) => Math.min(n - 1, Math.trunc(i * step)));
}

function evenPlan(probe: ProbeDetails, o: ResolvedOpenOptions, formatStart: number, frames: number): IdsPlan {
    const count = probe.frameCount ?? (Number.isFinite(probe.duration) && probe.fps > 0 ? Math.floor(probe.duration * probe.fps) : undefined);
    if (!(probe.fps > 0) || count === undefined || count <= 0) {
        throw new InvalidOptionError("frames", "fps and maxFrames for this video", frames, "its frame count or frame rate is unknown, so frames cannot be spread over it");
    }
    const first = o.start !== undefined ? Math.max(0, Math.ceil((o.start - probe.startTime) * probe.fps - 1e-6)) : 0;
    const end = o.end !== undefined ? Math.min(count, Math.floor((o.end - probe.startTime) * probe.fps - 1e-6) + 1) : count;
    if (end <= first) throw new InvalidOptionError("start", "a range that contains at least one frame", o.start);
    return idsPlan(evenFrameIndices(end - first, frames).map((i) => first + i), probe, formatStart);
}

function makePlan(probe: ProbeDetails, o: ResolvedOpenOptions, warnings: string[]): FpsPlan | IdsPlan {
    const formatStart = Number(probe.formatStartMicros) / 1e6;
    const fileEnd = Number.isFinite(probe.duration) ? formatStart + probe.duration : undefined;
    if (fileEnd !== undefined && o.start !== undefined && o.start >= fileEnd) {
        throw new InvalidOptionError("start", `a time before the end of the video (${formatSeconds(fileEnd)} s)`, o.start);
    }
    if (o.end !== undefined && o.end <= probe.startTime) {
        throw new InvalidOptionError("end", `a time after the start of the video (${formatSeconds(probe.startTime)} s)`, o.end);
    }
    if (o.frames !== undefined) return evenPlan(probe, o, formatStart, o.frames);
    if (o.start !== undefined && o.end !== undefined && o.end - o.start < 1) {
        if (probe.fps > 0 && probe.frameCount !== undefined) {
            const ids = decordFrameIndices({
                start: o.start - probe.startTime,
                end: o.end - probe.startTime,
                videoFps: probe.fps,
                frameCount: probe.frameCount,
                fps: o.fps,
                maxFrames: o.maxFrames,
            });
            if (ids.length === 0) throw new InvalidOptionError("start", "a range that contains at least one frame", o.start);
            return idsPlan(ids, probe, formatStart);
        }
        warnings.push("the video's frame rate or frame count is unknown, so the reference's short-range frame indexing cannot be used; sampling the range with the fps filter");
    }
    const rangeStart = o.start !== undefined ? Math.max(probe.startTime, o.start) : probe.startTime;
    const trimmed = o.start !== undefined || o.end !== undefined;
    const ss = trimmed ? formatSeconds(Math.max(0, rangeStart - formatStart)) : undefined;
    const t = o.end !== undefined ? formatSeconds(o.end - rangeStart) : undefined;
    let estimate: number | undefined;
    if (fileEnd !== undefined) {
        const effectiveEnd = Math.min(o.end ?? Infinity, fileEnd);
        estimate = Math.max(0, Math.floor((effectiveEnd - rangeStart) * o.fps + 1e-9));
    }
    return { mode: "fps", rangeStart, ss, t, estimate };
}

/**
 * Delivered frame size: the upright size, or when it has more than `maxPixels` pixels the largest size within
 * `maxPixels` whose aspect ratio is closest to the original.
 */
function outputSize(width: number, height: number, maxPixels: number | undefined): [number, number] {
    if (maxPixels === undefined || width * height <= maxPixels) return [width, height];
    const aspect = width / height;
    const s = Math.sqrt(maxPixels / (width * height));
    let best: [number, number] = [1, 1];
    let bestError = Infinity;
    for (const h of new Set([Math.max(1, Math.floor(height * s)), Math.max(1, Math.ceil(height * s))])) {
        const w = Math.max(1, Math.min(Math.floor(maxPixels / h), Math.round(h * aspect)));
        if (w * h > maxPixels) continue;
        const error = Math.abs(w / h - aspect);
        if (error < bestError - 1e-12 || (Math.abs(error - bestError) <= 1e-12 && w * h > best[0] * best[1])) {
            best = [w, h];
            bestError = error;
        }
    }
    return best;
}

/** `np.arange(start, …, 1/fps)[k]` exactly as numpy fills it: start, start+step, then start + k·((start+step) − start). */
function arangeTimestamps(start: number, fps: number): (k: number) => number {
    const step = 1 / fps;
    const second = start + step;
    const delta = second - start;
    return (k) => (k === 0 ? start : k === 1 ? second : start + k * delta);
}

/** Races a promise against an abort signal (rejecting with its reason). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (!signal) return promise;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
        const onAbort = (): void => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        promise.then(
            (v) => {
                signal.removeEventListener("abort", onAbort);
                resolve(v);
            },
            (e: unknown) => {
                signal.removeEventListener("abort", onAbort);
                reject(e);
            },
        );
    });
}

/** Validates a caller-supplied frame (and that it matches the first frame's size). */
function checkInputFrame(f: InputFrame, i: number, first: InputFrame | undefined): void {
    const at = `frames[${i}]`;
    if (!f || typeof f !== "object") throw new InvalidOptionError(at, "a frame object { data, width, height }", f);
    if (!Number.isInteger(f.width) || f.width < 1) throw new InvalidOptionError(`${at}.width`, "an integer >= 1", f.width);
    if (!Number.isInteger(f.height) || f.height < 1) throw new InvalidOptionError(`${at}.height`, "an integer >= 1", f.height);
    if (!(f.data instanceof Uint8Array) && !(f.data instanceof Uint8ClampedArray)) {
        throw new InvalidOptionError(`${at}.data`, "a Uint8Array, Buffer or Uint8ClampedArray", f.data);
    }
    if (f.format !== undefined && f.format !== "rgb" && f.format !== "rgba") throw new InvalidOptionError(`${at}.format`, '"rgb" or "rgba"', f.format);
    const pixels = f.width * f.height;
    const channels = f.format === "rgba" ? 4 : f.format === "rgb" ? 3 : f.data.length === pixels * 4 ? 4 : 3;
    if (f.data.length !== pixels * channels) {
        throw new InvalidOptionError(
            `${at}.data`,
            `${pixels * channels} bytes (${f.width}x${f.height} ${channels === 4 ? "RGBA" : "RGB"}${f.format === undefined ? " or RGBA" : ""})`,
            f.data,
        );
    }
    if (f.timestamp !== undefined && (typeof f.timestamp !== "number" || !Number.isFinite(f.timestamp))) {
        throw new InvalidOptionError(`${at}.timestamp`, "a finite number of seconds", f.timestamp);
    }
    if (first && (f.width !== first.width || f.height !== first.height)) {
        throw new InvalidOptionError(at, `a ${first.width}x${first.height} frame like frames[0]`, `a ${f.width}x${f.height} frame`);
    }
}
