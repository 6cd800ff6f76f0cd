// pullModel / listCachedModels / removeCachedModels against the fake hub on 127.0.0.1: file choice in GGUF
// repositories, resume after cut connections (checked by the bytes the server sent), parallel ranges, hashes, auth,
// rate limits, slow servers and abort, offline mode, the cache lock, list and rm.
import { existsSync, readdirSync } from "node:fs";
import { createServer } from "node:http";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { HubError, InvalidOptionError, listCachedModels, pullModel, removeCachedModels, type PullProgress } from "../../lib/index.js";
import { checkDiskSpace } from "../../lib/hub/cache.js";
import { isSafeRepoPath } from "../../lib/hub/client.js";
import { FakeHub } from "../fixtures/fake-hub.js";

let hub: FakeHub;
let cacheDir: string;
const opts = () => ({ endpoint: hub.url, cacheDir });

/** Deterministic bytes (not compressible to nothing, different per seed). */
function bytes(n: number, seed: number): Uint8Array {
    const out = new Uint8Array(n);
    let x = seed * 2654435761;
    for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        out[i] = x >>> 24;
    }
    return out;
}

const Q8 = bytes(1_500_000, 1);
const Q4 = bytes(700_000, 2);
const MMPROJ = bytes(900_000, 3);
const MMPROJ_F32 = bytes(1_200_000, 4);
const BIG = bytes(2_000_000, 5);

function cdnRequests(path: string) {
    return hub.requests.filter((r) => r.kind === "cdn" && r.path === path);
}

/** The file holds exactly `expected` (Buffer.compare: vitest's deep equality is slow on megabytes). */
async function sameBytes(path: string, expected: Uint8Array): Promise<boolean> {
    return Buffer.compare(await readFile(path), expected) === 0;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
    try {
        await p;
    } catch (err) {
        return err;
    }
    throw new Error("expected a rejection");
}

function partials(): string[] {
    const out: string[] = [];
    const walk = (dir: string): void => {
        if (!existsSync(dir)) return;
        for (const e of readdirSync(dir, { withFileTypes: true })) {
            if (e.isDirectory()) walk(join(dir, e.name));
            else if (e.name.includes(".partial")) out.push(join(dir, e.name));
        }
    };
    walk(join(cacheDir, "downloads"));
    return out;
}

beforeAll(async () => {
    hub = await FakeHub.start({ separateCdn: true });
    hub.addRepo("ggml-org/tiny-vlm-GGUF", {
        "tiny-vlm-Q8_0.gguf": Q8,
        "tiny-vlm-Q4_K_M.gguf": Q4,
        "mmproj-tiny-vlm-f16.gguf": MMPROJ,
        "mmproj-tiny-vlm-f32.gguf": MMPROJ_F32,
        "README.md": "# tiny",
    });
    hub.addRepo("someone/two-quants-GGUF", { "m-Q4_K_M.gguf": Q4, "m-Q5_K_M.gguf": Q8, "mmproj-m-f16.gguf": MMPROJ });
    hub.addRepo("someone/text-only-GGUF", { "small.gguf": Q4 });
    hub.addRepo("someone/split-GGUF", { "big-Q8_0-00001-of-00002.gguf": Q8, "big-Q8_0-00002-of-00002.gguf": Q4, "mmproj-big-f16.gguf": MMPROJ });
    hub.addRepo("someone/big-GGUF", { "big-Q8_0.gguf": BIG, "mmproj-big-f16.gguf": MMPROJ });
    hub.addRepo("someone/private-GGUF", { "p-Q8_0.gguf": Q4, "mmproj-p-f16.gguf": MMPROJ }, { private: true, tokens: ["hf_secret"] });
    hub.addRepo("someone/gated-GGUF", { "g-Q8_0.gguf": Q4, "mmproj-g-f16.gguf": MMPROJ }, { gated: true, tokens: ["hf_secret"] });
    hub.addRepo("someone/pytorch-only", { "config.json": "{}", "pytorch_model.bin": Q4 });
    hub.addRepo("someone/not-a-vlm", {
        "config.json": JSON.stringify({ model_type: "bert", architectures: ["BertModel"] }),
        "model.safetensors": BIG,
    });
});

beforeEach(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), "vidllama-cache-"));
});

afterEach(async () => {
    delete process.env.VIDLLAMA_HUB_TUNING;
    hub.reset();
    await hub.idle();
    await rm(cacheDir, { recursive: true, force: true });
});

