// Differential Frame Pruning (VideoLLaMA3's `_get_compression_mask`): a merged token of a video frame is kept when
// the mean absolute difference of its normalized pixels against the same token of the previous sampled frame,
// times 255, exceeds the threshold; the first frame is kept whole and every frame keeps at least `min_tokens`
// (the first ones, as the reference's `mask[:, :min_tokens] = 1`).
#pragma once

#include <cstdint>
#include <vector>

namespace vl {

struct FrameDiffResult {
    std::vector<int32_t> keep;     // ascending indices of kept merged tokens
    std::vector<float> distances;  // per merged token: mean |Δ| × 255 (empty for a first frame)
};

// `previous` and `current` are grid_h*grid_w patch rows of `row_size` values in merge-block order (so each merged
// token is merge² consecutive rows). `previous` null: first frame, everything is kept.
FrameDiffResult frame_diff_keep(const float * previous, const float * current, int grid_h, int grid_w, int merge, int row_size,
                                float threshold, int min_tokens);

} // namespace vl
