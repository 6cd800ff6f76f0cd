/**
 * Hugging Face VideoLLaMA3 or Video-LLaVA checkpoint → GGUF conversion (`vidllama convert`).
 *
 * @module
 */
export {
    convertCheckpoint,
    outputFileNames,
    type ConvertOptions,
    type ConvertProgress,
    type ConvertResult,
    type ConvertedTensor,
    type VerifyMode,
} from "./convert.js";
// the type of ConvertOptions.visionAct, and its values (the CLI's --vision-act choices)
export { VISION_ACTIVATIONS, type VisionActivation } from "./family.js";
export { MMPROJ_OUTPUT_TYPES, TEXT_OUTPUT_TYPES, type MmprojOutputType, type StorageType, type TextOutputType } from "./quant-rules.js";
