/**
 * The model cache: what was pulled from the hub, at which commit, converted to which types, and where it lies.
 *
 * Layout under the root (`cacheDir` option, else `VIDLLAMA_CACHE`, else `$XDG_CACHE_HOME/vidllama`, else
 * `~/.cache/vidllama`):
 *
 * ```
 * hub/<owner>--<name>/refs/<revision>              the commit a branch or tag pointed to when last online
 * downloads/<owner>--<name>/<commit>/<path>        files being downloaded (`.partial`) or kept for conversion
 * models/<owner>--<name>/<commit>/<variant>/       a finished entry: the GGUF files and entry.json
 * locks/<owner>--<name>.lock                       held by the process pulling that repository
 * ```
 *
 * An entry is complete exactly when its `entry.json` exists: it is written last, and the directory gets its final
 * name by one rename, so a killed process leaves only temporary names behind.
 *
 * @internal
 * @module
 */
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import { mkdir, open, readFile, readdir, rename, rm, stat, statfs, writeFile } from "node:fs/promises";
import { HubError, formatBytes } from "../errors.js";
import { sleep } from "./client.js";

/** The cache root for an option value (or the environment's default). */
export function cacheRoot(option?: string): string {
    if (option) return option;
    const env = process.env.VIDLLAMA_CACHE;
    if (env) return env;
    const xdg = process.env.XDG_CACHE_HOME;
    return xdg ? join(xdg, "vidllama") : join(homedir(), ".cache", "vidllama");
}

/** `owner/name` → `owner--name` (hub names never hold `--` at both ends of a `/`, so this is reversible). */
export function repoKey(repo: string): string {
    return repo.replace("/", "--");
}

export function refPath(root: string, repo: string, revision: string): string {
    return join(root, "hub", repoKey(repo), "refs", encodeURIComponent(revision));
}

export function downloadDir(root: string, repo: string, commit: string): string {
    return join(root, "downloads", repoKey(repo), commit);
}

export function entryDir(root: string, repo: string, commit: string, variant: string): string {
    return join(root, "models", repoKey(repo), commit, variant);
}

/** What a cache entry records (`entry.json`). */
export interface CacheEntryRecord {
    version: 1;
    repo: string;
    /** The revision asked for when it was pulled (`main`, a tag, a commit). */
    revision: string;
    commit: string;
    /** `converted`: made from a safetensors checkpoint by vidllama; `gguf`: files of a GGUF repository. */
    kind: "converted" | "gguf";
    /** The text model's type (`q8_0`, `Q4_K_M`, ...). */
    type: string;
    /** The projector's type, when there is a projector. */
    mmprojType: string | undefined;
    /** File names inside the entry directory. */
    textModel: string;
    mmproj: string | undefined;
    /** Every file of the entry with its size (checked when the entry is used). */
    files: Array<{ name: string; size: number; source?: string }>;
    /** Bytes downloaded from the hub for this entry (the checkpoint, for a conversion). */
    sourceBytes: number;
    createdAt: string;
}

/** A cache entry found on disk. */
export interface CacheEntry extends CacheEntryRecord {
    /** The entry's directory. */
    dir: string;
    /** Size of its files in bytes. */
    bytes: number;
}

/** The entry for `variant` at `commit`, when it is complete (entry.json present, every file there with its size). */
export async function readEntry(root: string, repo: string, commit: string, variant: string): Promise<CacheEntry | undefined> {
    return readEntryDir(entryDir(root, repo, commit, variant));
}

async function readEntryDir(dir: string): Promise<CacheEntry | undefined> {
    let record: CacheEntryRecord;
    try {
        record = JSON.parse(await readFile(join(dir, "entry.json"), "utf8")) as CacheEntryRecord;
    } catch {
        return undefined;
    }
    if (record?.version !== 1 || !Array.isArray(record.files)) return undefined;
    let bytes = 0;
    for (const f of record.files) {
        const s = await stat(join(dir, f.name)).catch(() => undefined);
        if (!s?.isFile() || s.size !== f.size) return undefined;
        bytes += s.size;
    }
    return { ...record, dir, bytes };
}

/** Writes `record` into `tmpDir` and renames it to `finalDir` (replacing an incomplete one). */
export async function commitEntry(tmpDir: string, finalDir: string, record: CacheEntryRecord): Promise<CacheEntry> {
    await writeFile(join(tmpDir, "entry.json"), JSON.stringify(record, null, 2) + "\n");
    await rm(finalDir, { recursive: true, force: true });
    await rename(tmpDir, finalDir);
    const entry = await readEntryDir(finalDir);
    if (!entry) throw new Error(`the cache entry ${finalDir} could not be read back`);
    return entry;
}

export async function readRef(root: string, repo: string, revision: string): Promise<string | undefined> {
    if (/^[0-9a-f]{40}$/.test(revision)) return revision;
    try {
        const commit = (await readFile(refPath(root, repo, revision), "utf8")).trim();
        return /^[0-9a-f]{40}$/.test(commit) ? commit : undefined;
    } catch {
        return undefined;
    }
}

