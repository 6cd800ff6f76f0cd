// `vidllama stream` as a user runs it (dist/, compiled by the global setup), on the generated tiny VideoLLaMA3 and
// generated videos.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testVideo } from "../video/fixtures.js";
import { FIXTURES, tinyVl3, type TinyVl3 } from "../vision/fixture.js";

const cli = join(process.cwd(), "dist", "cli", "index.js");
let fixture: TinyVl3;
/** A copy of the test video under a name of this run's own, so that its ffmpeg processes can be told from others'. */
let video: string;

interface Event {
    event: string;
    [key: string]: unknown;
}

function run(args: string[], input?: string | Buffer) {
    const r = spawnSync(process.execPath, [cli, "stream", ...args], { encoding: "utf8", input: input ?? "", timeout: 300_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function model(): string[] {
    return ["-m", fixture.textModel, "--mmproj", fixture.mmproj];
}

function events(stdout: string): Event[] {
    return stdout
        .split("\n")
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Event);
}

/** ffmpeg processes (anyone's children, orphans included) reading `marker`. */
function ffmpegReading(marker: string): string[] {
    const out: string[] = [];
    for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
        try {
            const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
            if (/ffmpeg|ffprobe/.test(cmdline[0] ?? "") && cmdline.some((a) => a.includes(marker))) out.push(`${pid} ${cmdline.join(" ")}`);
        } catch {
            // the process ended meanwhile
        }
    }
    return out;
}

beforeAll(async () => {
    fixture = await tinyVl3();
    video = join(FIXTURES, `stream-cli-${process.pid}.mkv`);
    copyFileSync(testVideo("movingThenStatic"), video);
}, 600_000);

afterAll(() => {
    for (const f of readdirSync(FIXTURES).filter((name) => name.startsWith(`stream-cli-${process.pid}`))) rmSync(join(FIXTURES, f), { force: true });
});

describe("vidllama stream --json", () => {
    it("prints ready, every frame, answers (stdin and --ask), end and close; exits 0 with no ffmpeg left", () => {
        const r = run([video, ...model(), "--json", "--temperature", "0", "-n", "4", "--ask", "What happened?"], "What moves?\n");
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        const out = events(r.stdout);
        expect(out[0]!.event).toBe("ready");
        expect(out[0]).toMatchObject({ kind: "file", fps: 1, timestamps: false });
        const frames = out.filter((e) => e.event === "frame");
        // 8 s at 1 fps; a file waits for the encoder (queue policy "wait"), so nothing is dropped
        expect(frames.map((f) => f.timestamp)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
        expect(out.filter((e) => e.event === "drop")).toEqual([]);
        for (const f of frames) {
            expect(f.tokens).toBeGreaterThan(0);
            expect(f.keptTokens).toBeGreaterThan(0);
            expect(f.keptTokens as number).toBeLessThanOrEqual(f.tokens as number);
        }
        // the frames after the square stops are pruned to (almost) nothing
        expect(frames.at(-1)!.keptTokens as number).toBeLessThan(frames[0]!.keptTokens as number);
        const answers = out.filter((e) => e.event === "answer");
        expect(answers.map((a) => a.question)).toEqual(["What moves?", "What happened?"]);
        for (const a of answers) {
            expect(typeof a.text).toBe("string");
            expect(a.ttftMs).toBeGreaterThan(0);
            expect(a.stopReason).toBe("maxTokens");
            expect(a.tokens).toHaveLength(4);
            expect(a).not.toHaveProperty("logits");
        }
        // --ask waits for the end of the source: it sees every frame
        expect(answers[1]).toMatchObject({ frames: 8, timestamp: 7 });
        const end = out.findIndex((e) => e.event === "end");
        expect(out[end]).toEqual({ event: "end", reason: "end", frames: 8 });
        expect(end).toBeGreaterThan(out.lastIndexOf(frames.at(-1)!));
        const close = out.at(-1)!;
        expect(close.event).toBe("close");
        expect(close).toMatchObject({ framesSeen: 8, framesIngested: 8, framesDropped: 0 });
        expect(ffmpegReading(video)).toEqual([]);
    });

    it("answers a question typed while the stream plays, from the frames seen so far", async () => {
        // -re: ffmpeg reads the file at its own pace, as a live source
        const child = spawn(process.execPath, [cli, "stream", video, ...model(), "--json", "--temperature", "0", "-n", "2", "--input-option=-re"], { stdio: ["pipe", "pipe", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
        const seen: Event[] = [];
        let asked = false;
        for await (const line of createInterface({ input: child.stdout })) {
            const e = JSON.parse(line) as Event;
            seen.push(e);
            if (e.event === "frame" && (e.timestamp as number) >= 2 && !asked) {
                asked = true;
                child.stdin.end("What is happening now?\n");
            }
        }
        const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
        expect(stderr).toBe("");
        expect(code).toBe(0);
        const answer = seen.find((e) => e.event === "answer")!;
        expect(answer.question).toBe("What is happening now?");
        expect(answer.frames as number).toBeGreaterThanOrEqual(3);
        expect(answer.frames as number).toBeLessThan(8);
        expect(seen.find((e) => e.event === "end")).toMatchObject({ reason: "end", frames: 8 });
        expect(ffmpegReading(video)).toEqual([]);
    });

    it("reads the video from stdin with -", () => {
        const r = run(["-", ...model(), "--json", "--temperature", "0", "-n", "2", "--queue-policy", "wait", "--ask", "What moves?"], readFileSync(video));
        expect(r.status).toBe(0);
        const out = events(r.stdout);
        expect(out[0]).toMatchObject({ event: "ready", kind: "stdin", source: "stdin" });
        expect(out.filter((e) => e.event === "frame")).toHaveLength(8);
        expect(out.find((e) => e.event === "answer")).toMatchObject({ question: "What moves?", frames: 8 });
    });

    it("--follow reads a file while it is being written, until it stops growing", async () => {
        const growing = join(FIXTURES, `stream-cli-${process.pid}-growing.mkv`);
        rmSync(growing, { force: true });
        // the writer flushes every packet, in real time: the file grows for 8 s
        const writer = spawn("ffmpeg", ["-v", "error", "-y", "-re", "-i", video, "-c:v", "ffv1", "-flush_packets", "1", "-f", "matroska", growing], { stdio: "ignore" });
        const written = new Promise((resolve) => writer.on("close", resolve));
        while (!existsSync(growing) || statSync(growing).size === 0) await new Promise((r) => setTimeout(r, 50));
        // A followed file is a live source (frames dropped when the encoder falls behind real time, as it may on a
        // loaded machine): `wait` makes every frame count, so that what is checked is the reading alone.
        const child = spawn(process.execPath, [cli, "stream", growing, ...model(), "--json", "--follow", "--idle-timeout", "2", "--queue-policy", "wait"], {
            stdio: ["ignore", "pipe", "pipe"],
        });
        const seen: Event[] = [];
        for await (const line of createInterface({ input: child.stdout })) seen.push(JSON.parse(line) as Event);
        const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
        await written;
        expect(code).toBe(0);
        expect(seen.filter((e) => e.event === "drop")).toEqual([]);
        expect(seen.filter((e) => e.event === "frame").map((e) => e.timestamp)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
        expect(seen.find((e) => e.event === "end")).toEqual({ event: "end", reason: "end", frames: 8 });
        expect(ffmpegReading(growing)).toEqual([]);
    });

    it("--window keeps the newest frames and reports evictions", () => {
        const out = events(run([video, ...model(), "--json", "--window", "3f", "-n", "1", "--ask", "Q"]).stdout);
        const evicted = out.filter((e) => e.event === "evict").reduce((n, e) => n + (e.frames as number), 0);
        expect(evicted).toBe(5);
        expect(out.at(-1)).toMatchObject({ event: "close", framesInCache: 3, framesEvicted: 5, window: { from: 5, to: 7 } });
    });
});

describe("vidllama stream without --json", () => {
    it("prints the answers on stdout (the same as --json's) and what happens on stderr", () => {
        const args = [video, ...model(), "--temperature", "0", "-n", "5", "--ask", "What moves?"];
        const plain = run(args);
        expect(plain.status).toBe(0);
        const json = events(run([...args, "--json"]).stdout).find((e) => e.event === "answer")!;
        expect(plain.stdout).toBe(`${json.text as string}\n`);
        expect(plain.stderr).toMatch(/the source ended after 8 frames \(8 ingested\)/);
        expect(plain.stderr).toMatch(/stream closed — frames 8 seen, 8 in, 0 dropped, 0 evicted · tokens kept \d+% · KV \d+\/\d+ \([\d.]+ MiB\) · queue 0 · at 7\.0s/);
        const quiet = run([...args, "--quiet"]);
        expect(quiet.stdout).toBe(plain.stdout);
        expect(quiet.stderr).toBe("");
    });

    it("closes on Ctrl+C with exit 0 and leaves no ffmpeg behind", async () => {
        // an endless source: the file looped at its own pace
        const child = spawn(process.execPath, [cli, "stream", video, ...model(), "--input-option=-re", "--input-option=-stream_loop", "--input-option=-1"], { stdio: ["pipe", "pipe", "pipe"] });
        let stderr = "";
        const ffmpegs = new Set<string>();
        const started = new Promise<void>((resolve) => {
            child.stderr.on("data", (c: Buffer) => {
                stderr += c.toString();
                if (/streaming/.test(stderr)) resolve();
            });
        });
        await started;
        // wait until ffmpeg runs and has given a frame or two
        for (let i = 0; i < 100 && ffmpegs.size === 0; i++) {
            await new Promise((r) => setTimeout(r, 100));
            for (const p of ffmpegReading(video)) ffmpegs.add(p.split(" ")[0]!);
        }
        expect(ffmpegs.size).toBe(1);
        await new Promise((r) => setTimeout(r, 1500));
        child.kill("SIGINT");
        const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
        expect(code).toBe(0);
        expect(stderr).toMatch(/stream closed — frames \d+ seen/);
        for (const pid of ffmpegs) expect(existsSync(`/proc/${pid}`)).toBe(false);
        expect(ffmpegReading(video)).toEqual([]);
    });
});

describe("vidllama stream errors", () => {
    it("a bad flag exits 2 before any work, naming the flag", () => {
        const cases: Array<[string[], RegExp]> = [
            [["--window", "5x"], /--window must be like 120s \(seconds\), 300f \(frames\) or 4000t \(tokens\).*"5x"/],
            [["--window", "0s"], /--window/],
            [["--fps", "0"], /--fps must be a number between/],
            [["--queue-size", "-1"], /--queue-size must be an integer/],
            [["--queue-policy", "fast"], /--queue-policy.*Allowed choices are drop-oldest, drop-newest, wait/],
            [["--reconnect"], /--reconnect is for URL sources/],
            [["--no-prune", "--prune-threshold", "0.2"], /--prune-threshold and --no-prune/],
            [["--every", "5"], /--every needs at least one --ask/],
            [["--colour"], /unknown option '--colour'/],
        ];
        for (const [flags, message] of cases) {
            const r = run([video, ...model(), ...flags]);
            expect(r.status, flags.join(" ")).toBe(2);
            expect(r.stderr, flags.join(" ")).toMatch(message);
            expect(r.stdout).toBe("");
        }
        const noProjector = run([video, "-m", fixture.textModel]);
        expect(noProjector.status).toBe(2);
        expect(noProjector.stderr).toMatch(/--mmproj is required/);
        const follow = run(["-", ...model(), "--follow"]);
        expect(follow.status).toBe(2);
        expect(follow.stderr).toMatch(/--follow is for a file/);
    });

    it("a missing source is an error event and exit 1, before the model is loaded", () => {
        const r = run(["/nonexistent/clip.mkv", ...model(), "--json"]);
        expect(r.status).toBe(1);
        expect(events(r.stdout)).toEqual([
            { event: "error", code: "ERR_STREAM_SOURCE", name: "StreamSourceError", message: "/nonexistent/clip.mkv: no such file", source: "/nonexistent/clip.mkv" },
        ]);
        expect(r.stderr).toBe("vidllama: /nonexistent/clip.mkv: no such file\n");
    });

    it("a source ffmpeg cannot read is an error event, end with reason error, exit 1, no ffmpeg left", () => {
        const notVideo = join(FIXTURES, `stream-cli-${process.pid}-not-a-video.mkv`);
        copyFileSync(join(process.cwd(), "README.md"), notVideo);
        const r = run([notVideo, ...model(), "--json", "-n", "1"], "What moves?\n");
        expect(r.status).toBe(1);
        const out = events(r.stdout);
        expect(out.map((e) => e.event)).toEqual(expect.arrayContaining(["ready", "error", "end", "close"]));
        expect(out.find((e) => e.event === "error")).toMatchObject({ code: "ERR_STREAM_SOURCE", source: notVideo, message: expect.stringMatching(/ffmpeg failed .*Invalid data/) });
        expect(out.find((e) => e.event === "end")).toEqual({ event: "end", reason: "error", frames: 0 });
        expect(ffmpegReading(notVideo)).toEqual([]);
        const plain = run([notVideo, ...model()]);
        expect(plain.status).toBe(1);
        expect(plain.stderr).toMatch(/ffmpeg failed/);
        expect(plain.stderr).toMatch(/the source gave no frame; closing/);
    });
});
