/**
 * `vidllama info`: what this installation is — native addon, GPU backend, CPU features, devices.
 *
 * @internal
 * @module
 */
import { Command } from "commander";
import { systemInfo } from "../../system.js";
import { reportError } from "../shared.js";

export function infoCommand(): Command {
    return new Command("info").description("show the native build, GPU backend and CPU features in use").action(() => {
        try {
            const info = systemInfo();
            const { cpu } = info;
            const how = cpu.source === "sysfs" ? "core ids in sysfs" : cpu.source === "sysctl" ? "sysctl" : "physical cores not known here: the logical count";
            process.stdout.write(
                `vidllama ${info.version}\naddon: ${info.addonPath}\ngpu backend: ${info.gpuBackend}\n` +
                    `cpus: ${cpu.logicalCpus} logical, ${cpu.physicalCores} physical cores (${how}); default threads: ${cpu.physicalCores}\n${info.details}\n`,
            );
        } catch (err) {
            reportError(err);
        }
    });
}
