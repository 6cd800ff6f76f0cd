#include "encode/vision-model.h"

#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "ggml-alloc.h"
#include "gguf.h"
#include "llm/backend.h"

namespace vl {

namespace {

struct GgufFree {
    void operator()(gguf_context * g) const { gguf_free(g); }
};

struct FileClose {
    void operator()(FILE * f) const { if (f) std::fclose(f); }
};

// Typed access to the mmproj's keys; every failure names the file and the key.
class KeyReader {
  public:
    KeyReader(const gguf_context * g, const std::string & path) : g_(g), path_(path) {}

    bool has(const char * key) const { return gguf_find_key(g_, key) >= 0; }

    uint32_t u32(const char * key) const {
        const int64_t id = require(key);
        switch (gguf_get_kv_type(g_, id)) {
            case GGUF_TYPE_UINT32: return gguf_get_val_u32(g_, id);
            case GGUF_TYPE_INT32: {
                const int32_t v = gguf_get_val_i32(g_, id);
                if (v < 0) fail(key, "must not be negative");
                return static_cast<uint32_t>(v);
            }
            case GGUF_TYPE_UINT64: return static_cast<uint32_t>(gguf_get_val_u64(g_, id));
            default: fail(key, "must be an unsigned integer");
        }
    }
    uint32_t u32(const char * key, uint32_t fallback) const { return has(key) ? u32(key) : fallback; }

    int32_t i32(const char * key) const {
        const int64_t id = require(key);
        switch (gguf_get_kv_type(g_, id)) {
            case GGUF_TYPE_INT32: return gguf_get_val_i32(g_, id);
            case GGUF_TYPE_UINT32: {
                const uint32_t v = gguf_get_val_u32(g_, id);
                if (v > 0x7fffffffu) fail(key, "is out of range");
                return static_cast<int32_t>(v);
            }
            default: fail(key, "must be an integer");
        }
    }
    int32_t i32(const char * key, int32_t fallback) const { return has(key) ? i32(key) : fallback; }

    float f32(const char * key) const {
        const int64_t id = require(key);
        switch (gguf_get_kv_type(g_, id)) {
            case GGUF_TYPE_FLOAT32: return gguf_get_val_f32(g_, id);
            case GGUF_TYPE_FLOAT64: return static_cast<float>(gguf_get_val_f64(g_, id));
            default: fail(key, "must be a float");
        }
    }
    float f32(const char * key, float fallback) const { return has(key) ? f32(key) : fallback; }

    bool boolean(const char * key, bool fallback) const {
        if (!has(key)) return fallback;
        const int64_t id = require(key);
        if (gguf_get_kv_type(g_, id) != GGUF_TYPE_BOOL) fail(key, "must be a boolean");
        return gguf_get_val_bool(g_, id);
    }

    std::string str(const char * key) const {
        const int64_t id = require(key);
        if (gguf_get_kv_type(g_, id) != GGUF_TYPE_STRING) fail(key, "must be a string");
        return gguf_get_val_str(g_, id);
    }
    std::string str(const char * key, const std::string & fallback) const { return has(key) ? str(key) : fallback; }

