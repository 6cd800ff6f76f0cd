/**
 * Finding ffmpeg/ffprobe and running them as child processes.
 *
 * Children are always spawned with an argument array (never a shell), their stderr is kept only as a bounded tail for
 * error messages, and every child is killed and reaped on completion, error, abort, stall or early exit of the caller.
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import { access, stat } from "node:fs/promises";
import * as path from "node:path";
import type { Readable } from "node:stream";
import { FfmpegNotFoundError } from "../errors.js";
import { checkOptionsObject, optionalSignal, optionalString, throwIfAborted } from "../validate.js";
import { unpackedPath } from "../native/asar.js";

/** Where the ffmpeg in use was found. */
export type FfmpegSource = "option" | "env" | "ffmpeg-static" | "path";

/** The ffmpeg executable that will be used, and where it was found. */
export interface ResolvedFfmpeg {
    /** Absolute path of the executable. */
    path: string;
    /** Which place of the search order supplied it: `ffmpegPath` option, `VIDLLAMA_FFMPEG`, `ffmpeg-static` or `PATH`. */
    source: FfmpegSource;
    /** Version string from `ffmpeg -version` (e.g. `"5.1.9-0+deb12u1"`, `"6.1.1-static"`). */
    version: string;
    /** Places tried before this one and why they were rejected (empty when the first place worked). */
    rejected: readonly string[];
}

/** An ffprobe executable that was found and runs. */
export interface ResolvedFfprobe {
    /** Absolute path of the executable. */
    path: string;
    /** Version string from `ffprobe -version`. */
    version: string;
}

/** Options of {@link resolveFfmpeg}. */
export interface ResolveFfmpegOptions {
    /** Explicit path to ffmpeg (or a directory containing it); tried first. */
    ffmpegPath?: string;
    /** Aborts the search. */
    signal?: AbortSignal;
}

const IS_WINDOWS = process.platform === "win32";
const EXE_SUFFIX = IS_WINDOWS ? ".exe" : "";
const VERSION_TIMEOUT_MS = 20_000;

/** Successful `-version` checks, per absolute path and tool (failures are not cached: the user may fix them). */
const verified = new Map<string, Promise<CheckResult>>();

type CheckResult = { ok: true; path: string; version: string } | { ok: false; reason: string };

/**
 * Finds a working ffmpeg. Order: the `ffmpegPath` option, the `VIDLLAMA_FFMPEG` environment variable, the optional
 * dependency `ffmpeg-static`, then each directory of `PATH`. A candidate is accepted only if `<candidate> -version`
 * runs and prints an ffmpeg version; results are cached per path.
 *
 * @returns the executable, which source supplied it, its version, and the places rejected before it.
 * @throws {FfmpegNotFoundError} when nothing works; `searched` lists every place tried and why it was rejected.
 * @throws {InvalidOptionError} for malformed options.
 */
export async function resolveFfmpeg(options?: ResolveFfmpegOptions): Promise<ResolvedFfmpeg> {
    const o = checkOptionsObject(options, ["ffmpegPath", "signal"]) as ResolveFfmpegOptions;
    const explicit = optionalString("ffmpegPath", o.ffmpegPath);
    const signal = optionalSignal("signal", o.signal);
    const rejected: string[] = [];

    if (explicit !== undefined) {
        const r = await checkCandidate(explicit, "ffmpeg");
        throwIfAborted(signal);
        if (r.ok) return { path: r.path, source: "option", version: r.version, rejected };
        rejected.push(`option ffmpegPath=${explicit}: ${r.reason}`);
    }

    const env = process.env.VIDLLAMA_FFMPEG;
    if (env !== undefined && env !== "") {
        const r = await checkCandidate(env, "ffmpeg");
        throwIfAborted(signal);
        if (r.ok) return { path: r.path, source: "env", version: r.version, rejected };
        rejected.push(`env VIDLLAMA_FFMPEG=${env}: ${r.reason}`);
    } else {
        rejected.push("env VIDLLAMA_FFMPEG: not set");
    }

    const fromStatic = await ffmpegStaticPath();
    throwIfAborted(signal);
    if (typeof fromStatic === "string") {
        const r = await checkCandidate(fromStatic, "ffmpeg");
        throwIfAborted(signal);
        if (r.ok) return { path: r.path, source: "ffmpeg-static", version: r.version, rejected };
        rejected.push(`ffmpeg-static (${fromStatic}): ${r.reason}`);
    } else {
        rejected.push(`ffmpeg-static: ${fromStatic.reason}`);
    }

    const found = await searchPath("ffmpeg");
    throwIfAborted(signal);
    if (found.ok) return { path: found.path, source: "path", version: found.version, rejected };
    rejected.push(found.reason);
    throw new FfmpegNotFoundError(rejected);
}

