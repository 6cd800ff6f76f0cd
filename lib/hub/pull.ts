/**
 * `hf:` references to GGUF files on disk: resolve the revision on the hub, reuse a cached entry of that commit and
 * type, else download (a VideoLLaMA3 or Video-LLaVA checkpoint, converted once; or the GGUF files of a repository
 * that has them) under a lock, and record the result in the cache.
 *
 * @module
 */
import { availableParallelism } from "node:os";
import { basename, dirname, join } from "node:path";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { convertCheckpoint } from "../convert/convert.js";
import { familyOfConfig } from "../convert/families/index.js";
import { MMPROJ_OUTPUT_TYPES, TEXT_OUTPUT_TYPES, type MmprojOutputType, type TextOutputType } from "../convert/quant-rules.js";
import { HubError, InvalidOptionError, formatBytes } from "../errors.js";
import { checkOptionsObject, optionalBoolean, optionalEnum, optionalFunction, optionalInteger, optionalSignal, optionalString, throwIfAborted } from "../validate.js";
import {
    checkDiskSpace,
    cacheRoot,
    commitEntry,
    downloadDir,
    entryDir,
    listEntries,
    readEntry,
    readRef,
    removeAndPrune,
    repoKey,
    treeBytes,
    withLock,
    writeRef,
    type CacheEntry,
    type CacheEntryRecord,
} from "./cache.js";
import { DEFAULT_ENDPOINT, DEFAULT_TUNING, downloadFile, listRepo, type HubConnection, type RepoFile, type RepoListing } from "./client.js";
import { formatHubReference, parseHubReference, type HubReference } from "./reference.js";

/** Options of {@link pullModel}; {@link loadModel} takes them as `hub`. */
export interface HubOptions {
    /** Cache directory. Default: `VIDLLAMA_CACHE`, else `$XDG_CACHE_HOME/vidllama`, else `~/.cache/vidllama`. */
    cacheDir?: string;
    /** Use only the cache, never the network. Default: `HF_HUB_OFFLINE` is `1`/`true`/`yes`/`on`. */
    offline?: boolean;
    /** Access token for private and gated repositories. Default: `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`). */
    token?: string;
    /** Base URL of the hub. Default: `HF_ENDPOINT`, else `https://huggingface.co`. */
    endpoint?: string;
    /**
     * The vision projector's type: for a checkpoint, what its matrices are converted to (`f16` default, `f32`, `q8_0`,
     * `q4_k`); for a
     * GGUF repository, which projector file is picked (by the type in its name).
     */
    mmprojType?: string;
    /** Keep the downloaded checkpoint after converting it (another type then converts without downloading). Default false. */
    keepCheckpoint?: boolean;
    /** Parallel connections for large files. Default 4. */
    connections?: number;
}

/** Options of {@link pullModel}. */
export interface PullOptions extends HubOptions {
    /** Aborts the pull; finished files and partial downloads stay in the cache for the next pull. */
    signal?: AbortSignal;
    /** Called as the pull goes on; exceptions thrown by it are ignored. */
    onProgress?: (progress: PullProgress) => void;
}

/** A file that a pull downloads. */
export interface PullFile {
    path: string;
    size: number;
}

/** Progress of {@link pullModel}, by phase. */
export type PullProgress =
    /** Asking the hub what the revision holds. */
    | { phase: "resolve"; reference: string }
    /** Another process is pulling the same repository; this one waits for it (and then uses its result if it fits). */
    | { phase: "wait"; reference: string; pid: number; host: string }
    /** Sent once before the first byte: what will be downloaded, how much of it is already on disk, and where to. */
    | {
          phase: "start";
          reference: string;
          commit: string;
          kind: "checkpoint" | "gguf";
          files: PullFile[];
          bytesTotal: number;
          bytesOnDisk: number;
          cacheDir: string;
      }
    /** Bytes arriving. `bytesDone` counts every file of the pull, resumed bytes included. */
    | {
          phase: "download";
          file: string;
          bytesDone: number;
          bytesTotal: number;
          /** Average over the last seconds. */
          bytesPerSecond: number;
          /** undefined until the speed is known. */
          etaSeconds: number | undefined;
          fraction: number;
      }
    /** A download attempt failed (cut connection, 429, 5xx, stall) and is retried from `offset` after `delayMs`. */
    | { phase: "retry"; file: string; reason: string; offset: number; delayMs: number; attempt: number }
    /** A file is complete; its hash is being checked. */
    | { phase: "verify"; file: string }
    /** Converting the checkpoint to GGUF. */
    | { phase: "convert"; fraction: number; tensor: string | undefined }
    /** The model is ready. */
    | { phase: "done"; model: PulledModel };

