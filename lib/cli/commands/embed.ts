/**
 * `vidllama embed --mmproj mmproj.gguf --image a.jpg --out emb.f32`: runs the vision encoder + projector and writes
 * the visual token embeddings as raw little-endian float32 rows; a JSON summary goes to stdout.
 *
 * @internal
 * @module
 */
import { createWriteStream, existsSync, renameSync, rmSync } from "node:fs";
import { finished } from "node:stream/promises";
import { Command } from "commander";
import { InvalidOptionError } from "../../errors.js";
import { loadVision } from "../../Vision.js";
import { ProgressBar } from "../progress.js";
import { interruptSignal, parseInteger, reportError } from "../shared.js";
import { collect } from "./generation-options.js";

interface EmbedFlags {
    mmproj: string;
    image: string[];
    out: string;
    force?: boolean;
    threads?: number;
    gpu: boolean;
    quiet?: boolean;
}

export function embedCommand(): Command {
    return new Command("embed")
        .description("write visual token embeddings (raw little-endian float32 rows) and print a JSON summary")
        .requiredOption("--mmproj <file>", "vision projector GGUF")
        .option("--image <file>", "an image (repeatable); rows of all images are written one after the other", collect, [])
        .requiredOption("-o, --out <file>", "output file of float32 rows")
        .option("-f, --force", "overwrite --out if it exists")
        .option("-t, --threads <n>", "CPU threads", parseInteger("--threads", 1, 1024))
        .option("--no-gpu", "run on the CPU even when a GPU backend is available")
        .option("-q, --quiet", "no progress output")
        .action(async (flags: EmbedFlags) => {
            const interrupt = interruptSignal();
            let cleanup: (() => void) | undefined;
            try {
                if (flags.image.length === 0) throw new InvalidOptionError("--image", "at least one image", undefined);
                if (existsSync(flags.out) && !flags.force) throw new InvalidOptionError("--out", "a file that does not exist yet (or --force)", flags.out);
                const bar = new ProgressBar("loading projector", !flags.quiet && process.stderr.isTTY === true);
                await using vision = await loadVision({ mmproj: flags.mmproj, threads: flags.threads, gpu: flags.gpu, signal: interrupt.signal, onProgress: (f) => bar.update(f) });
                bar.done();
                // Written under a temporary name: an interrupted run never leaves a partial file under the final name.
                const partial = `${flags.out}.partial`;
                cleanup = () => rmSync(partial, { force: true });
                const out = createWriteStream(partial);
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
                out.end();
                await finished(out);
                renameSync(partial, flags.out);
                cleanup = undefined;
                process.stdout.write(
                    JSON.stringify({ out: flags.out, rows: offset, width: vision.info.projectionDim, dtype: "float32", byteOrder: "little-endian", images }, null, 2) + "\n",
                );
            } catch (err) {
                cleanup?.();
                reportError(err);
            } finally {
                interrupt.dispose();
            }
        });
}
