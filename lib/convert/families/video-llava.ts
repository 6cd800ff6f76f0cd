/**
 * Video-LLaVA (`model_type: video_llava`, `VideoLlavaForConditionalGeneration`, e.g. `LanguageBind/Video-LLaVA-7B-hf`;
 * spec: shared/specs/video-llava.md) for the converter, following docs/gguf-format.md (Video-LLaVA section):
 *
 * - the text model is written as llama.cpp's `llama` architecture (Vicuna-7B): config from `text_config` with
 *   LlamaConfig's defaults for what it leaves out, q/k rows permuted as llama.cpp's converter does, untied
 *   `output.weight`, the SentencePiece vocabulary of `tokenizer.model` + `added_tokens.json` (tokenizer-spm.ts);
 * - the projector file holds both CLIP towers (`v.` image, `v.video.` video), each with only the blocks up to the
 *   feature layer (`vision_feature_layer = -2`: 23 of 24), no post-layernorm, and the shared 2-layer projector.
 *
 * Both on-disk name layouts are accepted: the legacy one of the released checkpoint (`language_model.model.`,
 * `language_model.lm_head.`, `image_tower.`, `video_tower.`, `multi_modal_projector.`) and the one transformers ≥ 4.52
 * saves (`model.language_model.`, `lm_head.`, `model.image_tower.`, `model.video_tower.`,
 * `model.multi_modal_projector.`), chosen per component from the checkpoint's own names.
 *
 * @internal
 * @module
 */
import { join } from "node:path";
import { ConversionError } from "../../errors.js";
import type { GgufWriter } from "../../gguf/writer.js";
import { GgufValueType } from "../../gguf/types.js";
import type { ConverterFamily, FamilyConversion, VisionActivation } from "../family.js";
import { Fields, parseResample, readGenerationDefaults, readJsonFile, type GenerationDefaults } from "../hf-config.js";
import type { MmprojOutputType, TextOutputType } from "../quant-rules.js";
import type { CheckpointTensors } from "../safetensors.js";
import { isIgnorableTensor, plan, ropePermutation, type TensorPlan } from "../tensor-map.js";
import { readSentencePieceVocabulary, type SentencePieceVocabulary } from "../tokenizer-spm.js";
import { acceptsConfig, type DecoderHparams, writeClipVisionKeys, writeDecoderKeys, writeGenerationKeys, writeMmprojGeneralKeys, writeTextGeneralKeys } from "./common.js";

/**
 * The chat template written when a Video-LLaVA checkpoint carries none: the prompt format of the Hugging Face
 * documentation, `USER: <video>\n{question} ASSISTANT:`, as a Jinja template over transformers-style messages:
 *
 * - a system message's text, then a space;
 * - a user turn: `USER: `, one `<image>\n` per image item and one `<video>\n` per video item (whatever their position
 *   in the content), the text items, then a space;
 * - an assistant turn: `ASSISTANT:` + its text + `</s>` (the LLaVA-v1 separator after answers). The text is the
 *   answer as generated, with its leading space (`" The cats …"`), so `ASSISTANT:` + text is HF's `ASSISTANT: The cats`;
 * - the generation prompt: `ASSISTANT:`.
 *
 * `[{role: "user", content: [{type: "video"}, {type: "text", text: "Why is this video funny?"}]}]` with the
 * generation prompt renders `USER: <video>\nWhy is this video funny? ASSISTANT:`. vidllama's Video-LLaVA prompt logic
 * assumes exactly this rendering.
 */
export const VIDEO_LLAVA_DEFAULT_CHAT_TEMPLATE = [
    "{%- for message in messages -%}",
    "{%- if message['role'] == 'system' -%}",
    "{{- message['content'] if message['content'] is string else (message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join(' ')) -}}{{- ' ' -}}",
    "{%- elif message['role'] == 'assistant' -%}",
    "{{- 'ASSISTANT:' -}}{{- message['content'] if message['content'] is string else (message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join(' ')) -}}{{- '</s>' -}}",
    "{%- else -%}",
    "{{- message['role'].upper() + ': ' -}}",
    "{%- if message['content'] is string -%}{{- message['content'] -}}{%- else -%}",
    "{%- for item in message['content'] -%}{%- if item['type'] == 'image' -%}{{- '<image>\\n' -}}{%- elif item['type'] == 'video' -%}{{- '<video>\\n' -}}{%- endif -%}{%- endfor -%}",
    "{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}{%- endfor -%}",
    "{%- endif -%}{{- ' ' -}}",
    "{%- endif -%}",
    "{%- endfor -%}",
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}",
].join("\n");

