/**
 * VideoLLaMA3 (`model_type: videollama3_qwen2`, the DAMO-NLP-SG checkpoints) for the converter: config from
 * hf-config.ts, tensor plans from tensor-map.ts, the Qwen2 BPE vocabulary from tokenizer.ts, and the metadata of
 * both files (docs/gguf-format.md, first part).
 *
 * @internal
 * @module
 */
import { InvalidOptionError } from "../../errors.js";
import type { GgufWriter } from "../../gguf/writer.js";
import { GgufValueType } from "../../gguf/types.js";
import type { ConverterFamily, FamilyConversion } from "../family.js";
import { readCheckpointConfig, SUPPORTED_ARCHITECTURES, SUPPORTED_MODEL_TYPES, type CheckpointConfig } from "../hf-config.js";
import type { MmprojOutputType, TextOutputType } from "../quant-rules.js";
import { isIgnorableTensor, textTensorPlans, visionTensorPlans } from "../tensor-map.js";
import { readVocabulary, type GgufVocabulary } from "../tokenizer.js";
import { acceptsConfig, writeClipVisionKeys, writeDecoderKeys, writeGenerationKeys, writeMmprojGeneralKeys, writeTextGeneralKeys } from "./common.js";

export const videollama3Family: ConverterFamily = {
    id: "videollama3",
    label: "VideoLLaMA3",
    modelTypes: SUPPORTED_MODEL_TYPES,
    architectures: SUPPORTED_ARCHITECTURES,

    accepts(config) {
        return acceptsConfig(config, SUPPORTED_MODEL_TYPES, SUPPORTED_ARCHITECTURES);
    },

    hint(config) {
        return config.model_type === "video_llama_3"
            ? "this is the transformers-native port, which uses different tensor names and token ids; convert the original DAMO-NLP-SG checkpoint"
            : undefined;
    },

    async readConfig(dir, _config, options) {
        if (options.visionAct !== undefined) {
            // a valid value that this family cannot honour: the caller's option is what is wrong, not the checkpoint
            throw new InvalidOptionError(
                "visionAct",
                "no value for a VideoLLaMA3 checkpoint",
                options.visionAct,
                "--vision-act applies to Video-LLaVA checkpoints only; VideoLLaMA3's encoder has one activation",
            );
        }
        const config = await readCheckpointConfig(dir);
        return {
            async plan(): Promise<FamilyConversion> {
                const vocab = await readVocabulary(dir, config.text);
                return {
                    textPlans: textTensorPlans(config.text),
                    mmprojPlans: visionTensorPlans(config.vision, config.text.hiddenSize),
                    textLayers: config.text.layers,
                    warnings: [...config.warnings, ...vocab.warnings],
                    // tied: HF ignores lm_head.weight too
                    isSkipped: (name) => isIgnorableTensor(name) || (name === "lm_head.weight" && config.text.tieWordEmbeddings),
                    writeTextMetadata: (w, name, type) => writeTextMetadata(w, config, vocab, name, type),
                    writeMmprojMetadata: (w, name, type) => writeMmprojMetadata(w, config, name, type),
                };
            },
        };
    },
};

/** The text GGUF's metadata (docs/gguf-format.md). Exported for the benchmarks' random-weight files; not public API. @internal */
export function writeTextMetadata(w: GgufWriter, config: CheckpointConfig, vocab: GgufVocabulary, name: string, type: TextOutputType): void {
    const t = config.text;
    writeTextGeneralKeys(w, "qwen2", name, type);
    writeDecoderKeys(w, "qwen2", t);
    w.setString("tokenizer.ggml.model", "gpt2");
    w.setString("tokenizer.ggml.pre", "qwen2");
    w.setArray("tokenizer.ggml.tokens", GgufValueType.STRING, vocab.tokens);
    w.setArray("tokenizer.ggml.token_type", GgufValueType.INT32, vocab.tokenTypes);
    w.setArray("tokenizer.ggml.merges", GgufValueType.STRING, vocab.merges);
    w.setU32("tokenizer.ggml.eos_token_id", vocab.eosTokenId);
    w.setU32("tokenizer.ggml.eot_token_id", vocab.eotTokenId);
    if (vocab.padTokenId !== undefined) w.setU32("tokenizer.ggml.padding_token_id", vocab.padTokenId);
    if (vocab.bosTokenId !== undefined) w.setU32("tokenizer.ggml.bos_token_id", vocab.bosTokenId);
    w.setBool("tokenizer.ggml.add_bos_token", vocab.addBosToken);
    if (vocab.chatTemplate !== undefined) w.setString("tokenizer.chat_template", vocab.chatTemplate);
    w.setU32("videollama3.image_token_id", t.imageTokenIndex);
    if (vocab.streamStartTokenId !== undefined) w.setU32("videollama3.stream_start_token_id", vocab.streamStartTokenId);
    if (vocab.streamEndTokenId !== undefined) w.setU32("videollama3.stream_end_token_id", vocab.streamEndTokenId);
    writeGenerationKeys(w, "videollama3", config.generation);
}

/** The vision projector's settings not stored in the checkpoint: fixed in the reference code (spec §2, §5). */
const VISION_ROPE_THETA = 10000;
const VIDEO_MAX_FRAMES = 180;
const DIFF_THRESHOLD = 0.1;
const MIN_TOKENS_PER_FRAME = 1;

/** The vision projector GGUF's metadata (docs/gguf-format.md). Exported for the benchmarks; not public API. @internal */
export function writeMmprojMetadata(w: GgufWriter, config: CheckpointConfig, name: string, type: MmprojOutputType): void {
    const v = config.vision;
    const p = config.processor;
    writeMmprojGeneralKeys(w, name, type);
    writeClipVisionKeys(w, {
        projectorType: "videollama3",
        embeddingLength: v.hiddenSize,
        feedForwardLength: v.intermediateSize,
        blockCount: v.layers,
        headCount: v.heads,
        layerNormEps: v.layerNormEps,
        patchSize: v.patchSize,
        projectionDim: config.text.hiddenSize,
        imageMean: p.imageMean,
        imageStd: p.imageStd,
    });
    w.setF32("videollama3.vision.rope.freq_base", VISION_ROPE_THETA);
    w.setString("videollama3.vision.hidden_act", v.hiddenAct);
    w.setString("videollama3.projector.type", config.text.projectorType);
    w.setU32("videollama3.image.merge_size", p.imageMergeSize);
    w.setU32("videollama3.video.merge_size", p.videoMergeSize);
    w.setU32("videollama3.image.min_tokens", p.minTokens);
    w.setU32("videollama3.image.max_tokens", p.maxTokens);
    w.setF32("videollama3.image.rescale_factor", p.rescaleFactor);
    w.setString("videollama3.image.resample", p.resample);
    w.setF32("videollama3.video.fps", p.fps);
    w.setU32("videollama3.video.max_frames", VIDEO_MAX_FRAMES);
    w.setBool("videollama3.video.token_compression", config.text.useTokenCompression);
    w.setF32("videollama3.video.diff_threshold", DIFF_THRESHOLD);
    w.setU32("videollama3.video.min_tokens_per_frame", MIN_TOKENS_PER_FRAME);
    w.setU32("videollama3.image_token_id", config.text.imageTokenIndex);
}
