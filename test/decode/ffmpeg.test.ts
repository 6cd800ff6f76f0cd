/** Finding ffmpeg and ffprobe: search order, reported source, rejection reasons. */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { FfmpegNotFoundError } from "../../lib/errors.js";
import { formatSeconds, resolveFfmpeg, resolveFfprobe, secondsStringToMicros } from "../../lib/decode/ffmpeg.js";
import { Video } from "../../lib/decode/Video.js";
import { frameId, videoFixture } from "../fixtures/videos.js";
import { collect, expectNoLeakedChildren, hasNumpy, numpyLinspace } from "./helpers.js";

const realFfmpeg = execFileSync("sh", ["-c", "command -v ffmpeg"]).toString().trim();
const realFfprobe = execFileSync("sh", ["-c", "command -v ffprobe"]).toString().trim();
const realVersion = /^ffmpeg version (\S+)/.exec(execFileSync(realFfmpeg, ["-version"]).toString())![1];

let root: string;
let savedPath: string | undefined;
let savedEnv: string | undefined;

beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "vidllama-resolve-"));
    mkdirSync(join(root, "empty"));
    mkdirSync(join(root, "only-ffmpeg"));
    symlinkSync(realFfmpeg, join(root, "only-ffmpeg", "ffmpeg"));
    mkdirSync(join(root, "both"));
    symlinkSync(realFfmpeg, join(root, "both", "ffmpeg"));
    symlinkSync(realFfprobe, join(root, "both", "ffprobe"));
    writeFileSync(join(root, "not-executable"), "#!/bin/sh\necho hi\n");
    writeFileSync(join(root, "impostor"), "#!/bin/sh\necho 'GNU Awk 5.2'\n");
    chmodSync(join(root, "impostor"), 0o755);
    writeFileSync(join(root, "broken"), "#!/bin/sh\necho 'segfault' >&2\nexit 3\n");
    chmodSync(join(root, "broken"), 0o755);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeEach(() => {
    savedPath = process.env.PATH;
    savedEnv = process.env.VIDLLAMA_FFMPEG;
    delete process.env.VIDLLAMA_FFMPEG;
});
afterEach(() => {
    process.env.PATH = savedPath;
    if (savedEnv === undefined) delete process.env.VIDLLAMA_FFMPEG;
    else process.env.VIDLLAMA_FFMPEG = savedEnv;
    expectNoLeakedChildren();
});

