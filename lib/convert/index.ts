/**
 * Hugging Face VideoLLaMA3 checkpoint → GGUF conversion (`vidllama convert`).
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
export { MMPROJ_OUTPUT_TYPES, TEXT_OUTPUT_TYPES, type MmprojOutputType, type StorageType, type TextOutputType } from "./quant-rules.js";
