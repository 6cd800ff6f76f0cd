/**
 * A plain double-precision Qwen2 forward pass (HF `Qwen2ForCausalLM` semantics) over weights given by checkpoint key
 * in PyTorch layout, for checking that a converted GGUF computes the same function as the checkpoint. Deliberately
 * naive and independent of the converter: it reads weights through a callback (here: the fixture generator).
 */
import type { TextDims } from "../fixtures/hf-checkpoint.js";

/** Weight lookup by HF key; the array is in PyTorch row-major order ([out, in] for Linear). */
export type WeightSource = (name: string, count: number) => Float32Array;

export interface ReferenceOptions {
    dims: TextDims;
    tied: boolean;
    ropeTheta: number;
    rmsEps: number;
    /**
     * `neox` (Qwen2: pairs (i, i+d/2)) or `interleaved` (pairs (2i, 2i+1)) — the wrong one is used as a control
     * that the comparison is sensitive to the attention path.
     */
    ropeStyle?: "neox" | "interleaved";
}

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
    let s = 0;
    for (const v of x) s += v * v;
    const inv = 1 / Math.sqrt(s / x.length + eps);
    const out = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i]! * inv * w[i]!;
    return out;
}

/** y = W x (+ b), W [out, in] row-major. */
function linear(w: Float32Array, x: Float64Array, out: number, bias?: Float32Array): Float64Array {
    const n = x.length;
    const y = new Float64Array(out);
    for (let o = 0; o < out; o++) {
        let s = bias ? bias[o]! : 0;
        const row = o * n;
        for (let i = 0; i < n; i++) s += w[row + i]! * x[i]!;
        y[o] = s;
    }
    return y;
}

/** NeoX-style RoPE (HF rotate_half): pairs (i, i + d/2) of each head rotate by pos·θ^(−2i/d). */
function rope(v: Float64Array, heads: number, hd: number, pos: number, theta: number, style: "neox" | "interleaved"): void {
    const half = hd / 2;
    for (let h = 0; h < heads; h++) {
        for (let i = 0; i < half; i++) {
            const angle = pos * Math.pow(theta, (-2 * i) / hd);
            const c = Math.cos(angle);
            const s = Math.sin(angle);
            const ia = style === "neox" ? h * hd + i : h * hd + 2 * i;
            const ib = style === "neox" ? h * hd + i + half : h * hd + 2 * i + 1;
            const a = v[ia]!;
            const b = v[ib]!;
            v[ia] = a * c - b * s;
            v[ib] = b * c + a * s;
        }
    }
}

/** Logits of the last position for `tokens` (positions 0..n−1). */
export function qwen2Logits(tokens: readonly number[], weights: WeightSource, o: ReferenceOptions): Float64Array {
    return decoderLogits(tokens, weights, { ...o, prefix: "model.", head: o.tied ? undefined : "lm_head.weight", qkvBias: true });
}

/** Options of {@link decoderLogits}: a Qwen2 or LLaMA decoder (HF layout) under a key prefix. */
export interface DecoderOptions extends Omit<ReferenceOptions, "tied"> {
    /** Prefix of the decoder's keys: `model.` (Qwen2), `language_model.model.` (Video-LLaVA's LLaMA). */
    prefix: string;
    /** Key of the output head; undefined: tied to the embeddings. */
    head: string | undefined;
    /** Whether q/k/v have biases (Qwen2 yes, LLaMA no). */
    qkvBias: boolean;
}

/**
 * Logits of the last position of a decoder-only transformer (HF Qwen2/LLaMA semantics: RMSNorm, rotate-half RoPE,
 * grouped-query causal attention, SwiGLU MLP). Each input is a token id (its embedding row) or an embedding given
 * directly (a visual token, as `inputs_embeds` after the placeholders are replaced).
 */
