// The runnable examples (examples/*.ts), compiled as they are and run with node on the generated tiny VideoLLaMA3
// and videos. They import "vidllama", which Node resolves to this package's own dist/ (compiled by the global
// setup) because the compiled files sit inside the package.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testVideo } from "../video/fixtures.js";
import { FIXTURES, tinyVl3, type TinyVl3 } from "../vision/fixture.js";

const EXAMPLES = join(process.cwd(), "examples");
const OUT = join(FIXTURES, "examples-js");
let fixture: TinyVl3;
let png: string;

function run(example: string, args: string[], input = "") {
    const r = spawnSync(process.execPath, [join(OUT, `${example}.js`), ...args], { encoding: "utf8", input, timeout: 300_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ffmpegReading(marker: string): string[] {
    const out: string[] = [];
    for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
        try {
            const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
            if (/ffmpeg/.test(cmdline[0] ?? "") && cmdline.some((a) => a.includes(marker))) out.push(cmdline.join(" "));
        } catch {
            // ended meanwhile
        }
    }
    return out;
}

beforeAll(async () => {
    fixture = await tinyVl3();
    png = join(FIXTURES, "cli-test.png");
    if (!existsSync(png)) spawnSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=90x60:d=1", "-frames:v", "1", png]);
    // Type-checking is `npm run typecheck`'s job (examples/tsconfig.json); here they are only transpiled, with the
    // compiler options of that config (as ES modules: alone, a file cannot tell that the package is "type": "module").
    const config = ts.getParsedCommandLineOfConfigFile(join(EXAMPLES, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(String(d.messageText)); } })!;
    rmSync(OUT, { recursive: true, force: true });
    mkdirSync(OUT, { recursive: true });
    for (const file of readdirSync(EXAMPLES).filter((f) => f.endsWith(".ts"))) {
        const { outputText } = ts.transpileModule(readFileSync(join(EXAMPLES, file), "utf8"), { compilerOptions: { ...config.options, module: ts.ModuleKind.ES2022, moduleResolution: ts.ModuleResolutionKind.Bundler, noEmit: false }, fileName: file });
        writeFileSync(join(OUT, file.replace(/\.ts$/, ".js")), outputText);
    }
}, 600_000);

afterAll(() => {
    rmSync(join(FIXTURES, `examples-webcam-${process.pid}.mkv`), { force: true });
});

describe("examples", () => {
    it("print their usage and exit 2 when arguments are missing", () => {
        for (const example of ["image", "video", "stream-push", "stream-webcam"]) {
            const r = run(example, []);
            expect(r.status, example).toBe(2);
            expect(r.stderr, example).toMatch(new RegExp(`^usage: ${example} <model.gguf> <mmproj.gguf>`, "m"));
        }
        const bad = run("video", [fixture.textModel, fixture.mmproj, testVideo("single"), "--fps", "fast"]);
        expect(bad.status).toBe(2);
        expect(bad.stderr).toMatch(/--fps must be a number/);
        const unknown = run("image", [fixture.textModel, fixture.mmproj, png, "--colour"]);
        expect(unknown.status).toBe(2);
        expect(unknown.stderr).toMatch(/--colour/);
    });

    it("image.ts answers about an image", () => {
        const r = run("image", [fixture.textModel, fixture.mmproj, png, "What is this?", "--max-tokens", "4"]);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout.endsWith("\n")).toBe(true);
        expect(r.stderr).toMatch(/^image: \d+ visual tokens \(\d+×\d+ grid\)$/m);
        expect(r.stderr).toMatch(/\[maxTokens\] prompt \d+ tokens in \d+ ms, answer 4 tokens/);
    });

    it("video.ts answers about a video and lists its frames with the tokens pruning kept", () => {
        const r = run("video", [fixture.textModel, fixture.mmproj, testVideo("movingThenStatic"), "What moves?", "--max-tokens", "4"]);
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/^video: 112×84, 8\.0 s, 8 frames sampled$/m);
        const frames = [...r.stderr.matchAll(/^ {2}frame (\d+\.\d)s: (\d+)\/(\d+) tokens$/gm)];
        expect(frames.map((m) => m[1])).toEqual(["0.0", "1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "7.0"]);
        expect(Number(frames.at(-1)![2])).toBeLessThan(Number(frames.at(-1)![3])); // the still end is pruned
        expect(r.stderr).toMatch(/^video: \d+ of \d+ visual tokens kept$/m);
        const ranged = run("video", [fixture.textModel, fixture.mmproj, testVideo("movingThenStatic"), "Q", "--start", "2", "--end", "5", "--max-frames", "2", "--max-tokens", "1"]);
        expect(ranged.status, ranged.stderr).toBe(0);
        expect([...ranged.stderr.matchAll(/^ {2}frame /gm)]).toHaveLength(2);
    });

    it("stream-push.ts pushes generated frames, asks at intervals and prints stats()", () => {
        const r = run("stream-push", [fixture.textModel, fixture.mmproj, "--every", "3", "--max-tokens", "2"]);
        expect(r.status, r.stderr).toBe(0);
        expect([...r.stderr.matchAll(/^frame (\d+)\.0s: (\d+)\/(\d+) tokens kept/gm)].map((m) => Number(m[1]))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        // questions at 3, 6 and 9 s, then one at the end that sees every frame
        expect([...r.stdout.matchAll(/^\[asked at (\d)\.0s\] /gm)].map((m) => m[1])).toEqual(["3", "6", "9"]);
        expect(r.stdout).toMatch(/^\[at the end\] .* — 10 frames up to 9\.0s$/m);
        const stats = [...r.stdout.matchAll(/^stats: (\d+) frames ingested \((\d+) in the cache, 0 evicted, 0 dropped\), \d+% of visual tokens kept, KV \d+\/\d+ tokens/gm)];
        expect(stats).toHaveLength(4);
        expect(stats.at(-1)![1]).toBe("10");
    });

    it("stream-push.ts pushes the frames of a video", () => {
        const r = run("stream-push", [fixture.textModel, fixture.mmproj, testVideo("sceneCut"), "--every", "2", "--max-tokens", "1"]);
        expect(r.status, r.stderr).toBe(0);
        expect([...r.stderr.matchAll(/^frame /gm)]).toHaveLength(6);
        expect(r.stdout).toMatch(/^\[at the end\] .* — 6 frames up to 5\.0s$/m);
    });

    it("stream-webcam.ts with a file source answers a question typed on stdin while it plays, then ends with the file", async () => {
        const video = join(FIXTURES, `examples-webcam-${process.pid}.mkv`);
        writeFileSync(video, readFileSync(testVideo("movingThenStatic")));
        const child = spawn(process.execPath, [join(OUT, "stream-webcam.js"), fixture.textModel, fixture.mmproj, video, "--max-tokens", "3"], { stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
        const lines: string[] = [];
        for await (const line of createInterface({ input: child.stderr })) {
            lines.push(line);
            // ask once two frames are in (the file plays in real time), and end stdin: the example then watches the
            // file to its end
            if (/^frame 1\.0s/.test(line)) child.stdin.end("What moves?\n");
        }
        const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
        const stderr = lines.join("\n");
        expect(code, stderr).toBe(0);
        // One answer (its text is random: it may hold a newline of its own), ended by the example's newline.
        expect([...stderr.matchAll(/^\(\d+ frames up to /gm)]).toHaveLength(1);
        expect(stdout.trim()).not.toBe("");
        expect(stdout.endsWith("\n")).toBe(true);
        const answered = /^\((\d+) frames up to (\d+\.\d)s, first token after \d+ ms\)$/m.exec(stderr)!;
        expect(Number(answered[1])).toBeGreaterThanOrEqual(2);
        expect(Number(answered[1])).toBeLessThan(8);
        expect(stderr).toMatch(/^the source ended after 8 frames$/m);
        // (a machine slower than real time drops the oldest waiting frames: the default queue policy of a live source)
        expect(lines.filter((l) => l.startsWith("frame ") || l.startsWith("dropped the frame "))).toHaveLength(8);
        expect(ffmpegReading(video)).toEqual([]);
    });
});
