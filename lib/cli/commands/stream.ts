/**
 * `vidllama stream <source> -m model.gguf --mmproj mmproj.gguf`: a live stream (a file, a URL, stdin or a capture
 * device) entering the KV cache as it plays, with questions read line by line from stdin and answered at any moment.
 * A status line on stderr shows what the stream holds; `--json` prints one event per line on stdout instead.
 *
 * Ctrl+C during an answer stops the answer; Ctrl+C otherwise (or the end of stdin once the source has ended) closes
 * the stream and exits 0.
 *
 * @internal
 * @module
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createInterface, type Interface } from "node:readline";
import { Command, InvalidArgumentError, Option, type CommanderError } from "commander";
import { VidllamaError } from "../../errors.js";
import { familyOf } from "../../family/index.js";
import type { Model } from "../../Model.js";
import { StreamSourceError, type AskOptions, type IngestOptions, type IngestResult, type Stream, type StreamOptions, type StreamSource, type StreamStats, type StreamWindow } from "../../Stream.js";
import { interruptSignal, parseInteger, parseNumber, reportError } from "../shared.js";
import { addModelFlags, addSamplingFlags, collect, ENCODE_CHANGED_ONLY_HELP, loadModelWithProgress, promptOptionsFrom, pruneFrom, type ModelFlags, type SamplingFlags } from "./generation-options.js";

interface StreamFlags extends ModelFlags, SamplingFlags {
    fps?: number;
    window?: StreamWindow;
    system?: string;
    timestamps?: boolean;
    prune?: boolean;
    pruneThreshold?: number;
    encodeChangedOnly?: boolean;
    follow?: boolean;
    inputFormat?: string;
    inputOption?: string[];
    reconnect?: boolean;
    idleTimeout?: number;
    queueSize?: number;
    queuePolicy?: "drop-oldest" | "drop-newest" | "wait";
    ffmpeg?: string;
    ask?: string[];
    every?: number;
    json?: boolean;
}

/** Exit status of a command line that cannot run as given (a bad flag or a bad combination). */
const USAGE = 2;

/** What `<source>` is, decided from the argument and the flags before anything is loaded. */
type SourceKind = "stdin" | "device" | "url" | "file";

export function streamCommand(): Command {
    const command = new Command("stream")
        .description("watch a live video (file, URL, stdin or capture device) and answer questions typed on stdin at any moment")
        .argument("<source>", "a video file, a URL (rtsp://, http(s)://, udp://, srt://, …), - for encoded video on stdin, or a device name with --input-format")
        .option("--fps <n>", "frames sampled per second of stream time (default: the projector's, 1)", parseNumber("--fps", 0.001, 1000))
        .option("--window <size>", "how much the cache keeps: 120s (seconds), 300f (frames), 4000t (tokens); comma-separate or repeat to combine (default: as many frames as fit)", parseWindow)
        .option("-s, --system <text>", "system prompt at the start of the stream (never evicted)")
        .option("--timestamps", "write each frame's stream time before it (off by default: VideoLLaMA3's streaming training samples carry no time text)")
        .option("--prune-threshold <x>", "Differential Frame Pruning threshold (default: the projector's, 0.1)", parseNumber("--prune-threshold", 0, 1e6))
        .option("--prune", "Differential Frame Pruning of the frames (default: on for VideoLLaMA3, off for Video-LLaVA)")
        .option("--no-prune", "keep every visual token of every frame")
        .option("--encode-changed-only", ENCODE_CHANGED_ONLY_HELP)
        .option("--follow", "<source> is a file still being written: keep reading as it grows (ends after --idle-timeout without growth)")
        .option("--input-format <format>", "read <source> as a capture device of this ffmpeg input format (v4l2, avfoundation, dshow, gdigrab, x11grab, …)")
        .option("--input-option <arg>", "an ffmpeg input option placed before -i (repeatable, one word each: --input-option=-video_size --input-option=640x480)", collect)
        .option("--reconnect", "a URL source reconnects after a failure (5 attempts, back-off from 0.5 s to 8 s)")
        .option("--idle-timeout <seconds>", "seconds without data after which a followed file ends or a URL read fails (default 10)", parseNumber("--idle-timeout", 0.1, 3600))
        .option("--queue-size <n>", "frames waiting to be ingested, at most (default 4)", parseInteger("--queue-size", 0, 1 << 20))
        .addOption(
            new Option("--queue-policy <policy>", "when the queue is full (default: wait for a file, drop-oldest for live sources)")
                .choices(["drop-oldest", "drop-newest", "wait"]),
        )
        .option("--ffmpeg <path>", "the ffmpeg executable to use (else $VIDLLAMA_FFMPEG, ffmpeg-static, PATH)")
        .option("--ask <question>", "a question asked when the source ends (repeatable; with --every, asked periodically instead)", collect)
        .option("--every <seconds>", "ask the --ask questions every this many seconds of stream time", parseNumber("--every", 0.001, 1e9))
        .option("--json", "print one JSON object per line on stdout for every event (ready, frame, evict, drop, answer, error, end, close)");
    addModelFlags(command);
    addSamplingFlags(command, { maxTokens: 256 });
    // A command line that cannot run exits 2 (commander's own parse errors included); help and --version exit 0.
    command.exitOverride((err: CommanderError) => {
        const usage = err.exitCode !== 0 && !["commander.help", "commander.helpDisplayed", "commander.version"].includes(err.code);
        process.exit(usage ? USAGE : err.exitCode);
    });
    return command.action(async (source: string, given: StreamFlags, cmd: Command) => {
        const flags = { ...given, window: given.window ?? {}, inputOption: given.inputOption ?? [], ask: given.ask ?? [] };
        const kind = checkFlags(source, flags, cmd);
        await runStream(source, kind, flags);
    });
}

