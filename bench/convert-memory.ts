/**
 * Memory and time of `convertCheckpoint` on a checkpoint with the real VideoLLaMA3-2B shapes (random bf16 weights,
 * 3.9 GB): generates it once under bench/.models/, then converts it to f16 and q4_k_m, each conversion in its own
 * child process so that its peak RSS is the converter's alone. Peak RSS is taken from the child's
 * `process.resourceUsage().maxRSS` and, when /usr/bin/time exists, from `time -v` as an outside check.
 *
 *   npm run bench:build
 *   node bench/.models/js/bench/convert-memory.js [--shape 2b|7b] [--types f16,q4_k_m] [--verify sample|all|none] [--keep]
 * `--shape 7b` uses the 7B shapes (16 GB checkpoint, untied, vocab 152064).
 * Prints a table and a JSON line with every figure.
 */
import { MODELS_DIR } from "./lib/env.js";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { convertCheckpoint } from "../lib/convert/convert.js";
import type { VerifyMode } from "../lib/convert/convert.js";
import { TEXT_OUTPUT_TYPES, type TextOutputType } from "../lib/convert/quant-rules.js";
import { argChoice, argList } from "./lib/report.js";
import { REAL_2B_TEXT, REAL_2B_VISION, writeHfCheckpoint, type TextDims } from "../test/fixtures/hf-checkpoint.js";

const modelsDir = MODELS_DIR;

const SHAPES: Record<string, { text: TextDims; tied: boolean; shards: number }> = {
    "2b": { text: REAL_2B_TEXT, tied: true, shards: 1 },
    "7b": { text: { hidden: 3584, layers: 28, heads: 28, kvHeads: 4, ffn: 18944, vocab: 152064 }, tied: false, shards: 4 },
};

interface ChildReport {
    what: string;
    seconds: number;
    maxRssBytes: number;
    detail: Record<string, unknown>;
}

async function childMain(): Promise<void> {
    const [, , , what, ...rest] = process.argv;
    const started = performance.now();
    let detail: Record<string, unknown> = {};
    if (what === "generate") {
        const [dir, shape] = rest as [string, string];
        const s = SHAPES[shape]!;
        const ck = await writeHfCheckpoint({ dir, text: s.text, vision: REAL_2B_VISION, tied: s.tied, shards: s.shards });
        detail = { bytes: ck.bytes, tensors: ck.tensors.length };
    } else if (what === "convert") {
        const [input, outDir, type, verify] = rest as [string, string, TextOutputType, "all" | "sample" | "none"];
        let lastLog = 0;
        const r = await convertCheckpoint({
            input,
            outDir,
            type,
            mmprojType: "f16",
            force: true,
            verify,
            onProgress: (p) => {
                const now = performance.now();
                if (p.bytesTotal > 0 && now - lastLog > 10_000) {
                    lastLog = now;
                    process.stderr.write(
                        `  ${type}: ${((100 * p.bytesDone) / p.bytesTotal).toFixed(0)}% ${p.tensor ?? ""} rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB\n`,
                    );
                }
            },
        });
        const worst = new Map<string, number>();
        for (const t of r.tensors) worst.set(t.type, Math.max(worst.get(t.type) ?? 0, t.relRmsError));
        detail = {
            textModelBytes: r.textModelBytes,
            mmprojBytes: r.mmprojBytes,
            worstRelRmsByType: Object.fromEntries(worst),
            checkedValues: r.tensors.reduce((a, t) => a + t.checkedValues, 0),
        };
    } else {
        throw new Error(`unknown child task ${what}`);
    }
    const report: ChildReport = {
        what,
        seconds: (performance.now() - started) / 1000,
        maxRssBytes: process.resourceUsage().maxRSS * 1024, // kB on Linux and macOS
        detail,
    };
    process.stdout.write(`BENCH ${JSON.stringify(report)}\n`);
}

