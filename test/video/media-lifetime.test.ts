// Media whose turn is over: a follow-up that reuses the KV cache never touches them (a closed Video, a deleted image
// file); a rebuild of the cache re-opens file videos itself and refuses, before any work, media it cannot re-open.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Image, loadModel, MediaUnavailableError, Video, type ChatMessage, type Model } from "../../lib/index.js";
import { tinyVl3 } from "../vision/fixture.js";
import { execFileSync } from "node:child_process";
import { testVideo } from "./fixtures.js";

const IMAGE_TOKEN = 151665;
const greedy = { temperature: 0, maxTokens: 6 } as const;
let model: Model;
let dir: string;

beforeAll(async () => {
    const fixture = await tinyVl3();
    model = await loadModel({ model: fixture.textModel, mmproj: fixture.mmproj });
    dir = mkdtempSync(join(tmpdir(), "vidllama-media-"));
}, 600_000);

afterAll(async () => {
    await model?.dispose();
    rmSync(dir, { recursive: true, force: true });
});

describe("media of earlier turns", () => {
    it("a follow-up works after the video of the first turn was closed, reusing its tokens", async () => {
        const session = await model.createSession();
        const video = await Video.open(testVideo("movingThenStatic"), { fps: 1 });
        const first = await session.prompt([video, "What happens?"], { ...greedy, maxTokens: 4 });
        await video.close();
        const follow = await session.prompt("And then?", greedy);
        const visual = first.promptTokens.filter((t) => t === IMAGE_TOKEN).length;
        expect(visual).toBeGreaterThan(0);
        expect(follow.reusedTokens).toBeGreaterThanOrEqual(first.promptTokens.length + first.tokens.length - 1);
        expect(follow.promptTokens.filter((t) => t === IMAGE_TOKEN)).toHaveLength(0);
        expect(follow.timings.decodeMs).toBe(0);
        // And a third turn too.
        const third = await session.prompt("Anything else?", greedy);
        expect(third.reusedTokens).toBeGreaterThan(follow.reusedTokens);
        await session.dispose();
    });

    it("a follow-up works after an image's file was deleted", async () => {
        const path = join(dir, "photo.png");
        execFileSync("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=70x42:d=1", "-frames:v", "1", path]);
        const session = await model.createSession();
        const first = await session.prompt([Image.fromFile(path), "What is it?"], greedy);
        rmSync(path);
        const follow = await session.prompt("And then?", greedy);
        expect(follow.reusedTokens).toBeGreaterThanOrEqual(first.promptTokens.length + first.tokens.length - 1);
        expect(follow.promptTokens.filter((t) => t === IMAGE_TOKEN)).toHaveLength(0);
        await session.dispose();
    });

    it("a follow-up works after an aborted video question, once the video is closed", async () => {
        for (const stage of ["encode", "generation"] as const) {
            const session = await model.createSession();
            const video = await Video.open(testVideo("movingThenStatic"), { fps: 1 });
            const controller = new AbortController();
            const aborted = await session.prompt([video, "What happens?"], {
                ...greedy,
                signal: controller.signal,
                onMediaProgress: (p) => stage === "encode" && p.framesEncoded > 0 && controller.abort(),
                onToken: () => stage === "generation" && controller.abort(),
            });
            expect(aborted.stopReason).toBe("abort");
            await video.close();
            const follow = await session.prompt("And then?", greedy);
            expect(follow.stopReason).not.toBe("abort");
            expect(follow.tokens.length).toBeGreaterThan(0);
            if (stage === "generation") {
                expect(session.history.length).toBe(4); // the aborted turn (with its partial answer) stays
                expect(follow.promptTokens.filter((t) => t === IMAGE_TOKEN)).toHaveLength(0);
            }
            await session.dispose();
        }
    });

    it("a rebuild with a closed in-memory video is refused with a typed error naming it, before any work", async () => {
        const session = await model.createSession();
        const bytes = readFileSync(testVideo("movingThenStatic"));
        const video = await Video.open(bytes, { fps: 1 });
        await session.prompt([video, "What happens?"], { ...greedy, maxTokens: 2 });
        await video.close();
        const cached = session.cachedTokens;
        // Editing the history before the video forces the cache to be rebuilt from its frames.
        session.setHistory([{ role: "user", content: "Hello" }, { role: "assistant", content: "Hi" }, ...session.history]);
        const error = await session.prompt("And then?", greedy).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MediaUnavailableError);
        const e = error as MediaUnavailableError;
        expect(e.code).toBe("ERR_MEDIA_UNAVAILABLE");
        expect(e.kind).toBe("video");
        expect(e.source).toMatch(/^<Buffer \d+ bytes>$/);
        expect(e.messageIndex).toBe(2);
        expect(e.message).toContain("history[2]");
        expect(session.cachedTokens).toBe(cached); // nothing was truncated or evaluated
        // The session stays usable once the offending turn is gone.
        session.setHistory([]);
        expect((await session.prompt("Hi", greedy)).tokens.length).toBeGreaterThan(0);
        await session.dispose();
    });

    it("a rebuild re-opens a closed file video, and answers as a session that never closed it", async () => {
        const history = (h: ChatMessage[]): ChatMessage[] => [{ role: "user", content: "Hello" }, { role: "assistant", content: "Hi" }, ...h];
        const run = async (close: boolean) => {
            const session = await model.createSession();
            const video = await Video.open(testVideo("sceneCut"), { fps: 2, maxFrames: 8 });
            await session.prompt([video, "What happens?"], greedy);
            if (close) await video.close();
            session.setHistory(history(session.history));
            const answer = await session.prompt("And then?", greedy);
            await session.dispose();
            if (!close) await video.close();
            return answer;
        };
        const kept = await run(false);
        const reopened = await run(true);
        expect(reopened.promptTokens.filter((t) => t === IMAGE_TOKEN).length).toBeGreaterThan(0); // it was rebuilt
        expect(reopened.promptTokens).toEqual(kept.promptTokens);
        expect(reopened.tokens).toEqual(kept.tokens);
        expect(reopened.text).toBe(kept.text);
    });
});
