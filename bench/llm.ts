/**
 * The language model against llama.cpp's `llama-bench`, in the same run: prefill tokens/s of a 512-token prompt and
 * decode tokens/s of 128 tokens, at an empty context (and, with `--long`, at 8k tokens of context), for the text model
 * types users run (q8_0, q4_k_m), with the real VideoLLaMA3-2B (Qwen2-1.5B) shapes and random weights.
 *
 * - vidllama: `loadModel({ model, threads })` → `model.createSession({ contextSize, batchSize: 512 })` →
 *   `session.prompt(text)`; prefill = prompt tokens / `timings.prefillMs`, decode = `timings.tokensPerSecond`
 *   (greedy, the tokens after the first). The 512-token text is made of words and measured with `model.tokenize`;
 *   the chat template adds a few tokens, counted. At depth 8k, a first turn fills the context and the measured turn
 *   comes on top of it (the KV cache is reused, as llama-bench's `-d`). Each repetition runs on a fresh session after
 *   one warm-up prompt; median of the repetitions.
 * - llama-bench (bench/lib/llama-bench.ts, same source and GGML options as the addon):
 *   `-p 512 -n 0` and `-p 0 -n 128`, `-d 0|8192`, `-b 512 -ub 512 -t <threads> -r <reps>`: mean tokens/s.
 *
 *   node bench/.models/js/bench/llm.js [--quick] [--long] [--types q8_0,q4_k_m] [--threads 2] [--reps 3] [--no-llama-cpp]
 * --quick: q8_0 only, 2 repetitions. --long adds the 8k-context cases (about 10 more minutes per type on 2 cores).
 */
import "./lib/env.js";
import { loadModel } from "../lib/Model.js";
import { reportResult, runChild } from "./lib/child.js";
import { ensureLlamaBench, runLlamaBench, type LlamaBenchResult } from "./lib/llama-bench.js";
import { ensureTextModel, type TextType } from "./lib/models.js";
import { argList, argNumber, fmt, hasFlag, log, machineInfo, markdownTable, median, saveResults } from "./lib/report.js";

const PROMPT_TOKENS = 512;
const GEN_TOKENS = 128;
const LONG_DEPTH = 8192;
const BATCH = 512;

interface OursResult {
    type: string;
    depth: number;
    threads: number;
    /** Prompt tokens evaluated per repetition (the text plus the chat template's few tokens). */
    promptTokens: number[];
    prefillTokensPerSecond: number[];
    /** Tokens generated per repetition (the decode rate counts the tokens after the first). */
    generatedTokens: number[];
    decodeTokensPerSecond: number[];
    stopReasons: string[];
}

/** A text of about `tokens` tokens of the model's tokenizer (words cycled from a fixed list). */
function textOfTokens(model: { tokenize(text: string): number[] }, tokens: number, seed: number): string {
    const words = "river mountain quickly seven yellow table window forest silver gentle market thunder pencil morning ocean garden".split(" ");
    const parts: string[] = [];
    let i = seed;
    while (model.tokenize(parts.join(" ")).length < tokens) {
        for (let k = 0; k < 16; k++) parts.push(words[(i++ * 7) % words.length]!);
    }
    while (parts.length > 1 && model.tokenize(parts.join(" ")).length > tokens) parts.pop();
    return parts.join(" ");
}

async function oursChild(modelPath: string, type: string, depth: number, threads: number, reps: number): Promise<void> {
    await using model = await loadModel({ model: modelPath, threads, gpu: false });
    const contextSize = depth + PROMPT_TOKENS + GEN_TOKENS + 256;
    const prompt = textOfTokens(model, PROMPT_TOKENS, 1);
    const filler = depth > 0 ? textOfTokens(model, depth, 2) : "";
    const result: OursResult = { type, depth, threads, promptTokens: [], prefillTokensPerSecond: [], generatedTokens: [], decodeTokensPerSecond: [], stopReasons: [] };
    for (let rep = -1; rep < reps; rep++) {
        const session = await model.createSession({ contextSize, batchSize: BATCH, threads });
        if (filler) await session.prompt(filler, { maxTokens: 1, temperature: 0 });
        const pre = await session.prompt(prompt, { maxTokens: 1, temperature: 0 });
        // Decode at the same depth: a short question on top of what is in the cache.
        const dec = await session.prompt("Continue.", { maxTokens: GEN_TOKENS, temperature: 0 });
        await session.dispose();
        if (rep < 0) continue; // warm-up
        const prefillRate = pre.promptTokens.length / (pre.timings.prefillMs / 1000);
        result.promptTokens.push(pre.promptTokens.length);
        result.prefillTokensPerSecond.push(prefillRate);
        result.generatedTokens.push(dec.tokens.length);
        result.decodeTokensPerSecond.push(dec.timings.tokensPerSecond);
        result.stopReasons.push(dec.stopReason);
        log(`    ${type} depth ${depth} rep ${rep + 1}/${reps}: prefill ${pre.promptTokens.length} tokens ${prefillRate.toFixed(1)} t/s, decode ${dec.tokens.length} tokens ${dec.timings.tokensPerSecond.toFixed(2)} t/s (${dec.stopReason})`);
    }
    reportResult(result);
}