/** What {@link pullModel} produced: the cache entry, named by the revision asked for. */
export interface PulledModel extends CachedModel {
    /** `hf:<repo>@<revision>:<type>` with the revision as asked (`main`, a tag); `commit` pins it. */
    reference: string;
    /** The revision as asked. */
    revision: string;
    /** True when nothing was downloaded or converted. */
    fromCache: boolean;
    /** Bytes received from the network by this call. */
    bytesDownloaded: number;
    /** E.g. the hub could not be reached and the cached commit of the revision was used. */
    warnings: string[];
}

const PULL_OPTIONS = ["cacheDir", "offline", "token", "endpoint", "mmprojType", "keepCheckpoint", "connections", "signal", "onProgress"] as const;
/** @internal */
export const HUB_OPTIONS = ["cacheDir", "offline", "token", "endpoint", "mmprojType", "keepCheckpoint", "connections"] as const;

/** The text model type a checkpoint is converted to when the reference names none. */
export const DEFAULT_TEXT_TYPE: TextOutputType = "q8_0";
/** The projector type a checkpoint is converted to when none is asked for. */
export const DEFAULT_MMPROJ_TYPE: MmprojOutputType = "f16";

/** Test hook: download tuning (`VIDLLAMA_HUB_TUNING` JSON), so that tests exercise parallel ranges and retries on small files. */
function tuning(connections: number | undefined): typeof DEFAULT_TUNING {
    let t = { ...DEFAULT_TUNING };
    const env = process.env.VIDLLAMA_HUB_TUNING;
    if (env) {
        try {
            t = { ...t, ...(JSON.parse(env) as Partial<typeof DEFAULT_TUNING>) };
        } catch {
            throw new InvalidOptionError("VIDLLAMA_HUB_TUNING", "a JSON object of download settings", env);
        }
    }
    if (connections !== undefined) t.connections = connections;
    return t;
}

function envFlag(name: string): boolean {
    return /^(1|true|yes|on)$/i.test(process.env[name] ?? "");
}

interface Resolved {
    ref: HubReference;
    reference: string;
    root: string;
    offline: boolean;
    /** What turned offline mode on, for the error message. */
    offlineSource: string;
    conn: HubConnection;
    mmprojType: string | undefined;
    keepCheckpoint: boolean;
    report: (p: PullProgress) => void;
}

function resolveOptions(reference: string, options: PullOptions | undefined, option: string): Resolved {
    const o = checkOptionsObject(options, PULL_OPTIONS);
    const ref = parseHubReference(reference, option);
    const root = cacheRoot(optionalString("cacheDir", o.cacheDir));
    const offline = optionalBoolean("offline", o.offline, envFlag("HF_HUB_OFFLINE"));
    const token = optionalString("token", o.token) ?? (process.env.HF_TOKEN || process.env.HUGGING_FACE_HUB_TOKEN || undefined);
    const endpointOption = optionalString("endpoint", o.endpoint) ?? (process.env.HF_ENDPOINT || DEFAULT_ENDPOINT);
    if (!/^https?:\/\/[^\s/]+/.test(endpointOption)) throw new InvalidOptionError(o.endpoint !== undefined ? "endpoint" : "HF_ENDPOINT", "an http(s) URL", endpointOption);
    const connections = optionalInteger("connections", o.connections, 1, 64);
    const mmprojType = optionalString("mmprojType", o.mmprojType);
    const keepCheckpoint = optionalBoolean("keepCheckpoint", o.keepCheckpoint, false);
    const signal = optionalSignal("signal", o.signal);
    const onProgress = optionalFunction<(p: PullProgress) => void>("onProgress", o.onProgress);
    const canonical = formatHubReference(ref);
    return {
        ref,
        reference: canonical,
        root,
        offline,
        offlineSource: o.offline !== undefined ? "--offline / the offline option" : "HF_HUB_OFFLINE",
        conn: { endpoint: endpointOption.replace(/\/+$/, ""), token, reference: canonical, signal, tuning: tuning(connections) },
        mmprojType,
        keepCheckpoint,
        report: (p) => {
            try {
                onProgress?.(p);
            } catch {
                // a listener's exception must not break the pull
            }
        },
    };
}