export function decoderLogits(inputs: ReadonlyArray<number | ArrayLike<number>>, weights: WeightSource, o: DecoderOptions): Float64Array {
    const d = o.dims;
    const h = d.hidden;
    const hd = h / d.heads;
    const group = d.heads / d.kvHeads;
    const embed = weights(`${o.prefix}embed_tokens.weight`, d.vocab * h);
    let xs: Float64Array[] = inputs.map((t) => (typeof t === "number" ? Float64Array.from(embed.subarray(t * h, (t + 1) * h)) : Float64Array.from(t)));
    for (let l = 0; l < d.layers; l++) {
        const p = `${o.prefix}layers.${l}.`;
        const w = (n: string, count: number) => weights(p + n, count);
        const inNorm = w("input_layernorm.weight", h);
        const wq = w("self_attn.q_proj.weight", h * h);
        const bq = o.qkvBias ? w("self_attn.q_proj.bias", h) : undefined;
        const wk = w("self_attn.k_proj.weight", d.kvHeads * hd * h);
        const bk = o.qkvBias ? w("self_attn.k_proj.bias", d.kvHeads * hd) : undefined;
        const wv = w("self_attn.v_proj.weight", d.kvHeads * hd * h);
        const bv = o.qkvBias ? w("self_attn.v_proj.bias", d.kvHeads * hd) : undefined;
        const wo = w("self_attn.o_proj.weight", h * h);
        const postNorm = w("post_attention_layernorm.weight", h);
        const wg = w("mlp.gate_proj.weight", d.ffn * h);
        const wu = w("mlp.up_proj.weight", d.ffn * h);
        const wd = w("mlp.down_proj.weight", h * d.ffn);
        const qs: Float64Array[] = [];
        const ks: Float64Array[] = [];
        const vs: Float64Array[] = [];
        xs.forEach((x, pos) => {
            const n = rmsNorm(x, inNorm, o.rmsEps);
            const q = linear(wq, n, h, bq);
            const k = linear(wk, n, d.kvHeads * hd, bk);
            rope(q, d.heads, hd, pos, o.ropeTheta, o.ropeStyle ?? "neox");
            rope(k, d.kvHeads, hd, pos, o.ropeTheta, o.ropeStyle ?? "neox");
            qs.push(q);
            ks.push(k);
            vs.push(linear(wv, n, d.kvHeads * hd, bv));
        });
        xs = xs.map((x, pos) => {
            const attn = new Float64Array(h);
            for (let head = 0; head < d.heads; head++) {
                const kvh = Math.floor(head / group);
                const scores = new Float64Array(pos + 1);
                let max = -Infinity;
                for (let j = 0; j <= pos; j++) {
                    let s = 0;
                    for (let i = 0; i < hd; i++) s += qs[pos]![head * hd + i]! * ks[j]![kvh * hd + i]!;
                    scores[j] = s / Math.sqrt(hd);
                    max = Math.max(max, scores[j]!);
                }
                let sum = 0;
                for (let j = 0; j <= pos; j++) {
                    scores[j] = Math.exp(scores[j]! - max);
                    sum += scores[j]!;
                }
                for (let j = 0; j <= pos; j++) {
                    const a = scores[j]! / sum;
                    for (let i = 0; i < hd; i++) attn[head * hd + i] += a * vs[j]![kvh * hd + i]!;
                }
            }
            const y = linear(wo, attn, h);
            const x1 = x.map((v, i) => v + y[i]!);
            const n2 = rmsNorm(x1, postNorm, o.rmsEps);
            const g = linear(wg, n2, d.ffn);
            const u = linear(wu, n2, d.ffn);
            const act = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]!);
            const m = linear(wd, act, h);
            return x1.map((v, i) => v + m[i]!);
        });
    }
    const last = rmsNorm(xs[xs.length - 1]!, weights(`${o.prefix}norm.weight`, h), o.rmsEps);
    const head = o.head === undefined ? embed : weights(o.head, d.vocab * h);
    return linear(head, last, d.vocab);
}