/** CLIP's normalisation (OpenAI CLIP; the values of Video-LLaVA's image processor). */
export const CLIP_IMAGE_MEAN: readonly number[] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_IMAGE_STD: readonly number[] = [0.26862954, 0.26130258, 0.27577711];

/** Frames per video in the Hugging Face examples (`np.arange(0, N, N/8)`); not stored in the checkpoint. */
const VIDEO_NUM_FRAMES = 8;
/** Differential Frame Pruning settings (off by default: the model was not trained with it). */
const DIFF_THRESHOLD = 0.1;
const MIN_TOKENS_PER_FRAME = 1;

/** The LLaMA language model's hyper-parameters (`text_config`, LlamaConfig defaults). */
export interface LlamaHparams extends DecoderHparams {
    vocabSize: number;
    tieWordEmbeddings: boolean;
}

/** One CLIP vision tower's hyper-parameters (`vision_config`, CLIPVisionConfig defaults). */
export interface ClipHparams {
    hiddenSize: number;
    intermediateSize: number;
    layers: number;
    heads: number;
    patchSize: number;
    imageSize: number;
    numChannels: number;
    layerNormEps: number;
    hiddenAct: string;
}

/** Everything read from a Video-LLaVA checkpoint's JSON files. */
export interface VideoLlavaConfig {
    dir: string;
    text: LlamaHparams;
    vision: ClipHparams;
    /** `vision_feature_layer` (-2). */
    featureLayer: number;
    /** Blocks written and run: `layers + featureLayer + 1` for a negative feature layer, else `featureLayer`. */
    blockCount: number;
    /** The towers' activation after `--vision-act`. */
    visionAct: VisionActivation;
    /** `vision_feature_select_strategy`: `default` drops the image's class token, `full` keeps it. */
    imageKeepCls: boolean;
    imageTokenId: number;
    videoTokenId: number;
    /** Special token ids config.json states (top level first, then text_config). */
    configTokenIds: { bos?: number; eos?: number; unk?: number; pad?: number };
    processor: {
        imageMean: number[];
        imageStd: number[];
        rescaleFactor: number;
        resample: string;
        shortestEdge: number;
        cropSize: number;
    };
    generation: GenerationDefaults;
    warnings: string[];
}

function objectOrUndefined(config: Record<string, unknown>, key: string, file: string): Record<string, unknown> | undefined {
    const v = config[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) throw new ConversionError(`${key} must be an object`, { file });
    return v as Record<string, unknown>;
}

