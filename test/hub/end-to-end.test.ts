// A generated tiny VideoLLaMA3 checkpoint (exact HF layout, real Qwen2 tokenizer) served by the fake hub: pulled and
// converted through loadModel and through the CLI (`pull` with a cut connection, `ask -m hf:` offline from the cache,
// two processes at once, `list`, `rm`), and the pulled model answers a video question exactly as the same checkpoint
// converted by hand does.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertCheckpoint } from "../../lib/convert/convert.js";
import { listCachedModels, loadModel, type LoadProgress } from "../../lib/index.js";
import { writeHfCheckpoint } from "../fixtures/hf-checkpoint.js";
import { FakeHub } from "../fixtures/fake-hub.js";
import { testVideo } from "../video/fixtures.js";

const REPO = "DAMO-NLP-SG/VideoLLaMA3-tiny";
const cli = join(process.cwd(), "dist", "cli", "index.js");
const fixtures = join(process.cwd(), "test", ".fixtures", "hub");
let hub: FakeHub;
let hfDir: string;
let files: Record<string, Uint8Array>;
/** The same checkpoint converted by convertCheckpoint directly (q8_0 + f16, the pull's defaults). */
let direct: { textModel: string; mmproj: string };
let video: string;
const question = "What happens in the video?";
const greedy = { temperature: 0, maxTokens: 6 } as const;

function sha256(bytes: Uint8Array): string {
    return createHash("sha256").update(bytes).digest("hex");
}

interface CliRun {
    code: number | null;
    stdout: string;
    stderr: string;
}