afterAll(async () => {
    await hub.close();
});

describe("GGUF repositories", () => {
    it("picks the Q8_0 text model and the f16 projector by name, verifies them and caches them; a second pull uses the cache", async () => {
        const events: PullProgress[] = [];
        const first = await pullModel("hf:ggml-org/tiny-vlm-GGUF", { ...opts(), onProgress: (p) => events.push(p) });
        expect(first.kind).toBe("gguf");
        expect(first.type).toBe("Q8_0");
        expect(first.mmprojType).toBe("f16");
        expect(first.fromCache).toBe(false);
        expect(first.bytesDownloaded).toBe(Q8.length + MMPROJ.length);
        expect(await sameBytes(first.textModel, Q8)).toBe(true);
        expect(await sameBytes(first.mmproj!, MMPROJ)).toBe(true);
        expect(first.commit).toMatch(/^[0-9a-f]{40}$/);
        expect(first.reference).toBe("hf:ggml-org/tiny-vlm-GGUF@main:Q8_0");
        // announced before the first byte: the files and their total size
        const start = events.find((e) => e.phase === "start");
        expect(start).toMatchObject({ bytesTotal: Q8.length + MMPROJ.length, bytesOnDisk: 0 });
        expect(events.findIndex((e) => e.phase === "start")).toBeLessThan(events.findIndex((e) => e.phase === "download"));
        expect(events.at(-1)?.phase).toBe("done");
        // the LFS files came from the CDN (another origin), where the token is not sent
        expect(cdnRequests("tiny-vlm-Q8_0.gguf")).toHaveLength(1);
        expect(hub.bytesServed("tiny-vlm-Q4_K_M.gguf")).toBe(0);
        expect(partials()).toEqual([]);

        hub.reset();
        const second = await pullModel("hf:ggml-org/tiny-vlm-GGUF", opts());
        expect(second.fromCache).toBe(true);
        expect(second.textModel).toBe(first.textModel);
        expect(hub.requests.map((r) => r.kind)).toEqual(["api"]); // one listing, no file
    });

    it("takes the type after ':' and the projector type from the options", async () => {
        const pulled = await pullModel("hf:ggml-org/tiny-vlm-GGUF:q4_k_m", { ...opts(), mmprojType: "f32" });
        expect(await sameBytes(pulled.textModel, Q4)).toBe(true);
        expect(await sameBytes(pulled.mmproj!, MMPROJ_F32)).toBe(true);
        expect(pulled.type).toBe("q4_k_m");
        expect(pulled.mmprojType).toBe("f32");
    });

    it("lists the choices when the choice is ambiguous or the type does not exist", async () => {
        const ambiguous = (await rejection(pullModel("hf:someone/two-quants-GGUF", opts()))) as HubError;
        expect(ambiguous).toBeInstanceOf(HubError);
        expect(ambiguous.code).toBe("ERR_HUB_AMBIGUOUS");
        expect(ambiguous.choices).toEqual(["m-Q4_K_M.gguf", "m-Q5_K_M.gguf"]);
        expect(ambiguous.message).toContain("hf:someone/two-quants-GGUF:Q4_K_M");
        const missing = (await rejection(pullModel("hf:someone/two-quants-GGUF:Q6_K", opts()))) as HubError;
        expect(missing.code).toBe("ERR_HUB_NO_FILES");
        expect(missing.message).toContain("m-Q4_K_M.gguf, m-Q5_K_M.gguf");
        const ok = await pullModel("hf:someone/two-quants-GGUF:Q5_K_M", opts());
        expect(await sameBytes(ok.textModel, Q8)).toBe(true);
        const projector = (await rejection(pullModel("hf:ggml-org/tiny-vlm-GGUF", { ...opts(), mmprojType: "q4_0" }))) as HubError;
        expect(projector.code).toBe("ERR_HUB_NO_FILES");
        expect(projector.choices).toEqual(["mmproj-tiny-vlm-f16.gguf", "mmproj-tiny-vlm-f32.gguf"]);
    });

    it("downloads every shard of a split model and points at the first; a repository without projector is text-only", async () => {
        const split = await pullModel("hf:someone/split-GGUF", opts());
        expect(split.textModel.endsWith("big-Q8_0-00001-of-00002.gguf")).toBe(true);
        expect(await sameBytes(split.textModel.replace("00001-of", "00002-of"), Q4)).toBe(true);
        const text = await pullModel("hf:someone/text-only-GGUF", opts());
        expect(text.mmproj).toBeUndefined();
        expect(await sameBytes(text.textModel, Q4)).toBe(true);
    });

    it("refuses repositories with nothing vidllama can use, before downloading weights", async () => {
        const pt = (await rejection(pullModel("hf:someone/pytorch-only", opts()))) as HubError;
        expect(pt.code).toBe("ERR_HUB_NO_FILES");
        expect(pt.message).toContain("PyTorch");
        const bert = await rejection(pullModel("hf:someone/not-a-vlm", opts()));
        expect((bert as Error).name).toBe("ConversionError");
        expect(hub.bytesServed("model.safetensors", "someone/not-a-vlm")).toBe(0);
    });
});

