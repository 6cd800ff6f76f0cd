#include "encode/vision-encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "common/log.h"
#include "llm/backend.h"

namespace vl {

namespace {

constexpr int kGraphSize = 8192;

// ---- graph blocks (shared by the NaViT and CLIP graphs) ----------------------------------------------------------

// x ← LayerNorm(x) * w + b, over the feature dimension
ggml_tensor * layer_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b, float eps) {
    x = ggml_norm(ctx, x, eps);
    return ggml_add(ctx, ggml_mul(ctx, x, w), b);
}

// x·Wᵀ (+ b when the layer has a bias)
ggml_tensor * linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b) {
    ggml_tensor * y = ggml_mul_mat(ctx, w, x);
    return b ? ggml_add(ctx, y, b) : y;
}

// Splits the rows of `a` among the op's threads.
template <typename F>
void map_rows(ggml_tensor * dst, const ggml_tensor * a, int ith, int nth, F f) {
    const int64_t rows = ggml_nrows(a);
    const int64_t n = a->ne[0];
    const int64_t per = (rows + nth - 1) / nth;
    const int64_t first = per * ith;
    const int64_t last = std::min(rows, first + per);
    for (int64_t r = first; r < last; r++) {
        const float * x = reinterpret_cast<const float *>(static_cast<const char *>(a->data) + r * a->nb[1]);
        float * y = reinterpret_cast<float *>(static_cast<char *>(dst->data) + r * dst->nb[1]);
        for (int64_t i = 0; i < n; i++) y[i] = f(x[i]);
    }
}

// GELU with the tanh approximation (PyTorch's gelu(approximate="tanh")) in f32. On the CPU, ggml_gelu reads an f16
// lookup table (rounding every activation of the 27 MLPs to half precision), so the CPU graph uses this fused custom
// op instead; GPU backends compute ggml_gelu in f32 and keep it.
void gelu_tanh_rows(ggml_tensor * dst, const ggml_tensor * a, int ith, int nth, void * /*userdata*/) {
    const float c = 0.7978845608028654f; // sqrt(2 / pi)
    // 0.5·(1 + tanh z) = 1 / (1 + e^(-2z))
    map_rows(dst, a, ith, nth, [c](float v) { return v / (1.0f + std::exp(-2.0f * c * (v + 0.044715f * v * v * v))); });
}

// CLIP's quick_gelu x·sigmoid(1.702·x) in f32. ggml-cpu's ggml_gelu_quick has the same trap as ggml_gelu: with
// GGML_GELU_QUICK_FP16 (defined in ggml-cpu/vec.h) its f32 path rounds x to f16 and reads an f16 table, so the CPU
// graph uses this op; GPU backends compute ggml_gelu_quick in f32.
void quick_gelu_rows(ggml_tensor * dst, const ggml_tensor * a, int ith, int nth, void * /*userdata*/) {
    map_rows(dst, a, ith, nth, [](float v) { return v / (1.0f + std::exp(-1.702f * v)); });
}

// The encoder MLP's activation, in f32 on every backend (ggml_gelu_erf computes erff in f32 on the CPU).
ggml_tensor * activation(ggml_context * ctx, ggml_tensor * x, VisionAct act, bool on_cpu) {
    switch (act) {
        case VisionAct::GeluErf: return ggml_gelu_erf(ctx, x);
        case VisionAct::QuickGelu: return on_cpu ? ggml_map_custom1(ctx, x, quick_gelu_rows, GGML_N_TASKS_MAX, nullptr) : ggml_gelu_quick(ctx, x);
        case VisionAct::GeluTanh: break;
    }
    return on_cpu ? ggml_map_custom1(ctx, x, gelu_tanh_rows, GGML_N_TASKS_MAX, nullptr) : ggml_gelu(ctx, x);
}

// What the transformer blocks of one graph share.
struct BlockParams {
    int64_t n = 0;       // tokens per item
    int64_t batch = 0;   // items
    int64_t heads = 0;
    int64_t head_dim = 0;
    float eps = 0.0f;
    VisionAct act = VisionAct::GeluTanh;
    bool on_cpu = true;
    ggml_tensor * rope_pos = nullptr; // 2D RoPE positions (4 planes of tokens), or null for none
    float rope_theta = 10000.0f;
};

// What every tower's blocks share: the model's hyper-parameters, for `batch` items of `n` tokens; no RoPE.
BlockParams block_params(const VisionHparams & hp, int64_t n, int64_t batch, bool on_cpu) {
    BlockParams bp;
    bp.n = n;
    bp.batch = batch;
    bp.heads = hp.heads;
    bp.head_dim = hp.head_dim();
    bp.eps = hp.eps;
    bp.act = hp.act;
    bp.on_cpu = on_cpu;
    return bp;
}

