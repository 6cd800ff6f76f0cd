/**
 * What a conversation knows of its videos without their sources: size, sampling plan, identity and the token count
 * of every encoded frame. A turn that reuses the KV cache is planned from these facts alone, so closing a `Video`
 * after its turn leaves the session usable; only a rebuild of the cache asks for the pixels again (and re-opens a
 * video that came from a path or URL).
 *
 * @internal
 * @module
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { resolve } from "node:path";
import type { Video, VideoPlan } from "../decode/Video.js";
import { MediaUnavailableError } from "../errors.js";

const videoIds = new WeakMap<object, number>();
let nextVideoId = 1;

/** A stable identity of a video source: a file's path, size and modification time; otherwise the object itself. */
export function videoIdentity(video: Video): string {
    const source = video.source;
    const file = fileIdentity(source);
    if (file) return file;
    let id = videoIds.get(video);
    if (id === undefined) videoIds.set(video, (id = nextVideoId++));
    return `obj:${id}`;
}

function fileIdentity(source: string): string | undefined {
    if (source.startsWith("<") || /^[a-z]+:\/\//i.test(source)) return undefined;
    try {
        const st = statSync(source);
        return `file:${resolve(source)}:${st.size}:${st.mtimeMs}`;
    } catch {
        return undefined;
    }
}

/**
 * A video of a conversation: the facts fixed when it was first planned, and access to its frames — the original
 * `Video` while it is open, else a re-opened one (owned, and closed, by this handle).
 */
export class VideoHandle {
    readonly source: string;
    readonly identity: string;
    readonly width: number;
    readonly height: number;
    readonly plan: VideoPlan;
    /** A short digest of the plan's timestamps (part of the cache keys). */
    readonly stamps: string;
    /** Frame token counts per layout key (target size, merge, pruning), learned while encoding. */
    readonly counts = new Map<string, (number | undefined)[]>();
    readonly #original: Video;
    #reopened: Video | undefined;

    private constructor(video: Video, plan: VideoPlan) {
        this.#original = video;
        this.source = video.source;
        this.identity = videoIdentity(video);
        this.width = video.width;
        this.height = video.height;
        this.plan = plan;
        this.stamps = createHash("sha1").update(plan.timestamps.join(",")).digest("hex").slice(0, 12);
    }

    /** Plans `video` now (it must be open). */
    static async of(video: Video, signal: AbortSignal | undefined): Promise<VideoHandle> {
        const plan = await video.plan(signal ? { signal } : {});
        return new VideoHandle(video, plan);
    }

    /** The Video frames are read from (the original, or the re-opened one), if one is open. */
    get video(): Video | undefined {
        if (!this.#original.closed) return this.#original;
        return this.#reopened && !this.#reopened.closed ? this.#reopened : undefined;
    }

    /** Warnings of the Video in use. */
    get warnings(): string[] {
        return (this.#reopened ?? this.#original).warnings;
    }

    /**
     * A usable Video: the original while open; else, for a path or URL, the same source opened again with the same
     * options (checked to be the same file and the same frames).
     * @throws {MediaUnavailableError} when the video was closed and cannot be re-opened, or changed since
     */
    async open(messageIndex: number, signal: AbortSignal | undefined): Promise<Video> {
        const current = this.video;
        if (current) return current;
        if (!this.#original.reopenable) {
            throw new MediaUnavailableError(
                "video",
                this.source,
                messageIndex,
                "it was closed and its frames are not kept (only videos opened from a path or URL are re-opened by the session); keep it open, or pass the path",
            );
        }
        const video = await this.#original.reopen(signal ? { signal } : {});
        try {
            const plan = await video.plan(signal ? { signal } : {});
            const same = videoIdentity(video) === this.identity && plan.count === this.plan.count && plan.timestamps.every((t, i) => t === this.plan.timestamps[i]);
            if (!same || video.width !== this.width || video.height !== this.height) {
                throw new MediaUnavailableError("video", this.source, messageIndex, "the file changed since it was evaluated");
            }
        } catch (err) {
            await video.close();
            throw err;
        }
        this.#reopened = video;
        return video;
    }

    /** Closes the video this handle re-opened (never the caller's own). */
    async dispose(): Promise<void> {
        await this.#reopened?.close();
        this.#reopened = undefined;
    }
}