describe("interrupted and faulty downloads", () => {
    it("resumes a cut connection from the cut: the server sends every byte once", async () => {
        hub.cutAfter("tiny-vlm-Q8_0.gguf", 400_000);
        const events: PullProgress[] = [];
        const pulled = await pullModel("hf:ggml-org/tiny-vlm-GGUF", { ...opts(), onProgress: (p) => events.push(p) });
        expect(await sameBytes(pulled.textModel, Q8)).toBe(true);
        const cdn = cdnRequests("tiny-vlm-Q8_0.gguf");
        expect(cdn.map((r) => r.outcome)).toEqual(["cut", "complete"]);
        // The second request starts where the bytes that arrived end: at the cut, less what the destroyed socket
        // lost in flight; the server sent nothing twice beyond that.
        const resumedAt = Number(/^bytes=(\d+)-(\d+)$/.exec(cdn[1]!.range!)![1]);
        expect(cdn[1]!.range).toBe(`bytes=${resumedAt}-${Q8.length - 1}`);
        expect(resumedAt).toBeGreaterThan(300_000);
        expect(resumedAt).toBeLessThanOrEqual(400_000);
        expect(hub.bytesServed("tiny-vlm-Q8_0.gguf")).toBe(Q8.length + (400_000 - resumedAt));
        const retry = events.find((e) => e.phase === "retry");
        expect(retry).toMatchObject({ file: "tiny-vlm-Q8_0.gguf", offset: resumedAt });
    });

    it("an aborted pull keeps its partial file and the next pull continues from it", async () => {
        hub.throttle(400_000, { path: "big-Q8_0.gguf" });
        const controller = new AbortController();
        const started = Date.now();
        const p = pullModel("hf:someone/big-GGUF", {
            ...opts(),
            signal: controller.signal,
            onProgress: (e) => {
                if (e.phase === "download" && e.bytesDone > 500_000) controller.abort(new DOMException("stop", "AbortError"));
            },
        });
        const err = (await rejection(p)) as Error;
        expect(err.name).toBe("AbortError");
        expect(Date.now() - started).toBeLessThan(10_000);
        expect((await listCachedModels({ cacheDir })).length).toBe(0);
        const [partial] = partials();
        expect(partial).toMatch(/big-Q8_0\.gguf\.partial$/);
        await hub.idle();
        const sentBefore = hub.bytesServed("big-Q8_0.gguf");
        expect(sentBefore).toBeGreaterThan(500_000);
        expect(sentBefore).toBeLessThan(BIG.length);

        hub.throttle(undefined);
        const events: PullProgress[] = [];
        const pulled = await pullModel("hf:someone/big-GGUF", { ...opts(), onProgress: (e) => events.push(e) });
        expect(await sameBytes(pulled.textModel, BIG)).toBe(true);
        // what was on disk was not asked for again (the abort may leave a few bytes sent but not written)
        expect(hub.bytesServed("big-Q8_0.gguf")).toBeLessThanOrEqual(BIG.length + 128 * 1024);
        const start = events.find((e) => e.phase === "start");
        expect(start?.phase === "start" && start.bytesOnDisk).toBeGreaterThan(400_000);
        expect(partials()).toEqual([]);
    });

    it("large files come as parallel ranges; a cut range resumes alone, an abort keeps every range's progress", async () => {
        process.env.VIDLLAMA_HUB_TUNING = JSON.stringify({ parallelThreshold: 1_000_000, chunkSize: 256 * 1024, connections: 3 });
        hub.cutAfter("big-Q8_0.gguf", 100_000);
        const pulled = await pullModel("hf:someone/big-GGUF", opts());
        expect(await sameBytes(pulled.textModel, BIG)).toBe(true);
        const ranges = cdnRequests("big-Q8_0.gguf");
        expect(ranges.length).toBe(Math.ceil(BIG.length / (256 * 1024)) + 1); // one per range, one more for the cut one
        expect(ranges.every((r) => r.range?.startsWith("bytes="))).toBe(true);
        // the cut range is asked for again from where its bytes stopped, not from its start
        const span = (r: { range?: string }) => /^bytes=(\d+)-(\d+)$/.exec(r.range!)!.slice(1).map(Number) as [number, number];
        const cut = ranges.find((r) => r.outcome === "cut")!;
        const [cutStart, cutEnd] = span(cut);
        const again = ranges.find((r) => r !== cut && span(r)[1] === cutEnd && span(r)[0] > cutStart)!;
        const lost = 100_000 - (span(again)[0] - cutStart); // sent before the cut but lost with the socket
        expect(lost).toBeGreaterThanOrEqual(0);
        expect(lost).toBeLessThan(100_000);
        expect(hub.bytesServed("big-Q8_0.gguf")).toBe(BIG.length + lost);
        // the projector is under the threshold: one request
        expect(cdnRequests("mmproj-big-f16.gguf")).toHaveLength(1);

        await removeCachedModels("hf:someone/big-GGUF", { cacheDir });
        hub.reset();
        hub.throttle(300_000, { path: "big-Q8_0.gguf" });
        const controller = new AbortController();
        const err = await rejection(
            pullModel("hf:someone/big-GGUF", {
                ...opts(),
                signal: controller.signal,
                onProgress: (e) => {
                    if (e.phase === "download" && e.bytesDone > 700_000) controller.abort(new DOMException("stop", "AbortError"));
                },
            }),
        );
        expect((err as Error).name).toBe("AbortError");
        expect(partials().map((p) => p.split("/").pop()).sort()).toEqual(["big-Q8_0.gguf.partial", "big-Q8_0.gguf.partial.json"]);
        const sidecar = JSON.parse(await readFile(partials().find((p) => p.endsWith(".json"))!, "utf8")) as { progress: number[] };
        const kept = sidecar.progress.reduce((a, b) => a + b, 0);
        expect(kept).toBeGreaterThan(600_000);
        await hub.idle();
        const sentBefore = hub.bytesServed("big-Q8_0.gguf");
        hub.throttle(undefined);
        await pullModel("hf:someone/big-GGUF", opts());
        // this pull asked only for what the sidecar did not record
        expect(hub.bytesServed("big-Q8_0.gguf") - sentBefore).toBe(BIG.length - kept);
    });

    it("a corrupt download is a clean error and nothing is cached", async () => {
        hub.corrupt("tiny-vlm-Q8_0.gguf");
        const err = (await rejection(pullModel("hf:ggml-org/tiny-vlm-GGUF", opts()))) as HubError;
        expect(err).toBeInstanceOf(HubError);
        expect(err.code).toBe("ERR_HUB_HASH_MISMATCH");
        expect(err.message).toContain("tiny-vlm-Q8_0.gguf is corrupt");
        expect(await listCachedModels({ cacheDir })).toEqual([]);
        expect(partials()).toEqual([]);
        hub.reset();
        // a small non-LFS file is checked by its git blob id
        hub.addRepo("someone/small-files-GGUF", { "tiny-Q8_0.gguf": "GGUF not really", "mmproj-tiny-f16.gguf": "nor this" }, { lfs: () => false });
        hub.corrupt("mmproj-tiny-f16.gguf");
        const blob = (await rejection(pullModel("hf:someone/small-files-GGUF", opts()))) as HubError;
        expect(blob.code).toBe("ERR_HUB_HASH_MISMATCH");
        expect(blob.message).toContain("git blob id");
    });

    it("429 with Retry-After is waited for; 500s are retried; a Retry-After beyond the limit fails at once", async () => {
        hub.failNext({ kind: "cdn", path: "tiny-vlm-Q8_0.gguf" }, 429, { retryAfter: 1 });
        hub.failNext({ api: true }, 500, { times: 2 });
        const events: PullProgress[] = [];
        const t0 = Date.now();
        const pulled = await pullModel("hf:ggml-org/tiny-vlm-GGUF", { ...opts(), onProgress: (e) => events.push(e) });
        expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
        expect(await sameBytes(pulled.textModel, Q8)).toBe(true);
        expect(events.find((e) => e.phase === "retry")).toMatchObject({ reason: "HTTP 429", delayMs: 1000 });
        expect(hub.requests.filter((r) => r.kind === "api").map((r) => r.status)).toEqual([500, 500, 200]);

        await removeCachedModels("hf:ggml-org/tiny-vlm-GGUF", { cacheDir });
        hub.reset();
        hub.failNext({ kind: "cdn" }, 429, { retryAfter: 3600 });
        const t1 = Date.now();
        const limited = (await rejection(pullModel("hf:ggml-org/tiny-vlm-GGUF", opts()))) as HubError;
        expect(limited.code).toBe("ERR_HUB_RATE_LIMITED");
        expect(limited.message).toContain("3600 s");
        expect(Date.now() - t1).toBeLessThan(5000);
    });

    it("a slow server: progress keeps moving with speed and ETA, and abort stops it at once", async () => {
        hub.throttle(250_000, { path: "tiny-vlm-Q8_0.gguf" });
        const controller = new AbortController();
        const downloads: Array<Extract<PullProgress, { phase: "download" }>> = [];
        const p = pullModel("hf:ggml-org/tiny-vlm-GGUF", { ...opts(), signal: controller.signal, onProgress: (e) => e.phase === "download" && downloads.push(e) });
        await new Promise((r) => setTimeout(r, 1500));
        const t = Date.now();
        controller.abort(new DOMException("stop", "AbortError"));
        expect(((await rejection(p)) as Error).name).toBe("AbortError");
        expect(Date.now() - t).toBeLessThan(1000);
        const moving = downloads.filter((d) => d.file === "tiny-vlm-Q8_0.gguf");
        expect(new Set(moving.map((d) => d.bytesDone)).size).toBeGreaterThanOrEqual(5);
        const last = moving.at(-1)!;
        expect(last.bytesPerSecond).toBeGreaterThan(100_000);
        expect(last.bytesPerSecond).toBeLessThan(600_000);
        expect(last.etaSeconds).toBeGreaterThan(0);
    });

    it("a stalled body is dropped and asked for again from where it stopped", async () => {
        // The throttled server sends a chunk every 50 ms: a stall timeout of 20 ms sees each gap as a stall.
        process.env.VIDLLAMA_HUB_TUNING = JSON.stringify({ stallTimeoutMs: 20 });
        hub.throttle(2_000, { path: "tiny-vlm-Q8_0.gguf" });
        const events: PullProgress[] = [];
        const p = pullModel("hf:ggml-org/tiny-vlm-GGUF", { ...opts(), onProgress: (e) => events.push(e) });
        await new Promise((r) => setTimeout(r, 1500));
        hub.throttle(undefined);
        const pulled = await p;
        expect(await sameBytes(pulled.textModel, Q8)).toBe(true);
        expect(events.some((e) => e.phase === "retry" && e.reason.startsWith("no data for too long"))).toBe(true);
    });
});