describe("resolveFfmpeg", () => {
    test("PATH", async () => {
        const r = await resolveFfmpeg();
        expect(r.source).toBe("path");
        expect(r.version).toBe(realVersion);
        // ffmpeg-static is an optional dependency that is not installed here; the env var is unset
        expect(r.rejected).toEqual(["env VIDLLAMA_FFMPEG: not set", "ffmpeg-static: not installed"]);
    });

    test("explicit option (a file, or a directory containing ffmpeg)", async () => {
        process.env.VIDLLAMA_FFMPEG = join(root, "both", "ffmpeg"); // the option wins over the environment
        const r = await resolveFfmpeg({ ffmpegPath: join(root, "only-ffmpeg", "ffmpeg") });
        expect(r).toMatchObject({ path: join(root, "only-ffmpeg", "ffmpeg"), source: "option", version: realVersion, rejected: [] });
        const d = await resolveFfmpeg({ ffmpegPath: join(root, "only-ffmpeg") });
        expect(d).toMatchObject({ path: join(root, "only-ffmpeg", "ffmpeg"), source: "option" });
    });

    test("VIDLLAMA_FFMPEG", async () => {
        process.env.VIDLLAMA_FFMPEG = join(root, "both", "ffmpeg");
        const r = await resolveFfmpeg();
        expect(r).toMatchObject({ path: join(root, "both", "ffmpeg"), source: "env" });
    });

    test("a bad option falls back to the next places and says why it was rejected", async () => {
        const r = await resolveFfmpeg({ ffmpegPath: "/nonexistent/ffmpeg" });
        expect(r.source).toBe("path");
        expect(r.rejected[0]).toBe("option ffmpegPath=/nonexistent/ffmpeg: no such file");
        const video = await Video.open(videoFixture("cfr10").path, { ffmpegPath: "/nonexistent/ffmpeg" });
        expect(video.ffmpeg?.source).toBe("path");
        expect(video.warnings.join("\n")).toMatch(/ffmpegPath was not usable \(option ffmpegPath=\/nonexistent\/ffmpeg: no such file\)/);
        await video.close();
    });

    test("nothing found: FfmpegNotFoundError lists every place tried and why", async () => {
        process.env.PATH = [join(root, "empty"), join(root, "nowhere")].join(":");
        process.env.VIDLLAMA_FFMPEG = join(root, "not-executable");
        const error = await resolveFfmpeg({ ffmpegPath: "/nonexistent/ffmpeg" }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(FfmpegNotFoundError);
        expect((error as FfmpegNotFoundError).searched).toEqual([
            "option ffmpegPath=/nonexistent/ffmpeg: no such file",
            `env VIDLLAMA_FFMPEG=${join(root, "not-executable")}: not executable`,
            "ffmpeg-static: not installed",
            `PATH: no ffmpeg in ${join(root, "empty")}:${join(root, "nowhere")}`,
        ]);
        expect((error as Error).message).toMatch(/ffmpeg was not found/);
        // Video.open reports the same (after checking that the file exists)
        await expect(Video.open(videoFixture("cfr10").path)).rejects.toBeInstanceOf(FfmpegNotFoundError);
    });

    test("candidates that are not ffmpeg are rejected with a reason", async () => {
        process.env.PATH = join(root, "empty");
        for (const [file, reason] of [
            ["impostor", /does not look like ffmpeg/],
            ["broken", /`-version` failed \(exit code 3\): segfault/],
            ["empty", /a directory without ffmpeg/],
        ] as const) {
            const error = (await resolveFfmpeg({ ffmpegPath: join(root, file) }).catch((e: unknown) => e)) as FfmpegNotFoundError;
            expect(error).toBeInstanceOf(FfmpegNotFoundError);
            expect(error.searched[0]).toMatch(reason);
        }
    });

    test("PATH entries that are broken are reported", async () => {
        mkdirSync(join(root, "bad-path"), { recursive: true });
        writeFileSync(join(root, "bad-path", "ffmpeg"), "#!/bin/sh\nexit 1\n");
        chmodSync(join(root, "bad-path", "ffmpeg"), 0o755);
        process.env.PATH = join(root, "bad-path");
        const error = (await resolveFfmpeg().catch((e: unknown) => e)) as FfmpegNotFoundError;
        expect(error.searched.at(-1)).toMatch(/^PATH: .*bad-path\/ffmpeg: `-version` failed/);
    });
});

describe("resolveFfprobe", () => {
    test("next to ffmpeg first, then PATH, else undefined", async () => {
        expect(await resolveFfprobe({ path: join(root, "both", "ffmpeg") })).toMatchObject({ path: join(root, "both", "ffprobe") });
        expect((await resolveFfprobe({ path: join(root, "only-ffmpeg", "ffmpeg") }))?.path).toBe(realFfprobe);
        process.env.PATH = join(root, "only-ffmpeg");
        expect(await resolveFfprobe({ path: join(root, "only-ffmpeg", "ffmpeg") })).toBeUndefined();
    });

    test("without ffprobe, videos are probed with `ffmpeg -i` and counted by a decoding pass — same frames", async () => {
        process.env.PATH = join(root, "only-ffmpeg");
        const f = videoFixture("cfr30");
        const video = await Video.open(f.path, { ffmpegPath: join(root, "only-ffmpeg", "ffmpeg"), maxFrames: 6 });
        expect([video.width, video.height, video.fps, video.duration]).toEqual([64, 48, 30, 20]);
        const frames = await collect(video);
        const idx = hasNumpy() ? numpyLinspace([[20, 6]])[0]! : [0, 3, 7, 11, 15, 19];
        expect(frames.map((fr) => frameId(fr.data, 64, 48))).toEqual(idx.map((k) => 30 * k + 29));
        expect(video.warnings).toEqual([]);
        await video.close();
    });
});

test("seconds are formatted the way ffmpeg parses them", () => {
    expect(formatSeconds(0)).toBe("0");
    expect(formatSeconds(2.35)).toBe("2.35");
    expect(formatSeconds(1e-7)).toBe("0");
    expect(formatSeconds(12)).toBe("12");
    expect(secondsStringToMicros("2.35")).toBe(2_350_000n);
    expect(secondsStringToMicros("0.0000019")).toBe(1n);
    expect(secondsStringToMicros("-1.5")).toBe(-1_500_000n);
});