// 2D RoPE: pairs (i, i + d/2); the first half of the pairs turn with the row, the second with the column.
ggml_tensor * rope_2d(ggml_context * ctx, ggml_tensor * x, ggml_tensor * pos, const BlockParams & bp) {
    const int64_t d = bp.head_dim;
    int sections[4] = {static_cast<int>(d / 4), static_cast<int>(d / 4), static_cast<int>(d / 4), static_cast<int>(d / 4)};
    return ggml_rope_multi(ctx, x, pos, nullptr, static_cast<int>(d / 2), sections, GGML_ROPE_TYPE_VISION, 32768, bp.rope_theta, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f);
}

// Attention of the queries of `hq` (n_q normed rows per item, RoPE positions `pos_q`) over the keys and values of
// `hkv` (bp.n normed rows per item, positions bp.rope_pos), within each item (scale head_dim^-0.5), then the out
// projection. Returns what is added to the residual stream of the query rows.
ggml_tensor * attend(ggml_context * ctx, ggml_tensor * hq, ggml_tensor * hkv, const VisionLayer & L, const BlockParams & bp, ggml_tensor * pos_q, int64_t n_q) {
    const int64_t d = bp.head_dim, heads = bp.heads, n = bp.n, batch = bp.batch, tokens = n * batch;
    ggml_tensor * q = ggml_reshape_3d(ctx, linear(ctx, hq, L.q_w, L.q_b), d, heads, n_q * batch);
    ggml_tensor * k = ggml_reshape_3d(ctx, linear(ctx, hkv, L.k_w, L.k_b), d, heads, tokens);
    ggml_tensor * v = ggml_reshape_3d(ctx, linear(ctx, hkv, L.v_w, L.v_b), d, heads, tokens);
    if (bp.rope_pos) {
        q = rope_2d(ctx, q, pos_q, bp);
        k = rope_2d(ctx, k, bp.rope_pos, bp);
    }
    // [d, heads, n·batch] → [d, n, heads, batch]: attention runs within each item of the batch only.
    q = ggml_permute(ctx, ggml_reshape_4d(ctx, q, d, heads, n_q, batch), 0, 2, 1, 3);
    k = ggml_permute(ctx, ggml_reshape_4d(ctx, k, d, heads, n, batch), 0, 2, 1, 3);
    v = ggml_permute(ctx, ggml_reshape_4d(ctx, v, d, heads, n, batch), 0, 2, 1, 3);
    if (!bp.on_cpu) { // GPU flash attention kernels want f16 K/V; the CPU one is exact in f32
        k = ggml_cast(ctx, k, GGML_TYPE_F16);
        v = ggml_cast(ctx, v, GGML_TYPE_F16);
    } else {
        k = ggml_cont(ctx, k);
        v = ggml_cont(ctx, v);
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    ggml_tensor * attn = ggml_flash_attn_ext(ctx, q, k, v, nullptr, scale, 0.0f, 0.0f);
    ggml_prec_set_acc(attn, GGML_PREC_F32);
    attn = ggml_reshape_2d(ctx, attn, d * heads, n_q * batch); // result is [d, heads, n_q, batch]
    return linear(ctx, attn, L.o_w, L.o_b);
}

// Attention sub-block: LN1, then every token attends to every token of its item.
ggml_tensor * attention(ggml_context * ctx, ggml_tensor * x, const VisionLayer & L, const BlockParams & bp) {
    ggml_tensor * h = layer_norm(ctx, x, L.ln1_w, L.ln1_b, bp.eps);
    return attend(ctx, h, h, L, bp, bp.rope_pos, bp.n);
}

// MLP sub-block: LN2, up, activation, down. Returns what is added to the residual stream.
ggml_tensor * mlp(ggml_context * ctx, ggml_tensor * x, const VisionLayer & L, const BlockParams & bp) {
    ggml_tensor * h = layer_norm(ctx, x, L.ln2_w, L.ln2_b, bp.eps);
    h = linear(ctx, h, L.up_w, L.up_b);
    h = activation(ctx, h, bp.act, bp.on_cpu);
    return linear(ctx, h, L.down_w, L.down_b);
}

// One pre-LN transformer block: x + attention(LN1(x)), then + MLP(LN2(·)).
ggml_tensor * transformer_block(ggml_context * ctx, ggml_tensor * x, const VisionLayer & L, const BlockParams & bp) {
    x = ggml_add(ctx, x, attention(ctx, x, L, bp));
    return ggml_add(ctx, x, mlp(ctx, x, L, bp));
}

// The same block computed for `xc` only (n_c rows of one item, RoPE positions pos_c), whose queries attend to all
// rows of `all` (the item's layer input, in which xc's rows already stand).
ggml_tensor * transformer_block_rows(ggml_context * ctx, ggml_tensor * all, ggml_tensor * xc, const VisionLayer & L, const BlockParams & bp,
                                     ggml_tensor * pos_c, int64_t n_c) {
    ggml_tensor * h_all = layer_norm(ctx, all, L.ln1_w, L.ln1_b, bp.eps);
    ggml_tensor * h_c = layer_norm(ctx, xc, L.ln1_w, L.ln1_b, bp.eps);
    xc = ggml_add(ctx, xc, attend(ctx, h_c, h_all, L, bp, pos_c, n_c));
    return ggml_add(ctx, xc, mlp(ctx, xc, L, bp));
}

// m×m merge: in merge-block order the m² patches of a block are consecutive rows, so the bilinear down-sample by m
// (which for m ≤ 2 equals the block mean) is the mean of each group of m² rows.
ggml_tensor * merge_blocks(ggml_context * ctx, ggml_tensor * x, int64_t hidden, int32_t merge) {
    if (merge <= 1) return x;
    const int64_t group = static_cast<int64_t>(merge) * merge;
    const int64_t merged = x->ne[1] / group;
    ggml_tensor * sum = nullptr;
    for (int64_t j = 0; j < group; j++) {
        ggml_tensor * view = ggml_view_2d(ctx, x, hidden, merged, x->nb[1] * group, x->nb[1] * j);
        sum = sum ? ggml_add(ctx, sum, view) : ggml_cont(ctx, view);
    }
    return ggml_scale(ctx, sum, 1.0f / static_cast<float>(group));
}

// NaViT RoPE positions of a grid in merge-block order, as ggml_rope_multi's 4 planes [h…][w…][h…][w…] (planes 2-3
// repeat 0-1), for `copies` items back to back.
std::vector<int32_t> navit_positions(int32_t grid_h, int32_t grid_w, int32_t m, int32_t copies) {
    const int64_t n = static_cast<int64_t>(grid_h) * grid_w;
    const int64_t tokens = n * copies;
    std::vector<int32_t> pos(tokens * 4);
    int64_t r = 0;
    for (int32_t bh = 0; bh < grid_h / m; bh++) {
        for (int32_t bw = 0; bw < grid_w / m; bw++) {
            for (int32_t mh = 0; mh < m; mh++) {
                for (int32_t mw = 0; mw < m; mw++, r++) {
                    pos[r] = bh * m + mh;
                    pos[tokens + r] = bw * m + mw;
                }
            }
        }
    }
    for (int32_t i = 1; i < copies; i++) {
        std::memcpy(pos.data() + i * n, pos.data(), sizeof(int32_t) * n);
        std::memcpy(pos.data() + tokens + i * n, pos.data() + tokens, sizeof(int32_t) * n);
    }
    std::memcpy(pos.data() + 2 * tokens, pos.data(), sizeof(int32_t) * 2 * tokens);
    return pos;
}

// The projector shared by both families: mm.0 → erf GELU → mm.2.
ggml_tensor * projector(ggml_context * ctx, ggml_tensor * x, const VisionWeights & w) {
    x = linear(ctx, x, w.mm0_w, w.mm0_b);
    x = ggml_gelu_erf(ctx, x);
    return linear(ctx, x, w.mm2_w, w.mm2_b);
}

} // namespace

