#!/usr/bin/env node
/**
 * The `vidllama` command line.
 *
 * @internal
 * @module
 */
import { Command } from "commander";
import { packageVersion } from "../system.js";
import { askCommand } from "./commands/ask.js";
import { chatCommand } from "./commands/chat.js";
import { convertCommand } from "./commands/convert.js";
import { embedCommand } from "./commands/embed.js";
import { infoCommand } from "./commands/info.js";
import { inspectCommand } from "./commands/inspect.js";
import { listCommand, pullCommand, rmCommand } from "./commands/models.js";
import { streamCommand } from "./commands/stream.js";

const program = new Command("vidllama")
    .description("Ask questions about images, video files and live video on your own machine")
    .version(packageVersion())
    .showHelpAfterError();

program.addCommand(askCommand());
program.addCommand(chatCommand());
program.addCommand(convertCommand());
program.addCommand(streamCommand());
program.addCommand(embedCommand());
program.addCommand(pullCommand());
program.addCommand(listCommand());
program.addCommand(rmCommand());
program.addCommand(inspectCommand());
program.addCommand(infoCommand());

await program.parseAsync(process.argv);
