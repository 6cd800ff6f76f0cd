// `vidllama ask --image/--video` and `vidllama embed` as a user runs them (dist/, compiled by the global setup).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Image, loadVision, Video } from "../../lib/index.js";
import { testVideo } from "../video/fixtures.js";
import { FIXTURES, tinyVl3, type TinyVl3 } from "../vision/fixture.js";

const cli = join(process.cwd(), "dist", "cli", "index.js");
let fixture: TinyVl3;
let png: string;

function run(args: string[]) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 300_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
    fixture = await tinyVl3();
    png = join(FIXTURES, "cli-test.png");
    if (!existsSync(png)) spawnSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=90x60:d=1", "-frames:v", "1", png]);
}, 600_000);

describe("vidllama ask with media", () => {
    it("--image --json adds media and counts the image's visual tokens in promptTokens", () => {
        const r = run(["ask", "-m", fixture.textModel, "--mmproj", fixture.mmproj, "--image", png, "--temperature", "0", "-n", "4", "--json", "What is this?"]);
        expect(r.stderr).toBe("");
        const out = JSON.parse(r.stdout) as { promptTokens: number[]; media: Array<{ kind: string; tokens: number }>; tokens: number[] };
        expect(out.media).toHaveLength(1);
        expect(out.media[0]!.kind).toBe("image");
        expect(out.promptTokens.filter((t) => t === 151665)).toHaveLength(out.media[0]!.tokens);
    });

    it("--video --json reports every frame with tokens before and after pruning; --no-prune keeps them all", () => {
        const video = testVideo("movingThenStatic");
        const pruned = JSON.parse(run(["ask", "-m", fixture.textModel, "--mmproj", fixture.mmproj, "--video", video, "--fps", "1", "--temperature", "0", "-n", "2", "--json", "What moves?"]).stdout) as {
            media: Array<{ kind: string; frames: Array<{ timestamp: number; tokens: number; keptTokens: number }>; tokens: number; keptTokens: number }>;
            promptTokens: number[];
        };
        const m = pruned.media[0]!;
        expect(m.kind).toBe("video");
        expect(m.frames.map((f) => f.timestamp)).toHaveLength(8);
        expect(m.keptTokens).toBe(m.frames.reduce((a, f) => a + f.keptTokens, 0));
        expect(m.keptTokens).toBeLessThan(m.tokens);
        expect(pruned.promptTokens.filter((t) => t === 151665)).toHaveLength(m.keptTokens);
        const all = JSON.parse(run(["ask", "-m", fixture.textModel, "--mmproj", fixture.mmproj, "--video", video, "--fps", "1", "--no-prune", "--temperature", "0", "-n", "2", "--json", "What moves?"]).stdout) as typeof pruned;
        expect(all.media[0]!.keptTokens).toBe(all.media[0]!.tokens);
        const ranged = JSON.parse(run(["ask", "-m", fixture.textModel, "--mmproj", fixture.mmproj, "--video", video, "--start", "2", "--end", "5", "--max-frames", "2", "-n", "1", "--json", "Q"]).stdout) as typeof pruned;
        expect(ranged.media[0]!.frames).toHaveLength(2);
    });

    it("--encode-changed-only keeps the same tokens, computes only the kept blocks and says so in media; refuses --no-prune", () => {
        const video = testVideo("movingThenStatic");
        type Out = { media: Array<{ keptTokens: number; frames: Array<{ keptTokens: number }>; encoder: { mode: string; patchesComputed: number; patches: number } }> };
        const ask = (...flags: string[]) => run(["ask", "-m", fixture.textModel, "--mmproj", fixture.mmproj, "--video", video, "--fps", "1", ...flags, "--temperature", "0", "-n", "2", "--json", "What moves?"]);
        const exact = JSON.parse(ask().stdout) as Out;
        const changed = JSON.parse(ask("--encode-changed-only").stdout) as Out;
        expect(exact.media[0]!.encoder.mode).toBe("exact");
        expect(exact.media[0]!.encoder.patchesComputed).toBe(exact.media[0]!.encoder.patches);
        const e = changed.media[0]!;
        expect(e.encoder.mode).toBe("changed-only");
        expect(e.frames.map((f) => f.keptTokens)).toEqual(exact.media[0]!.frames.map((f) => f.keptTokens));
        // First frame whole, then 4 patches (one 2×2 block) per kept token.
        const perFrame = e.encoder.patches / e.frames.length;
        expect(e.encoder.patchesComputed).toBe(perFrame + 4 * (e.keptTokens - e.frames[0]!.keptTokens));
        expect(e.encoder.patchesComputed).toBeLessThan(e.encoder.patches);
        const refused = ask("--encode-changed-only", "--no-prune");
        expect(refused.status).toBe(2);
        expect(refused.stderr).toContain("--encode-changed-only and --no-prune cannot be used together");
    });

    it("explains a missing ffmpeg and a missing projector", () => {
        const noFfmpeg = run(["ask", "-m", fixture.textModel, "--mmproj", fixture.mmproj, "--video", testVideo("single"), "--ffmpeg", "/nonexistent/ffmpeg", "-n", "1", "--json", "Q"]);
        // a bad --ffmpeg falls back to the next place (PATH here) and says so in the video's warnings
        expect(noFfmpeg.status).toBe(0);
        const noProjector = run(["ask", "-m", fixture.textModel, "--image", png, "-n", "1", "Q"]);
        expect(noProjector.status).toBe(1);
        expect(noProjector.stderr).toMatch(/without a vision projector; pass mmproj/);
        expect(noProjector.stderr).toMatch(/received an instance of Image/);
    });
});

