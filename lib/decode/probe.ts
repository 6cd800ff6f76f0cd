/**
 * Probing videos (ffprobe JSON, or `ffmpeg -i` when ffprobe is missing), and the arithmetic that predicts which frames
 * the VideoLLaMA3 reference loader samples:
 *
 * - ffmpeg's `fps=fps=F:round=down` filter (frame count from a demux-only packet scan, see {@link predictFpsFrameCount});
 * - `np.linspace(0, n-1, maxFrames, dtype=int)` subsampling ({@link linspaceIndices});
 * - the decord path the reference takes for ranges shorter than one second ({@link decordFrameIndices}).
 *
 * @module
 */
import { createWriteStream } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { InvalidOptionError, MediaDecodeError } from "../errors.js";
import { throwIfAborted } from "../validate.js";
import {
    describeExit,
    lastLines,
    resolveFfmpeg,
    resolveFfprobe,
    runTool,
    type ResolvedFfmpeg,
    type ResolvedFfprobe,
    type ToolProcess,
} from "./ffmpeg.js";
import { resolveProbeOptions, type ProbeOptions } from "./options.js";

/** What {@link probeVideo} reports about the first video stream (attached cover pictures are skipped). */
export interface VideoProbe {
    /** Duration in seconds: the container's duration (what the reference uses), else the stream's; `NaN` if unknown. */
    duration: number;
    /** Width in pixels of the frames as delivered (after applying `rotation`). */
    width: number;
    /** Height in pixels of the frames as delivered (after applying `rotation`). */
    height: number;
    /** Width as stored in the stream, before rotation. */
    codedWidth: number;
    /** Height as stored in the stream, before rotation. */
    codedHeight: number;
    /** Average frame rate (frames per second) of the stream (`avg_frame_rate`, else `r_frame_rate`); `NaN` if unknown. */
    fps: number;
    /** Number of frames: the container's count when it has one, else `round(duration × fps)`; `undefined` if unknown. */
    frameCount?: number;
    /** Presentation time of the stream's first frame in seconds (usually 0; e.g. 1.4 for MPEG-TS). */
    startTime: number;
    /** ffmpeg's codec name, e.g. `"h264"`. */
    codec: string;
    /**
     * Clockwise rotation in degrees, in [0, 360), that players (and ffmpeg's autorotate) apply to the stored picture
     * for display, from the stream's display matrix. 90 and 270 swap width and height.
     */
    rotation: number;
}

/** @internal Everything the decoder needs beyond {@link VideoProbe}. */
export interface ProbeDetails extends VideoProbe {
    /** Index of the chosen stream in the container (for `-map 0:<index>` / `-select_streams <index>`). */
    streamIndex: number;
    /** Container start time, µs (ffmpeg shifts timestamps by it). */
    formatStartMicros: bigint;
    /** Stream time base, when ffprobe was used. */
    timeBase: readonly [bigint, bigint] | undefined;
    /** Whether `frameCount` comes from the container (not estimated). */
    frameCountExact: boolean;
    /** Which tool produced the data. */
    via: "ffprobe" | "ffmpeg";
}

/** @internal An input ffmpeg reads: a file or a URL. */
export type DecodeInput = { kind: "file"; path: string; description: string } | { kind: "url"; url: string; description: string };

/** @internal A source after normalisation: an input, or bytes still to be written to a temporary file. */
export type SourceSpec = DecodeInput | { kind: "buffer"; data: Uint8Array; description: string };

/** @internal The tools in use. */
export interface Tools {
    ffmpeg: ResolvedFfmpeg;
    ffprobe: ResolvedFfprobe | undefined;
}

/** @internal Options shared by the helpers that spawn children. */
export interface ChildOptions {
    signal: AbortSignal | undefined;
    stallTimeout: number;
    track?: (p: ToolProcess) => () => void;
}

/**
 * Normalises a path / URL / bytes source (not a stream). `file:` URLs become paths.
 *
 * @internal
 */
