// The default thread count: physical cores of the CPUs this process may run on (lib/cpu.ts).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cpuTopology, systemInfo } from "../../lib/index.js";
import { linuxPhysicalCores, parseCpuList } from "../../lib/cpu.js";

const dirs: string[] = [];
afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fake /sys/devices/system/cpu: cpu<i> → [package, core]. */
function fakeSysfs(cpus: Array<[number, number]>): string {
    const root = mkdtempSync(join(tmpdir(), "vidllama-sysfs-"));
    dirs.push(root);
    cpus.forEach(([pkg, core], i) => {
        const dir = join(root, `cpu${i}`, "topology");
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "core_id"), `${core}\n`);
        writeFileSync(join(dir, "physical_package_id"), `${pkg}\n`);
    });
    return root;
}

const status = (list: string) => `Name:\tnode\nCpus_allowed:\tff\nCpus_allowed_list:\t${list}\nMems_allowed_list:\t0\n`;

describe("parseCpuList", () => {
    it("reads ranges and single CPUs", () => {
        expect(parseCpuList("0-3,8,10-11")).toEqual([0, 1, 2, 3, 8, 10, 11]);
        expect(parseCpuList("5")).toEqual([5]);
    });
    it("refuses malformed lists", () => {
        for (const bad of ["", "a", "3-1", "1,,2", "0-"]) expect(parseCpuList(bad)).toBeUndefined();
    });
});

describe("linuxPhysicalCores", () => {
    // 8 logical CPUs, two hyper-threads per core: cpu i and cpu i+4 share core i (the usual Intel numbering).
    const smt = fakeSysfs([[0, 0], [0, 1], [0, 2], [0, 3], [0, 0], [0, 1], [0, 2], [0, 3]]);

    it("counts a core once however many of its hyper-threads are allowed", () => {
        expect(linuxPhysicalCores({ procStatus: status("0-7"), sysCpuDir: smt })).toBe(4);
        expect(linuxPhysicalCores({ procStatus: status("0,4"), sysCpuDir: smt })).toBe(1);
        expect(linuxPhysicalCores({ procStatus: status("0-3"), sysCpuDir: smt })).toBe(4);
        expect(linuxPhysicalCores({ procStatus: status("2,6,3"), sysCpuDir: smt })).toBe(2);
    });

    it("tells cores of different packages apart (core ids repeat per socket)", () => {
        const twoSockets = fakeSysfs([[0, 0], [0, 1], [1, 0], [1, 1]]);
        expect(linuxPhysicalCores({ procStatus: status("0-3"), sysCpuDir: twoSockets })).toBe(4);
    });

    it("says it does not know when sysfs does not describe an allowed CPU, or there is no mask", () => {
        expect(linuxPhysicalCores({ procStatus: status("0-9"), sysCpuDir: smt })).toBeUndefined();
        expect(linuxPhysicalCores({ procStatus: "Name:\tnode\n", sysCpuDir: smt })).toBeUndefined();
    });
});

describe("cpuTopology on this machine", () => {
    it("is between 1 and the logical CPUs, and matches lscpu's core count of the allowed CPUs", () => {
        const topo = cpuTopology();
        expect(topo.logicalCpus).toBe(availableParallelism());
        expect(topo.physicalCores).toBeGreaterThanOrEqual(1);
        expect(topo.physicalCores).toBeLessThanOrEqual(topo.logicalCpus);
        if (process.platform !== "linux") return;
        // Containers without CPU topology in sysfs fall back to the logical count, and say so.
        if (!existsSync("/sys/devices/system/cpu/cpu0/topology/core_id")) {
            expect(topo).toMatchObject({ source: "logical", physicalCores: topo.logicalCpus });
            return;
        }
        expect(topo.source).toBe("sysfs");
        // Independent count: util-linux's lscpu (CPU,CORE,SOCKET per logical CPU) restricted to the affinity mask.
        const lscpu = spawnSync("lscpu", ["-p=CPU,CORE,SOCKET"], { encoding: "utf8" });
        if (lscpu.status !== 0) return;
        const allowed = new Set(parseCpuList(/^Cpus_allowed_list:\s*(.+)$/m.exec(readFileSync("/proc/self/status", "utf8"))![1]!)!);
        const cores = new Set(
            lscpu.stdout
                .split("\n")
                .filter((l) => /^\d/.test(l))
                .map((l) => l.split(","))
                .filter(([cpu]) => allowed.has(Number(cpu)))
                .map(([, core, socket]) => `${socket}:${core}`),
        );
        expect(topo.physicalCores).toBe(cores.size);
    });

    it("is what systemInfo() and `vidllama info` report as the default", () => {
        const topo = cpuTopology();
        expect(systemInfo().cpu).toEqual(topo);
        const out = execFileSync(process.execPath, [join(process.cwd(), "dist", "cli", "index.js"), "info"], { encoding: "utf8" });
        expect(out).toContain(`cpus: ${topo.logicalCpus} logical, ${topo.physicalCores} physical cores`);
        expect(out).toContain(`default threads: ${topo.physicalCores}`);
    });
});
