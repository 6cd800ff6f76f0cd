// Self-test of the fake Hugging Face Hub (test/fixtures/fake-hub.ts) with Node's global fetch: the endpoints, the
// headers and errors the hub client relies on, and every injectable fault.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FakeHub, sha256Hex } from "../fixtures/fake-hub.js";

let hub: FakeHub;
const weights = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) & 0xff);
const config = JSON.stringify({ model_type: "videollama3_qwen2", hidden_size: 64 });
let sha: string;

const REPO = "owner/model";
const api = (repo: string, revision: string, blobs = false) =>
    `${hub.url}/api/models/${repo}/revision/${encodeURIComponent(revision)}${blobs ? "?blobs=true" : ""}`;
const resolve = (repo: string, path: string, revision = "main") =>
    `${hub.url}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;

interface Info {
    id: string;
    sha: string;
    private: boolean;
    gated: false | "auto" | "manual";
    siblings: { rfilename: string; size?: number; blobId?: string; lfs?: { sha256: string; size: number; pointerSize: number } }[];
}

beforeAll(async () => {
    hub = await FakeHub.start();
    sha = hub.addRepo(REPO, { "model.safetensors": weights, "config.json": config, "sub/dir/notes.txt": "hello" });
    hub.addRepo(REPO, { "model.safetensors": weights, "config.json": "{}" }, { branch: "refs/pr/1" });
    hub.addRepo("owner/private", { "config.json": config }, { private: true, tokens: ["hf_good"] });
    hub.addRepo("owner/gated", { "model.safetensors": weights }, { gated: true, tokens: ["hf_good"] });
});

afterEach(() => hub.reset());

afterAll(async () => {
    await hub.close();
});

describe("model info API", () => {
    it("answers id, sha and siblings; sizes, blob ids and lfs only with blobs=true", async () => {
        const plain = (await (await fetch(api(REPO, "main"))).json()) as Info;
        expect(plain.id).toBe(REPO);
        expect(plain.sha).toBe(sha);
        expect(plain.sha).toMatch(/^[0-9a-f]{40}$/);
        expect(plain.private).toBe(false);
        expect(plain.gated).toBe(false);
        expect(plain.siblings).toEqual([
            { rfilename: "config.json" },
            { rfilename: "model.safetensors" },
            { rfilename: "sub/dir/notes.txt" },
        ]);

        const full = (await (await fetch(api(REPO, "main", true))).json()) as Info;
        const model = full.siblings.find((s) => s.rfilename === "model.safetensors");
        const cfg = full.siblings.find((s) => s.rfilename === "config.json");
        expect(model?.size).toBe(weights.length);
        expect(model?.blobId).toMatch(/^[0-9a-f]{40}$/);
        expect(model?.lfs).toEqual({ sha256: sha256Hex(weights), size: weights.length, pointerSize: expect.any(Number) });
        expect(cfg?.size).toBe(Buffer.byteLength(config));
        expect(cfg?.lfs).toBeUndefined();
    });

    it("resolves a commit sha and a branch with '/' (%2F), and keeps old commits", async () => {
        const bySha = (await (await fetch(api(REPO, sha))).json()) as Info;
        expect(bySha.sha).toBe(sha);
        const pr = (await (await fetch(api(REPO, "refs/pr/1"))).json()) as Info;
        expect(pr.sha).not.toBe(sha);
        expect(pr.siblings.map((s) => s.rfilename)).toEqual(["config.json", "model.safetensors"]);
        const r = await fetch(resolve(REPO, "config.json", "refs/pr/1"));
        expect(await r.text()).toBe("{}");
        expect(r.headers.get("x-repo-commit")).toBe(pr.sha);
    });

    it("answers 401 RepoNotFound, 404 RevisionNotFound and 404 EntryNotFound", async () => {
        const noRepo = await fetch(api("nobody/nothing", "main"));
        expect(noRepo.status).toBe(401);
        expect(noRepo.headers.get("x-error-code")).toBe("RepoNotFound");
        expect(await noRepo.json()).toEqual({ error: "Repository not found" });
        const noRev = await fetch(api(REPO, "no-such-branch"));
        expect(noRev.status).toBe(404);
        expect(noRev.headers.get("x-error-code")).toBe("RevisionNotFound");
        const noFile = await fetch(resolve(REPO, "missing.bin"));
        expect(noFile.status).toBe(404);
        expect(noFile.headers.get("x-error-code")).toBe("EntryNotFound");
    });
});

describe("resolve and CDN", () => {
    it("redirects an LFS file to the CDN with the linked headers, and serves it there without auth", async () => {
        const r = await fetch(resolve(REPO, "model.safetensors"), { redirect: "manual" });
        expect(r.status).toBe(302);
        const location = r.headers.get("location") ?? "";
        expect(location.startsWith(`${hub.url}/cdn-lfs/${sha256Hex(weights)}?`)).toBe(true);
        expect(r.headers.get("x-repo-commit")).toBe(sha);
        expect(r.headers.get("x-linked-etag")).toBe(`"${sha256Hex(weights)}"`);
        expect(r.headers.get("x-linked-size")).toBe(String(weights.length));
        expect(r.headers.get("etag")).toMatch(/^"[0-9a-f]{40}"$/);

        const cdn = await fetch(location);
        expect(cdn.status).toBe(200);
        expect(cdn.headers.get("accept-ranges")).toBe("bytes");
        expect(cdn.headers.get("content-length")).toBe(String(weights.length));
        expect(new Uint8Array(await cdn.arrayBuffer())).toEqual(weights);
        expect(hub.bytesServed("model.safetensors")).toBe(weights.length);
        expect(hub.requests.map((q) => q.kind)).toEqual(["resolve", "cdn"]);
    });

    it("serves a small file directly with ETag and X-Repo-Commit; HEAD works", async () => {
        const r = await fetch(resolve(REPO, "sub/dir/notes.txt"));
        expect(r.status).toBe(200);
        expect(r.headers.get("x-repo-commit")).toBe(sha);
        expect(r.headers.get("etag")).toMatch(/^"[0-9a-f]{40}"$/);
        expect(r.headers.get("content-length")).toBe("5");
        expect(await r.text()).toBe("hello");
        const head = await fetch(resolve(REPO, "model.safetensors"), { method: "HEAD" });
        expect(head.status).toBe(200);
        expect(head.headers.get("content-length")).toBe(String(weights.length));
    });

    it("honours Range on the CDN and on direct files: 206 with Content-Range, 416 past the end", async () => {
        const r = await fetch(resolve(REPO, "model.safetensors"), { headers: { Range: "bytes=1000-1999" } });
        expect(r.status).toBe(206);
        expect(r.headers.get("content-range")).toBe(`bytes 1000-1999/${weights.length}`);
        expect(new Uint8Array(await r.arrayBuffer())).toEqual(weights.subarray(1000, 2000));
        const open = await fetch(resolve(REPO, "model.safetensors"), { headers: { Range: "bytes=199990-" } });
        expect(open.status).toBe(206);
        expect(open.headers.get("content-range")).toBe(`bytes 199990-199999/${weights.length}`);
        expect((await open.arrayBuffer()).byteLength).toBe(10);
        const bad = await fetch(resolve(REPO, "model.safetensors"), { headers: { Range: `bytes=${weights.length}-` } });
        expect(bad.status).toBe(416);
        expect(bad.headers.get("content-range")).toBe(`bytes */${weights.length}`);
        await bad.arrayBuffer();
        const direct = await fetch(resolve(REPO, "config.json"), { headers: { Range: "bytes=2-5" } });
        expect(direct.status).toBe(206);
        expect(direct.headers.get("content-range")).toBe(`bytes 2-5/${Buffer.byteLength(config)}`);
        expect(await direct.text()).toBe(config.slice(2, 6));
    });
});

describe("auth", () => {
    it("hides a private repo without a valid token", async () => {
        for (const headers of [{}, { Authorization: "Bearer hf_wrong" }] as Record<string, string>[]) {
            const r = await fetch(api("owner/private", "main"), { headers });
            expect(r.status).toBe(401);
            expect(r.headers.get("x-error-code")).toBe("RepoNotFound");
            await r.arrayBuffer();
        }
        const auth = { Authorization: "Bearer hf_good" };
        const info = await fetch(api("owner/private", "main"), { headers: auth });
        expect(info.status).toBe(200);
        expect(((await info.json()) as Info).private).toBe(true);
        const file = await fetch(resolve("owner/private", "config.json"), { headers: auth });
        expect(await file.text()).toBe(config);
        expect(hub.requests.at(-1)?.authorization).toBe("Bearer hf_good");
    });

    it("shows a gated repo's info but answers 403 GatedRepo on resolve without access", async () => {
        const info = await fetch(api("owner/gated", "main"));
        expect(info.status).toBe(200);
        expect(((await info.json()) as Info).gated).toBe("auto");
        const r = await fetch(resolve("owner/gated", "model.safetensors"));
        expect(r.status).toBe(403);
        expect(r.headers.get("x-error-code")).toBe("GatedRepo");
        expect(await r.json()).toEqual({
            error: "Access to model owner/gated is restricted. You must have access to it and be authenticated to access it. Please log in.",
        });
        const ok = await fetch(resolve("owner/gated", "model.safetensors"), { headers: { Authorization: "Bearer hf_good" } });
        expect(ok.status).toBe(200);
        expect((await ok.arrayBuffer()).byteLength).toBe(weights.length);
    });

    it("with a separate CDN origin, fetch drops Authorization on the redirect and the download still works", async () => {
        const other = await FakeHub.start({ separateCdn: true });
        try {
            other.addRepo("owner/gated", { "model.safetensors": weights }, { gated: true, tokens: ["hf_good"] });
            expect(other.cdnUrl).not.toBe(other.url);
            const r = await fetch(`${other.url}/owner/gated/resolve/main/model.safetensors`, {
                headers: { Authorization: "Bearer hf_good" },
            });
            expect(new Uint8Array(await r.arrayBuffer())).toEqual(weights);
            const [res, cdn] = other.requests;
            expect(res?.authorization).toBe("Bearer hf_good");
            expect(cdn?.kind).toBe("cdn");
            expect(cdn?.authorization).toBeUndefined();
        } finally {
            await other.close();
        }
    });
});

describe("faults", () => {
    it("cutAfter: the body is cut after exactly that many bytes, once", async () => {
        hub.cutAfter("model.safetensors", 50_000);
        const r = await fetch(resolve(REPO, "model.safetensors"));
        expect(r.status).toBe(200);
        await expect(r.arrayBuffer()).rejects.toThrow();
        await hub.idle();
        expect(hub.bytesServed("model.safetensors")).toBe(50_000);
        expect(hub.requests.at(-1)?.outcome).toBe("cut");

        // Counted from the start of the range served; the fault is used up after `times`.
        hub.reset();
        hub.cutAfter("config.json", 3);
        const part = await fetch(resolve(REPO, "config.json"), { headers: { Range: "bytes=5-" } });
        await expect(part.text()).rejects.toThrow();
        await hub.idle();
        expect(hub.bytesServed("config.json")).toBe(3);
        const again = await fetch(resolve(REPO, "config.json"));
        expect(await again.text()).toBe(config);
    });

    it("corrupt: same length, different SHA-256", async () => {
        hub.corrupt("model.safetensors");
        const body = new Uint8Array(await (await fetch(resolve(REPO, "model.safetensors"))).arrayBuffer());
        expect(body.length).toBe(weights.length);
        expect(sha256Hex(body)).not.toBe(sha256Hex(weights));
        hub.reset();
        const clean = new Uint8Array(await (await fetch(resolve(REPO, "model.safetensors"))).arrayBuffer());
        expect(sha256Hex(clean)).toBe(sha256Hex(weights));
    });

    it("failNext: 429 with Retry-After on the API, then normal again; 500 on the CDN only", async () => {
        hub.failNext({ api: true }, 429, { retryAfter: 2 });
        const r = await fetch(api(REPO, "main"));
        expect(r.status).toBe(429);
        expect(r.headers.get("retry-after")).toBe("2");
        await r.arrayBuffer();
        expect((await fetch(api(REPO, "main"))).status).toBe(200);

        hub.failNext({ path: "model.safetensors", kind: "cdn" }, 500, { errorCode: "Boom" });
        const cdn = await fetch(resolve(REPO, "model.safetensors"));
        expect(cdn.status).toBe(500);
        expect(cdn.headers.get("x-error-code")).toBe("Boom");
        await cdn.arrayBuffer();
        expect(hub.requests.slice(-2).map((q) => `${q.kind} ${q.status}`)).toEqual(["resolve 302", "cdn 500"]);
    });

    it("throttle: 64 KiB at 32 KiB/s takes over 1.5 s; an abort mid-file is logged", async () => {
        const file = new Uint8Array(64 * 1024).fill(7);
        hub.addRepo("owner/slow", { "big.bin": file });
        hub.throttle(32 * 1024);
        const t0 = performance.now();
        const body = await (await fetch(resolve("owner/slow", "big.bin"))).arrayBuffer();
        expect(body.byteLength).toBe(file.length);
        expect(performance.now() - t0).toBeGreaterThanOrEqual(1500);

        const ac = new AbortController();
        const r = await fetch(resolve("owner/slow", "big.bin"), { signal: ac.signal });
        const reader = r.body!.getReader();
        let got = 0;
        while (got < 8 * 1024) got += (await reader.read()).value?.length ?? 0;
        ac.abort();
        await hub.idle();
        const last = hub.requests.at(-1);
        expect(last?.outcome).toBe("aborted");
        expect(last?.bytesSent).toBeGreaterThanOrEqual(got);
        expect(last?.bytesSent).toBeLessThan(file.length);
    }, 10_000);
});
