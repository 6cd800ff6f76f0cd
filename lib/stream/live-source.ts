/**
 * Frames of a source that may never end — a capture device, `rtsp://`, `http(s)://` (HLS too), a file still being
 * written, stdin — decoded by ffmpeg as they arrive, sampled live by the same `fps=fps=F:round=down` filter as
 * videos. Each frame comes as a PPM image on ffmpeg's stdout (so its size travels with it: no probe that could hang
 * on a live source), and its timestamp from the source's own timeline through the `showinfo` filter on stderr —
 * never the wall clock.
 *
 * @internal
 * @module
 */
import type { Readable } from "node:stream";
import { VidllamaError } from "../errors.js";
import { lastLines, resolveFfmpeg, ToolProcess, type ResolvedFfmpeg } from "../decode/ffmpeg.js";

/** A decoded frame of a live source. */
export interface LiveFrame {
    /** Seconds on the source's timeline (continues across reconnects). */
    timestamp: number;
    width: number;
    height: number;
    /** RGB24, `width * height * 3` bytes. */
    data: Uint8Array;
}

/** Where live frames come from. */
export type LiveSourceSpec =
    | { kind: "url"; url: string; description: string }
    | { kind: "file"; path: string; follow: boolean; description: string }
    | { kind: "device"; format: string; device: string; description: string }
    | { kind: "stdin"; stream: Readable; description: string };

export interface LiveSourceOptions {
    /** Frames sampled per second of source time. */
    fps: number;
    ffmpeg: ResolvedFfmpeg;
    /** Extra ffmpeg input options placed before `-i` (e.g. `["-video_size", "1280x720"]` for a device). */
    inputOptions: readonly string[];
    /** A followed file ends after this many ms without growing; a URL read fails after this long without data. */
    idleTimeoutMs: number;
    /** URLs: reconnect after a failure, waiting `delayMs` (doubling up to `maxDelayMs`), at most `attempts` times. */
    reconnect: { attempts: number; delayMs: number; maxDelayMs: number } | undefined;
    signal: AbortSignal;
    /** Called with a description of each reconnect attempt. */
    onReconnect?: (attempt: number, error: Error) => void;
}

/** The source ended with an error (ffmpeg failed, the network went away and did not come back). */
export class StreamSourceError extends VidllamaError {
    readonly source: string;
    constructor(source: string, message: string, options?: { cause?: unknown }) {
        super("ERR_STREAM_SOURCE", `${source}: ${message}`, options);
        this.source = source;
    }
}

const SHOWINFO = /\[Parsed_showinfo_\d+ @ [^\]]*\] n:\s*(\d+) pts:\s*(-?\d+) pts_time:(-?[0-9.e+-]+)/g;

/** ffmpeg's arguments for one decoding run of `spec`. */
export function liveArgs(spec: LiveSourceSpec, o: Pick<LiveSourceOptions, "fps" | "inputOptions" | "idleTimeoutMs">): string[] {
    const input: string[] = [];
    let target: string;
    if (spec.kind === "url") {
        input.push("-rw_timeout", String(o.idleTimeoutMs * 1000));
        target = spec.url;
    } else if (spec.kind === "file") {
        // The file protocol's `follow` re-reads at the end of the file; `rw_timeout` ends it once the file stops growing.
        if (spec.follow) input.push("-follow", "1", "-rw_timeout", String(o.idleTimeoutMs * 1000));
        target = `file:${spec.path}`;
    } else if (spec.kind === "device") {
        input.push("-f", spec.format);
        target = spec.device;
    } else {
        target = "pipe:0";
    }
    return [
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "info",
        ...(spec.kind === "stdin" ? [] : ["-nostdin"]),
        ...input,
        ...o.inputOptions,
        "-i",
        target,
        "-map",
        "0:v:0",
        "-an",
        "-sn",
        "-dn",
        "-vf",
        `fps=fps=${String(o.fps)}:round=down,showinfo`,
        "-f",
        "image2pipe",
        "-c:v",
        "ppm",
        "pipe:1",
    ];
}

/** Splits ffmpeg's PPM output into frames. */
export class PpmParser {
    #buffer: Buffer = Buffer.alloc(0);

