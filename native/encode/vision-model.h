// The vision tower of a VideoLLaMA3-style model, loaded from an mmproj GGUF (docs/gguf-format.md): the NaViT encoder
// (patch embedding, pre-norm blocks with 2D RoPE), post-layernorm and the projector, plus every preprocessing
// parameter the file carries. Nothing about the architecture is hard-coded: sizes come from the file.
//
// Owns the weights (one backend buffer) and the backends that compute with them. Not thread-safe: one encode at a
// time (the bindings serialise calls).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/abort.h"
#include "ggml-backend.h"
#include "ggml.h"

namespace vl {

struct VisionHparams {
    int32_t hidden = 0;        // encoder width (1152)
    int32_t ffn = 0;           // encoder MLP width (4304)
    int32_t layers = 0;        // 27
    int32_t heads = 0;         // 16
    int32_t patch_size = 0;    // 14
    int32_t proj_dim = 0;      // LLM width (1536 / 3584)
    float eps = 1e-6f;
    float rope_theta = 10000.0f;
    std::array<float, 3> mean{};
    std::array<float, 3> std{};
    float rescale = 1.0f / 255.0f;
    int32_t image_merge = 1;
    int32_t video_merge = 2;
    int32_t image_min_tokens = 16;
    int32_t image_max_tokens = 16384;
    std::string resample = "bicubic";
    float video_fps = 1.0f;
    int32_t video_max_frames = 180;
    bool token_compression = true;
    float diff_threshold = 0.1f;
    int32_t min_tokens_per_frame = 1;
    int32_t image_token_id = -1;
    std::string projector_type; // "mlp2x_gelu"
    std::string vision_act;     // "gelu_pytorch_tanh"

    int32_t head_dim() const { return hidden / heads; }
};

struct VisionLayer {
    ggml_tensor * ln1_w = nullptr;
    ggml_tensor * ln1_b = nullptr;
    ggml_tensor * q_w = nullptr;
    ggml_tensor * q_b = nullptr;
    ggml_tensor * k_w = nullptr;
    ggml_tensor * k_b = nullptr;
    ggml_tensor * v_w = nullptr;
    ggml_tensor * v_b = nullptr;
    ggml_tensor * o_w = nullptr;
    ggml_tensor * o_b = nullptr;
    ggml_tensor * ln2_w = nullptr;
    ggml_tensor * ln2_b = nullptr;
    ggml_tensor * up_w = nullptr;
    ggml_tensor * up_b = nullptr;
    ggml_tensor * down_w = nullptr;
    ggml_tensor * down_b = nullptr;
};

struct VisionWeights {
    ggml_tensor * patch_w = nullptr; // [p, p, 3, hidden]
    ggml_tensor * patch_b = nullptr;
    std::vector<VisionLayer> layers;
    ggml_tensor * post_ln_w = nullptr;
    ggml_tensor * post_ln_b = nullptr;
    ggml_tensor * mm0_w = nullptr;
    ggml_tensor * mm0_b = nullptr;
    ggml_tensor * mm2_w = nullptr;
    ggml_tensor * mm2_b = nullptr;
};

struct VisionModelParams {
    std::string path;
    bool use_gpu = true;   // use the GPU backend compiled in, when a device is present
    int32_t n_threads = 0; // CPU threads; 0 = all cores
};

using VisionProgressFn = std::function<void(float)>;

class VisionModel {
  public:
    // Throws vl::Error(ModelLoad) naming the missing key/tensor or the bad shape, or Aborted.
    static std::shared_ptr<VisionModel> load(const VisionModelParams & params, const VisionProgressFn & progress, const AbortFlagPtr & abort);
    ~VisionModel();
    VisionModel(const VisionModel &) = delete;
    VisionModel & operator=(const VisionModel &) = delete;

    const VisionHparams & hparams() const { return hparams_; }
    const VisionWeights & weights() const { return weights_; }
    const std::string & path() const { return path_; }
    // The backend holding the weights (GPU when used) and the CPU backend (always present, for fallback ops).
    ggml_backend_t backend() const { return backend_; }
    ggml_backend_t backend_cpu() const { return backend_cpu_; }
    bool on_gpu() const { return backend_ != backend_cpu_; }
    int32_t n_threads() const { return n_threads_; }
    size_t weights_bytes() const;
    std::string device_name() const;

  private:
    VisionModel() = default;

    std::string path_;
    VisionHparams hparams_;
    VisionWeights weights_;
    ggml_context * ctx_meta_ = nullptr; // tensor metadata (the weights live in buffer_)
    ggml_backend_buffer_t buffer_ = nullptr;
    ggml_backend_t backend_ = nullptr;
    ggml_backend_t backend_cpu_ = nullptr;
    int32_t n_threads_ = 1;
};

using VisionModelPtr = std::shared_ptr<VisionModel>;

} // namespace vl
