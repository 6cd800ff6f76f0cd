/**
 * Which checkpoint tensor becomes which GGUF tensor, with the shape each must have (docs/gguf-format.md).
 * Shapes are derived from config.json, so a checkpoint whose weights do not match its own config is rejected
 * before anything is written.
 *
 * @internal
 * @module
 */
import type { TextHparams, VisionHparams } from "./hf-config.js";

/** One tensor to convert. */
export interface TensorPlan {
    /** GGUF name, e.g. `blk.0.attn_q.weight`. */
    gguf: string;
    /** Checkpoint key, e.g. `model.layers.0.self_attn.q_proj.weight`. */
    hf: string;
    /** Expected PyTorch shape (outermost first). */
    torchShape: number[];
    /** ggml shape (`ne0` first) = torchShape reversed. */
    ne: number[];
    /**
     * A reordering of the rows (outermost index) within consecutive blocks of `group` rows: output row `b·group + r`
     * is source row `b·group + source[r]`. llama.cpp's q/k permutation for the `llama` architecture's RoPE layout.
     */
    rows?: { group: number; source: Int32Array };
    /** Stored as f32 whatever the output type (position embeddings). */
    f32?: boolean;
}

/** A tensor plan: GGUF name, checkpoint key, PyTorch shape (the ggml shape is its reverse). */
export function plan(gguf: string, hf: string, torchShape: number[], extra: Pick<TensorPlan, "rows" | "f32"> = {}): TensorPlan {
    return { gguf, hf, torchShape, ne: [...torchShape].reverse(), ...extra };
}

/**
 * llama.cpp's `LlamaModel.permute` for a q or k projection of `heads` heads (k: the kv heads):
 * `w.reshape(heads, 2, rows/heads/2, in).swapaxes(1, 2).reshape(rows, in)`. Within each head's `headDim` rows,
 * output row `2i + j` is source row `j·headDim/2 + i` — Hugging Face's rotate-half pairs (i, i + d/2) become the
 * adjacent pairs (2i, 2i + 1) that ggml's normal RoPE rotates.
 */
export function ropePermutation(headDim: number): { group: number; source: Int32Array } {
    if (headDim % 2 !== 0) throw new RangeError(`head size ${headDim} is odd`);
    const half = headDim / 2;
    const source = new Int32Array(headDim);
    for (let i = 0; i < half; i++) {
        for (let j = 0; j < 2; j++) source[2 * i + j] = j * half + i;
    }
    return { group: headDim, source };
}

/**
 * The text model's tensors in the order they are written: token embedding, then each block, then the final norm
 * and (untied only) the output projection.
 */
export function textTensorPlans(t: TextHparams): TensorPlan[] {
    const hd = t.hiddenSize / t.heads;
    const q = t.heads * hd;
    const kv = t.kvHeads * hd;
    const h = t.hiddenSize;
    const out: TensorPlan[] = [plan("token_embd.weight", "model.embed_tokens.weight", [t.vocabSize, h])];
    for (let i = 0; i < t.layers; i++) {
        const p = `model.layers.${i}.`;
        const b = `blk.${i}.`;
        out.push(
            plan(`${b}attn_norm.weight`, `${p}input_layernorm.weight`, [h]),
            plan(`${b}attn_q.weight`, `${p}self_attn.q_proj.weight`, [q, h]),
            plan(`${b}attn_q.bias`, `${p}self_attn.q_proj.bias`, [q]),
            plan(`${b}attn_k.weight`, `${p}self_attn.k_proj.weight`, [kv, h]),
            plan(`${b}attn_k.bias`, `${p}self_attn.k_proj.bias`, [kv]),
            plan(`${b}attn_v.weight`, `${p}self_attn.v_proj.weight`, [kv, h]),
            plan(`${b}attn_v.bias`, `${p}self_attn.v_proj.bias`, [kv]),
            plan(`${b}attn_output.weight`, `${p}self_attn.o_proj.weight`, [h, q]),
            plan(`${b}ffn_norm.weight`, `${p}post_attention_layernorm.weight`, [h]),
            plan(`${b}ffn_gate.weight`, `${p}mlp.gate_proj.weight`, [t.intermediateSize, h]),
            plan(`${b}ffn_up.weight`, `${p}mlp.up_proj.weight`, [t.intermediateSize, h]),
            plan(`${b}ffn_down.weight`, `${p}mlp.down_proj.weight`, [h, t.intermediateSize]),
        );
    }
    out.push(plan("output_norm.weight", "model.norm.weight", [h]));
    if (!t.tieWordEmbeddings) out.push(plan("output.weight", "lm_head.weight", [t.vocabSize, h]));
    return out;
}

