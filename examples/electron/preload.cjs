// The renderer's only door to the main process (context isolation on, no Node in the page).
const { contextBridge, ipcRenderer } = require("electron");

contextBridge.exposeInMainWorld("vidllama", {
    /** frame: { data: ArrayBuffer (RGBA), width, height, timestamp (seconds, the media track's clock) } */
    sendFrame: (frame) => ipcRenderer.send("vidllama:frame", frame),
    /** Resolves with the whole answer; chunks arrive through onChunk meanwhile. */
    ask: (question) => ipcRenderer.invoke("vidllama:ask", question),
    onChunk: (listener) => ipcRenderer.on("vidllama:chunk", (_event, chunk) => listener(chunk)),
    onStatus: (listener) => ipcRenderer.on("vidllama:status", (_event, text) => listener(text)),
    onReady: (listener) => ipcRenderer.on("vidllama:ready", () => listener()),
});
