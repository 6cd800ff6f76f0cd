/**
 * The Hugging Face Hub over HTTP: the file list of a repository at a revision, and file downloads that resume where
 * they stopped, use several connections for large files, retry what can be retried (429 with Retry-After, 5xx, cut
 * connections, stalled bodies) and verify every byte against the hub's hashes (SHA-256 for LFS files, the git blob id
 * for the others) before the file gets its final name.
 *
 * A download in progress lives next to its destination as `<dest>.partial`; a parallel one also keeps
 * `<dest>.partial.json` (how much of each chunk is on disk). Both survive an abort, an error or a killed process, and
 * the next download of the same file continues from them.
 *
 * @internal
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { HubError, formatBytes } from "../errors.js";

/** huggingface.co; `HF_ENDPOINT` replaces it (mirrors, a local test server). */
export const DEFAULT_ENDPOINT = "https://huggingface.co";

/** Download tuning; the defaults suit a home connection to the hub's CDN. */
export interface DownloadTuning {
    /** Files at least this large are fetched as parallel ranges. */
    parallelThreshold: number;
    /** Range size of a parallel download. */
    chunkSize: number;
    /** Connections per parallel file. */
    connections: number;
    /** A response body that sends nothing for this long is dropped and the request made again from where it stopped. */
    stallTimeoutMs: number;
    /** Failed attempts in a row (without a byte of progress between them) before a file download gives up. */
    maxRetries: number;
    /** The longest `Retry-After` (and 5xx back-off) waited for; a longer one fails at once with the server's figure. */
    maxRetryWaitMs: number;
}

export const DEFAULT_TUNING: DownloadTuning = {
    parallelThreshold: 64 * 1024 * 1024,
    chunkSize: 16 * 1024 * 1024,
    connections: 4,
    stallTimeoutMs: 30_000,
    maxRetries: 6,
    maxRetryWaitMs: 120_000,
};

/** Where and as whom to talk to the hub. */
export interface HubConnection {
    /** Base URL without a trailing slash. */
    endpoint: string;
    /** Bearer token (`HF_TOKEN`). */
    token: string | undefined;
    /** The reference being pulled, for error messages. */
    reference: string;
    signal: AbortSignal | undefined;
    tuning: DownloadTuning;
}

/** One file of a repository at a commit. */
export interface RepoFile {
    /** Path inside the repository (`model-00001-of-00002.safetensors`, `Q4_K_M/x.gguf`). */
    path: string;
    size: number;
    /** SHA-256 of an LFS file's content. */
    sha256: string | undefined;
    /** Git blob id (sha1 of `blob <size>\0<bytes>`); for an LFS file that of its pointer, so not used for it. */
    blobId: string | undefined;
}

/** A repository's files at the commit a revision points to. */
export interface RepoListing {
    repo: string;
    revision: string;
    /** The full commit sha the revision resolved to; every file is downloaded from this commit. */
    commit: string;
    files: RepoFile[];
}

/** Something that happened during a download, for progress reports. */
export type DownloadEvent =
    /** Bytes arrived (or were found on disk from an earlier attempt: `resumed`). */
    | { kind: "bytes"; bytes: number; resumed?: boolean }
    /** An attempt failed and is retried after `delayMs`, continuing at `offset`. */
    | { kind: "retry"; reason: string; offset: number; delayMs: number; attempt: number }
    /** The whole file is on disk and its hash is being checked. */
    | { kind: "verify" };