/** Runs the CLI without blocking this process's event loop (the fake hub lives in it). */
function runCli(args: string[], env: Record<string, string>): Promise<CliRun> {
    return new Promise((resolve, reject) => {
        const clean = { ...process.env };
        delete clean.HF_TOKEN;
        delete clean.HF_HUB_OFFLINE;
        const child = spawn(process.execPath, [cli, ...args], { env: { ...clean, ...env }, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
        child.on("error", reject);
        child.on("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
        });
    });
}

beforeAll(async () => {
    hfDir = join(fixtures, "vl3-hf");
    await writeHfCheckpoint({ dir: hfDir, weightScale: 6, seed: 11 });
    files = {};
    for (const name of await readdir(hfDir)) files[name] = new Uint8Array(await readFile(join(hfDir, name)));
    const out = join(fixtures, "vl3-direct");
    const result = await convertCheckpoint({ input: hfDir, outDir: out, type: "q8_0", mmprojType: "f16", name: "VideoLLaMA3-tiny", force: true });
    direct = { textModel: result.textModel, mmproj: result.mmproj };
    hub = await FakeHub.start({ separateCdn: true });
    hub.addRepo(REPO, { ...files, "README.md": "# tiny", "modeling_videollama3.py": "# remote code, not needed" });
    video = testVideo("movingThenStatic");
}, 600_000);

afterAll(async () => {
    await hub?.close();
});

describe("pull → convert → answer through the library", () => {
    it("loadModel({ model: 'hf:…' }) downloads, converts once to the same files as a hand conversion, and answers a video question the same", async () => {
        const cacheDir = await mkdtemp(join(tmpdir(), "vidllama-e2e-"));
        try {
            const phases: LoadProgress[] = [];
            await using pulled = await loadModel({ model: `hf:${REPO}`, hub: { endpoint: hub.url, cacheDir }, onProgress: (p) => phases.push(p) });
            const [entry] = await listCachedModels({ cacheDir });
            expect(entry).toMatchObject({ repo: REPO, kind: "converted", type: "q8_0", mmprojType: "f16" });
            // byte-identical to the direct conversion (the converter is deterministic)
            expect(sha256(await readFile(entry!.textModel))).toBe(sha256(await readFile(direct.textModel)));
            expect(sha256(await readFile(entry!.mmproj!))).toBe(sha256(await readFile(direct.mmproj)));
            // only what the converter reads was downloaded, and the checkpoint was deleted after conversion
            expect(hub.bytesServed("modeling_videollama3.py")).toBe(0);
            expect(hub.bytesServed("README.md")).toBe(0);
            expect(existsSync(join(cacheDir, "downloads")) ? await readdir(join(cacheDir, "downloads")) : []).toEqual([]);
            const pullPhases = phases.filter((p) => p.phase === "pull").map((p) => p.pull!.phase);
            expect(pullPhases).toContain("start");
            expect(pullPhases).toContain("convert");
            expect(phases.findIndex((p) => p.phase === "model")).toBeGreaterThan(phases.findIndex((p) => p.pull?.phase === "done"));

            await using local = await loadModel({ model: direct.textModel, mmproj: direct.mmproj });
            const a = await (await pulled.createSession()).prompt([{ video }, question], greedy);
            const b = await (await local.createSession()).prompt([{ video }, question], greedy);
            expect(a.media[0]?.kind).toBe("video");
            expect(a.tokens.length).toBeGreaterThan(0);
            expect(a.tokens).toEqual(b.tokens);
            expect(a.promptTokens).toEqual(b.promptTokens);
        } finally {
            await rm(cacheDir, { recursive: true, force: true });
        }
    });
});

describe("the CLI", () => {
    let cacheDir: string;
    let env: Record<string, string>;

    beforeAll(async () => {
        cacheDir = await mkdtemp(join(tmpdir(), "vidllama-cli-"));
        env = { HF_ENDPOINT: hub.url, VIDLLAMA_CACHE: cacheDir };
    });

    afterAll(async () => {
        await rm(cacheDir, { recursive: true, force: true });
    });

    it("pull: announces the size, resumes a cut connection, converts, prints the paths", async () => {
        hub.reset();
        hub.cutAfter("model.safetensors", 1_000_000);
        const run = await runCli(["pull", `hf:${REPO}`], env);
        expect(run.stderr).toMatch(new RegExp(`downloading hf:${REPO}@main \\(commit [0-9a-f]{12}\\): \\d+ files, [\\d.]+ MiB`));
        expect(run.stderr).toMatch(/model\.safetensors: .*other side closed.*; retrying from [\d.]+ KiB/);
        expect(run.stderr).toContain("converting to GGUF");
        expect(run.stderr).toMatch(/ready: hf:DAMO-NLP-SG\/VideoLLaMA3-tiny@main:q8_0/);
        expect(run.code).toBe(0);
        const [textModel, mmproj] = run.stdout.trim().split("\n");
        expect(sha256(await readFile(textModel!))).toBe(sha256(await readFile(direct.textModel)));
        expect(sha256(await readFile(mmproj!))).toBe(sha256(await readFile(direct.mmproj)));
        const size = files["model.safetensors"]!.length;
        const cdn = hub.requests.filter((r) => r.kind === "cdn" && r.path === "model.safetensors");
        expect(cdn.map((r) => r.outcome)).toEqual(["cut", "complete"]);
        const resumedAt = Number(/^bytes=(\d+)-/.exec(cdn[1]!.range!)![1]);
        expect(resumedAt).toBeGreaterThan(800_000);
        expect(hub.bytesServed("model.safetensors")).toBe(size + (1_000_000 - resumedAt));
    }, 300_000);

    it("ask -m hf: --offline answers from the cache without a single request, as the library does", async () => {
        hub.reset();
        const run = await runCli(["ask", "-m", `hf:${REPO}`, "--offline", "--video", video, "--json", "--temperature", "0", "-n", "6", question], env);
        expect(run.stderr).toBe("");
        expect(run.code).toBe(0);
        expect(hub.requests).toEqual([]);
        const answer = JSON.parse(run.stdout) as { tokens: number[] };
        await using local = await loadModel({ model: direct.textModel, mmproj: direct.mmproj });
        const expected = await (await local.createSession()).prompt([{ video }, question], greedy);
        expect(answer.tokens).toEqual(expected.tokens);
        // online, a cached commit costs one listing request
        const again = await runCli(["pull", `hf:${REPO}`], env);
        expect(again.code).toBe(0);
        expect(again.stderr).toMatch(/is in the cache \(commit [0-9a-f]{12}/);
        expect(hub.requests.map((r) => r.kind)).toEqual(["api"]);
    }, 300_000);

    it("two processes pulling at once: one downloads, the other waits and uses its result", async () => {
        const dir = await mkdtemp(join(tmpdir(), "vidllama-two-"));
        try {
            hub.reset();
            hub.throttle(8_000_000, { path: "model.safetensors" });
            const envTwo = { HF_ENDPOINT: hub.url, VIDLLAMA_CACHE: dir };
            const [a, b] = await Promise.all([runCli(["pull", `hf:${REPO}`], envTwo), runCli(["pull", `hf:${REPO}`], envTwo)]);
            hub.throttle(undefined);
            expect([a.code, b.code]).toEqual([0, 0]);
            expect(a.stdout).toBe(b.stdout);
            expect([a.stderr, b.stderr].filter((s) => /another vidllama process \(pid \d+ on .+\) is pulling/.test(s))).toHaveLength(1);
            expect(hub.bytesServed("model.safetensors")).toBe(files["model.safetensors"]!.length);
            expect(await listCachedModels({ cacheDir: dir })).toHaveLength(1);
            expect(await readdir(join(dir, "locks"))).toEqual([]);
        } finally {
            await rm(dir, { recursive: true, force: true });
        }
    }, 300_000);

    it("list and rm", async () => {
        const list = await runCli(["list"], env);
        expect(list.code).toBe(0);
        expect(list.stdout).toMatch(/^MODEL +TYPE +SIZE +KIND +PULLED AS +DATE\n/);
        expect(list.stdout).toMatch(new RegExp(`hf:${REPO}@[0-9a-f]{12} +q8_0 \\+ f16 +[\\d.]+ MiB +converted +main +\\d{4}-\\d\\d-\\d\\d`));
        const json = JSON.parse((await runCli(["list", "--json"], env)).stdout) as Array<{ reference: string }>;
        expect(json).toHaveLength(1);
        const removed = await runCli(["rm", `hf:${REPO}:q4_0`], env);
        expect(removed.code).toBe(1);
        expect(removed.stderr).toContain("nothing in the cache matches");
        const ok = await runCli(["rm", `hf:${REPO}`], env);
        expect(ok.code).toBe(0);
        expect(ok.stdout).toMatch(new RegExp(`removed ${json[0]!.reference.replace(/[.+]/g, "\\$&")} \\([\\d.]+ MiB\\)\\nfreed [\\d.]+ MiB\\n`));
        expect((await runCli(["list"], env)).stdout).toContain("no models in the cache");
        const offline = await runCli(["ask", "-m", `hf:${REPO}`, "--offline", "hi"], env);
        expect(offline.code).toBe(1);
        expect(offline.stderr).toContain("offline mode is on (--offline / the offline option) and the cache");
    }, 300_000);

    it("errors say what to do: a private repository, a bad reference", async () => {
        hub.addRepo("someone/private", files, { private: true, tokens: ["hf_x"] });
        const run = await runCli(["pull", "hf:someone/private"], env);
        expect(run.code).toBe(1);
        expect(run.stderr).toMatch(/^vidllama: hf:someone\/private@main: the repository someone\/private does not exist or is private \(HTTP 401\)\. For a private repository, set HF_TOKEN/);
        const bad = await runCli(["ask", "-m", "hf:just-a-name", "hi"], env);
        expect(bad.code).toBe(1);
        expect(bad.stderr).toContain("hf:<owner>/<repo>[@<revision>][:<type>]");
    }, 300_000);
});
