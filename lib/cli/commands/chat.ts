/**
 * `vidllama chat -m model.gguf`: an interactive conversation in the terminal, streaming the answers.
 * Ctrl+C stops the answer being written; Ctrl+C again (or Ctrl+D, /exit) quits.
 *
 * @internal
 * @module
 */
import { createInterface } from "node:readline/promises";
import { Command } from "commander";
import { reportError } from "../shared.js";
import { addModelFlags, addSamplingFlags, loadModelWithProgress, promptOptionsFrom, type ModelFlags, type SamplingFlags } from "./generation-options.js";

interface ChatFlags extends ModelFlags, SamplingFlags {
    system?: string;
}

const HELP = "commands: /reset (forget the conversation), /save <file>, /load <file>, /exit";

export function chatCommand(): Command {
    const command = new Command("chat")
        .description("chat with a model in the terminal")
        .option("-s, --system <text>", "system prompt");
    addModelFlags(command);
    addSamplingFlags(command);
    return command.action(async (flags: ChatFlags) => {
        try {
            await using model = await loadModelWithProgress(flags);
            const session = await model.createSession({ systemPrompt: flags.system, contextSize: flags.contextSize, threads: flags.threads });
            const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
            let current: AbortController | undefined;
            rl.on("SIGINT", () => {
                if (current && !current.signal.aborted) current.abort();
                else rl.close();
            });
            if (process.stdin.isTTY) process.stderr.write(`${model.info.description} — ${HELP}\n`);
            for (;;) {
                let line: string;
                try {
                    line = await rl.question(process.stdin.isTTY ? "> " : "");
                } catch {
                    break; // closed (Ctrl+D / Ctrl+C / end of input)
                }
                const input = line.trim();
                if (input === "") continue;
                if (input === "/exit" || input === "/quit") break;
                if (input === "/reset") {
                    session.reset();
                    continue;
                }
                if (input === "/help") {
                    process.stderr.write(`${HELP}\n`);
                    continue;
                }
                const file = /^\/(save|load)\s+(.+)$/.exec(input);
                if (file) {
                    try {
                        if (file[1] === "save") await session.save(file[2]!, { overwrite: true });
                        else await session.load(file[2]!);
                        process.stderr.write(`${file[1] === "save" ? "saved to" : "loaded"} ${file[2]}\n`);
                    } catch (err) {
                        reportError(err);
                        process.exitCode = 0;
                    }
                    continue;
                }
                current = new AbortController();
                const stream = session.stream(input, { ...promptOptionsFrom(flags), signal: current.signal });
                for await (const chunk of stream) process.stdout.write(chunk);
                const result = await stream.result;
                process.stdout.write(result.stopReason === "abort" ? " [stopped]\n" : "\n");
                current = undefined;
            }
            rl.close();
        } catch (err) {
            reportError(err);
        }
    });
}