/**
 * Finds ffprobe for a resolved ffmpeg: first next to it (same directory, `ffmpeg` in the file name replaced by
 * `ffprobe`), then on `PATH`. ffprobe is optional: `undefined` when none works.
 */
export async function resolveFfprobe(ffmpeg: { path: string }): Promise<ResolvedFfprobe | undefined> {
    const dir = path.dirname(ffmpeg.path);
    const base = path.basename(ffmpeg.path);
    const sibling = /ffmpeg/i.test(base) ? base.replace(/ffmpeg/i, "ffprobe") : `ffprobe${EXE_SUFFIX}`;
    const r = await checkCandidate(path.join(dir, sibling), "ffprobe");
    if (r.ok) return { path: r.path, version: r.version };
    const found = await searchPath("ffprobe");
    return found.ok ? { path: found.path, version: found.version } : undefined;
}

/** `import("ffmpeg-static")` → its path, or why it cannot be used. */
async function ffmpegStaticPath(): Promise<string | { reason: string }> {
    const name = "ffmpeg-static"; // a variable, so that TypeScript does not require the optional package
    let mod: unknown;
    try {
        mod = await import(name);
    } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") return { reason: "not installed" };
        return { reason: `cannot be loaded (${(error as Error).message})` };
    }
    const value = (mod as { default?: unknown }).default ?? mod;
    if (typeof value !== "string" || value === "") return { reason: "installed, but has no binary for this platform" };
    // Inside an Electron asar archive the binary is shipped unpacked next to it.
    return unpackedPath(value);
}

async function searchPath(tool: "ffmpeg" | "ffprobe"): Promise<CheckResult> {
    const envPath = process.env.PATH ?? process.env.Path ?? "";
    const dirs = envPath.split(path.delimiter).filter((d) => d !== "");
    if (dirs.length === 0) return { ok: false, reason: "PATH: not set" };
    const broken: string[] = [];
    for (const dir of dirs) {
        const candidate = path.join(dir, `${tool}${EXE_SUFFIX}`);
        try {
            await access(candidate, fsConstants.F_OK);
        } catch {
            continue;
        }
        const r = await checkCandidate(candidate, tool);
        if (r.ok) return r;
        broken.push(`${candidate}: ${r.reason}`);
    }
    if (broken.length > 0) return { ok: false, reason: `PATH: ${broken.join("; ")}` };
    return { ok: false, reason: `PATH: no ${tool} in ${dirs.join(path.delimiter)}` };
}

