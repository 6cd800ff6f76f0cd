/**
 * Runs once before the test files: makes sure the pinned llama.cpp source is present (the fixtures take the real
 * Qwen2 vocabulary from its models/ggml-vocab-qwen2.gguf) and that dist/ is compiled from the current lib/.
 */
// @ts-expect-error -- plain ESM build script without type declarations
import { ensureLlamaSource } from "../scripts/llama-source.mjs";

import { execFileSync } from "node:child_process";

export default async function setup(): Promise<void> {
    await (ensureLlamaSource as (o: { quiet: boolean }) => Promise<string>)({ quiet: true });
    // The CLI and worker_threads tests run the compiled package (dist/), as users do.
    execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], { stdio: "inherit" });
}
