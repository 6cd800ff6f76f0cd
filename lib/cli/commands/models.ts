/**
 * The model cache from the command line: `vidllama pull [hf:ref]`, `vidllama list`, `vidllama rm <hf:ref>`.
 *
 * @internal
 * @module
 */
import { Command } from "commander";
import { formatBytes } from "../../errors.js";
import { listCachedModels, pullModel, removeCachedModels, type CachedModel } from "../../hub/pull.js";
import { DEFAULT_MODEL_REFERENCE } from "../../hub/reference.js";
import { PullReporter } from "../pull-progress.js";
import { interruptSignal, parseInteger, reportError } from "../shared.js";

interface PullFlags {
    mmprojType?: string;
    keepCheckpoint?: boolean;
    offline?: boolean;
    connections?: number;
    json?: boolean;
    quiet?: boolean;
}

export function pullCommand(): Command {
    return new Command("pull")
        .description("download a model from the Hugging Face Hub into the cache (a checkpoint is converted to GGUF once)")
        .argument("[reference]", "hf:<owner>/<repo>[@<revision>][:<type>]; type: the text model's (default q8_0)", DEFAULT_MODEL_REFERENCE)
        .option("--mmproj-type <type>", "the projector's type (checkpoint: f16 (default) or f32; GGUF repository: the type in its file name)")
        .option("--keep-checkpoint", "keep the downloaded checkpoint after converting it (another type then converts without downloading)")
        .option("--offline", "only check the cache, no network (also HF_HUB_OFFLINE=1)")
        .option("--connections <n>", "parallel connections for large files (default 4)", parseInteger("--connections", 1, 64))
        .option("--json", "print the pulled model as JSON")
        .option("-q, --quiet", "no progress on stderr; print only the paths")
        .addHelpText("after", "\nEnvironment: HF_TOKEN (private and gated repositories), HF_ENDPOINT, HF_HUB_OFFLINE, VIDLLAMA_CACHE (default ~/.cache/vidllama).")
        .action(async (reference: string, flags: PullFlags) => {
            const interrupt = interruptSignal();
            const reporter = new PullReporter({ quiet: flags.quiet || flags.json, announceCache: true });
            try {
                const pulled = await pullModel(reference, {
                    ...(flags.mmprojType !== undefined ? { mmprojType: flags.mmprojType } : {}),
                    ...(flags.keepCheckpoint ? { keepCheckpoint: true } : {}),
                    ...(flags.offline ? { offline: true } : {}),
                    ...(flags.connections !== undefined ? { connections: flags.connections } : {}),
                    signal: interrupt.signal,
                    onProgress: reporter.report,
                });
                if (flags.json) process.stdout.write(JSON.stringify(pulled) + "\n");
                else process.stdout.write(`${pulled.textModel}\n${pulled.mmproj ?? ""}${pulled.mmproj ? "\n" : ""}`);
            } catch (err) {
                reporter.done();
                reportError(err);
            } finally {
                interrupt.dispose();
            }
        });
}

export function listCommand(): Command {
    return new Command("list")
        .description("list the models in the cache")
        .option("--json", "print the list as JSON")
        .action(async (flags: { json?: boolean }) => {
            try {
                const models = await listCachedModels();
                if (flags.json) {
                    process.stdout.write(JSON.stringify(models) + "\n");
                    return;
                }
                if (models.length === 0) {
                    process.stdout.write("no models in the cache; pull one: vidllama pull hf:<owner>/<repo>\n");
                    return;
                }
                process.stdout.write(formatTable(models));
            } catch (err) {
                reportError(err);
            }
        });
}

export function rmCommand(): Command {
    return new Command("rm")
        .description("remove models from the cache: all of a repository, or one revision (@) or type (:)")
        .argument("<reference>", "hf:<owner>/<repo>[@<revision or commit>][:<type>]")
        .action(async (reference: string) => {
            const interrupt = interruptSignal();
            try {
                const { removed, bytesFreed } = await removeCachedModels(reference, { signal: interrupt.signal });
                for (const m of removed) process.stdout.write(`removed ${m.reference} (${formatBytes(m.bytes)})\n`);
                if (removed.length === 0 && bytesFreed === 0) {
                    process.stderr.write(`vidllama: nothing in the cache matches ${reference}\n`);
                    process.exitCode = 1;
                    return;
                }
                process.stdout.write(`freed ${formatBytes(bytesFreed)}\n`);
            } catch (err) {
                reportError(err);
            } finally {
                interrupt.dispose();
            }
        });
}

function formatTable(models: CachedModel[]): string {
    const rows = [["MODEL", "TYPE", "SIZE", "KIND", "PULLED AS", "DATE"]];
    for (const m of models) {
        rows.push([
            `hf:${m.repo}@${m.commit.slice(0, 12)}`,
            m.mmprojType ? `${m.type} + ${m.mmprojType}` : m.type,
            formatBytes(m.bytes),
            m.kind,
            m.revision,
            m.createdAt.slice(0, 10),
        ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}
