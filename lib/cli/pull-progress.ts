/**
 * How the CLI reports a pull on stderr: the size before the first byte, a bar with bytes, speed and ETA on a
 * terminal (a line per finished file otherwise), every retry, the wait for another process, the conversion.
 *
 * @internal
 * @module
 */
import { formatBytes } from "../errors.js";
import type { PullProgress } from "../hub/pull.js";
import { ProgressBar } from "./progress.js";

export class PullReporter {
    readonly #quiet: boolean;
    readonly #tty: boolean;
    readonly #download = new ProgressBar("downloading");
    readonly #convert = new ProgressBar("converting");
    #converting = false;
    readonly #sizes = new Map<string, number>();
    /** Say "from the cache" when the pull needed nothing (the `pull` command does; `ask` stays silent). */
    readonly #announceCache: boolean;

    constructor(options: { quiet?: boolean; announceCache?: boolean } = {}) {
        this.#quiet = options.quiet === true;
        this.#tty = process.stderr.isTTY === true;
        this.#announceCache = options.announceCache === true;
    }

    readonly report = (p: PullProgress): void => {
        if (this.#quiet) return;
        switch (p.phase) {
            case "resolve":
                return;
            case "wait":
                this.#line(`another vidllama process (pid ${p.pid} on ${p.host}) is pulling ${p.reference}; waiting for it`);
                return;
            case "start": {
                for (const f of p.files) this.#sizes.set(f.path, f.size);
                const left = p.bytesTotal - p.bytesOnDisk;
                this.#line(
                    `downloading ${p.reference} (commit ${p.commit.slice(0, 12)}): ${p.files.length} file${p.files.length === 1 ? "" : "s"}, ${formatBytes(p.bytesTotal)}` +
                        (p.bytesOnDisk > 0 ? `, ${formatBytes(p.bytesOnDisk)} already downloaded, ${formatBytes(left)} to go` : "") +
                        (p.kind === "checkpoint" ? " (a checkpoint: converted to GGUF once, then cached)" : "") +
                        ` into ${p.cacheDir}`,
                );
                return;
            }
            case "download": {
                const speed = p.bytesPerSecond > 0 ? `${formatBytes(p.bytesPerSecond)}/s` : "";
                const eta = p.etaSeconds === undefined ? "" : `ETA ${formatDuration(p.etaSeconds)}`;
                this.#download.update(p.fraction, `${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)} ${speed} ${eta} ${p.file}`);
                return;
            }
            case "retry":
                this.#line(`${p.file}: ${p.reason}; retrying from ${formatBytes(p.offset)} in ${(p.delayMs / 1000).toFixed(1)} s (attempt ${p.attempt + 1})`);
                return;
            case "verify":
                // Without a bar, a line per large file (small config files would only be noise).
                if (!this.#tty && (this.#sizes.get(p.file) ?? 0) >= 1024 * 1024) this.#line(`downloaded ${p.file} (${formatBytes(this.#sizes.get(p.file)!)}); checking its hash`);
                return;
            case "convert":
                if (!this.#converting) {
                    this.#download.done();
                    this.#converting = true;
                    this.#line("converting to GGUF");
                }
                this.#convert.update(p.fraction, p.tensor ?? "");
                return;
            case "done": {
                this.#download.done();
                this.#convert.done();
                const m = p.model;
                for (const w of m.warnings) this.#line(`warning: ${w}`);
                if (!m.fromCache) this.#line(`ready: ${m.reference} (${formatBytes(m.bytes)}, ${formatBytes(m.bytesDownloaded)} downloaded) in ${m.dir}`);
                else if (this.#announceCache) this.#line(`${m.reference} is in the cache (commit ${m.commit.slice(0, 12)}, ${formatBytes(m.bytes)}): ${m.dir}`);
                return;
            }
        }
    };

    /** Clears the bars (after an error). */
    done(): void {
        this.#download.done();
        this.#convert.done();
    }

    #line(text: string): void {
        this.#download.done();
        this.#convert.done();
        process.stderr.write(`${text}\n`);
    }
}

function formatDuration(seconds: number): string {
    if (seconds < 60) return `${Math.ceil(seconds)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.ceil(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}