/** Runs this script as a child (same node flags, so the same TypeScript loader), under /usr/bin/time -v when available. */
async function runChild(args: string[]): Promise<ChildReport & { timeMaxRssBytes?: number; wallSeconds: number }> {
    const script = fileURLToPath(import.meta.url);
    const nodeArgs = [...process.execArgv, script, "--child", ...args];
    const useTime = existsSync("/usr/bin/time");
    const started = performance.now();
    const child = useTime ? spawn("/usr/bin/time", ["-v", process.execPath, ...nodeArgs]) : spawn(process.execPath, nodeArgs);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
        const s = d.toString();
        stderr += s;
        for (const line of s.split("\n")) if (line.startsWith("  ")) process.stderr.write(`${line}\n`);
    });
    const code: number = await new Promise((res) => child.on("close", (c) => res(c ?? 1)));
    const wallSeconds = (performance.now() - started) / 1000;
    const line = stdout.split("\n").find((l) => l.startsWith("BENCH "));
    if (code !== 0 || !line) throw new Error(`child ${args.join(" ")} failed (${code}):\n${stderr}`);
    const report = JSON.parse(line.slice(6)) as ChildReport;
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
    return { ...report, wallSeconds, ...(m ? { timeMaxRssBytes: Number(m[1]) * 1024 } : {}) };
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;

async function main(): Promise<void> {
    const shape = argChoice("shape", "2b", Object.keys(SHAPES));
    const types = argList<TextOutputType>("types", ["f16", "q4_k_m"], TEXT_OUTPUT_TYPES);
    const verify = argChoice<VerifyMode>("verify", "sample", ["sample", "all", "none"]);
    const keep = process.argv.includes("--keep");
    const ckDir = resolve(modelsDir, `videollama3-${shape}-random`);
    const outDir = resolve(modelsDir, `videollama3-${shape}-gguf`);
    await mkdir(modelsDir, { recursive: true });
    const complete = join(ckDir, ".complete");
    const rows: Array<Record<string, unknown>> = [];
    if (!existsSync(complete)) {
        process.stderr.write(`generating the ${shape} checkpoint in ${ckDir} ...\n`);
        const g = await runChild(["generate", ckDir, shape]);
        await writeFile(complete, JSON.stringify(g));
        rows.push({ step: `generate ${shape}`, ...g });
    } else {
        rows.push({ step: `generate ${shape} (cached)`, ...JSON.parse(await readFile(complete, "utf8")) });
    }
    for (const type of types) {
        process.stderr.write(`converting to ${type} ...\n`);
        const r = await runChild(["convert", ckDir, outDir, type, verify]);
        rows.push({ step: `convert ${type} (verify ${verify})`, ...r });
        if (!keep) await rm(outDir, { recursive: true, force: true });
    }
    const ckBytes = (rows[0]!.detail as { bytes: number }).bytes;
    process.stdout.write(`\ncheckpoint: ${shape} shapes, ${gib(ckBytes)} of bf16 tensor data\n`);
    process.stdout.write(`${"step".padEnd(30)} ${"wall".padStart(8)} ${"peak RSS".padStart(10)} ${"time -v".padStart(10)}  output\n`);
    for (const r of rows) {
        const d = r.detail as Record<string, number | undefined>;
        const output = d.textModelBytes ? `${gib(d.textModelBytes)} + mmproj ${mib(d.mmprojBytes ?? 0)}` : "";
        process.stdout.write(
            `${String(r.step).padEnd(30)} ${`${Number(r.wallSeconds ?? r.seconds).toFixed(1)} s`.padStart(8)} ${mib(Number(r.maxRssBytes)).padStart(10)} ` +
                `${r.timeMaxRssBytes ? mib(Number(r.timeMaxRssBytes)).padStart(10) : "".padStart(10)}  ${output}\n`,
        );
    }
    process.stdout.write(`RESULT ${JSON.stringify({ shape, verify, rows })}\n`);
}

if (process.argv[2] === "--child") await childMain();
else await main();
