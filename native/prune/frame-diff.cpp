#include "prune/frame-diff.h"

#include <algorithm>
#include <cmath>

namespace vl {

FrameDiffResult frame_diff_keep(const float * previous, const float * current, int grid_h, int grid_w, int merge, int row_size,
                                float threshold, int min_tokens) {
    FrameDiffResult result;
    const int tokens = (grid_h / merge) * (grid_w / merge);
    if (!previous) {
        result.keep.resize(tokens);
        for (int t = 0; t < tokens; t++) result.keep[t] = t;
        return result;
    }
    const size_t values = static_cast<size_t>(merge) * merge * row_size; // one merged token's values
    result.distances.resize(tokens);
    std::vector<bool> kept(tokens, false);
    int n_kept = 0;
    for (int t = 0; t < tokens; t++) {
        const float * a = previous + t * values;
        const float * b = current + t * values;
        double sum = 0.0; // in double: the mean of thousands of small differences must not depend on summation order
        for (size_t i = 0; i < values; i++) sum += std::fabs(static_cast<double>(b[i]) - static_cast<double>(a[i]));
        const double distance = sum / static_cast<double>(values) * 255.0;
        result.distances[t] = static_cast<float>(distance);
        if (distance > static_cast<double>(threshold)) {
            kept[t] = true;
            n_kept++;
        }
    }
    if (n_kept < min_tokens) {
        for (int t = 0; t < std::min(min_tokens, tokens); t++) kept[t] = true;
    }
    for (int t = 0; t < tokens; t++) if (kept[t]) result.keep.push_back(t);
    return result;
}

} // namespace vl