/** Reads config.json (given) and preprocessor_config.json / generation_config.json of a Video-LLaVA checkpoint. */
export async function readVideoLlavaConfig(
    dir: string,
    config: Record<string, unknown>,
    options: { visionAct?: VisionActivation } = {},
): Promise<VideoLlavaConfig> {
    const configPath = join(dir, "config.json");
    const warnings: string[] = [];
    const c = new Fields(configPath, config);

    // ---- text_config: LlamaConfig(**text_config) ----
    const tcfg = objectOrUndefined(config, "text_config", configPath);
    if (!tcfg) warnings.push("config.json has no text_config: using LlamaConfig's defaults (LLaMA-7B)");
    const t = new Fields(configPath, tcfg ?? {}, "text_config.");
    const textType = t.str("model_type", "llama");
    if (textType !== "llama") {
        throw new ConversionError(`text_config.model_type ${JSON.stringify(textType)} is not supported (Video-LLaVA's language model is llama)`, {
            file: configPath,
        });
    }
    const hiddenSize = t.int("hidden_size", 4096);
    const heads = t.int("num_attention_heads", 32);
    const kvHeads = t.int("num_key_value_heads", heads);
    if (hiddenSize % heads !== 0) {
        throw new ConversionError(`text_config.hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${heads}`, { file: configPath });
    }
    if (heads % kvHeads !== 0) {
        throw new ConversionError(`text_config.num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`, { file: configPath });
    }
    const headDim = hiddenSize / heads;
    if (t.has("head_dim") && t.int("head_dim") !== headDim) {
        throw new ConversionError(`text_config.head_dim ${t.int("head_dim")} differs from hidden_size / num_attention_heads (${headDim})`, {
            file: configPath,
        });
    }
    if (headDim % 2 !== 0) throw new ConversionError(`the attention head size ${headDim} is odd (RoPE needs pairs)`, { file: configPath });
    const act = t.str("hidden_act", "silu");
    if (act !== "silu") throw new ConversionError(`text_config.hidden_act ${JSON.stringify(act)} is not supported (llama uses silu)`, { file: configPath });
    for (const key of ["attention_bias", "mlp_bias"]) {
        if (t.bool(key, false)) throw new ConversionError(`text_config.${key} true is not supported (llama has no biases)`, { file: configPath });
    }
    let ropeScaling: LlamaHparams["ropeScaling"];
    if (t.has("rope_scaling")) {
        const rs = tcfg!.rope_scaling as Record<string, unknown>;
        const f = new Fields(configPath, rs, "text_config.rope_scaling.");
        const type = typeof rs.rope_type === "string" ? rs.rope_type : f.str("type");
        if (type !== "linear" && type !== "yarn" && type !== "default") {
            throw new ConversionError(`rope_scaling type ${JSON.stringify(type)} is not supported (linear, yarn)`, { file: configPath });
        }
        if (type !== "default") ropeScaling = { type, factor: f.num("factor"), originalContextLength: f.optInt("original_max_position_embeddings", 1) };
    }
    const text: LlamaHparams = {
        hiddenSize,
        intermediateSize: t.int("intermediate_size", 11008),
        layers: t.int("num_hidden_layers", 32),
        heads,
        kvHeads,
        vocabSize: t.int("vocab_size", 32000),
        contextLength: t.int("max_position_embeddings", 2048),
        ropeTheta: t.num("rope_theta", 10000),
        rmsNormEps: t.num("rms_norm_eps", 1e-6),
        tieWordEmbeddings: t.bool("tie_word_embeddings", false),
        ropeScaling,
    };

    // ---- vision_config: CLIPVisionConfig(**vision_config); VideoLlavaConfig's CLIP-L/14 when absent ----
    const vcfg = objectOrUndefined(config, "vision_config", configPath);
    if (!vcfg) warnings.push("config.json has no vision_config: using VideoLlavaConfig's default CLIP ViT-L/14");
    const clipDefaults = vcfg
        ? { hidden: 768, ffn: 3072, layers: 12, heads: 12, patch: 32 } // CLIPVisionConfig
        : { hidden: 1024, ffn: 4096, layers: 24, heads: 16, patch: 14 }; // VideoLlavaConfig's default vision_config
    const v = new Fields(configPath, vcfg ?? {}, "vision_config.");
    const visionType = v.str("model_type", "clip_vision_model");
    if (visionType !== "clip_vision_model") {
        throw new ConversionError(`vision_config.model_type ${JSON.stringify(visionType)} is not supported (clip_vision_model)`, { file: configPath });
    }
    const vision: ClipHparams = {
        hiddenSize: v.int("hidden_size", clipDefaults.hidden),
        intermediateSize: v.int("intermediate_size", clipDefaults.ffn),
        layers: v.int("num_hidden_layers", clipDefaults.layers),
        heads: v.int("num_attention_heads", clipDefaults.heads),
        patchSize: v.int("patch_size", clipDefaults.patch),
        imageSize: v.int("image_size", 224),
        numChannels: v.int("num_channels", 3),
        layerNormEps: v.num("layer_norm_eps", 1e-5),
        hiddenAct: v.str("hidden_act", "quick_gelu"),
    };
    if (vision.hiddenSize % vision.heads !== 0) {
        throw new ConversionError(`vision_config.hidden_size ${vision.hiddenSize} is not a multiple of num_attention_heads ${vision.heads}`, {
            file: configPath,
        });
    }
    if (vision.imageSize % vision.patchSize !== 0) {
        throw new ConversionError(`vision_config.image_size ${vision.imageSize} is not a multiple of patch_size ${vision.patchSize}`, { file: configPath });
    }
    if (vision.numChannels !== 3) throw new ConversionError(`vision_config.num_channels ${vision.numChannels} is not supported (RGB)`, { file: configPath });
    if (vision.hiddenAct !== "quick_gelu" && vision.hiddenAct !== "gelu" && options.visionAct === undefined) {
        throw new ConversionError(`vision_config.hidden_act ${JSON.stringify(vision.hiddenAct)} is not supported (quick_gelu, gelu)`, { file: configPath });
    }
    const visionAct: VisionActivation = options.visionAct ?? (vision.hiddenAct === "gelu" ? "gelu" : "quick_gelu");
    if (options.visionAct !== undefined && options.visionAct !== vision.hiddenAct) {
        warnings.push(`vision towers use ${options.visionAct} (--vision-act) instead of the config's ${vision.hiddenAct}`);
    }

    // ---- the model's own keys (VideoLlavaConfig) ----
    if (Array.isArray(config.vision_feature_layer)) {
        throw new ConversionError("vision_feature_layer as a list of layers is not supported (one layer, e.g. -2)", { file: configPath });
    }
    const featureLayer = c.int("vision_feature_layer", -2, -vision.layers);
    if (featureLayer > vision.layers) {
        throw new ConversionError(`vision_feature_layer ${featureLayer} is past the ${vision.layers} vision layers`, { file: configPath });
    }
    const blockCount = featureLayer < 0 ? vision.layers + featureLayer + 1 : featureLayer;
    if (blockCount < 1) {
        throw new ConversionError(`vision_feature_layer ${featureLayer} selects the embeddings, before any vision layer`, { file: configPath });
    }
    const strategy = c.str("vision_feature_select_strategy", "default");
    if (strategy !== "default" && strategy !== "full") {
        throw new ConversionError(`vision_feature_select_strategy ${JSON.stringify(strategy)} is not supported (default, full)`, { file: configPath });
    }
    const projectorAct = c.str("projector_hidden_act", "gelu");
    if (projectorAct !== "gelu") {
        throw new ConversionError(`projector_hidden_act ${JSON.stringify(projectorAct)} is not supported (gelu)`, { file: configPath });
    }
    if (!c.bool("multimodal_projector_bias", true)) {
        throw new ConversionError("multimodal_projector_bias false is not supported (the projector has biases)", { file: configPath });
    }
    const imageTokenId = c.int("image_token_index", 32000, 0);
    const videoTokenId = c.int("video_token_index", 32001, 0);
    for (const [key, id] of [
        ["image_token_index", imageTokenId],
        ["video_token_index", videoTokenId],
    ] as const) {
        if (id >= text.vocabSize) {
            throw new ConversionError(`${key} ${id} is outside the vocabulary (text_config.vocab_size ${text.vocabSize})`, { file: configPath });
        }
    }
    if (imageTokenId === videoTokenId) throw new ConversionError(`image_token_index and video_token_index are both ${imageTokenId}`, { file: configPath });
    const tokenId = (key: string): number | undefined => (c.has(key) ? c.int(key, undefined, 0) : t.has(key) ? t.int(key, undefined, 0) : undefined);
    const configTokenIds = {
        bos: tokenId("bos_token_id"),
        eos: typeof config.eos_token_id === "number" || typeof tcfg?.eos_token_id === "number" ? tokenId("eos_token_id") : undefined,
        pad: c.has("pad_token_id") ? c.int("pad_token_id", undefined, 0) : undefined, // text_config's pad (0 in Vicuna's) is not the model's
    };

    // ---- preprocessor_config.json (VideoLlavaImageProcessor) ----
    const prePath = join(dir, "preprocessor_config.json");
    const pre = await readJsonFile(prePath, false);
    if (!pre) warnings.push("preprocessor_config.json is missing: using CLIP's values (mean/std, shortest edge 224, centre crop 224, bicubic)");
    const p = new Fields(prePath, pre ?? {});
    for (const key of ["do_resize", "do_center_crop"]) {
        if (!p.bool(key, true)) throw new ConversionError(`${key} false is not supported (Video-LLaVA resizes and centre-crops)`, { file: prePath });
    }
    const side = (key: string, names: readonly string[], fallback: number): number => {
        const value = pre?.[key];
        if (value === undefined || value === null) return fallback;
        if (typeof value === "number") return p.int(key);
        if (typeof value === "object" && !Array.isArray(value)) {
            const o = new Fields(prePath, value as Record<string, unknown>, `${key}.`);
            for (const name of names) if (o.has(name)) return o.int(name);
            if (key === "crop_size" && o.has("height") && o.has("width")) {
                const h = o.int("height");
                const w = o.int("width");
                if (h !== w) throw new ConversionError(`crop_size ${w}×${h} is not square`, { file: prePath });
                return h;
            }
        }
        throw new ConversionError(`${key} ${JSON.stringify(value)} is not supported (expected ${names.map((n) => `{"${n}": n}`).join(" or ")} or a number)`, {
            file: prePath,
        });
    };
    const shortestEdge = side("size", ["shortest_edge"], 224);
    const cropSize = side("crop_size", [], vision.imageSize);
    if (cropSize !== vision.imageSize) {
        throw new ConversionError(`crop_size ${cropSize} differs from vision_config.image_size ${vision.imageSize} (the position embeddings' grid)`, {
            file: prePath,
        });
    }
    if (shortestEdge < cropSize) {
        throw new ConversionError(`size.shortest_edge ${shortestEdge} is smaller than crop_size ${cropSize}`, { file: prePath });
    }
    const processor: VideoLlavaConfig["processor"] = {
        imageMean: p.bool("do_normalize", true) ? p.numArray("image_mean", 3, [...CLIP_IMAGE_MEAN]) : [0, 0, 0],
        imageStd: p.bool("do_normalize", true) ? p.numArray("image_std", 3, [...CLIP_IMAGE_STD]) : [1, 1, 1],
        rescaleFactor: p.bool("do_rescale", true) ? p.num("rescale_factor", 1 / 255) : 1,
        resample: parseResample(pre?.resample, prePath),
        shortestEdge,
        cropSize,
    };
    if (processor.imageStd.some((s) => !(s > 0))) throw new ConversionError("image_std must be positive", { file: prePath });
    if (processor.resample !== "bicubic") warnings.push(`resample ${processor.resample}: vidllama's preprocessing implements bicubic only`);

    const generation = await readGenerationDefaults(dir);
    return {
        dir,
        text,
        vision,
        featureLayer,
        blockCount,
        visionAct,
        imageKeepCls: strategy === "full",
        imageTokenId,
        videoTokenId,
        configTokenIds,
        processor,
        generation,
        warnings,
    };
}