/** The file list of `repo` at `revision` (`GET /api/models/{repo}/revision/{revision}?blobs=true`). */
export async function listRepo(conn: HubConnection, repo: string, revision: string): Promise<RepoListing> {
    const url = `${conn.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
    const res = await requestWithRetry(conn, url, {}, `the file list of ${repo}@${revision}`);
    let body: unknown;
    try {
        body = await res.json();
    } catch (err) {
        if (conn.signal?.aborted) throw conn.signal.reason;
        throw new HubError("ERR_HUB_HTTP", conn.reference, `the hub's answer for the file list was not JSON (${url})`, { status: res.status, url, cause: err });
    }
    const info = body as { sha?: unknown; siblings?: unknown };
    if (typeof info.sha !== "string" || !/^[0-9a-f]{40}$/.test(info.sha) || !Array.isArray(info.siblings)) {
        throw new HubError("ERR_HUB_HTTP", conn.reference, `the hub's file list has no commit sha or no files (${url})`, { status: res.status, url });
    }
    const files: RepoFile[] = [];
    for (const s of info.siblings as Array<Record<string, unknown>>) {
        if (typeof s?.rfilename !== "string") continue;
        // File names become paths under the cache: never outside it (a hostile or broken server).
        if (!isSafeRepoPath(s.rfilename)) {
            throw new HubError("ERR_HUB_HTTP", conn.reference, `the hub's file list names ${JSON.stringify(s.rfilename)}, which is not a safe relative path (${url})`, { url });
        }
        const lfs = s.lfs as { sha256?: unknown; size?: unknown } | undefined;
        const size = typeof lfs?.size === "number" ? lfs.size : typeof s.size === "number" ? s.size : undefined;
        if (size === undefined || !Number.isSafeInteger(size) || size < 0) {
            throw new HubError("ERR_HUB_HTTP", conn.reference, `the hub's file list gives no size for ${s.rfilename} (${url})`, { url });
        }
        files.push({
            path: s.rfilename,
            size,
            sha256: typeof lfs?.sha256 === "string" ? lfs.sha256.toLowerCase() : undefined,
            blobId: typeof s.blobId === "string" ? s.blobId.toLowerCase() : undefined,
        });
    }
    return { repo, revision, commit: info.sha, files };
}

/** A relative path of plain segments: no `..`, `.`, empty segments, backslashes, drive letters or control characters. */
export function isSafeRepoPath(path: string): boolean {
    if (path.length === 0 || path.length > 1024 || /[\\\x00-\x1f:]/.test(path)) return false;
    return path.split("/").every((seg) => seg !== "" && seg !== "." && seg !== "..");
}

/** The URL of a file at a commit (the hub redirects LFS files to its CDN). */
export function resolveUrl(conn: HubConnection, repo: string, commit: string, path: string): string {
    return `${conn.endpoint}/${repo}/resolve/${commit}/${path.split("/").map(encodeURIComponent).join("/")}`;
}

/**
 * Downloads `file` of `listing` to `dest`: resumes `<dest>.partial`, verifies the hash, then renames. A `dest` that
 * exists with the right size is taken as done (it only ever gets its name after verification).
 * @throws {HubError} for HTTP errors, a network that keeps failing, or a hash mismatch (the partial is then deleted)
 */
export async function downloadFile(
    conn: HubConnection,
    listing: RepoListing,
    file: RepoFile,
    dest: string,
    onEvent: (event: DownloadEvent) => void,
): Promise<void> {
    const done = await stat(dest).catch(() => undefined);
    if (done?.isFile() && done.size === file.size) {
        onEvent({ kind: "bytes", bytes: file.size, resumed: true });
        return;
    }
    const partial = `${dest}.partial`;
    const url = resolveUrl(conn, listing.repo, listing.commit, file.path);
    const parallel = file.size >= conn.tuning.parallelThreshold && conn.tuning.connections > 1;
    if (parallel) {
        const ok = await downloadRanges(conn, url, file, partial, onEvent);
        if (!ok) await downloadSequential(conn, url, file, partial, onEvent); // the server ignored Range: whole file
    } else {
        await downloadSequential(conn, url, file, partial, onEvent);
    }
    onEvent({ kind: "verify" });
    await verifyFile(conn, file, partial);
    await rename(partial, dest);
    await rm(`${partial}.json`, { force: true });
}

// ---------------------------------------------------------------------------------------------------------------
// One connection: append to the partial file from its current size.