struct VisionEncoder::CachedGraph {
    VisionTowerId tower = VisionTowerId::Image;
    int32_t batch = 0, grid_h = 0, grid_w = 0, merge = 0, n_keep = -1;
    ggml_context * ctx = nullptr;
    ggml_cgraph * gf = nullptr;
    ggml_tensor * inp = nullptr;
    ggml_tensor * pos = nullptr;  // NaViT: RoPE positions
    ggml_tensor * keep = nullptr; // rows to project (NaViT: kept merged tokens; CLIP: class tokens and kept patches)
    ggml_tensor * out = nullptr;
    ~CachedGraph() { if (ctx) ggml_free(ctx); }
};

VisionEncoder::VisionEncoder(VisionModelPtr model) : model_(std::move(model)) {
    std::vector<ggml_backend_t> backends{model_->backend()};
    if (model_->on_gpu()) backends.push_back(model_->backend_cpu());
    sched_ = ggml_backend_sched_new(backends.data(), nullptr, static_cast<int>(backends.size()), kGraphSize, false, true);
    if (!sched_) throw Error(ErrorCode::Internal, "could not create the vision scheduler");
    cpu_backend_set_abort_callback(model_->backend_cpu(), abort_callback, this);
}

VisionEncoder::~VisionEncoder() {
    cpu_backend_set_abort_callback(model_->backend_cpu(), nullptr, nullptr);
    cached_.reset();
    allocated_ = nullptr;
    if (sched_) ggml_backend_sched_free(sched_);
}

