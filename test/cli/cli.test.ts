// The CLI as a user runs it: node dist/cli/index.js (global setup compiles dist/).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadModel } from "../../lib/index.js";
import { ensureTinyQwen2 } from "../fixtures/tiny-qwen2.js";

const cli = join(process.cwd(), "dist", "cli", "index.js");
let modelPath: string;

function run(args: string[], input?: string) {
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", input, timeout: 120_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
    modelPath = await ensureTinyQwen2();
});

describe("vidllama ask", () => {
    it("--json gives text, generated ids, the exact prompt ids, stopReason and timings", async () => {
        const r = run(["ask", "-m", modelPath, "--temperature", "0", "--max-tokens", "12", "--json", "hi"]);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        const out = JSON.parse(r.stdout) as { text: string; tokens: number[]; promptTokens: number[]; stopReason: string; timings: Record<string, number> };
        expect(Object.keys(out).sort()).toEqual(["promptTokens", "stopReason", "text", "timings", "tokens"]);
        // the same question through the library gives the same ids
        const model = await loadModel({ model: modelPath });
        const lib = await (await model.createSession()).prompt("hi", { temperature: 0, maxTokens: 12 });
        expect(out.promptTokens).toEqual(lib.promptTokens);
        expect(out.tokens).toEqual(lib.tokens);
        expect(out.text).toBe(lib.text);
        expect(out.stopReason).toBe(lib.stopReason);
        expect(out.timings.promptMs).toBeGreaterThan(0);
        // without --system the prompt carries no system text of ours; with it, it does
        const withSystem = JSON.parse(run(["ask", "-m", modelPath, "--temperature", "0", "-n", "1", "--json", "--system", "Answer like a pirate.", "hi"]).stdout) as { promptTokens: number[] };
        expect(model.detokenize(withSystem.promptTokens)).toContain("Answer like a pirate.");
        expect(model.detokenize(out.promptTokens)).not.toContain("pirate");
        await model.dispose();
    });

    it("streams plain text without --json", () => {
        const r = run(["ask", "-m", modelPath, "--temperature", "0", "-n", "8", "hi"]);
        expect(r.status).toBe(0);
        expect(r.stdout.length).toBeGreaterThan(1);
    });

    it("fails clearly on a missing model and on bad flags", () => {
        const missing = run(["ask", "-m", "/nonexistent/model.gguf", "hi"]);
        expect(missing.status).toBe(1);
        expect(missing.stderr).toMatch(/Cannot load \/nonexistent\/model.gguf: no such file/);
        const bad = run(["ask", "-m", modelPath, "--temperature", "hot", "hi"]);
        expect(bad.status).not.toBe(0);
        expect(bad.stderr).toMatch(/--temperature must be a number/);
    });
});

describe("vidllama chat", () => {
    it("answers lines from stdin and obeys /reset and /exit", () => {
        const r = run(["chat", "-m", modelPath, "--temperature", "0", "-n", "6"], "hello\n/reset\nhello\n/exit\n");
        expect(r.status).toBe(0);
        const lines = r.stdout.split("\n").filter((l) => l.length > 0);
        expect(lines.length).toBeGreaterThanOrEqual(2);
        expect(lines[0]).toBe(lines[1]); // same question after /reset → same greedy answer
    });
});

describe("vidllama inspect and info", () => {
    it("shows metadata and tensors", () => {
        const r = run(["inspect", modelPath]);
        expect(r.status).toBe(0);
        expect(r.stdout).toContain("qwen2");
        expect(r.stdout).toContain("token_embd.weight");
    });

    it("shows the backends, the CPU variant in use and why, the devices and the CPU features", () => {
        const r = run(["info"]);
        expect(r.status).toBe(0);
        expect(r.stdout).toMatch(/cpu variant: \S+ \((the highest-scoring variant this CPU supports|forced by VIDLLAMA_CPU_VARIANT=\S+)\)/);
        expect(r.stdout).toMatch(/devices:\n  CPU: /);
        expect(r.stdout).toMatch(/gpu "auto": \S+ \(/);
        expect(r.stdout).toMatch(/CPU :/);
    });
});
