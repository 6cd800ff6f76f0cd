/**
 * `vidllama convert <hf-dir> --out <dir>`: a VideoLLaMA3 or Video-LLaVA Hugging Face checkpoint to a text-model GGUF
 * and a vision-projector GGUF, with a progress bar on stderr (when it is a terminal) and a summary on stdout.
 *
 * @internal
 * @module
 */
import { Command, Option } from "commander";
import { convertCheckpoint, type ConvertResult, type ConvertedTensor } from "../../convert/convert.js";
import { VISION_ACTIVATIONS, type VisionActivation } from "../../convert/family.js";
import { MMPROJ_OUTPUT_TYPES, TEXT_OUTPUT_TYPES, type MmprojOutputType, type TextOutputType } from "../../convert/quant-rules.js";
import { formatBytes } from "../../errors.js";
import { ProgressBar } from "../progress.js";
import { interruptSignal, parseInteger, reportError } from "../shared.js";

interface ConvertFlags {
    out: string;
    type: TextOutputType;
    mmprojType: MmprojOutputType;
    force?: boolean;
    name?: string;
    threads?: number;
    verify: "all" | "sample" | "none";
    visionAct?: VisionActivation;
    quiet?: boolean;
}

/** The `convert` command (commander v14). */
export function convertCommand(): Command {
    return new Command("convert")
        .description("convert a VideoLLaMA3 or Video-LLaVA Hugging Face checkpoint to GGUF (text model + vision projector)")
        .argument("<hf-dir>", "checkpoint directory (config.json, *.safetensors, tokenizer files)")
        .requiredOption("-o, --out <dir>", "output directory (created when missing)")
        .addOption(new Option("-t, --type <type>", "text model storage type").choices([...TEXT_OUTPUT_TYPES]).default("f16"))
        .addOption(
            new Option("--mmproj-type <type>", "vision projector matrix type (vectors stay f32)").choices([...MMPROJ_OUTPUT_TYPES]).default("f16"),
        )
        .option("-f, --force", "replace existing output files")
        .option("--name <name>", "model name for the file names and general.name (default: the directory name)")
        .option("--threads <n>", "quantization threads (default: all cores)", parseInteger("--threads", 1, 1024))
        .addOption(
            new Option("--verify <mode>", "how much converted data to decode and check against the checkpoint")
                .choices(["all", "sample", "none"])
                .default("sample"),
        )
        .addOption(
            // no default: without the flag the checkpoint's vision_config.hidden_act decides (quick_gelu when unset)
            new Option("--vision-act <act>", "Video-LLaVA: the vision towers' MLP activation (default: the checkpoint's, quick_gelu when unset)").choices([
                ...VISION_ACTIVATIONS,
            ]),
        )
        .option("-q, --quiet", "print only the output paths")
        .action(async (input: string, flags: ConvertFlags) => {
            const bar = new ProgressBar("converting");
            const interrupt = interruptSignal();
            try {
                const result = await convertCheckpoint({
                    input,
                    outDir: flags.out,
                    type: flags.type,
                    mmprojType: flags.mmprojType,
                    force: flags.force,
                    name: flags.name,
                    threads: flags.threads,
                    verify: flags.verify,
                    ...(flags.visionAct !== undefined ? { visionAct: flags.visionAct } : {}),
                    signal: interrupt.signal,
                    onProgress: (p) => {
                        if (p.phase === "prepare") bar.update(0, "reading checkpoint");
                        else if (p.phase === "text" || p.phase === "mmproj") {
                            bar.update(
                                p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 0,
                                `${p.tensorIndex! + 1}/${p.tensorCount} ${p.tensor ?? ""}`,
                            );
                        } else if (p.phase === "finalize") bar.update(1, "renaming");
                    },
                });
                bar.done();
                process.stdout.write(flags.quiet ? `${result.textModel}\n${result.mmproj}\n` : formatSummary(result));
            } catch (err) {
                bar.done();
                reportError(err);
            } finally {
                interrupt.dispose();
            }
        });
}

/** Human-readable summary: files, tensor types, measured conversion errors against their bounds, warnings. */
export function formatSummary(result: ConvertResult): string {
    const lines: string[] = [];
    lines.push(`text model: ${result.textModel} (${formatBytes(result.textModelBytes)}, ${result.type})`);
    lines.push(`projector:  ${result.mmproj} (${formatBytes(result.mmprojBytes)}, ${result.mmprojType})`);
    lines.push(`time:       ${result.seconds.toFixed(1)} s`);
    for (const file of ["text", "mmproj"] as const) {
        const tensors = result.tensors.filter((t) => t.file === file);
        const byType = new Map<string, ConvertedTensor[]>();
        for (const t of tensors) byType.set(t.type, [...(byType.get(t.type) ?? []), t]);
        lines.push(`${file === "text" ? "text model" : "projector"} tensors by type (worst relative RMS error / its bound):`);
        for (const [type, list] of byType) {
            const worst = list.reduce((a, t) => (t.relRmsError > a.relRmsError ? t : a), list[0]!);
            const checked = list.reduce((a, t) => a + t.checkedValues, 0);
            const err =
                worst.relRmsBound === 0
                    ? "exact"
                    : `${worst.relRmsError.toExponential(2)} / ${worst.relRmsBound.toExponential(2)} (${worst.name})`;
            const fallbacks = list.filter((t) => t.fallbackFrom).length;
            lines.push(
                `  ${type.padEnd(5)} ${String(list.length).padStart(4)} tensors, ${formatBytes(list.reduce((a, t) => a + t.bytes, 0)).padStart(9)}` +
                    `  ${err}${checked > 0 ? `, ${checked} values checked` : ""}${fallbacks > 0 ? `, ${fallbacks} by shape fallback` : ""}`,
            );
        }
    }
    for (const w of result.warnings) lines.push(`warning: ${w}`);
    return lines.join("\n") + "\n";
}