bool VisionEncoder::abort_callback(void * data) {
    auto * self = static_cast<VisionEncoder *>(data);
    return self->current_abort_ && self->current_abort_->aborted();
}

size_t VisionEncoder::compute_buffer_bytes() const { return peak_compute_bytes_; }

VisionEncoder::CachedGraph & VisionEncoder::graph_for(VisionTowerId tower, int32_t batch, int32_t grid_h, int32_t grid_w, int32_t merge, int32_t n_keep) {
    if (cached_ && cached_->tower == tower && cached_->batch == batch && cached_->grid_h == grid_h && cached_->grid_w == grid_w &&
        cached_->merge == merge && cached_->n_keep == n_keep) {
        return *cached_;
    }
    cached_.reset();
    allocated_ = nullptr;
    auto g = std::make_unique<CachedGraph>();
    g->tower = tower;
    g->batch = batch;
    g->grid_h = grid_h;
    g->grid_w = grid_w;
    g->merge = merge;
    g->n_keep = n_keep;

    ggml_init_params ip{ggml_tensor_overhead() * kGraphSize + ggml_graph_overhead_custom(kGraphSize, false), nullptr, true};
    g->ctx = ggml_init(ip);
    g->gf = ggml_new_graph_custom(g->ctx, kGraphSize, false);
    const VisionTower & t = model_->tower(tower);
    if (model_->hparams().is_clip()) {
        build_clip(*g, t);
    } else {
        build_navit(*g, t);
    }
    ggml_set_name(g->out, "vision_out");
    ggml_set_output(g->out);
    ggml_build_forward_expand(g->gf, g->out);
    cached_ = std::move(g);
    return *cached_;
}

// VideoLLaMA3: patches in merge-block order → patch embedding → blocks with 2D RoPE → post-layernorm → m×m merge →
// kept tokens → projector.
void VisionEncoder::build_navit(CachedGraph & g, const VisionTower & tw) {
    const VisionHparams & hp = model_->hparams();
    ggml_context * ctx = g.ctx;
    const int64_t n = static_cast<int64_t>(g.grid_h) * g.grid_w; // patches per item
    const int64_t tokens = n * g.batch;
    const int64_t patch_values = 3LL * hp.patch_size * hp.patch_size;

    g.inp = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, patch_values, tokens);
    ggml_set_name(g.inp, "inp_patches");
    ggml_set_input(g.inp);
    g.pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, tokens * 4);
    ggml_set_name(g.pos, "inp_pos");
    ggml_set_input(g.pos);

    // Patch embedding: the conv kernel flattened to (c, py, px) rows is a matrix over pre-cut patches.
    ggml_tensor * patch_w = ggml_reshape_2d(ctx, tw.patch_w, patch_values, hp.hidden);
    ggml_tensor * x = linear(ctx, g.inp, patch_w, tw.patch_b);

    BlockParams bp = block_params(hp, n, g.batch, !model_->on_gpu());
    bp.rope_pos = g.pos;
    bp.rope_theta = hp.rope_theta;
    for (const VisionLayer & L : tw.layers) x = transformer_block(ctx, x, L, bp);
    x = layer_norm(ctx, x, tw.post_ln_w, tw.post_ln_b, hp.eps);

    // m×m merge (blocks come out in raster order).
    x = merge_blocks(ctx, x, hp.hidden, g.merge);
    if (g.n_keep >= 0) {
        g.keep = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, g.n_keep);
        ggml_set_name(g.keep, "inp_keep");
        ggml_set_input(g.keep);
        x = ggml_get_rows(ctx, x, g.keep); // pruned tokens skip the projector
    }
    g.out = projector(ctx, x, model_->weights());
}