// ---- tensor names ------------------------------------------------------------------------------------------------

/** The checkpoint prefixes of each component (legacy or transformers ≥ 4.52 layout). */
export interface VideoLlavaPrefixes {
    languageModel: string;
    lmHead: string;
    imageTower: string;
    videoTower: string;
    projector: string;
}

const LEGACY: VideoLlavaPrefixes = {
    languageModel: "language_model.model.",
    lmHead: "language_model.lm_head.",
    imageTower: "image_tower.vision_model.",
    videoTower: "video_tower.vision_model.",
    projector: "multi_modal_projector.",
};
const CURRENT: VideoLlavaPrefixes = {
    languageModel: "model.language_model.",
    lmHead: "lm_head.",
    imageTower: "model.image_tower.vision_model.",
    videoTower: "model.video_tower.vision_model.",
    projector: "model.multi_modal_projector.",
};

/** Per component, the layout the checkpoint's names use (legacy when it has none of either). */
export function detectPrefixes(names: Iterable<string>): VideoLlavaPrefixes {
    const list = [...names];
    const pick = (key: keyof VideoLlavaPrefixes): string => {
        const uses = (prefix: string) => list.some((n) => n.startsWith(prefix));
        return !uses(LEGACY[key]) && uses(CURRENT[key]) ? CURRENT[key] : LEGACY[key];
    };
    const languageModel = pick("languageModel");
    const hasLegacyHead = list.includes(`${LEGACY.lmHead}weight`);
    const hasHead = list.includes(`${CURRENT.lmHead}weight`);
    const lmHead = hasLegacyHead || (!hasHead && languageModel === LEGACY.languageModel) ? LEGACY.lmHead : CURRENT.lmHead;
    return { languageModel, lmHead, imageTower: pick("imageTower"), videoTower: pick("videoTower"), projector: pick("projector") };
}

