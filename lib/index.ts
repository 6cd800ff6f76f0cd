/**
 * vidllama: ask questions about images, video files and live video on your own machine.
 *
 * @module
 */
export * from "./errors.js";
export { loadModel, Model, type LoadModelOptions, type LoadProgress, type ModelInfo } from "./Model.js";
export {
    pullModel,
    listCachedModels,
    removeCachedModels,
    type CacheOptions,
    type CachedModel,
    type HubOptions,
    type PullFile,
    type PullOptions,
    type PullProgress,
    type PulledModel,
    type RemovedModels,
} from "./hub/pull.js";
export { DEFAULT_MODEL_REFERENCE, parseHubReference, type HubReference } from "./hub/reference.js";
export { loadVision, Vision, type EncodeOptions, type EncodeResult, type LoadVisionOptions } from "./Vision.js";
export {
    Session,
    type ChatMessage,
    type MediaUsage,
    type PromptOptions,
    type PromptResult,
    type PromptStream,
    type PromptTimings,
    type SessionOptions,
    type StopReason,
} from "./Session.js";
export {
    Stream,
    StreamSourceError,
    type AnswerStream,
    type AskOptions,
    type DropEvent,
    type EvictEvent,
    type FrameEvent,
    type IngestOptions,
    type IngestResult,
    type ReconnectEvent,
    type StreamAnswer,
    type StreamEvents,
    type StreamFrame,
    type StreamOptions,
    type StreamQueueOptions,
    type StreamSettings,
    type StreamSource,
    type StreamStats,
    type StreamWindow,
} from "./Stream.js";
export type { ContentPart, ImageInput, PromptInput, PromptPart, PruneOption } from "./chat/content.js";
export type { FrameReport, VideoProgress } from "./chat/plan.js";
export { Video, type InputFrame, type RgbFrame, type VideoPlan } from "./decode/Video.js";
export type { FromFramesOptions, VideoFramesOptions, VideoOpenOptions, VideoSource } from "./decode/options.js";
export { resolveFfmpeg, type ResolvedFfmpeg } from "./decode/ffmpeg.js";
export { Image, type DecodedImage, type ImageOptions, type RawPixels } from "./decode/Image.js";
export type { VisionInfo } from "./encode/vision.js";
export type { SamplingOptions } from "./sample/options.js";
export { deviceFor, systemInfo, type BackendsInfo, type SystemInfo } from "./system.js";
export { GPU_BACKENDS, type DeviceInfo, type GpuBackend, type GpuOption } from "./devices.js";
export { cpuTopology, type CpuTopology } from "./cpu.js";
export * from "./convert/index.js";
