/**
 * Measurements in child processes: each benchmark case runs in a fresh Node process (the same compiled script with
 * `--child <case>`), so that its peak memory is that case's alone, and reports one `RESULT {json}` line on stdout.
 *
 * Memory figures come from the child's /proc/self/status (Linux): `VmHWM` (peak resident set) and, at the time of
 * reading, `RssAnon` (heap, compute buffers, KV cache) and `RssFile` (mapped model files that were touched);
 * `process.resourceUsage().maxRSS` is the portable fallback for the peak.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** Memory of this process, in bytes (NaN when /proc is not available). */
export interface MemorySample {
    /** Peak resident set size since start (or since {@link resetPeakRss}). */
    peakRss: number;
    rss: number;
    /** Anonymous resident memory: JS heap, native allocations, compute buffers, KV cache. */
    rssAnon: number;
    /** Resident pages of mapped files (model weights read through mmap). */
    rssFile: number;
}

function statusField(status: string, field: string): number {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return m ? Number(m[1]) * 1024 : NaN;
}

/** Reads this process's memory figures. */
export function memorySample(): MemorySample {
    try {
        const status = readFileSync("/proc/self/status", "utf8");
        return {
            peakRss: statusField(status, "VmHWM"),
            rss: statusField(status, "VmRSS"),
            rssAnon: statusField(status, "RssAnon"),
            rssFile: statusField(status, "RssFile"),
        };
    } catch {
        const rss = process.memoryUsage().rss;
        return { peakRss: process.resourceUsage().maxRSS * 1024, rss, rssAnon: NaN, rssFile: NaN };
    }
}

/**
 * Resets the peak RSS to the current RSS (Linux ≥ 4.0: `echo 5 > /proc/self/clear_refs`), so that a later
 * {@link memorySample} gives the peak of what ran in between. Returns false where that is not possible.
 */
export function resetPeakRss(): boolean {
    try {
        writeFileSync("/proc/self/clear_refs", "5");
        return true;
    } catch {
        return false;
    }
}

/**
 * CPU time of this process's children that have exited and been reaped (ffmpeg, ffprobe), in ms, from
 * /proc/self/stat `cutime + cstime` (clock ticks of 10 ms); NaN where unavailable.
 */
export function childrenCpuMs(): number {
    try {
        const stat = readFileSync("/proc/self/stat", "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        // fields[0] is field 3 (state); cutime and cstime are fields 16 and 17
        return (Number(fields[13]) + Number(fields[14])) * 10;
    } catch {
        return NaN;
    }
}

/** Prints the child's result (the parent reads the line starting with `RESULT `). */
export function reportResult(result: unknown): void {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** A child's result plus what the parent measured. */
export interface ChildOutcome<T> {
    result: T;
    /** Wall time of the whole child, including Node start-up and model loading, in ms. */
    wallMs: number;
}

/**
 * Runs `script --child <args…>` in a new Node process and returns its `RESULT` line. The child's stderr is passed
 * through (progress lines). Rejects when the child fails or prints no result.
 */
export async function runChild<T>(scriptUrl: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<ChildOutcome<T>> {
    const script = fileURLToPath(scriptUrl);
    const started = performance.now();
    const child = spawn(process.execPath, [...process.execArgv, script, "--child", ...args], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, ...options.env },
    });
    let stdout = "";
    let stderrTail = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
        process.stderr.write(d);
        stderrTail = (stderrTail + d).slice(-4000);
    });
    const code = await new Promise<number | null>((resolve, reject) => {
        child.on("error", reject);
        child.on("close", (c, signal) => resolve(signal ? -1 : c));
    });
    const wallMs = performance.now() - started;
    const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (code !== 0 || !line) {
        throw new Error(`child "${args.join(" ")}" failed (exit ${code}):\n${stderrTail}${stdout.slice(-2000)}`);
    }
    return { result: JSON.parse(line.slice(7)) as T, wallMs };
}