/**
 * Makes a hub model available on disk and returns its GGUF paths. A VideoLLaMA3 or Video-LLaVA checkpoint is
 * downloaded, converted to the reference's type (default `q8_0`, projector `f16`) and cached; a repository with GGUF
 * files gives its text model (picked by the type in the file name) and projector (`mmproj` in the name). A cached
 * entry of the same commit and types is used without downloading; offline, the commit a revision last pointed to is.
 *
 * @example
 * ```ts
 * const pulled = await pullModel("hf:DAMO-NLP-SG/VideoLLaMA3-2B", { onProgress: (p) => console.log(p.phase) });
 * await using model = await loadModel({ model: pulled.textModel, mmproj: pulled.mmproj });
 * ```
 * @throws {HubError} for authentication, gated, missing, rate-limited, network, hash, offline, file-choice and disk-space problems
 * @throws {ConversionError} when the checkpoint cannot be converted
 * @throws {InvalidOptionError} for a malformed reference or bad options
 */
export async function pullModel(reference: string, options?: PullOptions): Promise<PulledModel> {
    return pull(resolveOptions(reference, options, "reference"));
}

/** @internal {@link loadModel}'s entry: the option name for errors, and progress mapped by the caller. */
export async function pullForLoad(reference: string, options: PullOptions, option: string): Promise<PulledModel> {
    return pull(resolveOptions(reference, options, option));
}

async function pull(r: Resolved): Promise<PulledModel> {
    throwIfAborted(r.conn.signal);
    const textType = r.ref.type;
    if (r.offline) return fromCacheOffline(r, []);
    r.report({ phase: "resolve", reference: r.reference });
    let listing: RepoListing;
    try {
        listing = await listRepo(r.conn, r.ref.repo, r.ref.revision);
    } catch (err) {
        // The hub cannot be reached: a cached copy of the revision still serves (as huggingface_hub does).
        if (err instanceof HubError && err.code === "ERR_HUB_NETWORK") {
            const cached = await findCached(r).catch(() => undefined);
            if (cached) return finish(r, cached, true, 0, [`the hub could not be reached (${err.message}); using the cached commit ${cached.commit.slice(0, 12)}`]);
        }
        throw err;
    }
    await writeRef(r.root, r.ref.repo, r.ref.revision, listing.commit);
    const plan = planPull(r, listing, textType);
    const cached = await readEntry(r.root, r.ref.repo, listing.commit, plan.variant);
    if (cached) return finish(r, cached, true, 0, []);

    return withLock(
        r.root,
        repoKey(r.ref.repo),
        r.conn.signal,
        (owner) => r.report({ phase: "wait", reference: r.reference, pid: owner.pid, host: owner.host }),
        async () => {
            // Another process may have made it while this one waited.
            const again = await readEntry(r.root, r.ref.repo, listing.commit, plan.variant);
            if (again) return finish(r, again, true, 0, []);
            return plan.kind === "gguf" ? pullGguf(r, listing, plan) : pullCheckpoint(r, listing, plan);
        },
    );
}

function finish(r: Resolved, entry: CacheEntry, fromCache: boolean, bytesDownloaded: number, warnings: string[]): PulledModel {
    const model: PulledModel = {
        ...cachedModel(entry),
        reference: `hf:${entry.repo}@${r.ref.revision}:${entry.type}`,
        revision: r.ref.revision,
        fromCache,
        bytesDownloaded,
        warnings,
    };
    r.report({ phase: "done", model });
    return model;
}

// ---------------------------------------------------------------------------------------------------------------
// Offline

/** The cached entry for the reference: the commit the revision last resolved to, the variant asked for. */
async function findCached(r: Resolved): Promise<CacheEntry | undefined> {
    const commit = await readRef(r.root, r.ref.repo, r.ref.revision);
    if (!commit) return undefined;
    const variants = [convertedVariant(r.ref.type ?? DEFAULT_TEXT_TYPE, r.mmprojType ?? DEFAULT_MMPROJ_TYPE), ggufVariant(r.ref.type, r.mmprojType)];
    for (const v of variants) {
        const entry = await readEntry(r.root, r.ref.repo, commit, v);
        if (entry) return entry;
    }
    return undefined;
}

