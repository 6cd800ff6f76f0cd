/**
 * `vidllama chat -m model.gguf`: an interactive conversation in the terminal, streaming the answers.
 * Ctrl+C stops the answer being written; Ctrl+C again (or Ctrl+D, /exit) quits.
 *
 * @internal
 * @module
 */
import { createInterface } from "node:readline";
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
            const interactive = process.stdin.isTTY === true;
            if (interactive) process.stderr.write(`${model.info.description} — ${HELP}\n`);
            rl.setPrompt("> ");
            if (interactive) rl.prompt();
            // Lines are consumed in order from the interface's own buffer, so piped input is never lost.
            for await (const line of rl) {
                const input = line.trim();
                if (input === "/exit" || input === "/quit") break;
                if (input === "/reset") session.reset();
                else if (input === "/help") process.stderr.write(`${HELP}\n`);
                else if (/^\/(save|load)\s+\S/.test(input)) {
                    const [, verb, file] = /^\/(save|load)\s+(.+)$/.exec(input)!;
                    try {
                        if (verb === "save") await session.save(file!, { overwrite: true });
                        else await session.load(file!);
                        process.stderr.write(`${verb === "save" ? "saved to" : "loaded"} ${file}\n`);
                    } catch (err) {
                        reportError(err);
                        process.exitCode = 0; // a failed command does not end the chat
                    }
                } else if (input !== "") {
                    current = new AbortController();
                    const stream = session.stream(input, { ...promptOptionsFrom(flags), signal: current.signal });
                    for await (const chunk of stream) process.stdout.write(chunk);
                    const result = await stream.result;
                    process.stdout.write(result.stopReason === "abort" ? " [stopped]\n" : "\n");
                    current = undefined;
                }
                if (interactive) rl.prompt();
            }
            rl.close();
        } catch (err) {
            reportError(err);
        }
    });
}