describe("vidllama embed", () => {
    it("writes float32 rows equal to the library's output and a JSON summary", async () => {
        const out = join(FIXTURES, "emb-test.f32");
        rmSync(out, { force: true });
        const video = testVideo("sceneCut");
        const r = run(["embed", "--mmproj", fixture.mmproj, "--image", png, "--video", video, "--out", out]);
        expect(r.stderr).toBe("");
        const summary = JSON.parse(r.stdout) as { rows: number; width: number; images: Array<{ tokens: number }>; videos: Array<{ keptTokens: number; frames: unknown[] }> };
        expect(summary.rows).toBe(summary.images[0]!.tokens + summary.videos[0]!.keptTokens);
        expect(statSync(out).size).toBe(summary.rows * summary.width * 4);
        const bytes = readFileSync(out);
        const rows = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
        await using vision = await loadVision({ mmproj: fixture.mmproj });
        const image = await vision.encode(Image.fromFile(png));
        expect(Array.from(rows.subarray(0, image.embeddings.length))).toEqual(Array.from(image.embeddings));
        await using v = await Video.open(video, { fps: vision.info.videoFps, maxFrames: vision.info.videoMaxFrames });
        const encoded = await vision.encodeVideo(v);
        expect(Array.from(rows.subarray(image.embeddings.length))).toEqual(Array.from(encoded.embeddings));
        // never overwrites without --force
        const again = run(["embed", "--mmproj", fixture.mmproj, "--image", png, "--out", out]);
        expect(again.status).toBe(1);
        expect(again.stderr).toMatch(/--force/);
        const noPrune = JSON.parse(run(["embed", "--mmproj", fixture.mmproj, "--video", video, "--no-prune", "--out", out, "--force"]).stdout) as typeof summary;
        expect(noPrune.rows).toBe((noPrune.videos[0] as unknown as { tokens: number }).tokens);
    });

    it("a failed run leaves neither the output nor a temporary file, and never touches other files", () => {
        const dir = join(FIXTURES, "embed-failed");
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir);
        const out = join(dir, "emb.f32");
        // a file of the user's with the name a naive temporary file would take
        writeFileSync(`${out}.partial`, "mine");
        const left = () => readdirSync(dir).sort();
        // fails while opening the video, before any output
        const badRange = run(["embed", "--mmproj", fixture.mmproj, "--video", testVideo("sceneCut"), "--start", "5", "--end", "2", "--out", out]);
        expect(badRange.status).toBe(1);
        expect(badRange.stderr).toMatch(/end/);
        expect(left()).toEqual(["emb.f32.partial"]);
        // fails after the first image's rows were written
        const badImage = run(["embed", "--mmproj", fixture.mmproj, "--image", png, "--image", join(process.cwd(), "README.md"), "--out", out]);
        expect(badImage.status).toBe(1);
        expect(badImage.stderr).toMatch(/image format not recognised/);
        expect(left()).toEqual(["emb.f32.partial"]);
        expect(readFileSync(`${out}.partial`, "utf8")).toBe("mine");
    });
});