async function fromCacheOffline(r: Resolved, warnings: string[]): Promise<PulledModel> {
    const entry = await findCached(r);
    if (!entry) {
        const others = (await listEntries(r.root)).filter((e) => e.repo === r.ref.repo);
        throw new HubError(
            "ERR_HUB_OFFLINE",
            r.reference,
            `offline mode is on (${r.offlineSource}) and the cache (${r.root}) has no copy of it. ` +
                (others.length > 0
                    ? `Cached for ${r.ref.repo}: ${others.map((e) => `hf:${e.repo}@${e.commit.slice(0, 12)}:${e.type}`).join(", ")}. `
                    : "") +
                `Pull it once online: vidllama pull ${r.reference}`,
            { choices: others.map((e) => `hf:${e.repo}@${e.commit}:${e.type}`) },
        );
    }
    return finish(r, entry, true, 0, warnings);
}

// ---------------------------------------------------------------------------------------------------------------
// What to download

interface PullPlan {
    kind: "checkpoint" | "gguf";
    variant: string;
    files: RepoFile[];
    /** gguf: the text model's first file and the projector. */
    textFile?: RepoFile;
    mmprojFile?: RepoFile;
    type: string;
    mmprojType: string | undefined;
}

function convertedVariant(type: string, mmprojType: string): string {
    return `${type}+${mmprojType}`;
}

function ggufVariant(type: string | undefined, mmprojType: string | undefined): string {
    // Types in file names match case-insensitively, so `:Q4_K_M` and `:q4_k_m` are one entry.
    return `gguf+${(type ?? "auto").toLowerCase()}+${(mmprojType ?? "auto").toLowerCase()}`;
}

/** Which files and which variant: a GGUF repository's picked files, or a checkpoint's files for conversion. */
function planPull(r: Resolved, listing: RepoListing, type: string | undefined): PullPlan {
    const ggufs = listing.files.filter((f) => /\.gguf$/i.test(f.path));
    const hasCheckpoint = listing.files.some((f) => f.path === "config.json") && listing.files.some((f) => !f.path.includes("/") && f.path.endsWith(".safetensors"));
    const texts = ggufs.filter((f) => !isMmprojName(f.path));
    if (texts.length > 0) return planGguf(r, listing, ggufs, type);
    if (hasCheckpoint) {
        const t = (type ?? DEFAULT_TEXT_TYPE).toLowerCase();
        if (!(TEXT_OUTPUT_TYPES as readonly string[]).includes(t)) {
            throw new InvalidOptionError("type", `a type the checkpoint can be converted to (${TEXT_OUTPUT_TYPES.join(", ")})`, type, `${r.ref.repo} is a safetensors checkpoint: the type after ":" says what it is converted to`);
        }
        const mt = (r.mmprojType ?? DEFAULT_MMPROJ_TYPE).toLowerCase();
        if (!(MMPROJ_OUTPUT_TYPES as readonly string[]).includes(mt)) {
            throw new InvalidOptionError("mmprojType", `a projector type the checkpoint can be converted to (${MMPROJ_OUTPUT_TYPES.join(", ")})`, r.mmprojType);
        }
        // What the converter reads: configs and tokenizer files at the top level, and the weights.
        const files = listing.files.filter(
            (f) => !f.path.includes("/") && (/\.(json|safetensors|txt|jinja)$/.test(f.path) || f.path === "tokenizer.model"),
        );
        // config.json first: its model_type is checked before the weights are fetched.
        files.sort((a, b) => Number(b.path === "config.json") - Number(a.path === "config.json") || a.size - b.size);
        return { kind: "checkpoint", variant: convertedVariant(t, mt), files, type: t, mmprojType: mt };
    }
    const weights = listing.files.filter((f) => /\.(bin|pt|pth|ckpt)$/.test(f.path));
    throw new HubError(
        "ERR_HUB_NO_FILES",
        r.reference,
        weights.length > 0
            ? `the repository has only PyTorch weights (${weights.map((f) => f.path).join(", ")}); vidllama needs a safetensors checkpoint or GGUF files`
            : `the repository at ${listing.commit.slice(0, 12)} has neither GGUF files nor a checkpoint (config.json + *.safetensors)`,
        { choices: listing.files.map((f) => f.path) },
    );
}