describe("authentication", () => {
    it("401 for a private repository says how to authenticate; the token opens it and is not sent to the CDN", async () => {
        const err = (await rejection(pullModel("hf:someone/private-GGUF", opts()))) as HubError;
        expect(err.code).toBe("ERR_HUB_UNAUTHORIZED");
        expect(err.status).toBe(401);
        expect(err.message).toContain("HF_TOKEN");
        const wrong = (await rejection(pullModel("hf:someone/private-GGUF", { ...opts(), token: "hf_wrong" }))) as HubError;
        expect(wrong.message).toContain("the token in HF_TOKEN cannot read it");
        hub.reset();
        const pulled = await pullModel("hf:someone/private-GGUF", { ...opts(), token: "hf_secret" });
        expect(await sameBytes(pulled.textModel, Q4)).toBe(true);
        expect(hub.requests.filter((r) => r.kind !== "cdn").every((r) => r.authorization === "Bearer hf_secret")).toBe(true);
        expect(hub.requests.filter((r) => r.kind === "cdn").every((r) => r.authorization === undefined)).toBe(true);
    });

    it("403 for a gated repository says to accept its conditions; HF_TOKEN is read from the environment", async () => {
        const err = (await rejection(pullModel("hf:someone/gated-GGUF", opts()))) as HubError;
        expect(err.code).toBe("ERR_HUB_GATED");
        expect(err.status).toBe(403);
        expect(err.message).toContain(`accept its conditions at ${hub.url}/someone/gated-GGUF`);
        expect(await listCachedModels({ cacheDir })).toEqual([]);
        process.env.HF_TOKEN = "hf_secret";
        try {
            const pulled = await pullModel("hf:someone/gated-GGUF", opts());
            expect(await sameBytes(pulled.textModel, Q4)).toBe(true);
        } finally {
            delete process.env.HF_TOKEN;
        }
    });

    it("a file list naming paths outside the repository is refused before anything is written", async () => {
        // The fake hub refuses such names itself, so a three-line hostile server answers the listing.
        const evil = createServer((_req, res) => {
            res.writeHead(200, { "Content-Type": "application/json" });
            res.end(JSON.stringify({ sha: "a".repeat(40), siblings: [{ rfilename: "../../../escape-Q8_0.gguf", size: 4, blobId: "b".repeat(40) }] }));
        });
        await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
        const port = (evil.address() as { port: number }).port;
        const err = (await rejection(pullModel("hf:evil/escape-GGUF", { cacheDir, endpoint: `http://127.0.0.1:${port}` }))) as HubError;
        await new Promise((r) => evil.close(r));
        expect(err.code).toBe("ERR_HUB_HTTP");
        expect(err.message).toContain("not a safe relative path");
        expect(existsSync(join(cacheDir, "..", "escape-Q8_0.gguf"))).toBe(false);
        for (const ok of ["a.gguf", "Q4_K_M/a-Q4_K_M.gguf", "x y.json"]) expect(isSafeRepoPath(ok)).toBe(true);
        for (const bad of ["", "../a", "a/../b", "/abs", "a//b", "./a", "a\\b", "C:x", "a\nb"]) expect(isSafeRepoPath(bad)).toBe(false);
    });

    it("404 for a missing revision; malformed references and options are InvalidOptionErrors", async () => {
        const err = (await rejection(pullModel("hf:ggml-org/tiny-vlm-GGUF@v9", opts()))) as HubError;
        expect(err.code).toBe("ERR_HUB_NOT_FOUND");
        expect(err.message).toContain("no revision v9");
        for (const bad of ["hf:nope", "hf:/x", "hf:a/b:c:d", "hf:a/b@", "huggingface.co/a/b"]) {
            expect(await rejection(pullModel(bad, opts()))).toBeInstanceOf(InvalidOptionError);
        }
        expect(await rejection(pullModel("hf:a/b", { ...opts(), endpoint: "ftp://x" }))).toBeInstanceOf(InvalidOptionError);
        expect(await rejection(pullModel("hf:a/b", { ...opts(), connections: 0 }))).toBeInstanceOf(InvalidOptionError);
        expect(await rejection(pullModel("hf:a/b", { ...opts(), bogus: 1 } as never))).toBeInstanceOf(InvalidOptionError);
    });
});

