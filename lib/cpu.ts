/**
 * How many threads inference uses by default: one per physical core this process may run on.
 *
 * ggml's CPU kernels synchronize all their threads at every graph node, so the slowest thread sets the pace: a
 * second hyper-thread on a busy core, or an efficiency core beside performance cores, slows a graph down instead of
 * speeding it up (llama.cpp defaults to physical cores for the same reason). The rule lives here only; the native
 * layer is always given an explicit count.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";

/** What {@link cpuTopology} found. */
export interface CpuTopology {
    /** Logical CPUs this process may use (`os.availableParallelism()`: the affinity mask where the OS has one). */
    logicalCpus: number;
    /** Physical cores among them (the default thread count). Equal to `logicalCpus` when it could not be found out. */
    physicalCores: number;
    /**
     * Where `physicalCores` comes from: `"sysfs"` (Linux: distinct core ids of the allowed CPUs), `"sysctl"` (macOS:
     * performance cores, `hw.perflevel0.physicalcpu`, else `hw.physicalcpu`), or `"logical"` (not known here, e.g.
     * Windows: the logical count is used).
     */
    source: "sysfs" | "sysctl" | "logical";
}

/** @internal Inputs of the Linux rule, replaceable in tests. */
export interface LinuxTopologySource {
    /** Contents of /proc/self/status (its `Cpus_allowed_list` line is the affinity mask). */
    procStatus: string;
    /** The directory holding cpu0/, cpu1/, … (normally /sys/devices/system/cpu). */
    sysCpuDir: string;
}

/** Parses a kernel CPU list such as `0-3,8,10-11`; undefined when malformed. */
export function parseCpuList(list: string): number[] | undefined {
    const out: number[] = [];
    for (const part of list.trim().split(",")) {
        const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
        if (!m) return undefined;
        const a = Number(m[1]);
        const b = m[2] === undefined ? a : Number(m[2]);
        if (b < a || b - a > 65536) return undefined;
        for (let i = a; i <= b; i++) out.push(i);
    }
    return out;
}

/**
 * @internal Linux: the physical cores among the CPUs this process may run on — distinct (package, core id) pairs of
 * the allowed CPUs in sysfs; undefined when sysfs does not say.
 */
export function linuxPhysicalCores(source: LinuxTopologySource): number | undefined {
    const allowedLine = /^Cpus_allowed_list:\s*(.+)$/m.exec(source.procStatus)?.[1];
    const allowed = allowedLine ? parseCpuList(allowedLine) : undefined;
    if (!allowed || allowed.length === 0) return undefined;
    const cores = new Set<string>();
    for (const cpu of allowed) {
        const dir = join(source.sysCpuDir, `cpu${cpu}`, "topology");
        let core: string;
        let pkg: string;
        try {
            core = readFileSync(join(dir, "core_id"), "utf8").trim();
            pkg = readFileSync(join(dir, "physical_package_id"), "utf8").trim();
        } catch {
            // A CPU in the mask that sysfs does not describe (offline, or no sysfs in this container): not knowable.
            return undefined;
        }
        cores.add(`${pkg}:${core}`);
    }
    return cores.size;
}

function macPhysicalCores(): number | undefined {
    for (const key of ["hw.perflevel0.physicalcpu", "hw.physicalcpu"]) {
        try {
            const n = Number(execFileSync("sysctl", ["-n", key], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 2000 }).trim());
            if (Number.isInteger(n) && n > 0) return n;
        } catch {
            // key absent (Intel Macs have no perflevels): try the next
        }
    }
    return undefined;
}

let cached: CpuTopology | undefined;

/** This machine's CPUs as the default thread count sees them (computed once per process). */
export function cpuTopology(): CpuTopology {
    if (cached) return cached;
    const logicalCpus = Math.max(1, availableParallelism());
    let physical: number | undefined;
    let source: CpuTopology["source"] = "logical";
    if (process.platform === "linux") {
        try {
            physical = linuxPhysicalCores({ procStatus: readFileSync("/proc/self/status", "utf8"), sysCpuDir: "/sys/devices/system/cpu" });
            if (physical !== undefined) source = "sysfs";
        } catch {
            // no /proc: fall through to the logical count
        }
    } else if (process.platform === "darwin") {
        physical = macPhysicalCores();
        if (physical !== undefined) source = "sysctl";
    }
    cached = { logicalCpus, physicalCores: Math.min(logicalCpus, physical ?? logicalCpus), source };
    return cached;
}

/** The default number of inference threads: {@link cpuTopology}'s physical cores. */
export function defaultThreadCount(): number {
    return cpuTopology().physicalCores;
}
