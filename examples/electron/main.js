// The main process owns the model and the Stream; the renderer captures the camera and sends frames here.
//
//   npm start -- <model.gguf> <mmproj.gguf>      (or VIDLLAMA_MODEL / VIDLLAMA_MMPROJ)
import { app, BrowserWindow, ipcMain, systemPreferences } from "electron";
import { fileURLToPath } from "node:url";
import { loadModel } from "vidllama";

const [modelPath = process.env.VIDLLAMA_MODEL, mmprojPath = process.env.VIDLLAMA_MMPROJ] = process.argv.slice(app.isPackaged ? 1 : 2);
if (!modelPath || !mmprojPath) {
    console.error("usage: npm start -- <model.gguf> <mmproj.gguf>   (or set VIDLLAMA_MODEL and VIDLLAMA_MMPROJ)");
    process.exit(2);
}

let model;
let stream;
let window;
/** Added to the renderer's timestamps so that they keep increasing when the page reloads (its clock restarts). */
let offset = 0;
let lastTimestamp = -Infinity;

function send(channel, value) {
    if (window && !window.isDestroyed()) window.webContents.send(channel, value);
}

function status() {
    const s = stream.stats();
    const kept = s.tokensTotal > 0 ? Math.round((s.tokensKept / s.tokensTotal) * 100) : 0;
    send("vidllama:status", `${s.framesInCache} frames in the cache (${s.framesDropped} dropped, ${s.framesEvicted} evicted) · ${kept}% of visual tokens kept · KV ${s.kvTokens}/${s.contextSize}`);
}

// A frame from the renderer: RGBA pixels as an ArrayBuffer (binary over IPC, no JSON), and the capture time on the
// camera track's own timeline. A slow machine drops the oldest waiting frames instead of falling behind.
ipcMain.on("vidllama:frame", (_event, frame) => {
    if (!stream || stream.closed) return;
    if (frame.timestamp + offset < lastTimestamp) offset = lastTimestamp - frame.timestamp;
    lastTimestamp = frame.timestamp + offset;
    stream
        .pushFrame({ data: new Uint8Array(frame.data), width: frame.width, height: frame.height, timestamp: lastTimestamp, format: "rgba" })
        .catch((err) => send("vidllama:status", `frame refused: ${err.message}`));
});

// A question: the answer streams back as chunks; the promise resolves with the whole answer.
ipcMain.handle("vidllama:ask", async (event, question) => {
    const answer = stream.askStream(question, { maxTokens: 256 });
    for await (const chunk of answer) event.sender.send("vidllama:chunk", chunk);
    const { text, frames, timestamp, ttftMs, stopReason } = await answer.result;
    return { text, frames, timestamp, ttftMs, stopReason };
});

app.whenReady().then(async () => {
    if (process.platform === "darwin") await systemPreferences.askForMediaAccess("camera");
    window = new BrowserWindow({
        width: 900,
        height: 720,
        webPreferences: { preload: fileURLToPath(new URL("preload.cjs", import.meta.url)), contextIsolation: true, sandbox: true },
    });
    await window.loadFile(fileURLToPath(new URL("index.html", import.meta.url)));
    send("vidllama:status", "loading the model…");
    model = await loadModel({ model: modelPath, mmproj: mmprojPath });
    stream = await model.createStream({ window: { seconds: 120 }, queue: { size: 2, policy: "drop-oldest" } });
    stream.on("frame", status);
    stream.on("drop", status);
    stream.on("error", (err) => send("vidllama:status", `error: ${err.message}`));
    send("vidllama:ready", true);
    status();
});

app.on("window-all-closed", () => app.quit());

// Close the stream and free the model before quitting.
let disposed = false;
app.on("will-quit", (event) => {
    if (disposed) return;
    event.preventDefault();
    disposed = true;
    Promise.resolve(stream?.close())
        .then(() => model?.dispose())
        .finally(() => app.quit());
});
