// The addon is context-aware: it loads and runs in worker_threads, while the main thread also uses it.
import { Worker } from "node:worker_threads";
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { expect, it } from "vitest";
import { loadModel } from "../../lib/index.js";
import { ensureTinyQwen2 } from "../fixtures/tiny-qwen2.js";

it("runs sessions in two worker threads and the main thread at once, with identical results", async () => {
    const modelPath = await ensureTinyQwen2();
    // The worker imports the compiled library (global setup builds dist/).
    const entry = pathToFileURL(join(process.cwd(), "dist", "index.js")).href;
    const source = `
        import { workerData, parentPort } from "node:worker_threads";
        const { loadModel } = await import(${JSON.stringify(entry)});
        const model = await loadModel({ model: workerData.modelPath });
        const session = await model.createSession();
        const result = await session.prompt("Hello from a worker", { temperature: 0, maxTokens: 16 });
        await model.dispose();
        parentPort.postMessage(result.tokens);
    `;
    const runWorker = () =>
        new Promise<number[]>((resolve, reject) => {
            const worker = new Worker(source, { eval: true, workerData: { modelPath } });
            worker.once("message", resolve);
            worker.once("error", reject);
            worker.once("exit", (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
        });
    const model = await loadModel({ model: modelPath });
    const main = (await model.createSession()).prompt("Hello from a worker", { temperature: 0, maxTokens: 16 });
    const [a, b, m] = await Promise.all([runWorker(), runWorker(), main]);
    expect(a).toEqual(m.tokens);
    expect(b).toEqual(m.tokens);
    expect(m.tokens.length).toBeGreaterThan(0);
    await model.dispose();
});
