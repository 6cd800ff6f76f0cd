/**
 * `vidllama inspect file.gguf`: metadata and a tensor summary of a GGUF file (text model or vision projector).
 *
 * @internal
 * @module
 */
import { Command } from "commander";
import { describeGguf } from "../../gguf/inspect.js";
import { readGguf } from "../../gguf/reader.js";
import { reportError } from "../shared.js";

export function inspectCommand(): Command {
    return new Command("inspect")
        .description("show a GGUF file's metadata and tensors")
        .argument("<files...>", "GGUF files")
        .option("--tensors", "list every tensor")
        .action(async (files: string[], flags: { tensors?: boolean }) => {
            for (const [i, path] of files.entries()) {
                try {
                    const file = await readGguf(path);
                    if (i > 0) process.stdout.write("\n");
                    process.stdout.write(describeGguf(file, { tensors: flags.tensors ? "all" : "summary" }) + "\n");
                } catch (err) {
                    reportError(err);
                }
            }
        });
}