function isMmprojName(path: string): boolean {
    return /mmproj/i.test(basename(path));
}

const SHARD = /-(\d{5})-of-(\d{5})\.gguf$/i;

/** True when the type token (`Q4_K_M`, `f16`) appears in the file's name or folder, delimited. */
function hasType(path: string, type: string): boolean {
    const stem = path.replace(SHARD, "").replace(/\.gguf$/i, "");
    const escaped = type.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return new RegExp(`(^|[-_./])${escaped}($|[-_./])`, "i").test(stem);
}

function planGguf(r: Resolved, listing: RepoListing, ggufs: RepoFile[], type: string | undefined): PullPlan {
    // Split models: one choice per group of shards, named by the first shard.
    const texts = ggufs.filter((f) => !isMmprojName(f.path));
    const groups = new Map<string, RepoFile[]>();
    for (const f of texts) {
        const key = f.path.replace(SHARD, ".gguf");
        groups.set(key, [...(groups.get(key) ?? []), f]);
    }
    const choices = [...groups.keys()].sort();
    const hint = `name one with a type after ":", e.g. hf:${r.ref.repo}${r.ref.revision === "main" ? "" : `@${r.ref.revision}`}:Q4_K_M`;
    let picked: string[];
    if (type !== undefined) {
        picked = choices.filter((c) => hasType(c, type));
        if (picked.length === 0) throw new HubError("ERR_HUB_NO_FILES", r.reference, `no GGUF file of type ${type}; the text models there: ${choices.join(", ")}`, { choices });
    } else if (choices.length === 1) {
        picked = choices;
    } else {
        picked = choices.filter((c) => hasType(c, "Q8_0"));
        if (picked.length === 0) throw new HubError("ERR_HUB_AMBIGUOUS", r.reference, `the repository has several text models and none is Q8_0: ${choices.join(", ")}; ${hint}`, { choices });
    }
    if (picked.length > 1) throw new HubError("ERR_HUB_AMBIGUOUS", r.reference, `several text models match: ${picked.join(", ")}; name the file's type more precisely`, { choices: picked });
    const shards = groups.get(picked[0]!)!.sort((a, b) => a.path.localeCompare(b.path));

    const mmprojs = ggufs.filter((f) => isMmprojName(f.path)).map((f) => f.path).sort();
    let mmproj: string | undefined;
    if (r.mmprojType !== undefined) {
        const m = mmprojs.filter((p) => hasType(p, r.mmprojType!));
        if (m.length !== 1) {
            throw new HubError(m.length === 0 ? "ERR_HUB_NO_FILES" : "ERR_HUB_AMBIGUOUS", r.reference, `${m.length === 0 ? "no" : "more than one"} projector of type ${r.mmprojType}; the projectors there: ${mmprojs.join(", ") || "none"}`, { choices: mmprojs });
        }
        mmproj = m[0];
    } else if (mmprojs.length === 1) {
        mmproj = mmprojs[0];
    } else if (mmprojs.length > 1) {
        const f16 = mmprojs.filter((p) => hasType(p, "f16"));
        if (f16.length !== 1) throw new HubError("ERR_HUB_AMBIGUOUS", r.reference, `several projectors: ${mmprojs.join(", ")}; choose one with the mmproj type (--mmproj-type)`, { choices: mmprojs });
        mmproj = f16[0];
    }
    const mmprojFile = listing.files.find((f) => f.path === mmproj);
    const textType = type ?? (/(?:^|[-_.])((?:I?Q\d[A-Z0-9_]*|F16|BF16|F32))(?:$|[-.])/i.exec(picked[0]!.replace(/\.gguf$/i, ""))?.[1] ?? "gguf");
    const mmprojType = r.mmprojType ?? (mmproj ? (/(?:^|[-_.])(f16|bf16|f32|q8_0|q4_[01k])(?:$|[-_.])/i.exec(basename(mmproj).replace(/\.gguf$/i, ""))?.[1] ?? "gguf") : undefined);
    return {
        kind: "gguf",
        variant: ggufVariant(type, r.mmprojType),
        files: mmprojFile ? [...shards, mmprojFile] : shards,
        textFile: shards[0],
        ...(mmprojFile ? { mmprojFile } : {}),
        type: textType,
        mmprojType,
    };
}