/** The text model's tensors (`llama`), q/k permuted for ggml's RoPE layout. */
export function llamaTensorPlans(t: LlamaHparams, prefixes: Pick<VideoLlavaPrefixes, "languageModel" | "lmHead">): TensorPlan[] {
    const hd = t.hiddenSize / t.heads;
    const q = t.heads * hd;
    const kv = t.kvHeads * hd;
    const h = t.hiddenSize;
    const f = t.intermediateSize;
    const m = prefixes.languageModel;
    const rope = ropePermutation(hd);
    const out: TensorPlan[] = [plan("token_embd.weight", `${m}embed_tokens.weight`, [t.vocabSize, h])];
    for (let i = 0; i < t.layers; i++) {
        const p = `${m}layers.${i}.`;
        const b = `blk.${i}.`;
        out.push(
            plan(`${b}attn_norm.weight`, `${p}input_layernorm.weight`, [h]),
            plan(`${b}attn_q.weight`, `${p}self_attn.q_proj.weight`, [q, h], { rows: rope }),
            plan(`${b}attn_k.weight`, `${p}self_attn.k_proj.weight`, [kv, h], { rows: rope }),
            plan(`${b}attn_v.weight`, `${p}self_attn.v_proj.weight`, [kv, h]),
            plan(`${b}attn_output.weight`, `${p}self_attn.o_proj.weight`, [h, q]),
            plan(`${b}ffn_norm.weight`, `${p}post_attention_layernorm.weight`, [h]),
            plan(`${b}ffn_gate.weight`, `${p}mlp.gate_proj.weight`, [f, h]),
            plan(`${b}ffn_up.weight`, `${p}mlp.up_proj.weight`, [f, h]),
            plan(`${b}ffn_down.weight`, `${p}mlp.down_proj.weight`, [h, f]),
        );
    }
    out.push(plan("output_norm.weight", `${m}norm.weight`, [h]));
    if (!t.tieWordEmbeddings) out.push(plan("output.weight", `${prefixes.lmHead}weight`, [t.vocabSize, h]));
    return out;
}