async function downloadSequential(conn: HubConnection, url: string, file: RepoFile, partial: string, onEvent: (e: DownloadEvent) => void): Promise<void> {
    await rm(`${partial}.json`, { force: true }); // a parallel layout's sidecar does not describe an appended file
    let offset = (await stat(partial).catch(() => undefined))?.size ?? 0;
    const fh = await open(partial, offset > 0 ? "r+" : "w");
    try {
        if (offset > file.size) {
            await fh.truncate(0);
            offset = 0;
        }
        if (offset > 0) onEvent({ kind: "bytes", bytes: offset, resumed: true });
        const retry = new RetryState(conn, file);
        while (offset < file.size) {
            const start = offset;
            const outcome = await fetchRange(conn, url, file, start, file.size - 1, async (chunk) => {
                await fh.write(chunk, 0, chunk.length, offset);
                offset += chunk.length;
                onEvent({ kind: "bytes", bytes: chunk.length });
            });
            if (outcome.kind === "whole") {
                // The server ignored the range and sent the whole file: start over (a range from 0 takes a 200).
                await fh.truncate(0);
                onEvent({ kind: "bytes", bytes: -offset });
                offset = 0;
                continue;
            }
            if (outcome.kind === "unsatisfiable") {
                // Our partial is at or past the end as the server sees it: trust only a complete one.
                if (offset === file.size) break;
                await fh.truncate(0);
                onEvent({ kind: "bytes", bytes: -offset });
                offset = 0;
                continue;
            }
            if (outcome.kind === "failed") await retry.failed(outcome, offset, offset > start, onEvent);
        }
    } finally {
        await fh.close();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Several connections: fixed-size ranges written in place; a sidecar records how much of each range is on disk.

interface RangeSidecar {
    size: number;
    hash: string;
    chunkSize: number;
    /** Bytes on disk from the start of each chunk. */
    progress: number[];
}

/** false when the server ignores Range requests (then nothing is kept). */
async function downloadRanges(conn: HubConnection, url: string, file: RepoFile, partial: string, onEvent: (e: DownloadEvent) => void): Promise<boolean> {
    const sidecarPath = `${partial}.json`;
    const hash = file.sha256 ?? file.blobId ?? "";
    const chunkSize = conn.tuning.chunkSize;
    const chunks = Math.ceil(file.size / chunkSize);
    const sidecar = await readSidecar(sidecarPath);
    const partialSize = (await stat(partial).catch(() => undefined))?.size;
    let state: RangeSidecar;
    if (sidecar && sidecar.size === file.size && sidecar.hash === hash && sidecar.chunkSize === chunkSize && sidecar.progress.length === chunks && partialSize === file.size) {
        state = sidecar;
    } else {
        state = { size: file.size, hash, chunkSize, progress: new Array<number>(chunks).fill(0) };
        // A partial without a sidecar was appended by a sequential download: its prefix is good.
        if (!sidecar && partialSize !== undefined && partialSize < file.size) {
            for (let i = 0; i < chunks; i++) state.progress[i] = Math.max(0, Math.min(chunkLength(file.size, chunkSize, i), partialSize - i * chunkSize));
        }
    }
    const fh = await open(partial, partialSize === undefined ? "w+" : "r+");
    const internal = new AbortController();
    // One writer of the sidecar at a time (the workers share it); at most one write a second unless forced.
    let lastSave = Date.now();
    let saving: Promise<void> = Promise.resolve();
    const save = (force = false): Promise<void> => {
        if (!force && Date.now() - lastSave < 1000) return Promise.resolve();
        lastSave = Date.now();
        saving = saving.then(async () => {
            await writeFile(`${sidecarPath}.tmp`, JSON.stringify(state));
            await rename(`${sidecarPath}.tmp`, sidecarPath);
        });
        return saving;
    };
    let rangesIgnored = false;
    try {
        await fh.truncate(file.size);
        await save(true);
        const resumed = state.progress.reduce((a, b) => a + b, 0);
        if (resumed > 0) onEvent({ kind: "bytes", bytes: resumed, resumed: true });
        let next = 0;
        const local: HubConnection = { ...conn, signal: conn.signal ? AbortSignal.any([conn.signal, internal.signal]) : internal.signal };
        const worker = async (): Promise<void> => {
            try {
                await runWorker();
            } catch (err) {
                internal.abort(err); // the other connections stop too
                throw err;
            }
        };
        const runWorker = async (): Promise<void> => {
            for (;;) {
                const i = next++;
                if (i >= chunks || rangesIgnored) return;
                const start = i * chunkSize;
                const length = chunkLength(file.size, chunkSize, i);
                const retry = new RetryState(local, file);
                while (state.progress[i]! < length) {
                    const from = start + state.progress[i]!;
                    const before = state.progress[i]!;
                    const outcome = await fetchRange(local, url, file, from, start + length - 1, async (chunk) => {
                        await fh.write(chunk, 0, chunk.length, start + state.progress[i]!);
                        state.progress[i]! += chunk.length;
                        onEvent({ kind: "bytes", bytes: chunk.length });
                        await save();
                    });
                    if (outcome.kind === "whole" || outcome.kind === "unsatisfiable") {
                        rangesIgnored = true;
                        internal.abort(new Error("ranges ignored"));
                        return;
                    }
                    if (outcome.kind === "failed") await retry.failed(outcome, from, state.progress[i]! > before, onEvent);
                }
            }
        };
        const workers = Array.from({ length: Math.min(conn.tuning.connections, chunks) }, () => worker());
        const results = await Promise.allSettled(workers);
        if (rangesIgnored) {
            onEvent({ kind: "bytes", bytes: -state.progress.reduce((a, b) => a + b, 0) });
            await fh.close().catch(() => undefined);
            await rm(partial, { force: true });
            await rm(sidecarPath, { force: true });
            return false;
        }
        const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failure) throw failure.reason;
        return true;
    } catch (err) {
        internal.abort(err);
        throw err;
    } finally {
        if (!rangesIgnored) {
            await save(true).catch(() => undefined);
            await fh.close().catch(() => undefined);
        }
    }
}

function chunkLength(size: number, chunkSize: number, i: number): number {
    return Math.min(chunkSize, size - i * chunkSize);
}

async function readSidecar(path: string): Promise<RangeSidecar | undefined> {
    try {
        const s = JSON.parse(await readFile(path, "utf8")) as RangeSidecar;
        if (typeof s.size !== "number" || typeof s.hash !== "string" || typeof s.chunkSize !== "number" || !Array.isArray(s.progress)) return undefined;
        if (!s.progress.every((p) => Number.isSafeInteger(p) && p >= 0)) return undefined;
        return s;
    } catch {
        return undefined;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// One request for a byte range, with the body streamed to `sink`.

type RangeOutcome =
    | { kind: "complete" }
    /** The server answered 200 with the whole file to a range request. */
    | { kind: "whole" }
    /** 416 */
    | { kind: "unsatisfiable" }
    /** Retryable: network error, cut, stall, 429 or 5xx. `retryAfterMs` from the server when it said. */
    | { kind: "failed"; reason: string; retryAfterMs?: number; status?: number; url: string };

async function fetchRange(
    conn: HubConnection,
    url: string,
    file: RepoFile,
    start: number,
    end: number,
    sink: (chunk: Uint8Array) => Promise<void>,
): Promise<RangeOutcome> {
    if (end < start) return { kind: "complete" };
    const stall = new AbortController();
    const signal = conn.signal ? AbortSignal.any([conn.signal, stall.signal]) : stall.signal;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
        clearTimeout(timer);
        timer = setTimeout(() => stall.abort(new Error("stalled")), conn.tuning.stallTimeoutMs);
    };
    const headers = { Range: `bytes=${start}-${end}` };
    let received = 0;
    try {
        arm();
        let res: Response;
        try {
            res = await fetch(url, { headers: authHeaders(conn, headers), signal, redirect: "follow" });
        } catch (err) {
            if (conn.signal?.aborted) throw conn.signal.reason;
            return { kind: "failed", reason: networkReason(err, stall.signal), url };
        }
        const finalUrl = res.url || url;
        if (res.status === 416) {
            await res.body?.cancel().catch(() => undefined);
            return { kind: "unsatisfiable" };
        }
        if (res.status === 429 || res.status >= 500) {
            await res.body?.cancel().catch(() => undefined);
            return { kind: "failed", reason: `HTTP ${res.status}`, status: res.status, retryAfterMs: retryAfterMs(res), url: finalUrl };
        }
        if (res.status !== 200 && res.status !== 206) {
            await res.body?.cancel().catch(() => undefined);
            throw statusError(conn, res, finalUrl, `file ${file.path}`);
        }
        if (res.status === 206) {
            const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
            if (!m || Number(m[1]) !== start) {
                await res.body?.cancel().catch(() => undefined);
                throw new HubError("ERR_HUB_HTTP", conn.reference, `the server answered the range ${start}-${end} of ${file.path} with ${res.headers.get("content-range") ?? "no Content-Range"} (${finalUrl})`, { status: 206, url: finalUrl });
            }
        } else if (start > 0) {
            await res.body?.cancel().catch(() => undefined);
            return { kind: "whole" };
        }
        const expected = end - start + 1;
        if (!res.body) return received === expected ? { kind: "complete" } : { kind: "failed", reason: "empty body", url: finalUrl };
        try {
            for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
                arm();
                const take = Math.min(chunk.length, expected - received);
                if (take <= 0) break;
                await sink(take === chunk.length ? chunk : chunk.subarray(0, take));
                received += take;
            }
        } catch (err) {
            if (conn.signal?.aborted) throw conn.signal.reason;
            return { kind: "failed", reason: `${networkReason(err, stall.signal)} after ${formatBytes(received)}`, url: finalUrl };
        }
        if (received < expected) return { kind: "failed", reason: `connection closed after ${formatBytes(received)} of ${formatBytes(expected)}`, url: finalUrl };
        return { kind: "complete" };
    } finally {
        clearTimeout(timer);
    }
}

/** Counts failed attempts of one file (or one range) and waits before the next one. */
class RetryState {
    #failures = 0;
    constructor(
        private readonly conn: HubConnection,
        private readonly file: RepoFile,
    ) {}

    /** Waits before the next attempt, or throws when there have been too many failures without progress. */
    async failed(outcome: Extract<RangeOutcome, { kind: "failed" }>, offset: number, progressed: boolean, onEvent: (e: DownloadEvent) => void): Promise<void> {
        this.#failures = progressed ? 1 : this.#failures + 1;
        const { maxRetries, maxRetryWaitMs } = this.conn.tuning;
        if (this.#failures > maxRetries) {
            throw new HubError(
                outcome.status === 429 ? "ERR_HUB_RATE_LIMITED" : outcome.status ? "ERR_HUB_HTTP" : "ERR_HUB_NETWORK",
                this.conn.reference,
                `downloading ${this.file.path} failed ${this.#failures} times in a row (last: ${outcome.reason}); ` +
                    `the ${formatBytes(offset)} already downloaded are kept and the next pull continues from there`,
                { status: outcome.status, url: outcome.url },
            );
        }
        const backoff = Math.min(maxRetryWaitMs, 500 * 2 ** (this.#failures - 1));
        const delayMs = outcome.retryAfterMs ?? backoff;
        if (delayMs > maxRetryWaitMs) {
            throw new HubError("ERR_HUB_RATE_LIMITED", this.conn.reference, `the hub asks to wait ${Math.ceil(delayMs / 1000)} s before downloading ${this.file.path} again (Retry-After); try later`, {
                status: outcome.status,
                url: outcome.url,
            });
        }
        onEvent({ kind: "retry", reason: outcome.reason, offset, delayMs, attempt: this.#failures });
        await sleep(delayMs, this.conn.signal);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Verification

async function verifyFile(conn: HubConnection, file: RepoFile, path: string): Promise<void> {
    let expected: string;
    let actual: string;
    let what: string;
    if (file.sha256) {
        expected = file.sha256;
        actual = await hashFile(path, createHash("sha256"), conn.signal);
        what = "SHA-256";
    } else if (file.blobId) {
        expected = file.blobId;
        const h = createHash("sha1");
        h.update(`blob ${file.size}\0`);
        actual = await hashFile(path, h, conn.signal);
        what = "git blob id";
    } else {
        return; // the hub gave no hash (never for files it lists with blobs=true)
    }
    if (actual !== expected) {
        await rm(path, { force: true });
        await rm(`${path}.json`, { force: true });
        throw new HubError(
            "ERR_HUB_HASH_MISMATCH",
            conn.reference,
            `the downloaded ${file.path} is corrupt: its ${what} is ${actual}, the hub says ${expected}. The download was deleted; pull again`,
        );
    }
}

async function hashFile(path: string, hash: ReturnType<typeof createHash>, signal: AbortSignal | undefined): Promise<string> {
    const stream = createReadStream(path, { highWaterMark: 4 * 1024 * 1024, signal });
    try {
        for await (const chunk of stream) hash.update(chunk as Buffer);
    } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw err;
    }
    return hash.digest("hex");
}

// ---------------------------------------------------------------------------------------------------------------
// Requests and errors

function authHeaders(conn: HubConnection, headers: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { "User-Agent": "vidllama", ...headers };
    if (conn.token) h.Authorization = `Bearer ${conn.token}`;
    return h;
}

/** A GET answered 2xx, with 429 and 5xx retried (Retry-After honoured) and network errors retried. */
async function requestWithRetry(conn: HubConnection, url: string, headers: Record<string, string>, what: string): Promise<Response> {
    const { maxRetries, maxRetryWaitMs } = conn.tuning;
    for (let attempt = 1; ; attempt++) {
        let res: Response;
        try {
            res = await fetch(url, { headers: authHeaders(conn, headers), signal: conn.signal });
        } catch (err) {
            if (conn.signal?.aborted) throw conn.signal.reason;
            if (attempt > Math.min(maxRetries, 2)) {
                throw new HubError("ERR_HUB_NETWORK", conn.reference, `cannot reach ${conn.endpoint} for ${what}: ${networkReason(err)}. Check the network (or HF_ENDPOINT), or use --offline / HF_HUB_OFFLINE=1 for cached models`, { url, cause: err });
            }
            await sleep(500 * attempt, conn.signal);
            continue;
        }
        if (res.ok) return res;
        if ((res.status === 429 || res.status >= 500) && attempt <= maxRetries) {
            const wait = retryAfterMs(res) ?? Math.min(maxRetryWaitMs, 500 * 2 ** (attempt - 1));
            await res.body?.cancel().catch(() => undefined);
            if (wait <= maxRetryWaitMs) {
                await sleep(wait, conn.signal);
                continue;
            }
        }
        await res.body?.cancel().catch(() => undefined);
        throw statusError(conn, res, url, what);
    }
}

/** The typed error for an HTTP error status, saying what to do about it. */
function statusError(conn: HubConnection, res: Response, url: string, what: string): HubError {
    const code = res.headers.get("x-error-code") ?? "";
    const serverMessage = res.headers.get("x-error-message");
    const repo = /^hf:([^@:]+)/.exec(conn.reference)?.[1] ?? conn.reference;
    const details = { status: res.status, url };
    const tokens = `${conn.endpoint.replace(/\/$/, "")}/settings/tokens`;
    switch (res.status) {
        case 401:
            return new HubError(
                "ERR_HUB_UNAUTHORIZED",
                conn.reference,
                conn.token
                    ? `the repository ${repo} does not exist, or the token in HF_TOKEN cannot read it (HTTP 401)`
                    : `the repository ${repo} does not exist or is private (HTTP 401). For a private repository, set HF_TOKEN to an access token with read access (${tokens})`,
                details,
            );
        case 403:
            if (code === "GatedRepo" || /restricted|gated/i.test(serverMessage ?? "")) {
                return new HubError(
                    "ERR_HUB_GATED",
                    conn.reference,
                    conn.token
                        ? `${repo} is gated and the token in HF_TOKEN has not been granted access: accept its conditions at ${conn.endpoint}/${repo} with the token's account (HTTP 403)`
                        : `${repo} is gated: accept its conditions at ${conn.endpoint}/${repo}, then set HF_TOKEN to an access token of that account (${tokens}) (HTTP 403)`,
                    details,
                );
            }
            return new HubError("ERR_HUB_FORBIDDEN", conn.reference, `access to ${what} was refused (HTTP 403${serverMessage ? `: ${serverMessage}` : ""})`, details);
        case 404:
            if (code === "RevisionNotFound") return new HubError("ERR_HUB_NOT_FOUND", conn.reference, `${repo} has no revision ${/@([^:]+)/.exec(conn.reference)?.[1] ?? ""} (HTTP 404)`, details);
            if (code === "RepoNotFound") return new HubError("ERR_HUB_NOT_FOUND", conn.reference, `the repository ${repo} does not exist (HTTP 404)`, details);
            return new HubError("ERR_HUB_NOT_FOUND", conn.reference, `${what} was not found (HTTP 404${code ? ` ${code}` : ""})`, details);
        case 429:
            return new HubError("ERR_HUB_RATE_LIMITED", conn.reference, `the hub is rate-limiting requests for ${what} (HTTP 429); try again later${conn.token ? "" : ", or set HF_TOKEN (authenticated requests get higher limits)"}`, details);
        default:
            return new HubError("ERR_HUB_HTTP", conn.reference, `${what}: HTTP ${res.status}${serverMessage ? ` (${serverMessage})` : ""} from ${url}`, details);
    }
}

function retryAfterMs(res: Response): number | undefined {
    const v = res.headers.get("retry-after");
    if (!v) return undefined;
    if (/^\d+$/.test(v.trim())) return Number(v) * 1000;
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

function networkReason(err: unknown, stall?: AbortSignal): string {
    if (stall?.aborted) return "no data for too long";
    // undici puts the socket error in `cause`; a connection refused on every address is an AggregateError there.
    const cause = (err as { cause?: { code?: string; message?: string; errors?: Array<{ code?: string; message?: string }> } })?.cause;
    const inner = cause?.code ? cause : cause?.errors?.find((e) => e?.code);
    if (inner?.code) return `${inner.code}${inner.message ? ` ${inner.message}` : ""}`;
    if (cause?.message) return cause.message; // e.g. "bad port": fetch refuses some ports without connecting
    return err instanceof Error ? err.message : String(err);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const timer = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
        }, ms);
        const onAbort = (): void => {
            clearTimeout(timer);
            reject(signal!.reason);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
    });
}

