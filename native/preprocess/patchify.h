// Normalisation and patch extraction of an RGB8 image that is already at its target size: the tensor the vision
// encoder's patch embedding consumes.
//
// Rows follow the reference's `reshape(t, C, gh/m, m, p, gw/m, m, p).transpose(0, 2, 5, 3, 6, 1, 4, 7)`: merge blocks
// in raster order over (gh/m, gw/m), inside each block its m*m patches in raster order; each row holds 3*p*p values
// laid out (channel, py, px). Values are x = (u8 * rescale - mean[c]) / std[c] computed like the reference
// (transformers: float64 product rounded to float32, then float32 subtract and divide).
//
// Thread-safe (no shared state).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace vl {

struct PatchifyParams {
    int patch_size = 14; // pixels per patch side (p)
    int merge_size = 1;  // patches per merge-block side (m)
    std::array<float, 3> mean{0.5f, 0.5f, 0.5f};
    std::array<float, 3> std{0.5f, 0.5f, 0.5f};
    // Multiplies the u8 value before normalising. A float32 rendering of 1/255 (how GGUF stores it) is treated as the
    // exact double 1/255 that the reference uses.
    double rescale = 1.0 / 255.0;
};

struct Patches {
    int grid_h = 0;     // patches per column (height / p)
    int grid_w = 0;     // patches per row (width / p)
    int row_size = 0;   // 3 * p * p
    std::vector<float> values;      // grid_h * grid_w rows of row_size
    std::vector<int32_t> positions; // (h, w) patch coordinates of every row, interleaved: h0, w0, h1, w1, ...
};

// The 256-entry lookup table u8 -> normalised value of each channel.
std::array<std::array<float, 256>, 3> normalize_table(const PatchifyParams & params);

// Throws vl::Error when the sizes are not multiples of patch_size * merge_size or a parameter is invalid.
void check_patchify(int width, int height, const PatchifyParams & params);

// rgb: width x height packed RGB8. values: (height/p)*(width/p)*3*p*p floats; positions: 2 ints per row (may be null).
void patchify_rgb(const uint8_t * rgb, int width, int height, const PatchifyParams & params, float * values, int32_t * positions);

Patches patchify_rgb(const uint8_t * rgb, int width, int height, const PatchifyParams & params);

} // namespace vl