/** The `encoder.layers.N.` suffixes of a CLIP block, with the GGUF name after `blk.N.` and the PyTorch shape. */
function clipBlock(v: ClipHparams): Array<[string, string, number[]]> {
    const h = v.hiddenSize;
    const f = v.intermediateSize;
    return [
        ["ln1.weight", "layer_norm1.weight", [h]],
        ["ln1.bias", "layer_norm1.bias", [h]],
        ["attn_q.weight", "self_attn.q_proj.weight", [h, h]],
        ["attn_q.bias", "self_attn.q_proj.bias", [h]],
        ["attn_k.weight", "self_attn.k_proj.weight", [h, h]],
        ["attn_k.bias", "self_attn.k_proj.bias", [h]],
        ["attn_v.weight", "self_attn.v_proj.weight", [h, h]],
        ["attn_v.bias", "self_attn.v_proj.bias", [h]],
        ["attn_out.weight", "self_attn.out_proj.weight", [h, h]],
        ["attn_out.bias", "self_attn.out_proj.bias", [h]],
        ["ln2.weight", "layer_norm2.weight", [h]],
        ["ln2.bias", "layer_norm2.bias", [h]],
        ["ffn_up.weight", "mlp.fc1.weight", [f, h]],
        ["ffn_up.bias", "mlp.fc1.bias", [f]],
        ["ffn_down.weight", "mlp.fc2.weight", [h, f]],
        ["ffn_down.bias", "mlp.fc2.bias", [h]],
    ];
}

/** One CLIP tower: `tower` is the checkpoint prefix up to `vision_model.`, `gguf` the GGUF prefix (`v.`, `v.video.`). */
export function clipTowerPlans(v: ClipHparams, blockCount: number, tower: string, gguf: string): TensorPlan[] {
    const h = v.hiddenSize;
    const positions = (v.imageSize / v.patchSize) ** 2 + 1;
    const out: TensorPlan[] = [
        plan(`${gguf}class_embd`, `${tower}embeddings.class_embedding`, [h]),
        plan(`${gguf}patch_embd.weight`, `${tower}embeddings.patch_embedding.weight`, [h, v.numChannels, v.patchSize, v.patchSize]),
        plan(`${gguf}position_embd.weight`, `${tower}embeddings.position_embedding.weight`, [positions, h], { f32: true }),
        plan(`${gguf}pre_ln.weight`, `${tower}pre_layrnorm.weight`, [h]),
        plan(`${gguf}pre_ln.bias`, `${tower}pre_layrnorm.bias`, [h]),
    ];
    const block = clipBlock(v);
    for (let i = 0; i < blockCount; i++) {
        for (const [g, hf, shape] of block) out.push(plan(`${gguf}blk.${i}.${g}`, `${tower}encoder.layers.${i}.${hf}`, shape));
    }
    return out;
}

