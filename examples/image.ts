/**
 * Ask a question about an image.
 *
 *   node image.js <model.gguf> <mmproj.gguf> <image> ["question"] [--max-tokens N]
 *
 * The answer goes to stdout; the image's visual tokens and the timings to stderr.
 */
import { parseArgs } from "node:util";
import { Image, loadModel } from "vidllama";

const USAGE = 'usage: image <model.gguf> <mmproj.gguf> <image> ["question"] [--max-tokens N]';

function usage(problem?: string): never {
    if (problem) console.error(problem);
    console.error(USAGE);
    process.exit(2);
}

function parse() {
    try {
        return parseArgs({ allowPositionals: true, options: { "max-tokens": { type: "string", default: "256" } } });
    } catch (err) {
        usage((err as Error).message);
    }
}

const args = parse();
const [modelPath, mmprojPath, imagePath, question = "What is in this image?"] = args.positionals;
const maxTokens = Number(args.values["max-tokens"]);
if (!modelPath || !mmprojPath || !imagePath) usage();
if (!Number.isInteger(maxTokens) || maxTokens < 0) usage(`--max-tokens must be a whole number, got "${args.values["max-tokens"]}"`);

await using model = await loadModel({ model: modelPath, mmproj: mmprojPath });
const session = await model.createSession();

const answer = await session.prompt([Image.fromFile(imagePath), question], { temperature: 0, maxTokens });
console.log(answer.text);

const image = answer.media[0];
if (image?.kind === "image") console.error(`image: ${image.tokens} visual tokens (${image.grid.width}×${image.grid.height} grid)`);
console.error(`[${answer.stopReason}] prompt ${answer.promptTokens.length} tokens in ${answer.timings.promptMs.toFixed(0)} ms, answer ${answer.tokens.length} tokens`);
