/**
 * Generates (once; later runs reuse them) the random-weight GGUF files with the real VideoLLaMA3-2B shapes that the
 * benchmarks use: mmproj f16, text model q8_0 and f16 (see bench/lib/models.ts). The benchmarks call the same code
 * themselves; running this first keeps generation out of a benchmark's wall time.
 *
 * `--video-llava` generates the Video-LLaVA-7B-shape files instead (bench/lib/video-llava-models.ts: text q8_0,
 * mmproj f16, the LLaVA-1.5-style peer projector).
 *
 *   node bench/.models/js/bench/prepare-models.js [--types q8_0,f16] [--llama-cpp] | --video-llava
 */
import "./lib/env.js";
import { ensureMmproj, ensureQwen2vlMmproj, ensureTextModel, TEXT_TYPES, type TextType } from "./lib/models.js";
import { argList, hasFlag } from "./lib/report.js";
import { ensureLlavaStyleMmproj, ensureVideoLlavaMmproj, ensureVideoLlavaTextModel } from "./lib/video-llava-models.js";

if (hasFlag("video-llava")) {
    process.stdout.write(`${await ensureVideoLlavaMmproj()}\n${await ensureLlavaStyleMmproj()}\n${await ensureVideoLlavaTextModel()}\n`);
    process.exit(0);
}
const types = argList<TextType>("types", TEXT_TYPES, TEXT_TYPES);
process.stdout.write(`${await ensureMmproj()}\n`);
for (const t of types) process.stdout.write(`${await ensureTextModel(t)}\n`);
if (process.argv.includes("--llama-cpp")) process.stdout.write(`${await ensureQwen2vlMmproj()}\n`);