export async function writeRef(root: string, repo: string, revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    const path = refPath(root, repo, revision);
    await mkdir(join(path, ".."), { recursive: true });
    await writeFile(`${path}.${process.pid}.tmp`, commit);
    await rename(`${path}.${process.pid}.tmp`, path);
}

/** Every complete entry in the cache, sorted by repository, then newest first. */
export async function listEntries(root: string): Promise<CacheEntry[]> {
    const out: CacheEntry[] = [];
    const models = join(root, "models");
    for (const repo of await dirNames(models)) {
        for (const commit of await dirNames(join(models, repo))) {
            for (const variant of await dirNames(join(models, repo, commit))) {
                if (variant.startsWith(".")) continue;
                const entry = await readEntryDir(join(models, repo, commit, variant));
                if (entry) out.push(entry);
            }
        }
    }
    return out.sort((a, b) => a.repo.localeCompare(b.repo) || b.createdAt.localeCompare(a.createdAt));
}

async function dirNames(dir: string): Promise<string[]> {
    try {
        return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
        return [];
    }
}

/** Total size of the files under `dir`. */
export async function treeBytes(dir: string): Promise<number> {
    let total = 0;
    let entries;
    try {
        entries = await readdir(dir, { withFileTypes: true });
    } catch {
        return 0;
    }
    for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) total += await treeBytes(p);
        else if (e.isFile()) total += (await stat(p).catch(() => undefined))?.size ?? 0;
    }
    return total;
}

/** Removes a directory and then its parents up to `stop` while they are empty. */
export async function removeAndPrune(dir: string, stop: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
    let parent = join(dir, "..");
    while (parent.startsWith(stop) && parent !== stop) {
        if ((await readdir(parent).catch(() => ["?"])).length > 0) break;
        await rm(parent, { recursive: true, force: true });
        parent = join(parent, "..");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Disk space

/** Free bytes for unprivileged users on the file system that holds `dir` (its nearest existing ancestor). */
export async function freeBytes(dir: string): Promise<number> {
    let probe = dir;
    for (;;) {
        try {
            const s = await statfs(probe);
            return Number(s.bavail) * Number(s.bsize);
        } catch (err) {
            const parent = join(probe, "..");
            if ((err as NodeJS.ErrnoException).code !== "ENOENT" || parent === probe) throw err;
            probe = parent;
        }
    }
}

/** Headroom left free after a download or conversion, so that the machine is not filled to the last byte. */
export const DISK_HEADROOM = 256 * 1024 * 1024;

/**
 * @throws {HubError} `ERR_DISK_SPACE` when the file system of `dir` has less than `needed` + {@link DISK_HEADROOM}
 * bytes free
 */
export async function checkDiskSpace(reference: string, dir: string, needed: number, what: string): Promise<void> {
    const free = await freeBytes(dir);
    if (free < needed + DISK_HEADROOM) {
        throw new HubError(
            "ERR_DISK_SPACE",
            reference,
            `${what} needs ${formatBytes(needed)} (+${formatBytes(DISK_HEADROOM)} headroom) but only ${formatBytes(free)} are free on the disk of ${dir}. ` +
                `Free some space, or choose another cache directory (VIDLLAMA_CACHE or the cacheDir option)`,
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Lock

/** Who holds a lock. */
export interface LockOwner {
    pid: number;
    host: string;
    since: string;
}

/**
 * Runs `fn` holding `locks/<key>.lock`, created exclusively; waits while another live process holds it (calling
 * `onWait` once with the holder), and breaks a lock whose process is gone (same host, pid not running).
 */
export async function withLock<T>(
    root: string,
    key: string,
    signal: AbortSignal | undefined,
    onWait: (owner: LockOwner) => void,
    fn: () => Promise<T>,
): Promise<T> {
    const dir = join(root, "locks");
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${key}.lock`);
    let announced = false;
    for (;;) {
        if (signal?.aborted) throw signal.reason;
        try {
            const fh = await open(path, "wx");
            const me: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
            await fh.writeFile(JSON.stringify(me));
            await fh.close();
            break;
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        }
        const owner = await readLockOwner(path);
        if (owner === "stale") {
            await rm(path, { force: true });
            continue;
        }
        if (!announced && owner) {
            onWait(owner);
            announced = true;
        }
        await sleep(200, signal);
    }
    try {
        return await fn();
    } finally {
        await rm(path, { force: true });
    }
}

/** The lock's owner; `"stale"` when its process is gone; undefined while it is being written. */
async function readLockOwner(path: string): Promise<LockOwner | "stale" | undefined> {
    let text: string;
    let mtime: number;
    try {
        text = await readFile(path, "utf8");
        mtime = (await stat(path)).mtimeMs;
    } catch {
        return undefined; // removed meanwhile: try again
    }
    let owner: LockOwner;
    try {
        owner = JSON.parse(text) as LockOwner;
    } catch {
        // Written by open('wx') but not yet filled: wait a little; unreadable for long means a crash mid-write.
        return Date.now() - mtime > 10_000 ? "stale" : undefined;
    }
    if (owner.host === hostname() && !processAlive(owner.pid)) return "stale";
    return owner;
}

/** True while a process with this pid runs on this machine (EPERM: it runs as another user). */
export function processAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (err) {
        return (err as NodeJS.ErrnoException).code === "EPERM";
    }
}