// Video-LLaVA: patches in raster order → patch embedding (no bias) → [class token; patches] per item + position
// embedding → pre-layernorm → blocks (no RoPE) → the class token (where the tower keeps it) and the kept patch tokens
// of each item → projector. HF's hidden_states[feature_layer] is the output of the last block the file holds.
void VisionEncoder::build_clip(CachedGraph & g, const VisionTower & tw) {
    const VisionHparams & hp = model_->hparams();
    ggml_context * ctx = g.ctx;
    const int64_t patches = static_cast<int64_t>(g.grid_h) * g.grid_w;
    const int64_t n = 1 + patches; // tokens per item
    const int64_t patch_values = 3LL * hp.patch_size * hp.patch_size;

    g.inp = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, patch_values, patches * g.batch);
    ggml_set_name(g.inp, "inp_patches");
    ggml_set_input(g.inp);

    ggml_tensor * patch_w = ggml_reshape_2d(ctx, tw.patch_w, patch_values, hp.hidden);
    ggml_tensor * x = ggml_reshape_3d(ctx, linear(ctx, g.inp, patch_w, nullptr), hp.hidden, patches, g.batch);
    ggml_tensor * cls = ggml_repeat_4d(ctx, ggml_reshape_3d(ctx, tw.class_embd, hp.hidden, 1, 1), hp.hidden, 1, g.batch, 1);
    x = ggml_concat(ctx, cls, x, 1);     // [hidden, 1 + patches, batch]
    x = ggml_add(ctx, x, tw.pos_embd);   // [hidden, 1 + patches] broadcast over the items
    x = ggml_reshape_2d(ctx, x, hp.hidden, n * g.batch);
    x = layer_norm(ctx, x, tw.pre_ln_w, tw.pre_ln_b, hp.eps);

    const BlockParams bp = block_params(hp, n, g.batch, !model_->on_gpu());
    for (const VisionLayer & L : tw.layers) x = transformer_block(ctx, x, L, bp);

    g.keep = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, g.n_keep);
    ggml_set_name(g.keep, "inp_keep");
    ggml_set_input(g.keep);
    x = ggml_get_rows(ctx, x, g.keep);
    g.out = projector(ctx, x, model_->weights());
}

int32_t VisionEncoder::tokens_unpruned(const VisionItem & item) const {
    return (model_->hparams().keep_cls(item.tower) ? 1 : 0) + item.n_merged();
}

int32_t VisionEncoder::tokens_out(const VisionItem & item) const {
    return (model_->hparams().keep_cls(item.tower) ? 1 : 0) + item.n_kept();
}

void VisionEncoder::encode_batch(const std::vector<const VisionItem *> & batch, std::vector<float> & out, const AbortFlagPtr & abort) {
    const VisionHparams & hp = model_->hparams();
    const VisionItem & first = *batch.front();
    const int32_t b = static_cast<int32_t>(batch.size());
    const bool clip = hp.is_clip();
    bool keep_all = true;
    for (const VisionItem * item : batch) keep_all = keep_all && item->keep_all;
    // Rows of the encoder output that go to the projector. NaViT: kept merged tokens (none listed when all are kept).
    // CLIP: per item its class token (where the tower keeps it) then its kept patches; item i's tokens start at
    // i·(1 + patches), its class token first.
    std::vector<int32_t> keep;
    if (clip) {
        const int32_t patches = first.n_patches();
        const bool cls = hp.keep_cls(first.tower);
        for (int32_t i = 0; i < b; i++) {
            const VisionItem & item = *batch[i];
            const int32_t base = i * (1 + patches);
            if (cls) keep.push_back(base);
            if (item.keep_all) {
                for (int32_t t = 0; t < patches; t++) keep.push_back(base + 1 + t);
            } else {
                for (int32_t t : item.keep) keep.push_back(base + 1 + t);
            }
        }
    } else if (!keep_all) {
        const int32_t per_item = first.n_merged();
        for (int32_t i = 0; i < b; i++) {
            const VisionItem & item = *batch[i];
            if (item.keep_all) {
                for (int32_t t = 0; t < per_item; t++) keep.push_back(i * per_item + t);
            } else {
                for (int32_t t : item.keep) keep.push_back(i * per_item + t);
            }
        }
    }
    const bool select = clip || !keep_all;
    if (select && keep.empty()) return; // every token pruned: nothing to encode
    CachedGraph & g = graph_for(clip ? first.tower : VisionTowerId::Image, b, first.grid_h, first.grid_w, first.merge,
                                select ? static_cast<int32_t>(keep.size()) : -1);

    if (allocated_ != &g) {
        ggml_backend_sched_reset(sched_);
        allocated_ = nullptr;
        if (!ggml_backend_sched_alloc_graph(sched_, g.gf)) {
            cached_.reset();
            throw Error(ErrorCode::Internal, "could not allocate the vision encoder's compute buffers (out of memory?)");
        }
        allocated_ = &g;
        for (int i = 0; i < ggml_backend_sched_get_n_backends(sched_); i++) {
            peak_compute_bytes_ = std::max(peak_compute_bytes_, ggml_backend_sched_get_buffer_size(sched_, ggml_backend_sched_get_backend(sched_, i)));
        }
    }

    // Inputs: patches of every item back to back.
    const int64_t n = first.n_patches();
    const size_t row_bytes = sizeof(float) * 3 * hp.patch_size * hp.patch_size;
    for (int32_t i = 0; i < b; i++) ggml_backend_tensor_set(g.inp, batch[i]->patches, row_bytes * n * i, row_bytes * n);
    if (g.pos) {
        const std::vector<int32_t> pos = navit_positions(first.grid_h, first.grid_w, first.merge, b);
        ggml_backend_tensor_set(g.pos, pos.data(), 0, ggml_nbytes(g.pos));
    }
    if (g.keep && !keep.empty()) ggml_backend_tensor_set(g.keep, keep.data(), 0, ggml_nbytes(g.keep));

    current_abort_ = abort;
    const ggml_status status = ggml_backend_sched_graph_compute(sched_, g.gf);
    current_abort_.reset();
    if (status == GGML_STATUS_ABORTED || (abort && abort->aborted())) throw Error(ErrorCode::Aborted, "vision encoding aborted");
    if (status != GGML_STATUS_SUCCESS) throw Error(ErrorCode::Internal, "the vision encoder's graph failed to compute (status " + std::to_string(status) + ")");

    const size_t old = out.size();
    out.resize(old + ggml_nelements(g.out));
    ggml_backend_tensor_get(g.out, out.data() + old, 0, ggml_nbytes(g.out));
}