/** The projector file's tensors: image tower, video tower, then the shared projector. */
export function videoLlavaMmprojPlans(config: VideoLlavaConfig, prefixes: VideoLlavaPrefixes): TensorPlan[] {
    const h = config.text.hiddenSize;
    const vh = config.vision.hiddenSize;
    const p = prefixes.projector;
    return [
        ...clipTowerPlans(config.vision, config.blockCount, prefixes.imageTower, "v."),
        ...clipTowerPlans(config.vision, config.blockCount, prefixes.videoTower, "v.video."),
        plan("mm.0.weight", `${p}linear_1.weight`, [h, vh]),
        plan("mm.0.bias", `${p}linear_1.bias`, [h]),
        plan("mm.2.weight", `${p}linear_2.weight`, [h, h]),
        plan("mm.2.bias", `${p}linear_2.bias`, [h]),
    ];
}

/**
 * Checkpoint tensors dropped on purpose: both towers' `post_layernorm` (it only normalises the pooled CLS of
 * CLIPVisionModel's output, unused here) and their blocks after the feature layer (block_count..layers-1); a tied
 * `lm_head`; buffers.
 */
function skippedTensor(config: VideoLlavaConfig, prefixes: VideoLlavaPrefixes): (name: string) => boolean {
    const suffixes = new Set(clipBlock(config.vision).map(([, hf]) => hf));
    return (name) => {
        if (isIgnorableTensor(name)) return true;
        if (config.text.tieWordEmbeddings && name === `${prefixes.lmHead}weight`) return true;
        for (const tower of [prefixes.imageTower, prefixes.videoTower]) {
            if (!name.startsWith(tower)) continue;
            const rest = name.slice(tower.length);
            if (rest === "post_layernorm.weight" || rest === "post_layernorm.bias") return true;
            const m = /^encoder\.layers\.(\d+)\.(.+)$/.exec(rest);
            if (m && suffixes.has(m[2]!)) {
                const layer = Number(m[1]);
                return layer >= config.blockCount && layer < config.vision.layers && String(layer) === m[1];
            }
        }
        return false;
    };
}

// ---- the family --------------------------------------------------------------------------------------------------

const MODEL_TYPES: readonly string[] = ["video_llava"];
const ARCHITECTURES: readonly string[] = ["VideoLlavaForConditionalGeneration"];

export const videoLlavaFamily: ConverterFamily = {
    id: "video_llava",
    label: "Video-LLaVA",
    modelTypes: MODEL_TYPES,
    architectures: ARCHITECTURES,

    accepts(config) {
        return acceptsConfig(config, MODEL_TYPES, ARCHITECTURES);
    },

    hint(config) {
        const architectures = Array.isArray(config.architectures) ? config.architectures : [];
        if (architectures.includes("LlavaLlamaForCausalLM") && ("mm_video_tower" in config || "mm_image_tower" in config)) {
            return "this looks like the original PKU Video-LLaVA checkpoint; convert the Hugging Face port LanguageBind/Video-LLaVA-7B-hf";
        }
        return undefined;
    },

    async readConfig(dir, rawConfig, options) {
        const config = await readVideoLlavaConfig(dir, rawConfig, options);
        return {
            async plan(checkpoint: CheckpointTensors): Promise<FamilyConversion> {
                const prefixes = detectPrefixes(checkpoint.tensors.keys());
                const vocab = await readSentencePieceVocabulary(dir, {
                    vocabSize: config.text.vocabSize,
                    configTokenIds: config.configTokenIds,
                    defaultChatTemplate: VIDEO_LLAVA_DEFAULT_CHAT_TEMPLATE,
                });
                if (config.imageTokenId >= 0 && vocab.tokenTypes[config.imageTokenId] === 5) {
                    vocab.warnings.push(`image_token_index ${config.imageTokenId} is a padding id of the vocabulary`);
                }
                return {
                    textPlans: llamaTensorPlans(config.text, prefixes),
                    mmprojPlans: videoLlavaMmprojPlans(config, prefixes),
                    textLayers: config.text.layers,
                    warnings: [...config.warnings, ...vocab.warnings],
                    isSkipped: skippedTensor(config, prefixes),
                    writeTextMetadata: (w, name, type) => writeVideoLlavaTextMetadata(w, config, vocab, name, type),
                    writeMmprojMetadata: (w, name, type) => writeVideoLlavaMmprojMetadata(w, config, name, type),
                };
            },
        };
    },
};