    std::array<float, 3> f32x3(const char * key) const {
        const int64_t id = require(key);
        if (gguf_get_kv_type(g_, id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(g_, id) != GGUF_TYPE_FLOAT32 || gguf_get_arr_n(g_, id) != 3) {
            fail(key, "must be an array of 3 floats");
        }
        std::array<float, 3> out{};
        std::memcpy(out.data(), gguf_get_arr_data(g_, id), sizeof(float) * 3);
        return out;
    }

  private:
    int64_t require(const char * key) const {
        const int64_t id = gguf_find_key(g_, key);
        if (id < 0) throw Error(ErrorCode::ModelLoad, path_ + ": missing key " + key);
        return id;
    }
    [[noreturn]] void fail(const char * key, const char * what) const {
        throw Error(ErrorCode::ModelLoad, path_ + ": key " + key + " " + what);
    }

    const gguf_context * g_;
    const std::string & path_;
};

std::string shape_str(const ggml_tensor * t) {
    std::string s = "[";
    for (int i = 0; i < ggml_n_dims(t); i++) s += (i ? ", " : "") + std::to_string(t->ne[i]);
    return s + "]";
}

} // namespace

std::shared_ptr<VisionModel> VisionModel::load(const VisionModelParams & params, const VisionProgressFn & progress, const AbortFlagPtr & abort) {
    backend_init();
    LogCapture capture;
    std::shared_ptr<VisionModel> model(new VisionModel());
    model->path_ = params.path;
    const std::string & path = model->path_;

    ggml_context * meta = nullptr;
    gguf_init_params gp{/*no_alloc=*/true, &meta};
    std::unique_ptr<gguf_context, GgufFree> g(gguf_init_from_file(path.c_str(), gp));
    if (!g) {
        std::string reason = capture.summary();
        throw Error(ErrorCode::ModelLoad, path + ": not a readable GGUF file" + (reason.empty() ? "" : " (" + reason + ")"));
    }
    model->ctx_meta_ = meta;

    // ---- hyper-parameters ----
    KeyReader keys(g.get(), path);
    const std::string arch = keys.str("general.architecture", "");
    const std::string projector = keys.str("clip.projector_type", "");
    if (arch != "clip" || (projector != "videollama3" && projector != "video_llava")) {
        throw Error(ErrorCode::ModelLoad, path + ": not a VideoLLaMA3 or Video-LLaVA vision projector (general.architecture='" + arch +
                                              "', clip.projector_type='" + projector + "')");
    }
    VisionHparams & hp = model->hparams_;
    hp.family = projector == "video_llava" ? VisionFamily::VideoLLaVA : VisionFamily::VideoLLaMA3;
    // Keys of both families (llama.cpp's clip names).
    hp.hidden = static_cast<int32_t>(keys.u32("clip.vision.embedding_length"));
    hp.ffn = static_cast<int32_t>(keys.u32("clip.vision.feed_forward_length"));
    hp.layers = static_cast<int32_t>(keys.u32("clip.vision.block_count"));
    hp.heads = static_cast<int32_t>(keys.u32("clip.vision.attention.head_count"));
    hp.eps = keys.f32("clip.vision.attention.layer_norm_epsilon");
    hp.patch_size = static_cast<int32_t>(keys.u32("clip.vision.patch_size"));
    hp.proj_dim = static_cast<int32_t>(keys.u32("clip.vision.projection_dim"));
    hp.mean = keys.f32x3("clip.vision.image_mean");
    hp.std = keys.f32x3("clip.vision.image_std");

    auto bad = [&](const std::string & what) { throw Error(ErrorCode::ModelLoad, path + ": " + what); };
    if (hp.family == VisionFamily::VideoLLaMA3) {
        hp.rope_theta = keys.f32("videollama3.vision.rope.freq_base", 10000.0f);
        hp.vision_act = keys.str("videollama3.vision.hidden_act", "gelu_pytorch_tanh");
        hp.projector_type = keys.str("videollama3.projector.type", "mlp2x_gelu");
        hp.image_merge = static_cast<int32_t>(keys.u32("videollama3.image.merge_size", 1));
        hp.video_merge = static_cast<int32_t>(keys.u32("videollama3.video.merge_size", 2));
        hp.image_min_tokens = static_cast<int32_t>(keys.u32("videollama3.image.min_tokens", 16));
        hp.image_max_tokens = static_cast<int32_t>(keys.u32("videollama3.image.max_tokens", 16384));
        hp.rescale = keys.f32("videollama3.image.rescale_factor", 1.0f / 255.0f);
        hp.resample = keys.str("videollama3.image.resample", "bicubic");
        hp.video_fps = keys.f32("videollama3.video.fps", 1.0f);
        hp.video_max_frames = static_cast<int32_t>(keys.u32("videollama3.video.max_frames", 180));
        hp.token_compression = keys.boolean("videollama3.video.token_compression", true);
        hp.diff_threshold = keys.f32("videollama3.video.diff_threshold", 0.1f);
        hp.min_tokens_per_frame = static_cast<int32_t>(keys.u32("videollama3.video.min_tokens_per_frame", 1));
        hp.image_token_id = static_cast<int32_t>(keys.u32("videollama3.image_token_id", 151665));
        hp.act = hp.vision_act == "gelu" ? VisionAct::GeluErf : VisionAct::GeluTanh;
    } else {
        // Video-LLaVA: the keys that fix tensor shapes or token ids are required; preprocessing keys default to the
        // values of Video-LLaVA-7B (docs/gguf-format.md).
        if (!keys.boolean("clip.has_vision_encoder", true)) bad("clip.has_vision_encoder is false (no vision encoder)");
        hp.rope_theta = 0.0f;
        hp.image_size = static_cast<int32_t>(keys.u32("clip.vision.image_size"));
        const bool use_gelu = keys.boolean("clip.use_gelu", false);
        hp.vision_act = use_gelu ? "gelu" : "quick_gelu";
        hp.act = use_gelu ? VisionAct::GeluErf : VisionAct::QuickGelu;
        hp.projector_type = keys.str("video_llava.projector.type", "mlp2x_gelu");
        const int32_t crop = static_cast<int32_t>(keys.u32("video_llava.image.crop_size", static_cast<uint32_t>(hp.image_size)));
        hp.shortest_edge = static_cast<int32_t>(keys.u32("video_llava.image.shortest_edge", static_cast<uint32_t>(crop)));
        hp.rescale = keys.f32("video_llava.image.rescale_factor", 1.0f / 255.0f);
        hp.resample = keys.str("video_llava.image.resample", "bicubic");
        hp.image_keep_cls = keys.boolean("video_llava.image.keep_cls", false);
        hp.video_keep_cls = keys.boolean("video_llava.video.keep_cls", true);
        hp.video_frames = static_cast<int32_t>(keys.u32("video_llava.video.num_frames", 8));
        hp.token_compression = keys.boolean("video_llava.video.token_compression", false);
        hp.diff_threshold = keys.f32("video_llava.video.diff_threshold", 0.1f);
        hp.min_tokens_per_frame = static_cast<int32_t>(keys.u32("video_llava.video.min_tokens_per_frame", 1));
        hp.image_token_id = static_cast<int32_t>(keys.u32("video_llava.image_token_id"));
        hp.video_token_id = static_cast<int32_t>(keys.u32("video_llava.video_token_id"));
        // Every item is one image_size² crop of merge 1; frames are sampled by count, not by rate.
        hp.image_merge = 1;
        hp.video_merge = 1;
        hp.video_fps = 0.0f;
        hp.video_max_frames = hp.video_frames;
        if (hp.patch_size <= 0 || hp.image_size <= 0 || hp.image_size % hp.patch_size != 0) {
            bad("clip.vision.image_size (" + std::to_string(hp.image_size) + ") must be a positive multiple of clip.vision.patch_size (" +
                std::to_string(hp.patch_size) + ")");
        }
        hp.image_min_tokens = hp.clip_grid() * hp.clip_grid(); // one fixed grid: every image has exactly its patches
        hp.image_max_tokens = hp.image_min_tokens;
        if (crop != hp.image_size) {
            bad("video_llava.image.crop_size (" + std::to_string(crop) + ") must equal clip.vision.image_size (" + std::to_string(hp.image_size) +
                "): the position embeddings are for that grid");
        }
        if (hp.shortest_edge <= 0 || hp.shortest_edge > 65536) bad("video_llava.image.shortest_edge must be between 1 and 65536");
        if (hp.video_frames <= 0 || hp.video_frames > 100000) bad("video_llava.video.num_frames must be between 1 and 100000");
        // The layers written are those up to the feature layer: block_count = source + feature_layer + 1 (negative) or
        // feature_layer (non-negative, hidden_states[k] = the output of block k - 1).
        if (keys.has("video_llava.vision.feature_layer") && keys.has("video_llava.vision.source_block_count")) {
            const int32_t feature = keys.i32("video_llava.vision.feature_layer");
            const int32_t source = static_cast<int32_t>(keys.u32("video_llava.vision.source_block_count"));
            const int32_t expect = feature < 0 ? source + feature + 1 : feature;
            if (expect != hp.layers) {
                bad("clip.vision.block_count is " + std::to_string(hp.layers) + " but video_llava.vision.feature_layer " + std::to_string(feature) +
                    " of video_llava.vision.source_block_count " + std::to_string(source) + " means " + std::to_string(expect) + " blocks");
            }
        }
        if (hp.resample != "bicubic") bad("unsupported video_llava.image.resample '" + hp.resample + "' (only bicubic)");
    }

    if (hp.hidden <= 0 || hp.heads <= 0 || hp.hidden % hp.heads != 0) bad("embedding_length must be a positive multiple of head_count");
    if (!hp.is_clip() && hp.head_dim() % 4 != 0) bad("the 2D RoPE needs a head size divisible by 4, got " + std::to_string(hp.head_dim()));
    if (hp.layers <= 0 || hp.layers > 1000 || hp.ffn <= 0 || hp.proj_dim <= 0) bad("implausible sizes");
    if (hp.patch_size <= 0 || hp.patch_size > 1024) bad("implausible patch_size");
    if (hp.image_merge < 1 || hp.video_merge < 1 || hp.image_merge > 8 || hp.video_merge > 8) bad("merge sizes must be 1..8");
    if (!hp.is_clip() && hp.vision_act != "gelu_pytorch_tanh" && hp.vision_act != "gelu") bad("unsupported vision activation '" + hp.vision_act + "'");
    if (hp.projector_type != "mlp2x_gelu") bad("unsupported projector type '" + hp.projector_type + "'");
    for (int c = 0; c < 3; c++) if (!(hp.std[c] > 0.0f)) bad("image_std must be positive");

    // ---- tensors ----
    auto tensor = [&](const std::string & name, std::initializer_list<int64_t> shape) -> ggml_tensor * {
        ggml_tensor * t = ggml_get_tensor(meta, name.c_str());
        if (!t) bad("missing tensor " + name);
        size_t i = 0;
        bool ok = static_cast<int>(shape.size()) == std::max(ggml_n_dims(t), 1);
        for (int64_t ne : shape) ok = ok && t->ne[i++] == ne;
        if (!ok) {
            std::string want = "[";
            i = 0;
            for (int64_t ne : shape) want += (i++ ? ", " : "") + std::to_string(ne);
            bad("tensor " + name + " has shape " + shape_str(t) + ", expected " + want + "]");
        }
        return t;
    };
    const int64_t H = hp.hidden, F = hp.ffn, P = hp.patch_size, D = hp.proj_dim;
    // The blocks of one tower: `prefix` + "blk.N." + the names of docs/gguf-format.md (the same for both families).
    auto load_layers = [&](const std::string & prefix, std::vector<VisionLayer> & layers) {
        layers.resize(hp.layers);
        for (int il = 0; il < hp.layers; il++) {
            const std::string p = prefix + "blk." + std::to_string(il) + ".";
            VisionLayer & L = layers[il];
            L.ln1_w = tensor(p + "ln1.weight", {H});
            L.ln1_b = tensor(p + "ln1.bias", {H});
            L.q_w = tensor(p + "attn_q.weight", {H, H});
            L.q_b = tensor(p + "attn_q.bias", {H});
            L.k_w = tensor(p + "attn_k.weight", {H, H});
            L.k_b = tensor(p + "attn_k.bias", {H});
            L.v_w = tensor(p + "attn_v.weight", {H, H});
            L.v_b = tensor(p + "attn_v.bias", {H});
            L.o_w = tensor(p + "attn_out.weight", {H, H});
            L.o_b = tensor(p + "attn_out.bias", {H});
            L.ln2_w = tensor(p + "ln2.weight", {H});
            L.ln2_b = tensor(p + "ln2.bias", {H});
            L.up_w = tensor(p + "ffn_up.weight", {H, F});
            L.up_b = tensor(p + "ffn_up.bias", {F});
            L.down_w = tensor(p + "ffn_down.weight", {F, H});
            L.down_b = tensor(p + "ffn_down.bias", {H});
        }
    };
    VisionWeights & w = model->weights_;
    if (hp.family == VisionFamily::VideoLLaMA3) {
        VisionTower & t = w.towers.emplace_back();
        t.patch_w = tensor("v.patch_embd.weight", {P, P, 3, H});
        t.patch_b = tensor("v.patch_embd.bias", {H});
        load_layers("v.", t.layers);
        t.post_ln_w = tensor("v.post_ln.weight", {H});
        t.post_ln_b = tensor("v.post_ln.bias", {H});
    } else {
        const int64_t positions = 1 + static_cast<int64_t>(hp.clip_grid()) * hp.clip_grid();
        auto load_clip_tower = [&](const std::string & prefix) {
            VisionTower & t = w.towers.emplace_back();
            t.class_embd = tensor(prefix + "class_embd", {H});
            t.patch_w = tensor(prefix + "patch_embd.weight", {P, P, 3, H});
            t.pos_embd = tensor(prefix + "position_embd.weight", {H, positions});
            if (t.pos_embd->type != GGML_TYPE_F32) bad("tensor " + prefix + "position_embd.weight must be f32");
            t.pre_ln_w = tensor(prefix + "pre_ln.weight", {H});
            t.pre_ln_b = tensor(prefix + "pre_ln.bias", {H});
            load_layers(prefix, t.layers);
        };
        load_clip_tower("v.");
        // The video tower is optional: a file with only the image tower encodes images only.
        for (ggml_tensor * t = ggml_get_first_tensor(meta); t && !hp.has_video_tower; t = ggml_get_next_tensor(meta, t)) {
            hp.has_video_tower = std::strncmp(t->name, "v.video.", 8) == 0;
        }
        if (hp.has_video_tower) load_clip_tower("v.video.");
    }
    w.mm0_w = tensor("mm.0.weight", {H, D});
    w.mm0_b = tensor("mm.0.bias", {D});
    w.mm2_w = tensor("mm.2.weight", {D, D});
    w.mm2_b = tensor("mm.2.bias", {D});
    // Vectors are added/multiplied element-wise in f32.
    for (ggml_tensor * t = ggml_get_first_tensor(meta); t; t = ggml_get_next_tensor(meta, t)) {
        if (ggml_n_dims(t) == 1 && t->type != GGML_TYPE_F32) bad(std::string("tensor ") + t->name + " must be f32");
    }

    // ---- backends ----
    // The default thread count is the caller's rule (lib/cpu.ts: physical cores), not guessed here.
    if (params.n_threads <= 0) throw Error(ErrorCode::InvalidArgument, "threads must be a positive count");
    model->n_threads_ = params.n_threads;
    model->backend_cpu_ = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    if (!model->backend_cpu_) throw Error(ErrorCode::Internal, "no CPU backend");
    cpu_backend_set_n_threads(model->backend_cpu_, model->n_threads_);
    model->backend_ = model->backend_cpu_;
    model->device_ = choose_device(params.gpu, params.gpu_index);
    if (model->device_.device) {
        model->backend_ = ggml_backend_dev_init(model->device_.device, nullptr);
        if (!model->backend_) throw Error(ErrorCode::ModelLoad, "could not initialise " + model->device_.name + " for the vision projector");
    }

    // ---- weights ----
    model->buffer_ = ggml_backend_alloc_ctx_tensors(meta, model->backend_);
    if (!model->buffer_) throw Error(ErrorCode::ModelLoad, path + ": could not allocate memory for the vision weights");
    ggml_backend_buffer_set_usage(model->buffer_, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);

    std::unique_ptr<FILE, FileClose> f(std::fopen(path.c_str(), "rb"));
    if (!f) throw Error(ErrorCode::Io, "cannot open " + path);
    const size_t data_offset = gguf_get_data_offset(g.get());
    const int64_t n_tensors = gguf_get_n_tensors(g.get());
    size_t total = 0, done = 0;
    for (int64_t i = 0; i < n_tensors; i++) total += gguf_get_tensor_size(g.get(), i);
    const bool host = ggml_backend_buffer_is_host(model->buffer_);
    std::vector<uint8_t> staging;
    for (int64_t i = 0; i < n_tensors; i++) {
        if (abort && abort->aborted()) throw Error(ErrorCode::Aborted, "vision projector load aborted");
        const char * name = gguf_get_tensor_name(g.get(), i);
        ggml_tensor * t = ggml_get_tensor(meta, name);
        const size_t nbytes = ggml_nbytes(t);
        if (nbytes != gguf_get_tensor_size(g.get(), i)) bad(std::string("tensor ") + name + " has an inconsistent size");
        const size_t offset = data_offset + gguf_get_tensor_offset(g.get(), i);
#ifdef _WIN32
        const int seek = _fseeki64(f.get(), static_cast<__int64>(offset), SEEK_SET);
#else
        const int seek = fseeko(f.get(), static_cast<off_t>(offset), SEEK_SET);
#endif
        if (seek != 0) bad(std::string("cannot seek to tensor ") + name);
        void * dst = t->data;
        if (!host) {
            staging.resize(nbytes);
            dst = staging.data();
        }
        if (std::fread(dst, 1, nbytes, f.get()) != nbytes) bad(std::string("file is truncated inside tensor ") + name);
        if (!host) ggml_backend_tensor_set(t, staging.data(), 0, nbytes);
        done += nbytes;
        if (progress) progress(total ? static_cast<float>(done) / static_cast<float>(total) : 1.0f);
    }
    return model;
}

VisionModel::~VisionModel() {
    if (buffer_) ggml_backend_buffer_free(buffer_);
    if (ctx_meta_) ggml_free(ctx_meta_);
    if (backend_ && backend_ != backend_cpu_) ggml_backend_free(backend_);
    if (backend_cpu_) ggml_backend_free(backend_cpu_);
}

const char * vision_family_name(VisionFamily family) { return family == VisionFamily::VideoLLaVA ? "video_llava" : "videollama3"; }

const char * vision_tower_name(VisionTowerId tower) { return tower == VisionTowerId::Video ? "video" : "image"; }

const VisionTower & VisionModel::tower(VisionTowerId tower) const {
    if (!hparams_.is_clip()) return weights_.towers.front();
    const size_t index = static_cast<size_t>(tower);
    if (index >= weights_.towers.size()) {
        throw Error(ErrorCode::InvalidArgument, std::string("this projector (") + path_ + ") has no " + vision_tower_name(tower) + " tower");
    }
    return weights_.towers[index];
}

size_t VisionModel::weights_bytes() const { return buffer_ ? ggml_backend_buffer_get_size(buffer_) : 0; }

std::string VisionModel::device_name() const { return backend_ ? ggml_backend_name(backend_) : "none"; }

} // namespace vl