EncoderReuseState::~EncoderReuseState() { release(); }

void EncoderReuseState::release() {
    if (buffer_) ggml_backend_buffer_free(buffer_);
    if (ctx_) ggml_free(ctx_);
    buffer_ = nullptr;
    ctx_ = nullptr;
    layers_.clear();
    model_.reset();
    valid_ = false;
}

int32_t VisionEncoder::encode_changed(const VisionItem & item, EncoderReuseState & st, std::vector<float> & out, const AbortFlagPtr & abort) {
    const VisionHparams & hp = model_->hparams();
    if (hp.is_clip()) throw Error(ErrorCode::InvalidArgument, "encoding only the changed blocks needs a NaViT (VideoLLaMA3) projector");
    if (!item.patches || item.grid_h <= 0 || item.grid_w <= 0 || item.merge <= 0 || item.grid_h % item.merge || item.grid_w % item.merge) {
        throw Error(ErrorCode::InvalidArgument, "a frame needs a positive patch grid that is a multiple of its merge size");
    }
    if (!item.keep_all) {
        int32_t previous = -1;
        for (int32_t t : item.keep) {
            if (t <= previous || t >= item.n_merged()) throw Error(ErrorCode::InvalidArgument, "kept token indices must be ascending and in range");
            previous = t;
        }
    }
    const VisionTower & tw = model_->tower(VisionTowerId::Image);
    const int64_t n = item.n_patches();
    const int64_t group = static_cast<int64_t>(item.merge) * item.merge;
    const int64_t hidden = hp.hidden;

    // The state follows the frames' grid and this model; anything else starts over with a whole frame.
    if (st.model_ != model_ || st.grid_h_ != item.grid_h || st.grid_w_ != item.grid_w || st.merge_ != item.merge) {
        st.release();
        ggml_init_params ip{ggml_tensor_overhead() * (tw.layers.size() + 1), nullptr, true};
        st.ctx_ = ggml_init(ip);
        if (!st.ctx_) throw Error(ErrorCode::Internal, "could not allocate the encoder's frame states (out of memory?)");
        for (size_t l = 0; l < tw.layers.size(); l++) st.layers_.push_back(ggml_new_tensor_2d(st.ctx_, GGML_TYPE_F32, hidden, n));
        st.buffer_ = ggml_backend_alloc_ctx_tensors(st.ctx_, model_->backend());
        if (!st.buffer_) {
            st.release();
            throw Error(ErrorCode::Internal, "could not allocate the encoder's frame states (out of memory?)");
        }
        st.model_ = model_;
        st.grid_h_ = item.grid_h;
        st.grid_w_ = item.grid_w;
        st.merge_ = item.merge;
    }
    const bool whole = !st.valid_ || item.keep_all;
    // Patch rows computed: every patch of the kept blocks (in merge-block order a block's m² patches are consecutive).
    std::vector<int32_t> rows;
    if (whole) {
        rows.resize(n);
        for (int64_t r = 0; r < n; r++) rows[r] = static_cast<int32_t>(r);
    } else {
        rows.reserve(item.keep.size() * group);
        for (int32_t t : item.keep) {
            for (int64_t j = 0; j < group; j++) rows.push_back(static_cast<int32_t>(t * group + j));
        }
    }
    const int64_t nc = static_cast<int64_t>(rows.size());
    const int64_t patch_values = 3LL * hp.patch_size * hp.patch_size;

    ggml_init_params ip{ggml_tensor_overhead() * kGraphSize + ggml_graph_overhead_custom(kGraphSize, false), nullptr, true};
    std::unique_ptr<ggml_context, decltype(&ggml_free)> holder(ggml_init(ip), ggml_free);
    ggml_context * ctx = holder.get();
    if (!ctx) throw Error(ErrorCode::Internal, "could not allocate the vision encoder's graph (out of memory?)");
    ggml_cgraph * gf = ggml_new_graph_custom(ctx, kGraphSize, false);
    ggml_tensor * inp = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, patch_values, nc);
    ggml_tensor * idx = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, nc);
    ggml_tensor * pos_all = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n * 4);
    ggml_tensor * pos_c = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, nc * 4);
    for (ggml_tensor * t : {inp, idx, pos_all, pos_c}) ggml_set_input(t);
    // A whole frame whose tokens are pruned (a first frame is never, but keep_all may be false with an invalid state)
    // projects only its kept tokens.
    ggml_tensor * select = nullptr;
    if (whole && !item.keep_all) {
        select = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, static_cast<int64_t>(item.keep.size()));
        ggml_set_input(select);
    }

    ggml_tensor * patch_w = ggml_reshape_2d(ctx, tw.patch_w, patch_values, hidden);
    ggml_tensor * x = linear(ctx, inp, patch_w, tw.patch_b);
    BlockParams bp = block_params(hp, n, 1, !model_->on_gpu());
    bp.rope_pos = pos_all;
    bp.rope_theta = hp.rope_theta;
    for (size_t l = 0; l < tw.layers.size(); l++) {
        // The layer's input for all patches: the state with this frame's computed rows written in (in place, so the
        // state then holds this frame's).
        ggml_tensor * all = ggml_set_rows(ctx, st.layers_[l], x, idx);
        x = transformer_block_rows(ctx, all, x, tw.layers[l], bp, pos_c, nc);
    }
    x = layer_norm(ctx, x, tw.post_ln_w, tw.post_ln_b, hp.eps);
    x = merge_blocks(ctx, x, hidden, item.merge);
    if (select) x = ggml_get_rows(ctx, x, select);
    ggml_tensor * result = projector(ctx, x, model_->weights());
    ggml_set_output(result);
    ggml_build_forward_expand(gf, result);

    ggml_backend_sched_reset(sched_);
    allocated_ = nullptr; // the cached graph's layout is gone
    if (!ggml_backend_sched_alloc_graph(sched_, gf)) throw Error(ErrorCode::Internal, "could not allocate the vision encoder's compute buffers (out of memory?)");
    for (int i = 0; i < ggml_backend_sched_get_n_backends(sched_); i++) {
        peak_compute_bytes_ = std::max(peak_compute_bytes_, ggml_backend_sched_get_buffer_size(sched_, ggml_backend_sched_get_backend(sched_, i)));
    }
    const size_t row_bytes = sizeof(float) * patch_values;
    if (whole) {
        ggml_backend_tensor_set(inp, item.patches, 0, row_bytes * n);
    } else {
        std::vector<float> picked(static_cast<size_t>(nc * patch_values));
        for (int64_t r = 0; r < nc; r++) std::memcpy(picked.data() + r * patch_values, item.patches + static_cast<int64_t>(rows[r]) * patch_values, row_bytes);
        ggml_backend_tensor_set(inp, picked.data(), 0, ggml_nbytes(inp));
    }
    ggml_backend_tensor_set(idx, rows.data(), 0, ggml_nbytes(idx));
    const std::vector<int32_t> pos = navit_positions(item.grid_h, item.grid_w, item.merge, 1);
    ggml_backend_tensor_set(pos_all, pos.data(), 0, ggml_nbytes(pos_all));
    std::vector<int32_t> pc(static_cast<size_t>(nc * 4));
    for (int plane = 0; plane < 4; plane++) {
        for (int64_t r = 0; r < nc; r++) pc[plane * nc + r] = pos[plane * n + rows[r]];
    }
    ggml_backend_tensor_set(pos_c, pc.data(), 0, ggml_nbytes(pos_c));
    if (select) ggml_backend_tensor_set(select, item.keep.data(), 0, ggml_nbytes(select));

    // The states are written during the computation: until it succeeds they describe no frame.
    st.valid_ = false;
    current_abort_ = abort;
    const ggml_status status = ggml_backend_sched_graph_compute(sched_, gf);
    current_abort_.reset();
    if (status == GGML_STATUS_ABORTED || (abort && abort->aborted())) throw Error(ErrorCode::Aborted, "vision encoding aborted");
    if (status != GGML_STATUS_SUCCESS) throw Error(ErrorCode::Internal, "the vision encoder's graph failed to compute (status " + std::to_string(status) + ")");
    st.valid_ = true;

    const size_t old = out.size();
    out.resize(old + ggml_nelements(result));
    ggml_backend_tensor_get(result, out.data() + old, 0, ggml_nbytes(result));
    return static_cast<int32_t>(nc);
}

