// The vision side of a model, loaded from an mmproj GGUF (docs/gguf-format.md): one or two encoder towers, the
// projector, and every preprocessing parameter the file carries. Nothing about the architecture is hard-coded: sizes
// come from the file. Two families:
//   - VideoLLaMA3 (`clip.projector_type = videollama3`): one NaViT tower (patch embedding with bias, pre-norm blocks
//     with 2D RoPE, post-layernorm) for images and video frames of any patch grid;
//   - Video-LLaVA (`clip.projector_type = video_llava`): two CLIP ViT towers, the image tower (`v.`) and the video
//     tower (`v.video.`), each with a class token, learned position embeddings for one fixed grid and a pre-layernorm,
//     and no post-layernorm (the feature layer is the output of the last block written).
// Both end in the same two-layer projector (`mm.0`, erf GELU, `mm.2`).
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
#include "llm/backend.h"

namespace vl {

enum class VisionFamily { VideoLLaMA3, VideoLLaVA };

// The encoder MLP's activation: gelu_pytorch_tanh, erf gelu, or CLIP's quick_gelu x·sigmoid(1.702x).
enum class VisionAct { GeluTanh, GeluErf, QuickGelu };

// Which tower encodes an item. VideoLLaMA3 has one tower for both (the item's merge size tells images from frames).
enum class VisionTowerId : int32_t { Image = 0, Video = 1 };

const char * vision_family_name(VisionFamily family);  // "videollama3" / "video_llava" (the projector type)
const char * vision_tower_name(VisionTowerId tower);    // "image" / "video"

struct VisionHparams {
    VisionFamily family = VisionFamily::VideoLLaMA3;
    int32_t hidden = 0;        // encoder width (1152)
    int32_t ffn = 0;           // encoder MLP width (4304)
    int32_t layers = 0;        // 27
    int32_t heads = 0;         // 16
    int32_t patch_size = 0;    // 14
    int32_t proj_dim = 0;      // LLM width (1536 / 3584)
    float eps = 1e-6f;
    float rope_theta = 10000.0f; // 2D RoPE base (VideoLLaMA3); 0 for CLIP (no RoPE)
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
    std::string vision_act;     // "gelu_pytorch_tanh" / "gelu" / "quick_gelu"
    VisionAct act = VisionAct::GeluTanh;

    // Video-LLaVA (CLIP) only; 0 / false / -1 for VideoLLaMA3.
    int32_t image_size = 0;       // the (square) crop the towers see, a multiple of patch_size (224)
    int32_t shortest_edge = 0;    // resize target of the shortest edge before the centre crop (224)
    int32_t video_frames = 0;     // frames per video (8)
    bool image_keep_cls = false;  // the image tower's output keeps the class token (false: 256 tokens)
    bool video_keep_cls = false;  // the video tower's output keeps it (true: 257 tokens per frame)
    int32_t video_token_id = -1;
    bool has_video_tower = false; // the file holds the `v.video.` tower

    int32_t head_dim() const { return hidden / heads; }
    bool is_clip() const { return family == VisionFamily::VideoLLaVA; }
    // CLIP: patches per side of the fixed grid (image_size / patch_size); 0 for VideoLLaMA3 (any grid).
    int32_t clip_grid() const { return is_clip() ? image_size / patch_size : 0; }
    bool keep_cls(VisionTowerId tower) const { return is_clip() && (tower == VisionTowerId::Video ? video_keep_cls : image_keep_cls); }
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

// One encoder tower; the tensors a family does not have stay null.
struct VisionTower {
    ggml_tensor * patch_w = nullptr;    // [p, p, 3, hidden]
    ggml_tensor * patch_b = nullptr;    // [hidden] (VideoLLaMA3; CLIP's patch embedding has no bias)
    ggml_tensor * class_embd = nullptr; // [hidden] (CLIP)
    ggml_tensor * pos_embd = nullptr;   // [hidden, 1 + grid²] (CLIP, f32)
    ggml_tensor * pre_ln_w = nullptr;   // [hidden] (CLIP)
    ggml_tensor * pre_ln_b = nullptr;
    std::vector<VisionLayer> layers;
    ggml_tensor * post_ln_w = nullptr;  // [hidden] (VideoLLaMA3)
    ggml_tensor * post_ln_b = nullptr;
};

struct VisionWeights {
    // Indexed by VisionTowerId: [Image] is VideoLLaMA3's only tower; [Video] is there when hparams.has_video_tower.
    std::vector<VisionTower> towers;
    ggml_tensor * mm0_w = nullptr;
    ggml_tensor * mm0_b = nullptr;
    ggml_tensor * mm2_w = nullptr;
    ggml_tensor * mm2_b = nullptr;
};

struct VisionModelParams {
    std::string path;
    std::string gpu = "auto"; // llm/backend.h choose_device(): "auto", "cpu", "cuda", "metal", "vulkan" or "index"
    int gpu_index = 0;
    int32_t n_threads = 0; // CPU threads, required (> 0); the default is lib/cpu.ts's rule
};

using VisionProgressFn = std::function<void(float)>;

class VisionModel {
  public:
    // Throws vl::Error(ModelLoad) naming the file and the missing key/tensor or the bad shape, or Aborted.
    static std::shared_ptr<VisionModel> load(const VisionModelParams & params, const VisionProgressFn & progress, const AbortFlagPtr & abort);
    ~VisionModel();
    VisionModel(const VisionModel &) = delete;
    VisionModel & operator=(const VisionModel &) = delete;

    const VisionHparams & hparams() const { return hparams_; }
    const VisionWeights & weights() const { return weights_; }
    // The tower that encodes items of `tower`: VideoLLaMA3's only one whatever is asked; for Video-LLaVA the image or
    // video tower. Throws vl::Error(InvalidArgument) when the file has no such tower.
    const VisionTower & tower(VisionTowerId tower) const;
    const std::string & path() const { return path_; }
    // The backend holding the weights (GPU when used) and the CPU backend (always present, for fallback ops).
    ggml_backend_t backend() const { return backend_; }
    ggml_backend_t backend_cpu() const { return backend_cpu_; }
    bool on_gpu() const { return backend_ != backend_cpu_; }
    int32_t n_threads() const { return n_threads_; }
    size_t weights_bytes() const;
    std::string device_name() const;
    const DeviceChoice & device() const { return device_; } // where the weights live and why

  private:
    VisionModel() = default;

    std::string path_;
    VisionHparams hparams_;
    VisionWeights weights_;
    ggml_context * ctx_meta_ = nullptr; // tensor metadata (the weights live in buffer_)
    ggml_backend_buffer_t buffer_ = nullptr;
    DeviceChoice device_;
    ggml_backend_t backend_ = nullptr;
    ggml_backend_t backend_cpu_ = nullptr;
    int32_t n_threads_ = 1;
};

using VisionModelPtr = std::shared_ptr<VisionModel>;

} // namespace vl
