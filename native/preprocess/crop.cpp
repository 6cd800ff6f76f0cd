// Zero-padded crop of packed RGB8 (see crop.h).
#include "preprocess/crop.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"

namespace vl {

void crop_rgb(const uint8_t * src, int src_w, int src_h, const CropRect & crop, uint8_t * dst) {
    if (src_w <= 0 || src_h <= 0 || crop.width <= 0 || crop.height <= 0) {
        throw Error(ErrorCode::InvalidArgument, "crop of " + std::to_string(crop.width) + "x" + std::to_string(crop.height) + " from a " +
                                                    std::to_string(src_w) + "x" + std::to_string(src_h) + " image: sizes must be positive");
    }
    const size_t dst_stride = static_cast<size_t>(crop.width) * 3;
    // Columns of the window inside the image: [x0, x1) in image coordinates.
    const int64_t x0 = std::max<int64_t>(0, crop.left);
    const int64_t x1 = std::min<int64_t>(src_w, static_cast<int64_t>(crop.left) + crop.width);
    for (int y = 0; y < crop.height; y++) {
        uint8_t * row = dst + static_cast<size_t>(y) * dst_stride;
        const int64_t sy = static_cast<int64_t>(crop.top) + y;
        if (sy < 0 || sy >= src_h || x0 >= x1) {
            std::memset(row, 0, dst_stride);
            continue;
        }
        const size_t before = static_cast<size_t>(x0 - crop.left) * 3;
        const size_t inside = static_cast<size_t>(x1 - x0) * 3;
        std::memset(row, 0, before);
        std::memcpy(row + before, src + (static_cast<size_t>(sy) * src_w + static_cast<size_t>(x0)) * 3, inside);
        std::memset(row + before + inside, 0, dst_stride - before - inside);
    }
}

std::vector<uint8_t> crop_rgb(const uint8_t * src, int src_w, int src_h, const CropRect & crop) {
    std::vector<uint8_t> out(static_cast<size_t>(std::max(crop.width, 0)) * static_cast<size_t>(std::max(crop.height, 0)) * 3);
    crop_rgb(src, src_w, src_h, crop, out.data());
    return out;
}

} // namespace vl
