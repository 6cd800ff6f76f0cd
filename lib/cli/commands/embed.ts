/**
 * `vidllama embed --mmproj mmproj.gguf --image a.jpg --out emb.f32`: runs the vision encoder + projector and writes
 * the visual token embeddings as raw little-endian float32 rows; a JSON summary goes to stdout.
 *
 * @internal
 * @module
 */
import { createWriteStream, existsSync, renameSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { basename, dirname, join } from "node:path";
import { finished } from "node:stream/promises";
import { Command } from "commander";
import { InvalidOptionError } from "../../errors.js";
import { loadVision } from "../../Vision.js";
import { ProgressBar } from "../progress.js";
import { PullReporter } from "../pull-progress.js";
import type { Video } from "../../decode/Video.js";
import { interruptSignal, parseInteger, reportError } from "../shared.js";
import { addGpuFlags, addVideoFlags, collect, gpuOptionOf, openVideos, pruneFrom, type VideoFlags } from "./generation-options.js";

interface EmbedFlags extends VideoFlags {
    mmproj: string;
    offline?: boolean;
    image: string[];
    out: string;
    force?: boolean;
    threads?: number;
    gpu?: string | false;
    quiet?: boolean;
}

export function embedCommand(): Command {
    const command = new Command("embed")
        .description("write visual token embeddings (raw little-endian float32 rows) and print a JSON summary")
        .requiredOption("--mmproj <file|hf:ref>", "vision projector GGUF, or an hf: reference whose projector is used")
        .option("--offline", "an hf: reference from the cache only, no network (also HF_HUB_OFFLINE=1)")
        .option("--image <file>", "an image (repeatable); rows of all media are written one after the other", collect, [])
        .requiredOption("-o, --out <file>", "output file of float32 rows")
        .option("-f, --force", "overwrite --out if it exists")
        .option("-t, --threads <n>", "CPU threads", parseInteger("--threads", 1, 1024))
        .option("-q, --quiet", "no progress output");
    addGpuFlags(command);
    addVideoFlags(command, "a video: the kept tokens of every frame, in order (with --no-prune every merged token)");
    return command.action(async (flags: EmbedFlags) => {
        const interrupt = interruptSignal();
        let cleanup: (() => Promise<void>) | undefined;
        const opened: Video[] = [];
        try {
            if (flags.image.length === 0 && flags.video.length === 0) throw new InvalidOptionError("--image", "at least one --image or --video", undefined);
            if (existsSync(flags.out) && !flags.force) throw new InvalidOptionError("--out", "a file that does not exist yet (or --force)", flags.out);
            const bar = new ProgressBar("loading projector", !flags.quiet && process.stderr.isTTY === true);
            const pull = new PullReporter({ quiet: flags.quiet });
            await using vision = await loadVision({
                mmproj: flags.mmproj,
                threads: flags.threads,
                gpu: gpuOptionOf(flags.gpu),
                signal: interrupt.signal,
                ...(flags.offline ? { hub: { offline: true } } : {}),
                onProgress: (f) => bar.update(f),
                onPullProgress: pull.report,
            }).finally(() => pull.done());
            bar.done();
            // Videos are opened (and probed) before any output exists: a bad --video or range fails without a trace.
            await openVideos(flags, vision.info, interrupt.signal, opened);
            // Written under a temporary name of our own beside the output (never a file the user may have): an
            // interrupted run leaves nothing under the final name, a failed one nothing at all.
            const partial = join(dirname(flags.out), `.${basename(flags.out)}.${process.pid}-${randomBytes(4).toString("hex")}.partial`);
            const out = createWriteStream(partial);
            cleanup = async () => {
                // the stream opens its file asynchronously: close it first, or the removal could come before the open
                out.destroy();
                await once(out, "close").catch(() => undefined);
                rmSync(partial, { force: true });
            };
            const images = [];
            let offset = 0;
            for (const path of flags.image) {
                const started = performance.now();
                const r = await vision.encode(path, { signal: interrupt.signal });
                const bytes = Buffer.from(r.embeddings.buffer, r.embeddings.byteOffset, r.embeddings.byteLength);
                if (!out.write(bytes)) await new Promise<void>((res) => out.once("drain", () => res()));
                images.push({ image: path, tokens: r.tokens, grid: r.grid, size: r.size, firstRow: offset, ms: Math.round(performance.now() - started) });
                offset += r.tokens;
            }
            const videos = [];
            for (const video of opened) {
                const started = performance.now();
                const path = video.source;
                const bar = new ProgressBar(path, !flags.quiet && process.stderr.isTTY === true);
                const r = await vision.encodeVideo(video, {
                    signal: interrupt.signal,
                    prune: pruneFrom(flags),
                    onProgress: (p) => bar.update(p.framesTotal ? p.framesEncoded / p.framesTotal : 0, `${p.framesEncoded}/${p.framesTotal} frames`),
                });
                bar.done();
                const bytes = Buffer.from(r.embeddings.buffer, r.embeddings.byteOffset, r.embeddings.byteLength);
                if (!out.write(bytes)) await new Promise<void>((res) => out.once("drain", () => res()));
                videos.push({
                    video: path,
                    tokens: r.frames.reduce((a, f) => a + f.tokens, 0),
                    keptTokens: r.tokens,
                    grid: r.grid,
                    size: r.size,
                    frames: r.frames,
                    firstRow: offset,
                    warnings: video.warnings,
                    ms: Math.round(performance.now() - started),
                });
                offset += r.tokens;
            }
            out.end();
            await finished(out);
            renameSync(partial, flags.out);
            cleanup = undefined;
            process.stdout.write(
                JSON.stringify({ out: flags.out, rows: offset, width: vision.info.projectionDim, dtype: "float32", byteOrder: "little-endian", images, videos }, null, 2) + "\n",
            );
        } catch (err) {
            await cleanup?.();
            reportError(err);
        } finally {
            await Promise.all(opened.map((v) => v.close()));
            interrupt.dispose();
        }
    });
}