/** The vision projector file's tensors: patch embedding, encoder blocks, post-layernorm, projector MLP. */
export function visionTensorPlans(v: VisionHparams, llmHidden: number): TensorPlan[] {
    const e = "model.vision_encoder.";
    const h = v.hiddenSize;
    const out: TensorPlan[] = [
        plan("v.patch_embd.weight", `${e}embeddings.patch_embedding.weight`, [h, v.numChannels, v.patchSize, v.patchSize]),
        plan("v.patch_embd.bias", `${e}embeddings.patch_embedding.bias`, [h]),
    ];
    for (let i = 0; i < v.layers; i++) {
        const p = `${e}encoder.layers.${i}.`;
        const b = `v.blk.${i}.`;
        out.push(
            plan(`${b}ln1.weight`, `${p}layer_norm1.weight`, [h]),
            plan(`${b}ln1.bias`, `${p}layer_norm1.bias`, [h]),
            plan(`${b}attn_q.weight`, `${p}self_attn.q_proj.weight`, [h, h]),
            plan(`${b}attn_q.bias`, `${p}self_attn.q_proj.bias`, [h]),
            plan(`${b}attn_k.weight`, `${p}self_attn.k_proj.weight`, [h, h]),
            plan(`${b}attn_k.bias`, `${p}self_attn.k_proj.bias`, [h]),
            plan(`${b}attn_v.weight`, `${p}self_attn.v_proj.weight`, [h, h]),
            plan(`${b}attn_v.bias`, `${p}self_attn.v_proj.bias`, [h]),
            plan(`${b}attn_out.weight`, `${p}self_attn.out_proj.weight`, [h, h]),
            plan(`${b}attn_out.bias`, `${p}self_attn.out_proj.bias`, [h]),
            plan(`${b}ln2.weight`, `${p}layer_norm2.weight`, [h]),
            plan(`${b}ln2.bias`, `${p}layer_norm2.bias`, [h]),
            plan(`${b}ffn_up.weight`, `${p}mlp.fc1.weight`, [v.intermediateSize, h]),
            plan(`${b}ffn_up.bias`, `${p}mlp.fc1.bias`, [v.intermediateSize]),
            plan(`${b}ffn_down.weight`, `${p}mlp.fc2.weight`, [h, v.intermediateSize]),
            plan(`${b}ffn_down.bias`, `${p}mlp.fc2.bias`, [h]),
        );
    }
    out.push(
        plan("v.post_ln.weight", `${e}post_layernorm.weight`, [h]),
        plan("v.post_ln.bias", `${e}post_layernorm.bias`, [h]),
        plan("mm.0.weight", "model.mm_projector.readout.0.weight", [llmHidden, h]),
        plan("mm.0.bias", "model.mm_projector.readout.0.bias", [llmHidden]),
        plan("mm.2.weight", "model.mm_projector.readout.2.weight", [llmHidden, llmHidden]),
        plan("mm.2.bias", "model.mm_projector.readout.2.bias", [llmHidden]),
    );
    return out;
}

/**
 * Checkpoint keys that are not weights and are skipped silently (buffers some exporters save). Anything else the
 * plans do not use is reported as an unexpected tensor: silently dropping weights would give a broken model.
 */
export function isIgnorableTensor(name: string): boolean {
    return name.endsWith(".rotary_emb.inv_freq") || name.endsWith(".position_ids");
}