    /** Adds bytes; returns the frames completed by them. */
    push(chunk: Buffer): Array<{ width: number; height: number; data: Uint8Array }> {
        this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
        const frames: Array<{ width: number; height: number; data: Uint8Array }> = [];
        for (;;) {
            const header = parsePpmHeader(this.#buffer);
            if (!header) break;
            const size = header.width * header.height * 3;
            if (this.#buffer.length < header.length + size) break;
            frames.push({ width: header.width, height: header.height, data: new Uint8Array(this.#buffer.subarray(header.length, header.length + size)) });
            this.#buffer = this.#buffer.subarray(header.length + size);
        }
        return frames;
    }
}

function parsePpmHeader(b: Buffer): { width: number; height: number; length: number } | undefined {
    // "P6" <ws> width <ws> height <ws> 255 <one ws>
    if (b.length < 2) return undefined;
    if (b[0] !== 0x50 || b[1] !== 0x36) throw new Error("ffmpeg sent something other than PPM frames");
    const fields: number[] = [];
    let i = 2;
    while (fields.length < 3) {
        while (i < b.length && isSpace(b[i]!)) i++;
        if (i >= b.length) return undefined;
        let v = 0;
        let digits = 0;
        while (i < b.length && b[i]! >= 0x30 && b[i]! <= 0x39) {
            v = v * 10 + (b[i]! - 0x30);
            i++;
            digits++;
        }
        if (i >= b.length) return undefined;
        if (digits === 0) throw new Error("malformed PPM header from ffmpeg");
        fields.push(v);
    }
    if (fields[2] !== 255) throw new Error(`unexpected PPM maxval ${fields[2]}`);
    return { width: fields[0]!, height: fields[1]!, length: i + 1 };
}

function isSpace(c: number): boolean {
    return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * Decodes `spec` with ffmpeg, yielding frames as they arrive; ends when the source ends (a followed file that stopped
 * growing, a closed stdin, the end of a finite URL), throws {@link StreamSourceError} when it fails (after the
 * reconnect attempts, for URLs), and kills and reaps ffmpeg when the consumer stops or `signal` aborts.
 */
export async function* liveFrames(spec: LiveSourceSpec, o: LiveSourceOptions): AsyncGenerator<LiveFrame, void, undefined> {
    let offset = 0; // added to timestamps after a reconnect, so the timeline continues
    let lastTimestamp = -Infinity;
    let attempt = 0;
    let delay = o.reconnect?.delayMs ?? 0;
    for (;;) {
        let produced = 0;
        let failure: Error | undefined;
        try {
            for await (const frame of oneRun(spec, o)) {
                produced++;
                // (A frame whose showinfo line was lost, e.g. at ffmpeg's exit, follows the previous one.)
                let t = Number.isFinite(frame.timestamp) ? frame.timestamp + offset : lastTimestamp + 1 / o.fps;
                if (t <= lastTimestamp) {
                    // A reconnected source restarts its clock: continue after the last frame.
                    offset += lastTimestamp - t + 1 / o.fps;
                    t = frame.timestamp + offset;
                }
                lastTimestamp = t;
                yield { ...frame, timestamp: t };
            }
            return;
        } catch (err) {
            if (o.signal.aborted) throw o.signal.reason;
            failure = err as Error;
        }
        const retry = o.reconnect && spec.kind === "url" && attempt < o.reconnect.attempts;
        if (!retry) throw failure instanceof StreamSourceError ? failure : new StreamSourceError(spec.description, failure.message, { cause: failure });
        if (produced > 0) {
            attempt = 0;
            delay = o.reconnect!.delayMs;
        }
        attempt++;
        try {
            o.onReconnect?.(attempt, failure);
        } catch {
            // a listener's exception must not stop the stream
        }
        await sleep(delay, o.signal);
        delay = Math.min(delay * 2, o.reconnect!.maxDelayMs);
    }
}

async function* oneRun(spec: LiveSourceSpec, o: LiveSourceOptions): AsyncGenerator<LiveFrame, void, undefined> {
    if (o.signal.aborted) throw o.signal.reason;
    const child = new ToolProcess(o.ffmpeg.path, liveArgs(spec, o), { stderrLimit: 16384, stdin: spec.kind === "stdin" });
    const timestamps: number[] = [];
    let pending = "";
    child.child.stderr!.on("data", (chunk: Buffer) => {
        pending += chunk.toString("latin1");
        // Only whole lines: a number cut at the end of a chunk must not be read as a shorter one.
        const end = Math.max(pending.lastIndexOf("\n"), pending.lastIndexOf("\r"));
        if (end < 0) return;
        const complete = pending.slice(0, end + 1);
        pending = pending.slice(end + 1);
        for (const m of complete.matchAll(SHOWINFO)) timestamps.push(Number(m[3]));
    });
    if (spec.kind === "stdin") {
        const stdin = child.child.stdin!;
        stdin.on("error", () => {}); // ffmpeg exiting first gives EPIPE: not our error
        spec.stream.on("error", () => void child.kill("the input stream failed"));
        spec.stream.pipe(stdin);
    }
    const onAbort = () => void child.kill("aborted");
    o.signal.addEventListener("abort", onAbort, { once: true });
    const parser = new PpmParser();
    const frames: Array<{ width: number; height: number; data: Uint8Array }> = [];
    try {
        for await (const chunk of child.stdout) {
            child.touch();
            frames.push(...parser.push(chunk as Buffer));
            while (frames.length > 0) {
                // The frame's showinfo line may come a moment after its bytes: wait for it (or for ffmpeg's end).
                while (timestamps.length === 0 && child.isRunning) await sleep(2, o.signal);
                const f = frames.shift()!;
                const timestamp = timestamps.shift() ?? NaN;
                yield { ...f, timestamp };
            }
        }
        const end = await child.exited;
        if (o.signal.aborted) throw o.signal.reason;
        if (end.error) throw new StreamSourceError(spec.description, `ffmpeg could not be started: ${end.error.message}`, { cause: end.error });
        if (end.code !== 0 && !child.killedByUs) {
            throw new StreamSourceError(spec.description, `ffmpeg failed (exit ${String(end.code ?? end.signal)}): ${lastLines(child.stderr.text(), 4)}`);
        }
    } finally {
        o.signal.removeEventListener("abort", onAbort);
        if (spec.kind === "stdin") spec.stream.unpipe(child.child.stdin!);
        await child.kill("the stream stopped reading");
    }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
        if (signal.aborted) return reject(signal.reason);
        const timer = setTimeout(() => {
            signal.removeEventListener("abort", onAbort);
            resolve();
        }, ms);
        const onAbort = () => {
            clearTimeout(timer);
            reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
    });
}

/** Finds ffmpeg as videos do (option → VIDLLAMA_FFMPEG → ffmpeg-static → PATH). */
export function findFfmpeg(ffmpegPath: string | undefined, signal: AbortSignal | undefined): Promise<ResolvedFfmpeg> {
    return resolveFfmpeg({ ...(ffmpegPath !== undefined ? { ffmpegPath } : {}), ...(signal ? { signal } : {}) });
}