export function normalizeSource(source: unknown, option = "source"): SourceSpec {
    if (typeof source === "string") {
        if (source.length === 0) throw new InvalidOptionError(option, "a non-empty path or URL", source);
        if (/^https?:\/\//i.test(source)) return { kind: "url", url: source, description: redactUrl(source) };
        if (/^file:\/\//i.test(source)) return normalizeSource(new URL(source), option);
        const p = path.resolve(source);
        return { kind: "file", path: p, description: p };
    }
    if (source instanceof URL) {
        if (source.protocol === "http:" || source.protocol === "https:") {
            return { kind: "url", url: source.href, description: redactUrl(source.href) };
        }
        if (source.protocol === "file:") {
            const p = fileURLToPath(source);
            return { kind: "file", path: p, description: p };
        }
        throw new InvalidOptionError(option, "an http:, https: or file: URL", source.href);
    }
    if (source instanceof Uint8Array) {
        return { kind: "buffer", data: source, description: `<${Buffer.isBuffer(source) ? "Buffer" : "Uint8Array"} ${source.length} bytes>` };
    }
    throw new InvalidOptionError(option, "a file path, an http(s) URL, a Buffer/Uint8Array or a Readable stream", source);
}

function redactUrl(url: string): string {
    try {
        const u = new URL(url);
        if (u.password) u.password = "***";
        return u.href;
    } catch {
        return url;
    }
}

/** Fails with {@link MediaDecodeError} when a file input does not exist, is not a file or is empty. @internal */
export async function checkInputExists(input: SourceSpec): Promise<void> {
    if (input.kind === "buffer" && input.data.length === 0) throw new MediaDecodeError(input.description, "the buffer is empty");
    if (input.kind !== "file") return;
    let st;
    try {
        st = await stat(input.path);
    } catch (error) {
        const code = (error as { code?: string }).code;
        throw new MediaDecodeError(input.path, code === "ENOENT" ? "no such file" : `cannot be read (${code ?? (error as Error).message})`, {
            cause: error,
        });
    }
    if (st.isDirectory()) throw new MediaDecodeError(input.path, "is a directory, not a video file");
    if (!st.isFile()) throw new MediaDecodeError(input.path, "is not a regular file");
    if (st.size === 0) throw new MediaDecodeError(input.path, "the file is empty");
}

/**
 * ffmpeg/ffprobe arguments that name an input: protocol options and the input itself. Files get a `file:` prefix so
 * that names starting with `-` or containing `:` are never taken as options or protocols.
 *
 * @internal
 */
export function inputTarget(input: DecodeInput, stallTimeout: number): { pre: string[]; target: string } {
    if (input.kind === "file") return { pre: [], target: `file:${input.path}` };
    // Fail network reads that block longer than the stall timeout (µs).
    return { pre: ["-rw_timeout", String(stallTimeout * 1000)], target: input.url };
}

/**
 * @internal Turns bytes or a stream into a temporary file (removed by the caller through `tempDir`); files and URLs
 * pass through. Bytes are not piped to ffmpeg's stdin: a pipe cannot seek, so MP4 files with their index at the end
 * fail and `-ss` behaves differently than on a file (the reference reads files), and ffmpeg's `cache:` protocol,
 * which makes a pipe seekable, misreads Matroska fed through a pipe (ffmpeg 5.1: "0x00 at pos … invalid as first
 * byte of an EBML number"). A file behaves exactly like the reference's input.
 */
export async function materializeSource(
    source: SourceSpec | Readable,
    signal: AbortSignal | undefined,
): Promise<{ input: DecodeInput; tempDir: string | undefined }> {
    if (!(source instanceof Readable) && source.kind !== "buffer") return { input: source, tempDir: undefined };
    const description = source instanceof Readable ? "<Readable stream>" : source.description;
    const dir = await mkdtemp(path.join(os.tmpdir(), "vidllama-video-"));
    const file = path.join(dir, "input");
    try {
        if (source instanceof Readable) {
            await pipeline(source, createWriteStream(file), ...(signal ? [{ signal }] : []));
        } else {
            await writeFile(file, source.data, signal ? { signal } : {});
        }
        if ((await stat(file)).size === 0) throw new MediaDecodeError(description, source instanceof Readable ? "the stream is empty" : "the buffer is empty");
        return { input: { kind: "file", path: file, description }, tempDir: dir };
    } catch (error) {
        await rm(dir, { recursive: true, force: true }).catch(() => {});
        if (signal?.aborted) throw signal.reason;
        if (error instanceof MediaDecodeError) throw error;
        throw new MediaDecodeError(description, `cannot write it to a temporary file: ${(error as Error).message}`, { cause: error });
    }
}

/**
 * Probes a video: duration, size, frame rate, frame count, start time, codec and rotation of its first video stream.
 * Uses ffprobe's JSON output when ffprobe is available, else parses `ffmpeg -i`.
 *
 * @param source a file path, `file:`/`http(s):` URL, or the bytes of a file (a `Readable` is not accepted here).
 * @throws {MediaDecodeError} when the file is missing or has no decodable video stream.
 * @throws {FfmpegNotFoundError} when no ffmpeg is found.
 */
export async function probeVideo(source: string | URL | Uint8Array, options?: ProbeOptions): Promise<VideoProbe> {
    const o = resolveProbeOptions(options);
    const spec = normalizeSource(source);
    await checkInputExists(spec);
    throwIfAborted(o.signal);
    const ffmpeg = await resolveFfmpeg({ ffmpegPath: o.ffmpegPath, signal: o.signal });
    const ffprobe = await resolveFfprobe(ffmpeg);
    const { input, tempDir } = await materializeSource(spec, o.signal);
    try {
        const d = await probeInput(input, { ffmpeg, ffprobe }, { signal: o.signal, stallTimeout: o.stallTimeout });
        return publicProbe(d);
    } finally {
        if (tempDir) await rm(tempDir, { recursive: true, force: true }).catch(() => {});
    }
}

/** @internal The public subset of {@link ProbeDetails}. */
export function publicProbe(d: ProbeDetails): VideoProbe {
    const p: VideoProbe = {
        duration: d.duration,
        width: d.width,
        height: d.height,
        codedWidth: d.codedWidth,
        codedHeight: d.codedHeight,
        fps: d.fps,
        startTime: d.startTime,
        codec: d.codec,
        rotation: d.rotation,
    };
    if (d.frameCount !== undefined) p.frameCount = d.frameCount;
    return p;
}

/** @internal Probes with ffprobe when available, else with `ffmpeg -i`. */
export async function probeInput(input: DecodeInput, tools: Tools, options: ChildOptions): Promise<ProbeDetails> {
    return tools.ffprobe ? probeWithFfprobe(input, tools.ffprobe, options) : probeWithFfmpeg(input, tools.ffmpeg, options);
}

/** @internal `ffprobe -show_format -show_streams -of json`. */
export async function probeWithFfprobe(input: DecodeInput, ffprobe: ResolvedFfprobe, options: ChildOptions): Promise<ProbeDetails> {
    const { pre, target } = inputTarget(input, options.stallTimeout);
    const args = ["-hide_banner", "-v", "error", ...pre, "-show_format", "-show_streams", "-of", "json", target];
    const r = await runTool(ffprobe.path, args, { signal: options.signal, stallTimeout: options.stallTimeout, track: options.track });
    if (r.stalled) throw new MediaDecodeError(input.description, `ffprobe made no progress for ${options.stallTimeout} ms`);
    if (r.code !== 0) {
        throw new MediaDecodeError(input.description, `ffprobe cannot read it (${describeExit(r)})${r.stderr ? `: ${lastLines(r.stderr, 3)}` : ""}`);
    }
    let json: FfprobeJson;
    try {
        json = JSON.parse(r.stdout.toString("utf8")) as FfprobeJson;
    } catch (error) {
        throw new MediaDecodeError(input.description, "ffprobe printed malformed JSON", { cause: error });
    }
    return fromFfprobeJson(input.description, json);
}

interface FfprobeStream {
    index?: number;
    codec_type?: string;
    codec_name?: string;
    width?: number;
    height?: number;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    time_base?: string;
    start_pts?: number;
    start_time?: string;
    duration?: string;
    nb_frames?: string;
    disposition?: { attached_pic?: number };
    tags?: Record<string, string>;
    side_data_list?: { rotation?: number | string }[];
}

interface FfprobeJson {
    streams?: FfprobeStream[];
    format?: { duration?: string; start_time?: string };
}

/** @internal */
export function fromFfprobeJson(description: string, json: FfprobeJson): ProbeDetails {
    const streams = json.streams ?? [];
    const videos = streams.filter((s) => s.codec_type === "video");
    const stream = videos.find((s) => s.disposition?.attached_pic !== 1);
    if (!stream) {
        throw new MediaDecodeError(description, videos.length > 0 ? "it only holds a still picture (cover art), no video" : "no video stream");
    }
    const codedWidth = stream.width ?? 0;
    const codedHeight = stream.height ?? 0;
    if (!(codedWidth > 0 && codedHeight > 0)) throw new MediaDecodeError(description, "the video stream has no frame size");
    let fps = parseRate(stream.avg_frame_rate);
    if (!(fps > 0)) fps = parseRate(stream.r_frame_rate);
    const timeBase = parseTimeBase(stream.time_base);
    const formatStart = parseNumber(json.format?.start_time);
    const formatStartMicros = formatStart === undefined ? 0n : BigInt(Math.round(formatStart * 1e6));
    // The printed value (6 decimals), as the reference reads it.
    const startTime = parseNumber(stream.start_time) ?? formatStart ?? 0;
    const duration = parseNumber(json.format?.duration) ?? parseNumber(stream.duration) ?? parseDurationTag(stream.tags) ?? NaN;
    const nb = parseNumber(stream.nb_frames);
    let rotation = 0;
    const sideRotation = stream.side_data_list?.find((s) => s.rotation !== undefined)?.rotation;
    if (sideRotation !== undefined && Number.isFinite(Number(sideRotation))) {
        rotation = normalizeRotation(-Number(sideRotation)); // display matrix angle is counter-clockwise
    } else if (stream.tags?.rotate !== undefined && Number.isFinite(Number(stream.tags.rotate))) {
        rotation = normalizeRotation(Number(stream.tags.rotate)); // old-style tag: clockwise
    }
    return finish({
        streamIndex: stream.index ?? 0,
        codec: stream.codec_name ?? "unknown",
        codedWidth,
        codedHeight,
        fps,
        timeBase,
        formatStartMicros,
        startTime,
        duration,
        nbFrames: nb !== undefined && nb > 0 ? Math.round(nb) : undefined,
        rotation,
        via: "ffprobe",
    });
}

/**
 * @internal Parses `ffmpeg -hide_banner -i <input>` (used when there is no ffprobe). Less precise: durations have
 * 10 ms resolution, the stream start time is taken to be the container's, there is no time base and no frame count.
 */
export async function probeWithFfmpeg(input: DecodeInput, ffmpeg: ResolvedFfmpeg, options: ChildOptions): Promise<ProbeDetails> {
    const { pre, target } = inputTarget(input, options.stallTimeout);
    const args = ["-hide_banner", "-nostdin", ...pre, "-i", target];
    // ffmpeg exits with code 1 ("At least one output file must be specified"); the stream list is on stderr.
    const r = await runTool(ffmpeg.path, args, {
        signal: options.signal,
        stallTimeout: options.stallTimeout,
        track: options.track,
        stderrLimit: 1024 * 1024,
    });
    if (r.stalled) throw new MediaDecodeError(input.description, `ffmpeg made no progress for ${options.stallTimeout} ms`);
    return parseFfmpegInfo(input.description, r.stderr);
}

/** @internal Parses the stream description ffmpeg prints for `-i`. */
export function parseFfmpegInfo(description: string, text: string): ProbeDetails {
    const lines = text.split(/\r?\n/);
    const durationMatch = /Duration:\s*(N\/A|(\d+):(\d+):(\d+(?:\.\d+)?))(?:,\s*start:\s*(-?\d+(?:\.\d+)?))?/.exec(text);
    let duration = NaN;
    if (durationMatch && durationMatch[2] !== undefined) {
        duration = Number(durationMatch[2]) * 3600 + Number(durationMatch[3]) * 60 + Number(durationMatch[4]);
    }
    const formatStart = durationMatch?.[5] !== undefined ? Number(durationMatch[5]) : 0;
    let found: { index: number; line: string; following: string[] } | undefined;
    for (let i = 0; i < lines.length && !found; i++) {
        const m = /^\s*Stream #\d+:(\d+)[^:]*:\s*Video:\s*(.*)$/.exec(lines[i]!);
        if (!m || /\(attached pic\)/.test(m[2]!)) continue;
        const following: string[] = [];
        for (let j = i + 1; j < lines.length && !/^\s*Stream #/.test(lines[j]!) && !/^\S/.test(lines[j]!); j++) following.push(lines[j]!);
        found = { index: Number(m[1]), line: m[2]!, following };
    }
    if (!found) {
        const reason = lastLines(text.split(/\r?\n/).filter((l) => !/At least one output file must be specified/.test(l)).join("\n"), 3);
        throw new MediaDecodeError(description, reason ? `ffmpeg cannot read it: ${reason}` : "no video stream");
    }
    const codec = /^([\w.-]+)/.exec(found.line)?.[1] ?? "unknown";
    const size = /(?:^|[\s,(])(\d{1,6})x(\d{1,6})(?=[\s,\]]|$)/.exec(found.line);
    if (!size) throw new MediaDecodeError(description, "the video stream has no frame size");
    const fpsMatch = /,\s*(\d+(?:\.\d+)?)(k?)\s+fps\b/.exec(found.line) ?? /,\s*(\d+(?:\.\d+)?)(k?)\s+tbr\b/.exec(found.line);
    const fps = fpsMatch ? Number(fpsMatch[1]) * (fpsMatch[2] === "k" ? 1000 : 1) : NaN;
    const rot = /displaymatrix: rotation of (-?\d+(?:\.\d+)?) degrees/.exec(found.following.join("\n"));
    const rotateTag = /^\s*rotate\s*:\s*(-?\d+(?:\.\d+)?)\s*$/m.exec(found.following.join("\n"));
    const rotation = rot ? normalizeRotation(-Number(rot[1])) : rotateTag ? normalizeRotation(Number(rotateTag[1])) : 0;
    return finish({
        streamIndex: found.index,
        codec,
        codedWidth: Number(size[1]),
        codedHeight: Number(size[2]),
        fps,
        timeBase: undefined,
        formatStartMicros: BigInt(Math.round(formatStart * 1e6)),
        startTime: formatStart,
        duration,
        nbFrames: undefined,
        rotation,
        via: "ffmpeg",
    });
}

function finish(p: {
    streamIndex: number;
    codec: string;
    codedWidth: number;
    codedHeight: number;
    fps: number;
    timeBase: readonly [bigint, bigint] | undefined;
    formatStartMicros: bigint;
    startTime: number;
    duration: number;
    nbFrames: number | undefined;
    rotation: number;
    via: "ffprobe" | "ffmpeg";
}): ProbeDetails {
    const swap = isQuarterTurn(p.rotation);
    const estimate = Number.isFinite(p.duration) && p.fps > 0 ? Math.round(p.duration * p.fps) : undefined;
    const d: ProbeDetails = {
        duration: p.duration,
        width: swap ? p.codedHeight : p.codedWidth,
        height: swap ? p.codedWidth : p.codedHeight,
        codedWidth: p.codedWidth,
        codedHeight: p.codedHeight,
        fps: p.fps,
        startTime: p.startTime,
        codec: p.codec,
        rotation: p.rotation,
        streamIndex: p.streamIndex,
        formatStartMicros: p.formatStartMicros,
        timeBase: p.timeBase,
        frameCountExact: p.nbFrames !== undefined,
        via: p.via,
    };
    const count = p.nbFrames ?? estimate;
    if (count !== undefined) d.frameCount = count;
    return d;
}

/** Rotation in [0, 360), snapped to a multiple of 90 when within 1 degree (as ffmpeg's autorotate does). */
function normalizeRotation(degrees: number): number {
    let r = degrees % 360;
    if (r < 0) r += 360;
    for (const q of [0, 90, 180, 270, 360]) if (Math.abs(r - q) < 1) return q % 360;
    return r;
}

/** @internal Whether a rotation swaps width and height. */
export function isQuarterTurn(rotation: number): boolean {
    return rotation === 90 || rotation === 270;
}

/**
 * @internal The filters that turn the stored picture upright, exactly as ffmpeg's autorotate inserts them
 * (we pass `-noautorotate` and add them ourselves so that the frame size is never guessed).
 */
export function rotationFilters(rotation: number): string[] {
    switch (rotation) {
        case 90:
            return ["transpose=clock"];
        case 180:
            return ["hflip", "vflip"];
        case 270:
            return ["transpose=cclock"];
        default:
            return []; // ffmpeg rotates other angles inside the same frame size; we leave them as stored
    }
}

function parseRate(s: string | undefined): number {
    if (!s) return NaN;
    const m = /^(\d+)\/(\d+)$/.exec(s);
    if (m) return Number(m[2]) === 0 ? NaN : Number(m[1]) / Number(m[2]);
    const n = Number(s);
    return Number.isFinite(n) ? n : NaN;
}

function parseTimeBase(s: string | undefined): readonly [bigint, bigint] | undefined {
    const m = s ? /^(\d+)\/(\d+)$/.exec(s) : null;
    if (!m || m[1] === "0" || m[2] === "0") return undefined;
    return [BigInt(m[1]!), BigInt(m[2]!)];
}

function parseNumber(s: string | number | undefined): number | undefined {
    if (s === undefined || s === "N/A") return undefined;
    const n = Number(s);
    return Number.isFinite(n) ? n : undefined;
}

function parseDurationTag(tags: Record<string, string> | undefined): number | undefined {
    const v = tags?.DURATION ?? tags?.duration;
    const m = v ? /^(\d+):(\d+):(\d+(?:\.\d+)?)$/.exec(v) : null;
    return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Sampling arithmetic
// ---------------------------------------------------------------------------------------------------------------

/**
 * `np.linspace(0, n - 1, count, dtype=int)` for n > count >= 1, with numpy's float64 arithmetic (`j * step`, last
 * element exactly `n - 1`, truncation toward zero). Exact rational arithmetic would differ for some (n, count).
 *
 * @internal
 */
export function linspaceIndices(n: number, count: number): number[] {
    if (count <= 0) return [];
    if (count === 1) return [0];
    const step = (n - 1) / (count - 1);
    const out: number[] = [];
    for (let j = 0; j < count; j++) out.push(j === count - 1 ? n - 1 : Math.trunc(j * step));
    return out;
}

/** ffmpeg's `av_reduce`: the best rational approximation of num/den with numerator and denominator <= max. */
function avReduce(num: bigint, den: bigint, max: bigint): [bigint, bigint] {
    let a0: [bigint, bigint] = [0n, 1n];
    let a1: [bigint, bigint] = [1n, 0n];
    const sign = (num < 0n) !== (den < 0n);
    if (num < 0n) num = -num;
    if (den < 0n) den = -den;
    const g = gcd(num, den);
    if (g) {
        num /= g;
        den /= g;
    }
    if (num <= max && den <= max) {
        a1 = [num, den];
        den = 0n;
    }
    while (den) {
        let x = num / den;
        const nextDen = num - den * x;
        const a2n = x * a1[0] + a0[0];
        const a2d = x * a1[1] + a0[1];
        if (a2n > max || a2d > max) {
            if (a1[0]) x = (max - a0[0]) / a1[0];
            if (a1[1]) {
                const y = (max - a0[1]) / a1[1];
                if (y < x) x = y;
            }
            if (den * (2n * x * a1[1] + a0[1]) > num * a1[1]) a1 = [x * a1[0] + a0[0], x * a1[1] + a0[1]];
            break;
        }
        a0 = a1;
        a1 = [a2n, a2d];
        num = den;
        den = nextDen;
    }
    return [sign ? -a1[0] : a1[0], a1[1]];
}

function gcd(a: bigint, b: bigint): bigint {
    while (b) [a, b] = [b, a % b];
    return a;
}

/**
 * The rational frame rate ffmpeg's `fps` filter uses for `fps=<String(value)>` (`av_parse_video_rate` →
 * `av_d2q(value, 1001000)`).
 *
 * @internal
 */
export function ffmpegRate(value: number): [bigint, bigint] {
    // frexp: value = m * 2^e, m in [0.5, 1)
    let e = Math.floor(Math.log2(value)) + 1;
    if (2 ** (e - 1) > value) e--;
    else if (2 ** e <= value) e++;
    const exponent = Math.max(e - 1, 0);
    const den = 2 ** (62 - exponent);
    const num = Math.floor(value * den + 0.5);
    let r = avReduce(BigInt(num), BigInt(den), 1001000n);
    if ((r[0] === 0n || r[1] === 0n) && value) r = avReduce(BigInt(num), BigInt(den), 2147483647n);
    return r;
}

/**
 * @internal The demux-only packet scan of one stream: presentation timestamps and durations (0 = unknown) in stream
 * time base units, one entry per packet that yields a frame (plain number arrays: 16 bytes per frame).
 */
export interface ScannedFrames {
    pts: number[];
    durations: number[];
    length: number;
}

/**
 * @internal Lists the presentation timestamps and durations of a stream's packets with ffprobe (no decoding: fast even
 * for hours of video). `undefined` when some packet has no timestamp (the count cannot be predicted from them).
 */
export async function scanPackets(input: DecodeInput, ffprobe: ResolvedFfprobe, streamIndex: number, options: ChildOptions): Promise<ScannedFrames | undefined> {
    const { pre, target } = inputTarget(input, options.stallTimeout);
    const args = ["-hide_banner", "-v", "error", ...pre, "-select_streams", String(streamIndex), "-show_entries", "packet=pts,duration,flags", "-of", "csv=p=0", target];
    const pts: number[] = [];
    const durations: number[] = [];
    let usable = true;
    let partial = "";
    const onLine = (line: string): void => {
        if (!usable || line.trim() === "") return;
        const [ptsText, durationText, flags] = line.split(",");
        if (flags?.includes("D")) return; // discarded packets produce no frame
        const p = ptsText ? Number(ptsText) : NaN;
        if (!Number.isSafeInteger(p)) {
            usable = false;
            return;
        }
        const d = Number(durationText);
        pts.push(p);
        durations.push(Number.isSafeInteger(d) && d > 0 ? d : 0);
    };
    const r = await runTool(ffprobe.path, args, {
        signal: options.signal,
        stallTimeout: options.stallTimeout,
        track: options.track,
        onStdout: (chunk) => {
            const text = partial + chunk.toString("latin1");
            const lines = text.split("\n");
            partial = lines.pop()!;
            for (const l of lines) onLine(l);
        },
    });
    onLine(partial);
    if (r.code !== 0 || r.stalled || !usable || pts.length === 0) return undefined;
    return { pts, durations, length: pts.length };
}

/** @internal Input-side trimming as passed to ffmpeg: `-ss`/`-t` strings converted to µs. */
export interface TrimMicros {
    ss: bigint | undefined;
    t: bigint | undefined;
}

/**
 * @internal Predicts how many frames `ffmpeg [-ss S] [-t T] -i … -vf fps=fps=F:round=down` produces, from the packet
 * timestamps (see the design notes in {@link Video}):
 *
 * - ffmpeg shifts timestamps by −(container start + S) (rounded to the stream time base);
 * - with `-ss`, frames before 0 are dropped; with `-t`, the first frame at or after first-kept + T ends the stream and
 *   its timestamp is the end-of-stream time, otherwise the end is the last frame's timestamp + its duration;
 * - the fps filter outputs one frame per slot from ⌊t_first·F⌋ up to (excluding) ⌊t_end·F⌋ (round down).
 */
export function predictFpsFrameCount(frames: ScannedFrames, timeBase: readonly [bigint, bigint], formatStartMicros: bigint, trim: TrimMicros, rate: readonly [bigint, bigint]): number {
    const [tn, td] = timeBase;
    const offsetBig = roundNearDiv(-(formatStartMicros + (trim.ss ?? 0n)) * td, 1_000_000n * tn);
    // Timestamps are integers far below 2^53: compare them as numbers, convert only the results.
    const offset = Number(offsetBig);
    const { pts, durations } = frames;
    let first = Infinity;
    for (let i = 0; i < pts.length; i++) {
        const r = pts[i]! + offset;
        if (trim.ss !== undefined && r < 0) continue;
        if (r < first) first = r;
    }
    if (first === Infinity) return 0;
    let end = Infinity;
    if (trim.t !== undefined) {
        const durationTb = Number(roundNearDiv(trim.t * td, 1_000_000n * tn));
        for (let i = 0; i < pts.length; i++) {
            const r = pts[i]! + offset;
            if (r - first >= durationTb && r < end) end = r;
        }
    }
    if (end === Infinity) {
        let last = 0;
        for (let i = 1; i < pts.length; i++) if (pts[i]! >= pts[last]!) last = i;
        end = pts[last]! + offset + durations[last]!; // a frame without duration: the stream ends at its timestamp
    }
    const slot = (r: number): bigint => floorDiv(BigInt(r) * tn * rate[0], td * rate[1]);
    const n = slot(end) - slot(first);
    return n > 0n ? Number(n) : 0;
}

function floorDiv(a: bigint, b: bigint): bigint {
    const q = a / b;
    return a % b !== 0n && (a < 0n) !== (b < 0n) ? q - 1n : q;
}

/** a/b rounded to nearest, halves away from zero (ffmpeg's AV_ROUND_NEAR_INF); b > 0. */
function roundNearDiv(a: bigint, b: bigint): bigint {
    const negative = a < 0n;
    const q = (2n * (negative ? -a : a) + b) / (2n * b);
    return negative ? -q : q;
}

/** Python's float `a // b` (CPython `float_floor_div`). */
function pyFloorDiv(a: number, b: number): number {
    let mod = a % b;
    let div = (a - mod) / b;
    if (mod && b < 0 !== mod < 0) {
        mod += b;
        div -= 1;
    }
    if (!div) return 0;
    let floordiv = Math.floor(div);
    if (div - floordiv > 0.5) floordiv += 1;
    return floordiv;
}

/**
 * @internal The frame indices the reference's `load_video_from_ids` (decord) picks when `end − start < 1` s:
 * `f_start = max(int(s·fps_v) − 1, 0)`, `f_end = min(int(e·fps_v) − 1, N − 1)`; then, if the range is shorter than
 * `maxFrames` seconds, one frame per `vid_fps // fps` frames starting in the middle of the first segment, else
 * `linspace`. Times are relative to the first frame. (Where the reference divides by zero — fps above the video's
 * frame rate — every frame is taken.)
 */
export function decordFrameIndices(p: { start: number; end: number; videoFps: number; frameCount: number; fps: number; maxFrames: number }): number[] {
    const s = Math.max(p.start, 0);
    const e = Math.max(p.end, 0);
    const fStart = Math.max(Math.trunc(s * p.videoFps) - 1, 0);
    const fEnd = Math.min(Math.trunc(e * p.videoFps) - 1, p.frameCount - 1);
    const duration = fEnd - fStart + 1;
    if (duration <= 0) return [];
    let picks: number[];
    if (duration / p.videoFps < p.maxFrames) {
        let segment = Math.min(pyFloorDiv(p.videoFps, p.fps), duration);
        if (segment < 1) segment = 1;
        picks = [];
        for (let i = pyFloorDiv(segment, 2); i < duration; i += segment) picks.push(Math.trunc(i));
    } else {
        picks = duration <= p.maxFrames ? Array.from({ length: duration }, (_, i) => i) : linspaceIndices(duration, p.maxFrames);
    }
    return picks.map((i) => fStart + i);
}
