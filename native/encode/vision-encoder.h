// Runs a vision tower on preprocessed images and video frames, then the projector. Two graphs built from the same
// blocks (layer norm, linear, transformer block = attention sub-block with optional 2D RoPE + MLP sub-block with the
// file's activation, projector):
//   - NaViT (VideoLLaMA3): patch embedding → blocks with 2D RoPE → post-layernorm → m×m mean merge (video) →
//     optional token selection (DiffFP keeps) → projector;
//   - CLIP (Video-LLaVA): patch embedding (no bias) → [class token; patches] + position embedding → pre-layernorm →
//     blocks (no RoPE) → select the class token (where the tower keeps it) and the kept patch tokens → projector.
// Attention is strictly within each image/frame.
//
// Items of the same tower, patch grid and merge size are encoded together as a batch (attention stays per item: the
// batch is a separate dimension, never mixed). The scheduler's compute buffers are reused across calls, and the last
// graph is kept and reused when the next batch has the same shape.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/abort.h"
#include "encode/vision-model.h"

namespace vl {

struct VisionItem {
    const float * patches = nullptr; // grid_h*grid_w rows of 3·p·p normalized values, merge-block order
    int32_t grid_h = 0;              // in patches
    int32_t grid_w = 0;
    int32_t merge = 1;               // 1 for images, the video merge size for frames (always 1 for CLIP)
    // The tower that encodes the item (Video-LLaVA); VideoLLaMA3 has one tower and ignores it.
    VisionTowerId tower = VisionTowerId::Image;
    // Merged tokens to keep (ascending indices into this item's (grid_h/merge)*(grid_w/merge) tokens); empty = all.
    // For CLIP these index the patch tokens; the class token, where the tower keeps it, is always kept and first.
    std::vector<int32_t> keep;
    bool keep_all = true;

    int32_t n_patches() const { return grid_h * grid_w; }
    int32_t n_merged() const { return (grid_h / merge) * (grid_w / merge); }
    int32_t n_kept() const { return keep_all ? n_merged() : static_cast<int32_t>(keep.size()); }
};

struct VisionEncodeOptions {
    // Upper bound on patches per batch (a single larger image is still encoded alone). Bounds compute memory.
    int32_t max_batch_patches = 4096;
};

// (items done, items total)
using VisionEncodeProgressFn = std::function<void(int32_t, int32_t)>;

// What VisionEncoder::encode_changed keeps between the frames of one video or stream: every layer's input for every
// patch of the frames so far (per layer a [hidden, patches] f32 tensor in the model's backend memory), so that a frame
// computes only its changed 2×2 blocks. Owned by the caller, one per video; used by one encode at a time. Holds the
// model alive (its buffer lives in the model's backend).
class EncoderReuseState {
  public:
    EncoderReuseState() = default;
    ~EncoderReuseState();
    EncoderReuseState(const EncoderReuseState &) = delete;
    EncoderReuseState & operator=(const EncoderReuseState &) = delete;

    // Forgets the frames: the next one is encoded whole.
    void reset() { valid_ = false; }
    bool valid() const { return valid_; }

  private:
    friend class VisionEncoder;
    void release();
    VisionModelPtr model_;
    int32_t grid_h_ = 0, grid_w_ = 0, merge_ = 0;
    ggml_context * ctx_ = nullptr;
    ggml_backend_buffer_t buffer_ = nullptr;
    std::vector<ggml_tensor *> layers_; // input of layer l, all patches of the last frame
    bool valid_ = false;
};


class VisionEncoder {
  public:
    explicit VisionEncoder(VisionModelPtr model);
    ~VisionEncoder();
    VisionEncoder(const VisionEncoder &) = delete;
    VisionEncoder & operator=(const VisionEncoder &) = delete;

    // Appends tokens_out(item) × proj_dim floats per item to `out`, in item order. Checks `abort` between batches and inside
    // a batch (CPU); throws vl::Error(Aborted) with `out` holding only whole items. Returns tokens per item.
    std::vector<int32_t> encode(const std::vector<VisionItem> & items, std::vector<float> & out, const AbortFlagPtr & abort,
                                const VisionEncodeProgressFn & progress = nullptr, const VisionEncodeOptions & options = {});

    // One video frame (NaViT projectors, merge m), computing only the patches of its kept m×m blocks: their queries
    // attend to the keys of every patch, the other patches' layer inputs coming from `state` (the previous frames'),
    // which then holds this frame's. Exact for a frame encoded whole (the first, or after `state` was reset); for the
    // others an approximation — the unchanged blocks' states are those of the frame where they last changed. Appends
    // the kept tokens' embeddings (tokens_out(item) × proj_dim floats) to `out`. Throws vl::Error(Aborted) with `out`
    // unchanged and `state` reset. Returns the patches computed (all of them for a frame encoded whole).
    int32_t encode_changed(const VisionItem & item, EncoderReuseState & state, std::vector<float> & out, const AbortFlagPtr & abort);

    const VisionModelPtr & model() const { return model_; }
    // Output tokens of an item before pruning (merged patch tokens, plus the class token where its tower keeps it),
    // and after (the kept ones, plus that class token).
    int32_t tokens_unpruned(const VisionItem & item) const;
    int32_t tokens_out(const VisionItem & item) const;
    // Largest compute buffer the scheduler has allocated so far, in bytes (for memory reporting).
    size_t compute_buffer_bytes() const;

  private:
    struct CachedGraph;
    void encode_batch(const std::vector<const VisionItem *> & batch, std::vector<float> & out, const AbortFlagPtr & abort);
    CachedGraph & graph_for(VisionTowerId tower, int32_t batch, int32_t grid_h, int32_t grid_w, int32_t merge, int32_t n_keep);
    void build_navit(CachedGraph & g, const VisionTower & tower);
    void build_clip(CachedGraph & g, const VisionTower & tower);
    static bool abort_callback(void * data);

    VisionModelPtr model_;
    ggml_backend_sched_t sched_ = nullptr;
    std::unique_ptr<CachedGraph> cached_;
    // The graph the scheduler's buffers are laid out for now: a cached graph runs again with new inputs only while it
    // is this one. Allocating the same graph a second time is wrong on a multi-backend scheduler (its tensors keep the
    // addresses of the first plan while the split copies get a new one: every encode after the first came out wrong
    // on Vulkan), so whatever else uses the scheduler clears it.
    const CachedGraph * allocated_ = nullptr;
    AbortFlagPtr current_abort_;
    size_t peak_compute_bytes_ = 0;
};

} // namespace vl