describe("offline and the cache", () => {
    it("offline: the cached commit of the revision, no request at all; a clear error when it is not cached", async () => {
        const online = await pullModel("hf:ggml-org/tiny-vlm-GGUF", opts());
        hub.reset();
        const offline = await pullModel("hf:ggml-org/tiny-vlm-GGUF", { ...opts(), offline: true });
        expect(offline.textModel).toBe(online.textModel);
        expect(offline.fromCache).toBe(true);
        const byCommit = await pullModel(`hf:ggml-org/tiny-vlm-GGUF@${online.commit}`, { ...opts(), offline: true });
        expect(byCommit.textModel).toBe(online.textModel);
        process.env.HF_HUB_OFFLINE = "1";
        try {
            const err = (await rejection(pullModel("hf:someone/text-only-GGUF", opts()))) as HubError;
            expect(err.code).toBe("ERR_HUB_OFFLINE");
            expect(err.message).toContain("HF_HUB_OFFLINE");
            expect(err.message).toContain("vidllama pull hf:someone/text-only-GGUF@main");
        } finally {
            delete process.env.HF_HUB_OFFLINE;
        }
        expect(hub.requests).toEqual([]);
    });

    it("when the hub cannot be reached, the cached copy serves with a warning", async () => {
        await pullModel("hf:ggml-org/tiny-vlm-GGUF", opts());
        const unreachable = await pullModel("hf:ggml-org/tiny-vlm-GGUF", { ...opts(), endpoint: "http://127.0.0.1:9" });
        expect(unreachable.fromCache).toBe(true);
        expect(unreachable.warnings[0]).toContain("could not be reached");
        const err = (await rejection(pullModel("hf:someone/text-only-GGUF", { ...opts(), endpoint: "http://127.0.0.1:9" }))) as HubError;
        expect(err.code).toBe("ERR_HUB_NETWORK");
    });

    it("a new commit on the branch is pulled again; the old entry stays until removed; list and rm", async () => {
        hub.addRepo("someone/moving-GGUF", { "m-Q8_0.gguf": Q4, "mmproj-m-f16.gguf": MMPROJ });
        const v1 = await pullModel("hf:someone/moving-GGUF", opts());
        hub.addRepo("someone/moving-GGUF", { "m-Q8_0.gguf": Q8, "mmproj-m-f16.gguf": MMPROJ });
        const v2 = await pullModel("hf:someone/moving-GGUF", opts());
        expect(v2.commit).not.toBe(v1.commit);
        expect(v2.fromCache).toBe(false);
        expect(await sameBytes(v2.textModel, Q8)).toBe(true);
        const listed = await listCachedModels({ cacheDir });
        expect(listed.map((m) => m.commit).sort()).toEqual([v1.commit, v2.commit].sort());
        expect(listed[0]).toMatchObject({ repo: "someone/moving-GGUF", kind: "gguf", bytes: expect.any(Number) });
        // the old commit by prefix
        const removed = await removeCachedModels(`hf:someone/moving-GGUF@${v1.commit.slice(0, 12)}`, { cacheDir });
        expect(removed.removed.map((m) => m.commit)).toEqual([v1.commit]);
        expect(removed.bytesFreed).toBe(Q4.length + MMPROJ.length);
        expect(existsSync(v1.textModel)).toBe(false);
        expect(existsSync(v2.textModel)).toBe(true);
        const all = await removeCachedModels("hf:someone/moving-GGUF", { cacheDir });
        expect(all.removed).toHaveLength(1);
        expect(await listCachedModels({ cacheDir })).toEqual([]);
        expect(readdirSync(join(cacheDir, "models"))).toEqual([]);
    });

    it("two pulls at once share one download (the second waits for the lock); a lock of a dead process is broken", async () => {
        hub.throttle(2_000_000, { path: "tiny-vlm-Q8_0.gguf" });
        const waits: PullProgress[] = [];
        const [a, b] = await Promise.all([
            pullModel("hf:ggml-org/tiny-vlm-GGUF", opts()),
            new Promise((r) => setTimeout(r, 100)).then(() => pullModel("hf:ggml-org/tiny-vlm-GGUF", { ...opts(), onProgress: (e) => e.phase === "wait" && waits.push(e) })),
        ]);
        expect(a.textModel).toBe(b.textModel);
        expect([a.fromCache, b.fromCache]).toEqual([false, true]);
        expect(waits).toEqual([expect.objectContaining({ pid: process.pid })]);
        expect(hub.bytesServed("tiny-vlm-Q8_0.gguf")).toBe(Q8.length);

        await mkdir(join(cacheDir, "locks"), { recursive: true });
        await writeFile(join(cacheDir, "locks", "someone--text-only-GGUF.lock"), JSON.stringify({ pid: 2 ** 22 + 12345, host: (await import("node:os")).hostname(), since: "" }));
        const t = Date.now();
        await pullModel("hf:someone/text-only-GGUF", opts());
        expect(Date.now() - t).toBeLessThan(5000);
        expect(existsSync(join(cacheDir, "locks", "someone--text-only-GGUF.lock"))).toBe(false);
    });

    it("disk space is checked against the need", async () => {
        const err = (await rejection(checkDiskSpace("hf:a/b@main", cacheDir, 2 ** 50, "downloading hf:a/b@main"))) as HubError;
        expect(err.code).toBe("ERR_DISK_SPACE");
        expect(err.message).toMatch(/needs 1024\.0 TiB/);
        await expect(checkDiskSpace("hf:a/b@main", join(cacheDir, "not", "yet"), 1024, "x")).resolves.toBeUndefined();
    });
});