// ---------------------------------------------------------------------------------------------------------------
// Downloading

/** Downloads `files` into `dir` (kept across attempts), with progress over all of them. */
async function downloadAll(r: Resolved, listing: RepoListing, plan: PullPlan, dir: string, files: RepoFile[]): Promise<number> {
    const bytesTotal = files.reduce((a, f) => a + f.size, 0);
    const onDisk = await treeBytes(dir); // partials and finished files of an earlier attempt
    r.report({
        phase: "start",
        reference: r.reference,
        commit: listing.commit,
        kind: plan.kind,
        files: files.map((f) => ({ path: f.path, size: f.size })),
        bytesTotal,
        bytesOnDisk: Math.min(onDisk, bytesTotal),
        cacheDir: r.root,
    });
    await checkDiskSpace(r.reference, dir, Math.max(0, bytesTotal - onDisk) + (plan.kind === "checkpoint" ? estimateConvertedBytes(bytesTotal, plan) : 0), `downloading ${r.reference} (${formatBytes(bytesTotal)})${plan.kind === "checkpoint" ? " and converting it" : ""}`);
    const meter = new SpeedMeter(bytesTotal);
    let received = 0;
    for (const file of files) {
        const dest = join(dir, file.path);
        await mkdir(dirname(dest), { recursive: true });
        let lastReport = 0;
        await downloadFile(r.conn, listing, file, dest, (e) => {
            if (e.kind === "bytes") {
                if (!e.resumed) received += e.bytes;
                meter.add(e.bytes, e.resumed === true);
                const now = Date.now();
                if (now - lastReport >= 100 || meter.done === bytesTotal) {
                    lastReport = now;
                    r.report({ phase: "download", file: file.path, ...meter.snapshot() });
                }
            } else if (e.kind === "retry") {
                r.report({ phase: "retry", file: file.path, reason: e.reason, offset: e.offset, delayMs: e.delayMs, attempt: e.attempt });
            } else {
                r.report({ phase: "download", file: file.path, ...meter.snapshot() });
                r.report({ phase: "verify", file: file.path });
            }
        });
        if (file.path === "config.json" && plan.kind === "checkpoint") {
            // Not a model vidllama converts: say so before gigabytes of weights.
            const config = JSON.parse(await readFile(dest, "utf8")) as Record<string, unknown>;
            familyOfConfig(config, dest);
        }
    }
    return received;
}

/** Download speed over a sliding window of the last 5 s, and the ETA from it. */
class SpeedMeter {
    done = 0;
    readonly #samples: Array<{ t: number; bytes: number }> = [];
    constructor(readonly total: number) {}

