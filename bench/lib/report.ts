/**
 * Command-line flags, machine description, tables and result files shared by the benchmarks.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { native, nativeAddonPath } from "../../lib/native/load.js";
import { RESULTS_DIR } from "./env.js";

/** Value of `--name value` on the command line, or `fallback`. */
export function argValue(name: string, fallback: string): string {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

/** `--name` as a number in [min, max] (an integer unless `fractional`); exits with a message otherwise. */
export function argNumber(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER, fractional = false): number {
    const text = argValue(name, String(fallback));
    const value = Number(text);
    if (text.trim() === "" || !Number.isFinite(value) || value < min || value > max || (!fractional && !Number.isInteger(value))) {
        usageError(`--${name} must be ${fractional ? "a number" : "an integer"} from ${min} to ${max}, not "${text}"`);
    }
    return value;
}

/** `--name a,b,…` where every item is one of `choices`; exits with a message otherwise. */
export function argList<T extends string>(name: string, fallback: readonly T[], choices: readonly T[]): T[] {
    const items = argValue(name, fallback.join(",")).split(",");
    for (const item of items) {
        if (!(choices as readonly string[]).includes(item)) usageError(`--${name}: "${item}" is not one of ${choices.join(", ")}`);
    }
    return items as T[];
}

/** `--name x` that must be one of `choices`. */
export function argChoice<T extends string>(name: string, fallback: T, choices: readonly T[]): T {
    const items = argList(name, [fallback], choices);
    if (items.length !== 1) usageError(`--${name} takes one of ${choices.join(", ")}`);
    return items[0]!;
}

/** Prints a command-line mistake and exits (before any benchmark work starts). */
export function usageError(message: string): never {
    process.stderr.write(`${message}\n`);
    process.exit(2);
}

/** True when `--name` is on the command line. */
export function hasFlag(name: string): boolean {
    return process.argv.includes(`--${name}`);
}

/** The machine a run was measured on. */
export interface MachineInfo {
    cpu: string;
    /** Logical CPUs the OS reports. */
    cpus: number;
    memoryGiB: number;
    /** 1-minute load average when the run started (other work on the machine skews timings). */
    loadAverage: number;
    node: string;
    os: string;
    /**
     * The native addon in use: the CPU variant it loaded, its GPU backend modules (loaded or not), the CPU features of
     * that variant (llama.cpp's system line). Results saved before the backends became modules have `gpuBackend`
     * instead of the first two.
     */
    addon: { path: string; cpuVariant?: string; gpuModules?: string[]; gpuBackend?: string; cpuFeatures: string[] };
}

/** Describes this machine and the addon in use (as `systemInfo()` does, without needing package.json next to lib/). */
export function machineInfo(): MachineInfo {
    const addon = native();
    const details = addon.systemInfo();
    const cpuLine = /CPU\s*:(.*)/.exec(details)?.[1] ?? "";
    const cpuFeatures = [...cpuLine.matchAll(/([A-Z0-9_]+)\s*=\s*1/g)].map((m) => m[1]!);
    let os = `${process.platform} ${process.arch}`;
    try {
        const release = readFileSync("/etc/os-release", "utf8");
        os = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(release)?.[1] ?? os;
        os += `, kernel ${execFileSync("uname", ["-r"], { encoding: "utf8" }).trim()}`;
    } catch {
        // keep the short form
    }
    return {
        cpu: cpus()[0]?.model.trim() ?? "unknown",
        cpus: cpus().length,
        memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
        loadAverage: Math.round(loadavg()[0]! * 100) / 100,
        node: process.version,
        os,
        addon: {
            path: nativeAddonPath() ?? "",
            cpuVariant: addon.backends.cpuVariant,
            gpuModules: addon.backends.modules.map((m) => `${m.name}${m.loaded ? "" : " (not loaded)"}`),
            cpuFeatures,
        },
    };
}

/** Renders rows as a Markdown table (the README's format). */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
    const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
    return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

/** Writes a run's figures to bench/.models/results/<name>-<timestamp>.json and returns the path. */
export async function saveResults(name: string, data: unknown): Promise<string> {
    await mkdir(RESULTS_DIR, { recursive: true });
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const path = join(RESULTS_DIR, `${name}-${stamp}.json`);
    await writeFile(path, `${JSON.stringify(data, null, 2)}\n`);
    return path;
}

/** Median of numbers (NaN for none). */
export function median(values: readonly number[]): number {
    if (values.length === 0) return NaN;
    const s = [...values].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Formatting helpers. */
export const fmt = {
    ms: (v: number): string => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(1)) : "–"),
    s: (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(1) : "–"),
    mib: (bytes: number): string => (Number.isFinite(bytes) ? (bytes / 2 ** 20).toFixed(0) : "–"),
    ratio: (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : "–"),
    pct: (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(1)} %` : "–"),
};

/** Progress line on stderr. */
export function log(line: string): void {
    process.stderr.write(`${line}\n`);
}