interface Row {
    type: TextType;
    depth: number;
    ours: OursResult;
    llamaPrefill?: LlamaBenchResult;
    llamaDecode?: LlamaBenchResult;
}

async function main(): Promise<void> {
    const quick = hasFlag("quick");
    const long = hasFlag("long");
    const threads = argNumber("threads", 2, 1, 1024);
    const reps = argNumber("reps", quick ? 2 : 3, 1, 100);
    const types = argList<TextType>("types", quick ? ["q8_0"] : ["q8_0", "q4_k_m"], ["q8_0", "q4_k_m", "f16"]);
    const depths = long ? [0, LONG_DEPTH] : [0];
    const started = new Date();
    const machine = machineInfo();
    log(`machine: ${machine.cpu}, ${machine.cpus} CPUs, load ${machine.loadAverage}; threads ${threads}, reps ${reps}`);
    let bench: string | undefined;
    let skipped: string | undefined;
    if (!hasFlag("no-llama-cpp")) {
        const b = ensureLlamaBench(log);
        if ("path" in b) bench = b.path;
        else log(`llama-bench peer skipped: ${(skipped = b.skipped)}`);
    }
    const rows: Row[] = [];
    for (const type of types) {
        const model = await ensureTextModel(type);
        for (const depth of depths) {
            log(`vidllama Session, ${type}, depth ${depth} ...`);
            const ours = (await runChild<OursResult>(import.meta.url, ["ours", model, type, String(depth), String(threads), String(reps)])).result;
            const row: Row = { type, depth, ours };
            if (bench) {
                log(`llama-bench, ${type}, depth ${depth} ...`);
                const common = { depth, threads, reps, batch: BATCH, ubatch: BATCH };
                row.llamaPrefill = await runLlamaBench(bench, model, { ...common, prompt: PROMPT_TOKENS, gen: 0 });
                row.llamaDecode = await runLlamaBench(bench, model, { ...common, prompt: 0, gen: GEN_TOKENS });
            }
            rows.push(row);
        }
    }
    const table = markdownTable(
        ["text model", "context", "vidllama prefill t/s", "llama-bench pp512 t/s", "ratio", "vidllama decode t/s", "llama-bench tg128 t/s", "ratio"],
        rows.map((r) => {
            const pre = median(r.ours.prefillTokensPerSecond);
            const dec = median(r.ours.decodeTokensPerSecond);
            const lp = r.llamaPrefill?.avgTs;
            const ld = r.llamaDecode?.avgTs;
            return [
                r.type,
                r.depth === 0 ? "empty" : `${r.depth} tokens`,
                `${pre.toFixed(1)} (${median(r.ours.promptTokens)} tokens)`,
                lp ? `${lp.toFixed(1)} ± ${r.llamaPrefill!.stddevTs.toFixed(1)}` : skipped ? "skipped" : "–",
                lp ? fmt.ratio(pre / lp) : "–",
                `${dec.toFixed(2)} (${median(r.ours.generatedTokens)} tokens)`,
                ld ? `${ld.toFixed(2)} ± ${r.llamaDecode!.stddevTs.toFixed(2)}` : skipped ? "skipped" : "–",
                ld ? fmt.ratio(dec / ld) : "–",
            ];
        }),
    );
    const saved = await saveResults("llm", { benchmark: "llm", date: started.toISOString(), machine, threads, reps, llamaBench: bench, skipped, rows });
    process.stdout.write(`\n${table}\n\nresults: ${saved}\n`);
}

if (process.argv[2] === "--child") {
    const [, , , kind, ...rest] = process.argv;
    if (kind === "ours") await oursChild(rest[0]!, rest[1]!, Number(rest[2]), Number(rest[3]), Number(rest[4]));
    else throw new Error(`unknown child case ${kind}`);
} else {
    await main();
}
