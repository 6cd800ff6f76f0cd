// The CLI with Video-LLaVA files, as a user runs it (dist/, compiled by the global setup): the same commands and
// flags as for VideoLLaMA3, the model chosen by its files.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Image, loadModel, loadVision, Video } from "../../lib/index.js";
import { convertedTinyVideoLlava } from "../fixtures/hf-video-llava.js";
import { testVideo } from "../video/fixtures.js";
import { FIXTURES } from "../vision/fixture.js";

const cli = join(process.cwd(), "dist", "cli", "index.js");
let files: { model: string; mmproj: string };
let png: string;

function run(args: string[], input = "") {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", input, timeout: 300_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface AskJson {
    text: string;
    tokens: number[];
    promptTokens: number[];
    media: Array<{ kind: string; tokens: number; keptTokens?: number; frames?: Array<{ timestamp: number; tokens: number; keptTokens: number }> }>;
}

beforeAll(async () => {
    files = await convertedTinyVideoLlava();
    png = join(FIXTURES, "cli-video-llava.png");
    if (!existsSync(png)) spawnSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x180:d=1", "-frames:v", "1", png]);
}, 600_000);

describe("vidllama with Video-LLaVA files", () => {
    it("ask --image / --video --json: 256 and 8 × 257 placeholders, deterministic at temperature 0", () => {
        const m = ["-m", files.model, "--mmproj", files.mmproj, "--temperature", "0", "-n", "4", "--json"];
        const image = run(["ask", ...m, "--image", png, "What is this?"]);
        expect(image.stderr).toBe("");
        const i = JSON.parse(image.stdout) as AskJson;
        expect(i.media).toMatchObject([{ kind: "image", tokens: 256 }]);
        expect(i.promptTokens.filter((t) => t === 32000)).toHaveLength(256);
        const video = testVideo("movingThenStatic");
        const v1 = JSON.parse(run(["ask", ...m, "--video", video, "Why is this video funny?"]).stdout) as AskJson;
        const v2 = JSON.parse(run(["ask", ...m, "--video", video, "Why is this video funny?"]).stdout) as AskJson;
        expect(v1.media[0]!.frames!.map((f) => f.timestamp)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
        expect(v1.media[0]).toMatchObject({ kind: "video", tokens: 2056, keptTokens: 2056 });
        expect(v1.promptTokens.filter((t) => t === 32001)).toHaveLength(2056);
        expect(v2.tokens).toEqual(v1.tokens);
        expect(v1.tokens.every((t) => t < 32000)).toBe(true);
        // --frames and --prune
        const few = JSON.parse(run(["ask", ...m, "--video", video, "--frames", "2", "--prune", "Q"]).stdout) as AskJson;
        expect(few.media[0]!.frames!.map((f) => f.timestamp)).toEqual([0, 4]);
        expect(few.media[0]!.keptTokens).toBeLessThanOrEqual(514);
        const conflict = run(["ask", ...m, "--video", video, "--frames", "2", "--fps", "1", "Q"]);
        expect(conflict.status).toBe(1);
        expect(conflict.stderr).toMatch(/--frames/);
    });

    it("embed writes the image's 256 rows and the video's 2,056 rows, equal to the library's", async () => {
        const out = join(FIXTURES, "emb-video-llava.f32");
        rmSync(out, { force: true });
        const video = testVideo("sceneCut");
        const r = run(["embed", "--mmproj", files.mmproj, "--image", png, "--video", video, "--out", out]);
        expect(r.stderr).toBe("");
        const summary = JSON.parse(r.stdout) as { rows: number; width: number };
        expect(summary.rows).toBe(256 + 2056);
        expect(statSync(out).size).toBe(summary.rows * summary.width * 4);
        const bytes = readFileSync(out);
        const rows = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
        await using vision = await loadVision({ mmproj: files.mmproj });
        const image = await vision.encode(Image.fromFile(png));
        expect(Array.from(rows.subarray(0, image.embeddings.length))).toEqual(Array.from(image.embeddings));
        await using v = await Video.open(video, { frames: 8 });
        const encoded = await vision.encodeVideo(v);
        expect(Array.from(rows.subarray(image.embeddings.length))).toEqual(Array.from(encoded.embeddings));
        rmSync(out, { force: true });
    });

    it("chat with the text model alone: the template's USER/ASSISTANT turns, the library's greedy answer, /reset", async () => {
        const r = run(["chat", "-m", files.model, "--temperature", "0", "-n", "6"], "Hello there\n/reset\nHello there\n/exit\n");
        expect(r.status).toBe(0);
        await using model = await loadModel({ model: files.model });
        await using session = await model.createSession();
        const answer = await session.prompt("Hello there", { temperature: 0, maxTokens: 6 });
        // `<s>USER: Hello there ASSISTANT:` with the Hugging Face test's ids for `<s>USER:` and ` ASSISTANT:` (▁Hello = 15043)
        expect(answer.promptTokens.slice(0, 5)).toEqual([1, 3148, 1001, 29901, 15043]);
        expect(answer.promptTokens.slice(-5)).toEqual([319, 1799, 9047, 13566, 29901]);
        expect(answer.tokens.every((t) => t < 32000)).toBe(true);
        const text = answer.text.trim();
        expect(text.length).toBeGreaterThan(0);
        // the same answer twice (before and after /reset)
        expect(r.stdout.split(text).length - 1).toBe(2);
    });

    it("stream --json: one-frame video turns of 257 tokens, answers, and a clear refusal of --timestamps", () => {
        const m = ["-m", files.model, "--mmproj", files.mmproj, "--temperature", "0", "-n", "3", "--json"];
        const r = run(["stream", testVideo("movingThenStatic"), ...m, "--ask", "What happened?"]);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        const events = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
        const frames = events.filter((e) => e.event === "frame");
        expect(frames.map((f) => f.timestamp)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
        expect(frames.every((f) => f.tokens === 257 && f.keptTokens === 257)).toBe(true);
        expect(events.filter((e) => e.event === "answer")).toHaveLength(1);
        const ts = run(["stream", testVideo("movingThenStatic"), ...m, "--timestamps"]);
        expect(ts.status).toBe(1);
        expect(ts.stderr).toMatch(/timestamps/);
    });
});