/** Checks that `candidate` (a file, or a directory holding `tool`) exists, is executable and runs `-version`. */
async function checkCandidate(candidate: string, tool: "ffmpeg" | "ffprobe"): Promise<CheckResult> {
    let file = path.resolve(candidate);
    let st;
    try {
        st = await stat(file);
    } catch {
        return { ok: false, reason: "no such file" };
    }
    if (st.isDirectory()) {
        file = path.join(file, `${tool}${EXE_SUFFIX}`);
        try {
            st = await stat(file);
        } catch {
            return { ok: false, reason: `a directory without ${tool}${EXE_SUFFIX}` };
        }
    }
    if (!st.isFile()) return { ok: false, reason: "not a file" };
    if (!IS_WINDOWS) {
        try {
            await access(file, fsConstants.X_OK);
        } catch {
            return { ok: false, reason: "not executable" };
        }
    }
    const key = `${tool}\0${file}`;
    let pending = verified.get(key);
    if (!pending) {
        pending = runVersion(file, tool);
        verified.set(key, pending);
        pending.then((r) => !r.ok && verified.delete(key), () => verified.delete(key));
    }
    return pending;
}

async function runVersion(file: string, tool: "ffmpeg" | "ffprobe"): Promise<CheckResult> {
    let result: ToolResult;
    try {
        result = await runTool(file, ["-version"], { stallTimeout: VERSION_TIMEOUT_MS, maxStdout: 64 * 1024 });
    } catch (error) {
        return { ok: false, reason: `cannot run it (${(error as Error).message})` };
    }
    const first = result.stdout.toString("utf8").split(/\r?\n/, 1)[0] ?? "";
    const match = new RegExp(`^${tool} version (\\S+)`).exec(first);
    if (result.stalled) return { ok: false, reason: `\`-version\` did not finish within ${VERSION_TIMEOUT_MS / 1000} s` };
    if (result.code !== 0) {
        return { ok: false, reason: `\`-version\` failed (${describeExit(result)})${result.stderr ? `: ${lastLines(result.stderr, 2)}` : ""}` };
    }
    if (!match) return { ok: false, reason: `does not look like ${tool} (\`-version\` printed "${first.slice(0, 80)}")` };
    return { ok: true, path: file, version: match[1]! };
}

/** @internal `major.minor` of an ffmpeg version string; `undefined` for git snapshots ("N-12345-g…") and unknown formats. */
export function parseFfmpegVersion(version: string): { major: number; minor: number } | undefined {
    const m = /^n?(\d+)\.(\d+)/.exec(version);
    return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
}

