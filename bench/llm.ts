/**
 * The language model against llama.cpp's `llama-bench`, in the same run: prefill tokens/s of a 512-token prompt and
 * decode tokens/s of 128 tokens, at an empty context (and, with `--long`, at 8k tokens of context), for the text model
 * types users run (q8_0, q4_k_m), with the real VideoLLaMA3-2B (Qwen2-1.5B) shapes and random weights.
 *
 * - vidllama: `loadModel({ model, threads })` → `model.createSession({ contextSize, batchSize: 512 })` →
 *   `session.prompt(text)`; prefill = prompt tokens / `timings.prefillMs`, decode = `timings.tokensPerSecond`
 *   (greedy, the tokens after the first). The 512-token text is made of words and measured with `model.tokenize`;
 *   the chat template adds a few tokens, counted. The decode is a separate 2-word prompt ("Continue.", ~10 tokens
 *   with the template) and its 128 tokens, so that it runs at the depth itself, like llama-bench's tg128, not after
 *   the 512-token prefill. At depth 0 each measurement starts from a fresh session (after one warm-up repetition).
 *   At depth 8k a first turn of 8,192 tokens fills the cache once (it is also the warm-up); each measurement then goes
 *   back to that conversation with `session.setHistory` (the cache is kept up to where the conversations differ:
 *   the 8k turn stays, the previous measurement's turns are removed), as llama-bench restores its depth state.
 *   Median of the repetitions.
 * - llama-bench (bench/lib/llama-bench.ts, same source and GGML options as the addon):
 *   `-p 512 -n 128 -d 0|8192 -b 512 -ub 512 -t <threads> -r <reps>` (one process: a pp512 and a tg128 test, the
 *   depth filled once): mean tokens/s.
 *
 *   node bench/.models/js/bench/llm.js [--quick] [--long] [--types q8_0,q4_k_m] [--threads 2] [--reps 3] [--no-llama-cpp]
 * --quick: q8_0 only, 2 repetitions. --long adds the 8k-context cases (about 10 more minutes per type on 2 cores:
 * each side fills 8,192 tokens once). --long-reps (default 2) sets their repetitions.
 */
import { BENCH_GPU } from "./lib/env.js";
import { loadModel } from "../lib/Model.js";
import type { Session } from "../lib/Session.js";
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
    /** Cache position where each decode's generation started (the depth plus the decode prompt's few tokens). */
    decodeStartDepth: number[];
    /** Tokens in the cache below the measured turns (the first turn's prompt at depth 8k; 0 at depth 0). */
    depthTokens: number;
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
    await using model = await loadModel({ model: modelPath, threads, gpu: BENCH_GPU });
    const contextSize = depth + PROMPT_TOKENS + GEN_TOKENS + 256;
    const prompt = textOfTokens(model, PROMPT_TOKENS, 1);
    const filler = depth > 0 ? textOfTokens(model, depth, 2) : "";
    const result: OursResult = { type, depth, threads, promptTokens: [], prefillTokensPerSecond: [], generatedTokens: [], decodeTokensPerSecond: [], stopReasons: [], decodeStartDepth: [], depthTokens: 0 };
    // Each measurement starts from the same cache as llama-bench's: empty (a fresh session) at depth 0, the filled
    // conversation (restored with setHistory; the cache keeps its prefix) at depth 8k. The prefill is the 512-token
    // prompt; the decode is a 2-token prompt and 128 generated tokens, so it runs at the depth itself.
    const measure = async (base: () => Promise<Session>, rep: number) => {
        const preSession = await base();
        const pre = await preSession.prompt(prompt, { maxTokens: 1, temperature: 0 });
        const decSession = await base();
        const dec = await decSession.prompt("Continue.", { maxTokens: GEN_TOKENS, temperature: 0 });
        if (rep < 0) return; // warm-up
        const prefillRate = pre.promptTokens.length / (pre.timings.prefillMs / 1000);
        result.promptTokens.push(pre.promptTokens.length);
        result.prefillTokensPerSecond.push(prefillRate);
        result.generatedTokens.push(dec.tokens.length);
        result.decodeTokensPerSecond.push(dec.timings.tokensPerSecond);
        result.decodeStartDepth.push(dec.reusedTokens + dec.promptTokens.length);
        result.stopReasons.push(dec.stopReason);
        log(`    ${type} depth ${depth} rep ${rep + 1}/${reps}: prefill ${pre.promptTokens.length} tokens ${prefillRate.toFixed(1)} t/s (${pre.reusedTokens} reused), decode ${dec.tokens.length} tokens from position ${dec.reusedTokens + dec.promptTokens.length} ${dec.timings.tokensPerSecond.toFixed(2)} t/s (${dec.stopReason})`);
    };
    if (depth === 0) {
        const sessions: Session[] = [];
        const fresh = async () => {
            while (sessions.length) await sessions.pop()!.dispose();
            const s = await model.createSession({ contextSize, batchSize: BATCH, threads });
            sessions.push(s);
            return s;
        };
        for (let rep = -1; rep < reps; rep++) await measure(fresh, rep);
        while (sessions.length) await sessions.pop()!.dispose();
    } else {
        const session = await model.createSession({ contextSize, batchSize: BATCH, threads });
        const fill = await session.prompt(filler, { maxTokens: 1, temperature: 0 });
        result.depthTokens = fill.promptTokens.length;
        log(`    ${type}: filled ${fill.promptTokens.length} tokens in ${(fill.timings.prefillMs / 1000).toFixed(1)} s`);
        const filled = session.history;
        const restore = async () => {
            session.setHistory(filled);
            return session;
        };
        for (let rep = 0; rep < reps; rep++) await measure(restore, rep);
        await session.dispose();
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
    const longReps = argNumber("long-reps", 2, 1, 100);
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
            const r = depth === 0 ? reps : longReps;
            const ours = (await runChild<OursResult>(import.meta.url, ["ours", model, type, String(depth), String(threads), String(r)])).result;
            const row: Row = { type, depth, ours };
            if (bench) {
                log(`llama-bench, ${type}, depth ${depth} ...`);
                const tests = await runLlamaBench(bench, model, { depth, threads, reps: r, batch: BATCH, ubatch: BATCH, prompt: PROMPT_TOKENS, gen: GEN_TOKENS });
                row.llamaPrefill = tests.find((t) => t.nPrompt > 0 && t.nGen === 0);
                row.llamaDecode = tests.find((t) => t.nGen > 0 && t.nPrompt === 0);
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