std::vector<int32_t> VisionEncoder::encode(const std::vector<VisionItem> & items, std::vector<float> & out, const AbortFlagPtr & abort,
                                           const VisionEncodeProgressFn & progress, const VisionEncodeOptions & options) {
    const VisionHparams & hp = model_->hparams();
    const bool clip = hp.is_clip();
    std::vector<int32_t> counts;
    for (const VisionItem & item : items) {
        if (!item.patches) throw Error(ErrorCode::InvalidArgument, "vision item without patches");
        if (item.grid_h <= 0 || item.grid_w <= 0 || item.merge <= 0 || item.grid_h % item.merge || item.grid_w % item.merge) {
            throw Error(ErrorCode::InvalidArgument, "patch grid " + std::to_string(item.grid_h) + "x" + std::to_string(item.grid_w) +
                                                        " is not a positive multiple of the merge size " + std::to_string(item.merge));
        }
        if (clip) {
            model_->tower(item.tower); // throws when the file has no such tower
            const int32_t side = hp.clip_grid();
            if (item.merge != 1 || item.grid_h != side || item.grid_w != side) {
                throw Error(ErrorCode::InvalidArgument, "the CLIP towers encode " + std::to_string(side) + "x" + std::to_string(side) + " patches (" +
                                                            std::to_string(hp.image_size) + "x" + std::to_string(hp.image_size) +
                                                            " pixels) of merge 1, got a " + std::to_string(item.grid_h) + "x" +
                                                            std::to_string(item.grid_w) + " grid of merge " + std::to_string(item.merge));
            }
        }
        if (!item.keep_all) {
            int32_t previous = -1;
            for (int32_t t : item.keep) {
                if (t <= previous || t >= item.n_merged()) throw Error(ErrorCode::InvalidArgument, "kept token indices must be ascending and in range");
                previous = t;
            }
        }
        counts.push_back(tokens_out(item));
    }
    const size_t proj = static_cast<size_t>(hp.proj_dim);
    size_t total_out = 0;
    for (int32_t c : counts) total_out += static_cast<size_t>(c) * proj;
    out.reserve(out.size() + total_out);

    // VideoLLaMA3 has one tower: items batch together whatever tower they name.
    auto same_tower = [clip](const VisionItem & a, const VisionItem & b) { return !clip || a.tower == b.tower; };
    size_t i = 0;
    while (i < items.size()) {
        if (abort && abort->aborted()) throw Error(ErrorCode::Aborted, "vision encoding aborted");
        std::vector<const VisionItem *> batch{&items[i]};
        int64_t patches = items[i].n_patches();
        while (i + batch.size() < items.size()) {
            const VisionItem & next = items[i + batch.size()];
            if (next.grid_h != items[i].grid_h || next.grid_w != items[i].grid_w || next.merge != items[i].merge || !same_tower(next, items[i])) break;
            if (patches + next.n_patches() > options.max_batch_patches) break;
            batch.push_back(&next);
            patches += next.n_patches();
        }
        encode_batch(batch, out, abort);
        i += batch.size();
        if (progress) progress(static_cast<int32_t>(i), static_cast<int32_t>(items.size()));
    }
    return counts;
}

} // namespace vl
