// Cropping of packed RGB8 with transformers' `center_crop` semantics: a window [left, left + width) × [top, top +
// height) of the image, where the parts of the window outside the image are 0 (center_crop pads a too-small image
// with zeros before cutting, which is the same as reading zeros outside it). The window may start at negative
// coordinates.
//
// Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <vector>

namespace vl {

struct CropRect {
    int left = 0;
    int top = 0;
    int width = 0;
    int height = 0;
};

// dst: crop.width × crop.height packed RGB. Throws vl::Error on a non-positive crop size or image size.
void crop_rgb(const uint8_t * src, int src_w, int src_h, const CropRect & crop, uint8_t * dst);

std::vector<uint8_t> crop_rgb(const uint8_t * src, int src_w, int src_h, const CropRect & crop);

} // namespace vl