/** `120s`, `300f`, `4000t` (comma-separated or repeated) → a window. */
function parseWindow(value: string, previous: StreamWindow = {}): StreamWindow {
    const out: StreamWindow = { ...previous };
    for (const part of value.split(",")) {
        const m = /^\s*(\d+(?:\.\d+)?)\s*([sft])\s*$/.exec(part);
        const n = m ? Number(m[1]) : NaN;
        if (!m || !(n > 0) || (m[2] !== "s" && !Number.isSafeInteger(n))) {
            throw new InvalidArgumentError(`--window must be like 120s (seconds), 300f (frames) or 4000t (tokens): a positive number and its unit, got "${part.trim()}"`);
        }
        if (m[2] === "s") out.seconds = n;
        else if (m[2] === "f") out.frames = n;
        else out.tokens = n;
    }
    return out;
}

/** Checks combinations of flags (exit 2 before any work) and tells what the source is. */
function checkFlags(source: string, flags: Flags, cmd: Command): SourceKind {
    const usage = (message: string): never => cmd.error(`error: ${message}`, { exitCode: USAGE, code: "vidllama.usage" });
    if (!flags.mmproj) usage("--mmproj is required: a stream needs the vision projector");
    if (source.trim() === "") usage("<source> is empty");
    const kind: SourceKind =
        flags.inputFormat !== undefined ? "device" : source === "-" ? "stdin" : /^file:/i.test(source) ? "file" : /^[a-z][a-z0-9+.-]*:\/\//i.test(source) ? "url" : "file";
    if (flags.inputFormat !== undefined && source === "-") usage("--input-format reads a capture device: <source> must be the device (e.g. /dev/video0), not -");
    if (flags.follow && kind !== "file") usage(`--follow is for a file that is still being written; <source> is ${describeKind(kind)}`);
    if (flags.reconnect && kind !== "url") usage(`--reconnect is for URL sources; <source> is ${describeKind(kind)}`);
    if (flags.idleTimeout !== undefined && !(kind === "url" || (kind === "file" && flags.follow))) usage("--idle-timeout applies to a URL or a --follow file");
    if (flags.prune === false && flags.pruneThreshold !== undefined) usage("--prune-threshold and --no-prune cannot be used together");
    if (flags.prune === false && flags.encodeChangedOnly) usage("--encode-changed-only and --no-prune cannot be used together");
    if (flags.every !== undefined && flags.ask.length === 0) usage("--every needs at least one --ask question");
    if (flags.ask.some((q) => q.trim() === "")) usage("--ask needs a non-empty question");
    return kind;
}

function describeKind(kind: SourceKind): string {
    return kind === "stdin" ? "stdin (-)" : kind === "device" ? "a capture device (--input-format)" : kind === "url" ? "a URL" : "a file";
}

