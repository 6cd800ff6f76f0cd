/**
 * `vidllama info`: what this installation is — native addon, backend modules, the CPU variant in use and why, every
 * device, where `gpu: "auto"` puts a model, CPU features and threads.
 *
 * @internal
 * @module
 */
import { Command } from "commander";
import { systemInfo, type SystemInfo } from "../../system.js";
import { reportError } from "../shared.js";

function formatBytes(n: number): string {
    return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : `${Math.round(n / 2 ** 20)} MiB`;
}

/** @internal */
export function formatInfo(info: SystemInfo): string {
    const { cpu, backends: b } = info;
    const how = cpu.source === "sysfs" ? "core ids in sysfs" : cpu.source === "sysctl" ? "sysctl" : "physical cores not known here: the logical count";
    const lines = [`vidllama ${info.version}`, `addon: ${info.addonPath}`, `backends in: ${b.dir}`];
    const variants = [...b.cpuVariants].sort((x, y) => y.score - x.score);
    lines.push(`cpu variant: ${b.cpuVariant || "none"} (${b.cpuReason})`);
    lines.push(`  found: ${variants.map((v) => (v.score > 0 ? `${v.name} (score ${v.score})` : `${v.name} (unsupported)`)).join(", ") || "none"}`);
    if (b.modules.length === 0) lines.push("gpu backends: none in this build");
    for (const m of b.modules) {
        lines.push(`gpu backend ${m.name}: ${m.loaded ? `loaded, ${m.devices} device${m.devices === 1 ? "" : "s"}` : `not loaded: ${m.error ?? "unknown reason"}`}`);
    }
    lines.push("devices:");
    for (const d of b.devices) {
        const memory = d.memoryTotal > 0 ? `, ${formatBytes(d.memoryTotal)}` : "";
        lines.push(`  ${d.name}: ${d.description} (${d.backend}, ${d.type}${memory})`);
    }
    lines.push(`gpu "auto": ${info.autoDevice.name} (${info.autoDevice.reason})`);
    lines.push(`cpus: ${cpu.logicalCpus} logical, ${cpu.physicalCores} physical cores (${how}); default threads: ${cpu.physicalCores}`);
    lines.push(info.details);
    return lines.join("\n") + "\n";
}

export function infoCommand(): Command {
    return new Command("info")
        .description("show the native build: backend modules, the CPU variant in use and why, devices, where gpu \"auto\" runs")
        .option("--json", "print systemInfo() as JSON")
        .action((flags: { json?: boolean }) => {
            try {
                const info = systemInfo();
                process.stdout.write(flags.json ? JSON.stringify(info, null, 2) + "\n" : formatInfo(info));
            } catch (err) {
                reportError(err);
            }
        });
}