/** @internal Whether `-fps_mode` exists (ffmpeg >= 5.1; unknown versions are assumed recent). */
export function hasFpsMode(version: string): boolean {
    const v = parseFfmpegVersion(version);
    return v === undefined || v.major > 5 || (v.major === 5 && v.minor >= 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------------------------

/** @internal Bounded tail of a text stream: keeps the last `limit` bytes. */
export class StderrTail {
    private chunks: Buffer[] = [];
    private size = 0;

    constructor(private readonly limit = 8192) {}

    push(chunk: Buffer): void {
        this.chunks.push(chunk);
        this.size += chunk.length;
        while (this.size - this.chunks[0]!.length >= this.limit) {
            this.size -= this.chunks.shift()!.length;
        }
    }

    /** The kept text, without known-harmless noise, trimmed. */
    text(): string {
        let s = Buffer.concat(this.chunks).toString("utf8");
        if (this.size > this.limit) s = s.slice(s.indexOf("\n") + 1);
        return cleanStderr(s);
    }
}

/** Lines that carry no information of their own. */
const BENIGN_STDERR = [/^\s*Last message repeated \d+ times?\s*$/];

function cleanStderr(text: string): string {
    return text
        .split(/\r?\n/)
        .filter((line) => line.trim() !== "" && !BENIGN_STDERR.some((re) => re.test(line)))
        .join("\n")
        .trim();
}

/** @internal The last `n` non-empty lines of a text, joined with " | ". */
export function lastLines(text: string, n: number, maxChars = 600): string {
    const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
    const s = lines.slice(-n).join(" | ");
    return s.length > maxChars ? `…${s.slice(-maxChars)}` : s;
}

/** @internal Options of {@link ToolProcess}. */
export interface SpawnToolOptions {
    /** Open an extra pipe as fd 3 (for `-progress pipe:3`). */
    progressFd?: boolean;
    /** Bytes of stderr to keep (the tail). Default 8 KiB. */
    stderrLimit?: number;
    /** Give the child a stdin pipe (live streams read from `pipe:0`); default: no stdin. */
    stdin?: boolean;
}

/**
 * One running child with a readable stdout, a bounded stderr tail, activity tracking for stall detection, and a
 * `kill()` that resolves once the process has been reaped.
 *
 * @internal
 */
export class ToolProcess {
    readonly child: ChildProcess;
    readonly stdout: Readable;
    readonly stderr: StderrTail;
    /** Resolves when the process has exited and been reaped (never rejects). */
    readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
    /** `Date.now()` of the last byte seen on stdout, stderr or the progress pipe. */
    lastActivity = Date.now();
    /** Set by {@link kill}. */
    killedByUs = false;
    /** Why we killed it, for messages. */
    killReason: string | undefined;
    private running = true;

    constructor(file: string, args: readonly string[], options: SpawnToolOptions = {}) {
        this.stderr = new StderrTail(options.stderrLimit ?? 8192);
        // Videos never use stdin: inputs are files or URLs (bytes and streams are written to a temporary file first).
        // Live streams may (a stdin source), where nothing can be spooled.
        const stdio: ("pipe" | "ignore")[] = [options.stdin ? "pipe" : "ignore", "pipe", "pipe"];
        if (options.progressFd) stdio.push("pipe");
        this.child = spawn(file, args, { stdio, windowsHide: true, shell: false });
        this.stdout = this.child.stdout!;
        let spawnError: Error | undefined;
        this.exited = new Promise((resolve) => {
            this.child.once("error", (error) => {
                spawnError = error;
                // 'exit' is not emitted when spawning fails.
                if (this.child.pid === undefined) {
                    this.running = false;
                    resolve({ code: null, signal: null, error });
                }
            });
            this.child.once("exit", (code, signal) => {
                this.running = false;
                resolve({ code, signal, ...(spawnError ? { error: spawnError } : {}) });
            });
        });
        this.child.stderr!.on("data", (chunk: Buffer) => {
            this.lastActivity = Date.now();
            this.stderr.push(chunk);
        });
        this.child.stderr!.on("error", () => {});
        this.stdout.on("error", () => {});
        const progress = options.progressFd ? (this.child.stdio[3] as Readable | null) : null;
        if (progress) {
            // `-progress` reports arrive every 0.5 s while ffmpeg works, even when the fps filter emits nothing.
            progress.on("data", () => {
                this.lastActivity = Date.now();
            });
            progress.on("error", () => {});
        }
    }

    /** Whether the process has not exited yet. */
    get isRunning(): boolean {
        return this.running;
    }

    /** Notes activity seen by the reader of stdout. */
    touch(): void {
        this.lastActivity = Date.now();
    }

    /** Kills the process (SIGKILL), closes our ends of its pipes, and resolves when it has been reaped. */
    async kill(reason?: string): Promise<void> {
        if (this.running) {
            if (!this.killedByUs) {
                this.killedByUs = true;
                this.killReason = reason;
            }
            try {
                this.child.kill("SIGKILL");
            } catch {
                // already gone
            }
        }
        this.destroyPipes();
        await this.exited;
    }

    /** Closes our ends of the pipes (a child blocked writing to a pipe nobody reads gets EPIPE). */
    destroyPipes(): void {
        for (const s of this.child.stdio) {
            if (s && !s.destroyed) s.destroy();
        }
    }
}

/** @internal Result of {@link runTool}. */
export interface ToolResult {
    code: number | null;
    signal: NodeJS.Signals | null;
    /** Collected stdout (empty when `onStdout` consumed it). */
    stdout: Buffer;
    /** Cleaned stderr tail. */
    stderr: string;
    /** The child went `stallTimeout` ms without output and was killed. */
    stalled: boolean;
    /** stdout exceeded `maxStdout` and the child was killed. */
    overflow: boolean;
}

/** @internal Options of {@link runTool}. */
export interface RunToolOptions extends SpawnToolOptions {
    signal?: AbortSignal;
    /** Kill the child after this many ms without any output. */
    stallTimeout: number;
    /** Collect at most this many stdout bytes (the child is killed beyond it). Default 64 MiB. */
    maxStdout?: number;
    /** Receives stdout chunks instead of collecting them. */
    onStdout?: (chunk: Buffer) => void;
    /** Registers the running child (so an owner can kill it on close). */
    track?: (p: ToolProcess) => () => void;
}

/**
 * Runs a tool to completion. Rejects with `signal.reason` on abort (after the child has been reaped) and with the
 * spawn error when it cannot be started; a non-zero exit is reported in the result, not thrown.
 *
 * @internal
 */
export async function runTool(file: string, args: readonly string[], options: RunToolOptions): Promise<ToolResult> {
    const { signal } = options;
    throwIfAborted(signal);
    const p = new ToolProcess(file, args, options);
    const untrack = options.track?.(p);
    const maxStdout = options.maxStdout ?? 64 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let size = 0;
    let overflow = false;
    let stalled = false;
    p.stdout.on("data", (chunk: Buffer) => {
        p.touch();
        if (options.onStdout) {
            options.onStdout(chunk);
            return;
        }
        size += chunk.length;
        if (size > maxStdout) {
            overflow = true;
            void p.kill("output too large");
            return;
        }
        chunks.push(chunk);
    });
    const stdoutDone = new Promise<void>((resolve) => {
        p.stdout.once("close", resolve);
        p.stdout.once("end", resolve);
    });
    const onAbort = (): void => void p.kill("aborted");
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = setInterval(() => {
        if (Date.now() - p.lastActivity > options.stallTimeout) {
            stalled = true;
            void p.kill("stalled");
        }
    }, Math.min(1000, Math.max(50, options.stallTimeout / 4)));
    try {
        const exit = await p.exited;
        await Promise.race([stdoutDone, delay(2000)]);
        if (exit.error && exit.code === null && exit.signal === null) throw exit.error;
        throwIfAborted(signal);
        return { code: exit.code, signal: exit.signal, stdout: Buffer.concat(chunks), stderr: p.stderr.text(), stalled, overflow };
    } finally {
        clearInterval(timer);
        signal?.removeEventListener("abort", onAbort);
        await p.kill();
        untrack?.();
    }
}

/** @internal "exit code 1" / "killed by SIGKILL". */
export function describeExit(r: { code: number | null; signal: NodeJS.Signals | null }): string {
    if (r.signal) return `killed by ${r.signal}`;
    return `exit code ${r.code}`;
}

/**
 * @internal Seconds as a decimal string for `-ss`/`-t`: the shortest decimal form of the number (Python's `str(float)`, which the
 * reference passes) cut after 6 decimals, which is where ffmpeg's `av_parse_time` stops reading; never exponent notation.
 */
export function formatSeconds(seconds: number): string {
    let s = String(seconds);
    if (/e/i.test(s)) s = seconds.toFixed(7);
    const negative = s.startsWith("-");
    const [int, frac = ""] = (negative ? s.slice(1) : s).split(".");
    const f = frac.slice(0, 6).replace(/0+$/, "");
    const out = f ? `${int}.${f}` : int!;
    return negative && /[1-9]/.test(out) ? `-${out}` : out;
}

/** Microseconds of a {@link formatSeconds} string, as ffmpeg's `av_parse_time` computes them. @internal */
export function secondsStringToMicros(s: string): bigint {
    const negative = s.startsWith("-");
    const [int, frac = ""] = (negative ? s.slice(1) : s).split(".");
    const us = BigInt(int || "0") * 1_000_000n + BigInt((frac + "000000").slice(0, 6));
    return negative ? -us : us;
}

function delay(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms).unref?.());
}
