// Captures the camera at about 1 frame per second and sends each frame's RGBA pixels to the main process, stamped with
// the frame's time on the camera track (requestVideoFrameCallback's mediaTime), not the wall clock.
const video = document.getElementById("camera");
const statusLine = document.getElementById("status");
const form = document.getElementById("ask");
const input = document.getElementById("question");
const button = document.getElementById("send");
const answer = document.getElementById("answer");
const canvas = document.createElement("canvas");
const context = canvas.getContext("2d", { willReadFrequently: true });

const FPS = 1;
let ready = false;
let next = 0;

window.vidllama.onStatus((text) => (statusLine.textContent = text));
window.vidllama.onReady(() => {
    ready = true;
    input.disabled = button.disabled = false;
});
window.vidllama.onChunk((chunk) => (answer.textContent += chunk));

function capture(timestamp) {
    const width = video.videoWidth;
    const height = video.videoHeight;
    if (width === 0 || height === 0) return;
    if (canvas.width !== width || canvas.height !== height) {
        canvas.width = width;
        canvas.height = height;
    }
    context.drawImage(video, 0, 0, width, height);
    const { data } = context.getImageData(0, 0, width, height);
    // data.buffer: a fresh ArrayBuffer per call, sent as binary
    window.vidllama.sendFrame({ data: data.buffer, width, height, timestamp });
}

function onVideoFrame(_now, metadata) {
    const timestamp = metadata.mediaTime ?? video.currentTime;
    if (ready && timestamp >= next) {
        next = timestamp + 1 / FPS;
        capture(timestamp);
    }
    video.requestVideoFrameCallback(onVideoFrame);
}

form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question) return;
    input.value = "";
    answer.textContent = "";
    button.disabled = true;
    try {
        const result = await window.vidllama.ask(question);
        answer.textContent = `${result.text}\n\n(${result.frames} frames up to ${result.timestamp.toFixed(1)} s of camera time, first token after ${Math.round(result.ttftMs)} ms)`;
    } catch (err) {
        answer.textContent = `error: ${err.message}`;
    } finally {
        button.disabled = false;
    }
});

navigator.mediaDevices
    .getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false })
    .then(async (media) => {
        video.srcObject = media;
        await video.play();
        video.requestVideoFrameCallback(onVideoFrame);
        if (!ready) statusLine.textContent = "camera on; loading the model…";
    })
    .catch((err) => (statusLine.textContent = `no camera: ${err.message}`));