// ---- metadata ----------------------------------------------------------------------------------------------------

/** The text GGUF's metadata (docs/gguf-format.md, Video-LLaVA). @internal */
export function writeVideoLlavaTextMetadata(
    w: GgufWriter,
    config: VideoLlavaConfig,
    vocab: SentencePieceVocabulary,
    name: string,
    type: TextOutputType,
): void {
    const t = config.text;
    writeTextGeneralKeys(w, "llama", name, type);
    writeDecoderKeys(w, "llama", t);
    w.setU32("llama.rope.dimension_count", t.hiddenSize / t.heads);
    w.setU32("llama.vocab_size", t.vocabSize);
    w.setString("tokenizer.ggml.model", "llama");
    w.setString("tokenizer.ggml.pre", "default");
    w.setArray("tokenizer.ggml.tokens", GgufValueType.STRING, vocab.tokens);
    w.setArray("tokenizer.ggml.scores", GgufValueType.FLOAT32, vocab.scores);
    w.setArray("tokenizer.ggml.token_type", GgufValueType.INT32, vocab.tokenTypes);
    w.setU32("tokenizer.ggml.bos_token_id", vocab.bosTokenId);
    w.setU32("tokenizer.ggml.eos_token_id", vocab.eosTokenId);
    if (vocab.unknownTokenId !== undefined) w.setU32("tokenizer.ggml.unknown_token_id", vocab.unknownTokenId);
    if (vocab.padTokenId !== undefined) w.setU32("tokenizer.ggml.padding_token_id", vocab.padTokenId);
    w.setBool("tokenizer.ggml.add_bos_token", vocab.addBosToken);
    w.setBool("tokenizer.ggml.add_eos_token", vocab.addEosToken);
    w.setBool("tokenizer.ggml.add_space_prefix", vocab.addSpacePrefix);
    w.setString("tokenizer.chat_template", vocab.chatTemplate);
    w.setU32("video_llava.image_token_id", config.imageTokenId);
    w.setU32("video_llava.video_token_id", config.videoTokenId);
    writeGenerationKeys(w, "video_llava", config.generation);
}

/** The vision projector GGUF's metadata (docs/gguf-format.md, Video-LLaVA). @internal */
export function writeVideoLlavaMmprojMetadata(w: GgufWriter, config: VideoLlavaConfig, name: string, type: MmprojOutputType): void {
    const v = config.vision;
    const p = config.processor;
    writeMmprojGeneralKeys(w, name, type);
    writeClipVisionKeys(w, {
        projectorType: "video_llava",
        embeddingLength: v.hiddenSize,
        feedForwardLength: v.intermediateSize,
        blockCount: config.blockCount,
        headCount: v.heads,
        layerNormEps: v.layerNormEps,
        patchSize: v.patchSize,
        imageSize: v.imageSize,
        projectionDim: config.text.hiddenSize,
        imageMean: p.imageMean,
        imageStd: p.imageStd,
        useGelu: config.visionAct === "gelu",
    });
    w.setI32("video_llava.vision.feature_layer", config.featureLayer);
    w.setU32("video_llava.vision.source_block_count", v.layers);
    w.setU32("video_llava.image.shortest_edge", p.shortestEdge);
    w.setU32("video_llava.image.crop_size", p.cropSize);
    w.setF32("video_llava.image.rescale_factor", p.rescaleFactor);
    w.setString("video_llava.image.resample", p.resample);
    w.setBool("video_llava.image.keep_cls", config.imageKeepCls);
    w.setBool("video_llava.video.keep_cls", true);
    w.setU32("video_llava.video.num_frames", VIDEO_NUM_FRAMES);
    w.setBool("video_llava.video.token_compression", false);
    w.setF32("video_llava.video.diff_threshold", DIFF_THRESHOLD);
    w.setU32("video_llava.video.min_tokens_per_frame", MIN_TOKENS_PER_FRAME);
    w.setU32("video_llava.image_token_id", config.imageTokenId);
    w.setU32("video_llava.video_token_id", config.videoTokenId);
    w.setString("video_llava.projector.type", "mlp2x_gelu");
}