    add(bytes: number, resumed: boolean): void {
        this.done += bytes;
        if (!resumed) this.#samples.push({ t: performance.now(), bytes: Math.max(0, bytes) });
        const cutoff = performance.now() - 5000;
        while (this.#samples.length > 1 && this.#samples[0]!.t < cutoff) this.#samples.shift();
    }

    snapshot(): { bytesDone: number; bytesTotal: number; bytesPerSecond: number; etaSeconds: number | undefined; fraction: number } {
        const s = this.#samples;
        const span = s.length > 1 ? (s[s.length - 1]!.t - s[0]!.t) / 1000 : 0;
        const bytes = s.slice(1).reduce((a, x) => a + x.bytes, 0);
        const bytesPerSecond = span > 0.2 ? bytes / span : 0;
        const left = Math.max(0, this.total - this.done);
        return {
            bytesDone: this.done,
            bytesTotal: this.total,
            bytesPerSecond,
            etaSeconds: bytesPerSecond > 0 ? left / bytesPerSecond : left === 0 ? 0 : undefined,
            fraction: this.total > 0 ? Math.min(1, this.done / this.total) : 1,
        };
    }
}

/**
 * A generous estimate of the converted GGUF pair's size from the checkpoint's size (bf16 weights: 2 bytes a
 * parameter; about a fifth of them in the vision tower, stored as the projector type).
 */
function estimateConvertedBytes(checkpointBytes: number, plan: Pick<PullPlan, "type" | "mmprojType">): number {
    const perParam: Record<string, number> = { f32: 4, f16: 2, bf16: 2, q8_0: 34 / 32, q4_0: 18 / 32, q4_k_m: 0.6 };
    const params = checkpointBytes / 2;
    const text = perParam[plan.type] ?? 2;
    const vision = perParam[plan.mmprojType ?? "f16"] ?? 2;
    return Math.ceil(params * (0.8 * text + 0.2 * vision) * 1.1) + 64 * 1024 * 1024;
}

// ---------------------------------------------------------------------------------------------------------------
// The two kinds of pull

async function pullGguf(r: Resolved, listing: RepoListing, plan: PullPlan): Promise<PulledModel> {
    const dir = downloadDir(r.root, r.ref.repo, listing.commit);
    const received = await downloadAll(r, listing, plan, dir, plan.files);
    const finalDir = entryDir(r.root, r.ref.repo, listing.commit, plan.variant);
    const tmpDir = `${dirname(finalDir)}/.tmp-${plan.variant}-${process.pid}`;
    await rm(tmpDir, { recursive: true, force: true });
    await mkdir(tmpDir, { recursive: true });
    const files: CacheEntryRecord["files"] = [];
    for (const f of plan.files) {
        const name = basename(f.path);
        await rename(join(dir, f.path), join(tmpDir, name));
        files.push({ name, size: f.size, source: f.path });
    }
    const entry = await commitEntry(tmpDir, finalDir, {
        version: 1,
        repo: r.ref.repo,
        revision: r.ref.revision,
        commit: listing.commit,
        kind: "gguf",
        type: plan.type,
        mmprojType: plan.mmprojType,
        textModel: basename(plan.textFile!.path),
        mmproj: plan.mmprojFile ? basename(plan.mmprojFile.path) : undefined,
        files,
        sourceBytes: plan.files.reduce((a, f) => a + f.size, 0),
        createdAt: new Date().toISOString(),
    });
    await removeAndPrune(dir, join(r.root, "downloads"));
    return finish(r, entry, false, received, []);
}

async function pullCheckpoint(r: Resolved, listing: RepoListing, plan: PullPlan): Promise<PulledModel> {
    const dir = downloadDir(r.root, r.ref.repo, listing.commit);
    const received = await downloadAll(r, listing, plan, dir, plan.files);
    const sourceBytes = plan.files.reduce((a, f) => a + f.size, 0);
    const finalDir = entryDir(r.root, r.ref.repo, listing.commit, plan.variant);
    const tmpDir = `${dirname(finalDir)}/.tmp-${plan.variant}-${process.pid}`;
    await rm(tmpDir, { recursive: true, force: true });
    await mkdir(tmpDir, { recursive: true });
    try {
        await checkDiskSpace(r.reference, tmpDir, estimateConvertedBytes(sourceBytes, plan), `converting ${r.reference} to ${plan.type}`);
        r.report({ phase: "convert", fraction: 0, tensor: undefined });
        const result = await convertCheckpoint({
            input: dir,
            outDir: tmpDir,
            type: plan.type as TextOutputType,
            mmprojType: plan.mmprojType as MmprojOutputType,
            name: r.ref.repo.split("/")[1]!,
            threads: availableParallelism(),
            ...(r.conn.signal ? { signal: r.conn.signal } : {}),
            onProgress: (p) => {
                if (p.phase === "text" || p.phase === "mmproj") {
                    r.report({ phase: "convert", fraction: p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 0, tensor: p.tensor });
                }
            },
        });
        r.report({ phase: "convert", fraction: 1, tensor: undefined });
        const entry = await commitEntry(tmpDir, finalDir, {
            version: 1,
            repo: r.ref.repo,
            revision: r.ref.revision,
            commit: listing.commit,
            kind: "converted",
            type: plan.type,
            mmprojType: plan.mmprojType,
            textModel: basename(result.textModel),
            mmproj: basename(result.mmproj),
            files: [
                { name: basename(result.textModel), size: result.textModelBytes },
                { name: basename(result.mmproj), size: result.mmprojBytes },
            ],
            sourceBytes,
            createdAt: new Date().toISOString(),
        });
        if (!r.keepCheckpoint) await removeAndPrune(dir, join(r.root, "downloads"));
        return finish(r, entry, false, received, []);
    } catch (err) {
        await rm(tmpDir, { recursive: true, force: true });
        throw err;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// list / rm

/** Options of {@link listCachedModels} and {@link removeCachedModels}. */
export interface CacheOptions {
    /** Cache directory; default as for {@link pullModel}. */
    cacheDir?: string;
}

/** A model in the cache. */
export interface CachedModel {
    /** `hf:<repo>@<commit>:<type>`: loads exactly this entry, also offline. */
    reference: string;
    repo: string;
    /** The revision it was pulled as. */
    revision: string;
    /** The commit the files come from. */
    commit: string;
    /** `converted`: made from a checkpoint by vidllama; `gguf`: files of a GGUF repository. */
    kind: "converted" | "gguf";
    /** The text model's type. */
    type: string;
    /** The projector's type; undefined without a projector. */
    mmprojType: string | undefined;
    /** Path of the text model GGUF (for split files, the first). */
    textModel: string;
    /** Path of the vision projector GGUF; undefined for a repository without one. */
    mmproj: string | undefined;
    /** The entry's directory. */
    dir: string;
    /** Size of the entry's files in bytes. */
    bytes: number;
    /** When it was pulled (ISO 8601). */
    createdAt: string;
}

function cachedModel(e: CacheEntry): CachedModel {
    return {
        reference: `hf:${e.repo}@${e.commit}:${e.type}`,
        repo: e.repo,
        revision: e.revision,
        commit: e.commit,
        kind: e.kind,
        type: e.type,
        mmprojType: e.mmprojType,
        textModel: join(e.dir, e.textModel),
        mmproj: e.mmproj === undefined ? undefined : join(e.dir, e.mmproj),
        dir: e.dir,
        bytes: e.bytes,
        createdAt: e.createdAt,
    };
}

/** Every model in the cache. */
export async function listCachedModels(options?: CacheOptions): Promise<CachedModel[]> {
    const o = checkOptionsObject(options, ["cacheDir"]);
    return (await listEntries(cacheRoot(optionalString("cacheDir", o.cacheDir)))).map(cachedModel);
}

/** What {@link removeCachedModels} removed. */
export interface RemovedModels {
    removed: CachedModel[];
    /** Bytes freed, partial downloads and kept checkpoints of the repository included. */
    bytesFreed: number;
}

/**
 * Removes cached models: every entry of the repository for `hf:<owner>/<repo>` (with its partial downloads and
 * kept checkpoints), only those of a revision (a branch or tag as cached, or a commit or its prefix) with `@`, only
 * those of a type with `:`. Waits for a process pulling the same repository to finish.
 */
export async function removeCachedModels(reference: string, options?: CacheOptions & { signal?: AbortSignal }): Promise<RemovedModels> {
    const o = checkOptionsObject(options, ["cacheDir", "signal"]);
    const root = cacheRoot(optionalString("cacheDir", o.cacheDir));
    const signal = optionalSignal("signal", o.signal);
    const ref = parseHubReference(reference, "reference");
    const revisionGiven = /@/.test(reference);
    return withLock(root, repoKey(ref.repo), signal, () => undefined, async () => {
        const commit = revisionGiven ? ((await readRef(root, ref.repo, ref.revision)) ?? ref.revision) : undefined;
        const matches = (await listEntries(root)).filter(
            (e) =>
                e.repo === ref.repo &&
                (commit === undefined || e.commit.startsWith(commit)) &&
                (ref.type === undefined || e.type.toLowerCase() === ref.type.toLowerCase()),
        );
        let bytesFreed = 0;
        for (const e of matches) {
            bytesFreed += e.bytes;
            await removeAndPrune(e.dir, join(root, "models"));
        }
        if (!revisionGiven && ref.type === undefined) {
            const downloads = join(root, "downloads", repoKey(ref.repo));
            bytesFreed += await treeBytes(downloads);
            await rm(downloads, { recursive: true, force: true });
            await rm(join(root, "hub", repoKey(ref.repo)), { recursive: true, force: true });
            await rm(join(root, "models", repoKey(ref.repo)), { recursive: true, force: true });
        }
        return { removed: matches.map(cachedModel), bytesFreed };
    });
}