/** One JSON object per line on stdout (NaN and ±Infinity become null, as JSON has no such numbers). */
function emitJson(event: string, fields: object = {}): void {
    process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

function errorJson(err: unknown): object {
    if (err instanceof VidllamaError) return { code: err.code, name: err.name, message: err.message, ...(err instanceof StreamSourceError ? { source: err.source } : {}) };
    if (err instanceof Error) return { code: err.name === "AbortError" ? "ABORT_ERR" : "ERR_UNEXPECTED", name: err.name, message: err.message };
    return { code: "ERR_UNEXPECTED", message: String(err) };
}

async function runStream(source: string, kind: SourceKind, flags: Flags): Promise<void> {
    const json = flags.json === true;
    const fail = (err: unknown) => {
        if (json) emitJson("error", errorJson(err));
        reportError(err);
    };
    if (kind === "file" && !flags.follow && !existsSync(/^file:/i.test(source) ? fileURLToPath(source) : source)) {
        // Before the model is loaded: a typo in the path should not cost a model load.
        fail(new StreamSourceError(source, "no such file"));
        return;
    }
    const loading = interruptSignal();
    let model: Model;
    let stream: Stream;
    try {
        model = await loadModelWithProgress({ ...flags, quiet: flags.quiet || json }, loading.signal);
        try {
            const options: StreamOptions = {
                systemPrompt: flags.system,
                timestamps: flags.timestamps === true,
                window: flags.window,
                contextSize: flags.contextSize,
                threads: flags.threads,
                queue: { size: flags.queueSize, policy: flags.queuePolicy ?? (kind === "file" && !flags.follow ? "wait" : undefined) },
            };
            const prune = pruneFrom(flags);
            if (prune !== undefined) options.prune = prune;
            stream = await model.createStream(options);
        } catch (err) {
            await model.dispose();
            throw err;
        }
    } catch (err) {
        fail(err);
        return;
    } finally {
        loading.dispose();
    }
    try {
        await new LiveRun(model, stream, source, kind, flags).run();
    } catch (err) {
        fail(err);
    } finally {
        await stream.close();
        await model.dispose();
    }
}

type Flags = StreamFlags & Required<Pick<StreamFlags, "window" | "inputOption" | "ask">>;

/** The stream command once the model and the stream exist. */
class LiveRun {
    readonly #model: Model;
    readonly #stream: Stream;
    readonly #source: string;
    readonly #kind: SourceKind;
    readonly #flags: Flags;
    readonly #json: boolean;
    readonly #askOptions: AskOptions;
    /** Questions come from stdin unless stdin is the video. */
    readonly #questionsFromStdin: boolean;
    readonly #interactive: boolean;
    #status: StatusLine | undefined;
    #rl: Interface | undefined;
    /** Questions run one after another (stdin and --ask), so that answers never interleave. */
    #chain: Promise<void> = Promise.resolve();
    #current: AbortController | undefined;
    #finish!: () => void;
    readonly #finished = new Promise<void>((resolve) => (this.#finish = resolve));
    #closing = false;
    #nextAskAt = NaN;

    constructor(model: Model, stream: Stream, source: string, kind: SourceKind, flags: Flags) {
        this.#model = model;
        this.#stream = stream;
        this.#source = source;
        this.#kind = kind;
        this.#flags = flags;
        this.#json = flags.json === true;
        this.#askOptions = { ...promptOptionsFrom(flags) };
        this.#questionsFromStdin = kind !== "stdin";
        this.#interactive = this.#questionsFromStdin && process.stdin.isTTY === true;
    }

    async run(): Promise<void> {
        const stream = this.#stream;
        const json = this.#json;
        const unsubscribe = [
            stream.on("frame", (e) => {
                if (json) emitJson("frame", e);
                this.#status?.changed();
                this.#periodicQuestions(e.timestamp);
            }),
            stream.on("evict", (e) => {
                if (json) emitJson("evict", e);
                this.#status?.changed();
            }),
            stream.on("drop", (e) => {
                if (json) emitJson("drop", e);
                this.#status?.changed();
            }),
            stream.on("answer", (a) => {
                if (json) {
                    const { logits: _logits, question, ...answer } = a;
                    emitJson("answer", { question, ...answer });
                }
            }),
            stream.on("error", (err) => {
                if (json) emitJson("error", errorJson(err));
                else this.#message(`vidllama: ${err.message}`);
            }),
        ];
        const onSignal = () => this.#interrupt();
        process.on("SIGINT", onSignal);
        process.on("SIGTERM", onSignal);
        // A reader that went away (`| head`) ends the run instead of crashing on EPIPE.
        const onStdoutError = () => this.#finish();
        process.stdout.on("error", onStdoutError);
        try {
            if (!this.#flags.quiet && !json) {
                const mode = process.stderr.isTTY !== true ? "lines" : this.#interactive ? "prompt" : "tty";
                this.#status = new StatusLine(mode, () => (mode === "prompt" ? shortStatusText : statusText)(stream.stats()));
            }
            const s = stream.stats();
            if (json) {
                emitJson("ready", {
                    source: this.#label(),
                    kind: this.#kind,
                    model: this.#model.info.description,
                    contextSize: s.contextSize,
                    kvTokens: s.kvTokens,
                    fps: this.#flags.fps ?? (this.#model.visionInfo ? familyOf(this.#model.visionInfo).streamFps(this.#model.visionInfo) : null),
                    window: this.#flags.window,
                    timestamps: this.#flags.timestamps === true,
                });
            } else if (!this.#flags.quiet) {
                const hint = this.#questionsFromStdin ? (this.#interactive ? "type a question and press Enter; Ctrl+C stops an answer or quits" : "questions are read from stdin") : "stdin is the video: no questions from stdin";
                this.#message(`vidllama: streaming ${this.#label()} (${s.contextSize}-token context) — ${hint}`);
            }
            const stdinDone = this.#questionsFromStdin ? this.#readQuestions() : Promise.resolve();
            const ingestion = stream.ingest(this.#sourceValue(), this.#ingestOptions());
            const ended = this.#afterSource(ingestion, stdinDone);
            this.#status?.start();
            await this.#finished;
            this.#closing = true;
            this.#current?.abort();
            this.#rl?.close();
            await stream.close();
            await ended;
            await this.#chain;
            const stats = stream.stats();
            if (json) emitJson("close", stats);
            else if (!this.#flags.quiet) this.#message(`vidllama: stream closed — ${statusText(stats)}`);
        } finally {
            this.#status?.stop();
            for (const u of unsubscribe) u();
            process.off("SIGINT", onSignal);
            process.off("SIGTERM", onSignal);
            process.stdout.off("error", onStdoutError);
            this.#rl?.close();
        }
    }

    /** The source as shown (a URL's credentials hidden). */
    #label(): string {
        if (this.#kind === "stdin") return "stdin";
        if (this.#kind === "device") return `${this.#flags.inputFormat}:${this.#source}`;
        return this.#kind === "url" ? this.#source.replace(/\/\/[^/@]*@/, "//***@") : this.#source;
    }

    #sourceValue(): StreamSource {
        if (this.#kind === "stdin") return process.stdin;
        if (this.#kind === "device") return { format: this.#flags.inputFormat!, device: this.#source };
        return this.#source;
    }

    #ingestOptions(): IngestOptions {
        const f = this.#flags;
        return {
            fps: f.fps,
            ffmpegPath: f.ffmpeg,
            follow: f.follow,
            inputOptions: f.inputOption,
            idleTimeout: f.idleTimeout === undefined ? undefined : Math.round(f.idleTimeout * 1000),
            reconnect: f.reconnect,
        };
    }

    /** When the source ends: say so, ask the --ask questions, and finish once stdin has ended too. */
    async #afterSource(ingestion: Promise<IngestResult>, stdinDone: Promise<void>): Promise<void> {
        let result: IngestResult;
        try {
            result = await ingestion;
        } catch (err) {
            // ffmpeg not found, bad ingest options: nothing can be streamed.
            if (this.#json) emitJson("error", errorJson(err));
            reportError(err);
            if (this.#json) emitJson("end", { reason: "error", frames: 0 });
            this.#finish();
            return;
        }
        // Queued frames are ingested before the end is told (and before --ask questions see the stream).
        if (!this.#closing && result.frames > 0) await this.#stream.idle();
        if (this.#json) emitJson("end", { reason: result.reason, frames: result.frames });
        if (result.reason === "error") process.exitCode = 1;
        if (this.#closing) return;
        const ingested = this.#stream.stats().framesIngested;
        if (result.reason === "error" && ingested === 0) {
            if (!this.#json) this.#message("vidllama: the source gave no frame; closing");
            this.#finish();
            return;
        }
        if (!this.#json && !this.#flags.quiet) {
            const more = this.#questionsFromStdin ? (this.#interactive ? "; ask away, Ctrl+D or Ctrl+C to quit" : "; answering the remaining questions") : "";
            this.#message(`vidllama: the source ${result.reason === "error" ? "failed" : "ended"} after ${result.frames} frames (${ingested} ingested)${more}`);
        }
        if (this.#flags.every === undefined) for (const q of this.#flags.ask) void this.#enqueue(q);
        await stdinDone;
        await this.#chain;
        this.#finish();
    }

    /** --ask with --every: the questions each time stream time passes the next multiple. */
    #periodicQuestions(timestamp: number): void {
        const every = this.#flags.every;
        if (every === undefined || this.#closing) return;
        if (Number.isNaN(this.#nextAskAt)) this.#nextAskAt = timestamp + every;
        if (timestamp < this.#nextAskAt) return;
        while (this.#nextAskAt <= timestamp) this.#nextAskAt += every;
        for (const q of this.#flags.ask) void this.#enqueue(q);
    }

    /** Reads questions line by line until stdin ends. */
    async #readQuestions(): Promise<void> {
        const interactive = this.#interactive;
        const rl = createInterface({ input: process.stdin, ...(interactive ? { output: process.stderr } : {}), terminal: interactive });
        this.#rl = rl;
        // In a terminal, Ctrl+C reaches readline (raw mode), not the process.
        rl.on("SIGINT", () => this.#interrupt());
        this.#status?.attach(rl);
        if (interactive) this.#status?.prompt();
        try {
            for await (const line of rl) {
                if (this.#closing) break;
                const question = line.trim();
                if (question !== "") await this.#enqueue(question);
                if (interactive && !this.#closing) this.#status?.prompt();
            }
        } catch {
            // stdin failed: no more questions
        }
    }

    /** Queues a question after the ones before it; resolves when it has been answered (or failed). */
    #enqueue(question: string): Promise<void> {
        const run = this.#chain.then(() => (this.#closing ? undefined : this.#answer(question)));
        this.#chain = run.catch(() => {});
        return this.#chain;
    }

    async #answer(question: string): Promise<void> {
        const controller = new AbortController();
        this.#current = controller;
        try {
            if (this.#json) {
                // The answer event (from the stream's "answer" listener) carries the question and the result.
                await this.#stream.ask(question, { ...this.#askOptions, signal: controller.signal });
                return;
            }
            this.#status?.suspend();
            if (!this.#interactive && !this.#flags.quiet) this.#message(`> ${question}`);
            const answer = this.#stream.askStream(question, { ...this.#askOptions, signal: controller.signal });
            for await (const chunk of answer) process.stdout.write(chunk);
            const result = await answer.result;
            process.stdout.write(result.stopReason === "abort" ? " [stopped]\n" : "\n");
            if (!this.#flags.quiet && process.stderr.isTTY) {
                const at = Number.isNaN(result.timestamp) ? "no frame yet" : `${result.frames} frames up to ${result.timestamp.toFixed(1)}s`;
                process.stderr.write(`[${result.stopReason}] ${at}, first token ${result.ttftMs.toFixed(0)} ms, ${result.tokens.length} tokens\n`);
            }
        } catch (err) {
            if (this.#closing) return;
            // A failed question (too long for the context, …) does not end the stream.
            if (this.#json) emitJson("error", errorJson(err));
            else this.#message(`vidllama: ${err instanceof Error ? err.message : String(err)}`);
        } finally {
            this.#current = undefined;
            this.#status?.resume();
        }
    }

    /** Ctrl+C: stops the answer being written, else closes the stream; a second Ctrl+C while closing exits at once. */
    #interrupt(): void {
        if (this.#current && !this.#current.signal.aborted) {
            this.#current.abort();
            return;
        }
        if (this.#closing) process.exit(130);
        this.#closing = true;
        this.#finish();
    }

    /** A line on stderr that does not break the status line. */
    #message(text: string): void {
        if (this.#status) this.#status.message(text);
        else process.stderr.write(`${text}\n`);
    }
}

/** The status in a few words, for the prompt of an interactive terminal. */
function shortStatusText(s: StreamStats): string {
    const kept = s.tokensTotal > 0 ? ` · ${((s.tokensKept / s.tokensTotal) * 100).toFixed(0)}% kept` : "";
    const lost = s.framesDropped + s.framesEvicted > 0 ? ` (${s.framesDropped} dropped, ${s.framesEvicted} evicted)` : "";
    const at = Number.isNaN(s.window.to) ? "" : ` · ${s.window.to.toFixed(1)}s`;
    return `${s.framesIngested}/${s.framesSeen} frames${lost}${kept} · KV ${s.kvTokens}/${s.contextSize} ${(s.kvBytes / 2 ** 20).toFixed(1)} MiB · q${s.queueDepth}${at}`;
}

function statusText(s: StreamStats): string {
    const kept = s.tokensTotal > 0 ? `${((s.tokensKept / s.tokensTotal) * 100).toFixed(0)}%` : "-";
    const at = Number.isNaN(s.window.to) ? "-" : `${s.window.to.toFixed(1)}s`;
    return (
        `frames ${s.framesSeen} seen, ${s.framesIngested} in, ${s.framesDropped} dropped, ${s.framesEvicted} evicted · ` +
        `tokens kept ${kept} · KV ${s.kvTokens}/${s.contextSize} (${(s.kvBytes / 2 ** 20).toFixed(1)} MiB) · queue ${s.queueDepth} · at ${at}`
    );
}

/**
 * The status line on stderr: `"tty"` redraws it in place, `"prompt"` makes it the prompt of the question being typed
 * (stdin and stderr are one terminal: readline redraws it with what the user typed), `"lines"` prints it every
 * few seconds (a log, a pipe).
 */
class StatusLine {
    readonly #mode: "tty" | "prompt" | "lines";
    readonly #text: () => string;
    #rl: Interface | undefined;
    #timer: NodeJS.Timeout | undefined;
    #suspended = 0;
    #drawn = false;
    #dirty = true;
    #lastDraw = 0;
    #lastLine = "";

    constructor(mode: "tty" | "prompt" | "lines", text: () => string) {
        this.#mode = mode;
        this.#text = text;
    }

    attach(rl: Interface): void {
        this.#rl = rl;
    }

    start(): void {
        this.#timer = setInterval(() => this.#tick(), this.#mode === "lines" ? 5000 : 1000);
        this.#timer.unref();
        this.#draw();
    }

    stop(): void {
        if (this.#timer) clearInterval(this.#timer);
        this.#timer = undefined;
        this.#clear();
    }

    /** Something changed: redraw soon (at most 10 times a second). */
    changed(): void {
        this.#dirty = true;
        if (this.#mode !== "lines" && Date.now() - this.#lastDraw >= 100) this.#draw();
    }

    /** No drawing while an answer is written. */
    suspend(): void {
        if (this.#suspended++ === 0) this.#clear();
    }

    resume(): void {
        if (this.#suspended > 0 && --this.#suspended === 0) this.#draw();
    }

    /** Shows the prompt (interactive mode) for the next question. */
    prompt(): void {
        if (this.#mode !== "prompt" || !this.#rl) return;
        this.#rl.setPrompt(this.#promptText());
        this.#rl.prompt();
        this.#drawn = true;
    }

    message(text: string): void {
        this.#clear();
        process.stderr.write(`${text}\n`);
        if (this.#mode === "prompt" && this.#rl && this.#suspended === 0) {
            this.#rl.prompt(true);
            this.#drawn = true;
        } else if (this.#mode === "tty") this.#draw();
    }

    #tick(): void {
        if (this.#mode === "lines") {
            const line = this.#text();
            if (this.#suspended === 0 && line !== this.#lastLine) process.stderr.write(`${line}\n`);
            this.#lastLine = line;
            return;
        }
        if (this.#dirty) this.#draw();
    }

    #promptText(): string {
        const columns = process.stderr.columns || 100;
        const text = `[${this.#text()}]`;
        // room for what the user types
        const max = Math.max(20, columns - 30);
        return `${text.length > max ? `${text.slice(0, max - 2)}…]` : text} > `;
    }

    #draw(): void {
        if (this.#suspended > 0 || this.#mode === "lines") return;
        this.#lastDraw = Date.now();
        this.#dirty = false;
        if (this.#mode === "prompt") {
            if (!this.#rl) return;
            this.#rl.setPrompt(this.#promptText());
            this.#rl.prompt(true);
            this.#drawn = true;
            return;
        }
        const columns = process.stderr.columns || 100;
        const text = this.#text();
        process.stderr.write(`\r\x1b[K${text.length > columns - 1 ? text.slice(0, columns - 1) : text}`);
        this.#drawn = true;
    }

    #clear(): void {
        if (!this.#drawn) return;
        process.stderr.write("\r\x1b[K");
        this.#drawn = false;
    }
}
