// Bicubic resize of packed RGB8 that reproduces Pillow's `Image.resize((w, h), Image.BICUBIC)` bit for bit (the resize
// the reference image processor applies through transformers).
//
// Algorithm (Pillow's libImaging/Resample.c, re-implemented): separable convolution with the bicubic kernel (a = -0.5,
// support 2) widened by the scale factor when downscaling (antialiasing), per-output weights normalised to sum 1 and
// quantised to 22-bit fixed point, horizontal pass first into an 8-bit intermediate image (only the rows the vertical
// pass reads), then the vertical pass; each pass rounds (+2^21, >> 22) and clips to 0..255. A dimension that does not
// change is not resampled; an unchanged size returns a copy.
//
// Thread-safe (no shared state). Uses AVX2 when the CPU has it, with results identical to the portable code.
#pragma once

#include <cstdint>
#include <vector>

namespace vl {

// Pillow's fixed-point weights for resampling a line of `in_size` samples to `out_size` samples.
struct ResampleWeights {
    int ksize = 0;             // stride of `weights` (maximum taps per output sample)
    std::vector<int> first;    // first input sample of each output sample
    std::vector<int> count;    // number of taps of each output sample
    std::vector<int32_t> weights; // out_size * ksize, 22-bit fixed point, zero beyond `count`
};

ResampleWeights bicubic_weights(int in_size, int out_size);
// The weights of output samples [from, to) only (index 0 of the result is sample `from`).
ResampleWeights bicubic_weights(int in_size, int out_size, int from, int to);

enum class ResizeKernel {
    Auto,    // fastest available
    Portable // plain C++ (used to check the SIMD code)
};

// Resizes src (src_w x src_h, packed RGB, no row padding) into dst (dst_w x dst_h, packed RGB). Throws vl::Error on
// invalid sizes.
void resize_rgb_bicubic(const uint8_t * src, int src_w, int src_h, uint8_t * dst, int dst_w, int dst_h,
                        ResizeKernel kernel = ResizeKernel::Auto);

std::vector<uint8_t> resize_rgb_bicubic(const uint8_t * src, int src_w, int src_h, int dst_w, int dst_h,
                                        ResizeKernel kernel = ResizeKernel::Auto);

// A window of the resized picture, in its pixels; it may reach outside the picture (those parts are 0).
struct ResizeWindow {
    int left = 0;
    int top = 0;
    int width = 0;
    int height = 0;
};

// The window of `resize_rgb_bicubic(src → dst_w × dst_h)` (out: window.width × window.height, packed RGB), computed
// without the rest of the resized picture: every output pixel depends on its own coordinates' weights only, so this
// equals resizing the whole picture and cutting the window out, bit for bit, at the cost of the window alone. This is
// what keeps a shortest-edge resize followed by a centre crop (CLIP) cheap for any aspect ratio: a 50,000 × 2 picture
// "resized" to 5,600,000 × 224 costs a 224 × 224 window. Parts of the window outside the picture are 0, as
// transformers' `center_crop` pads. Throws vl::Error on invalid sizes.
void resize_rgb_bicubic_window(const uint8_t * src, int src_w, int src_h, int dst_w, int dst_h, const ResizeWindow & window,
                               uint8_t * out, ResizeKernel kernel = ResizeKernel::Auto);

std::vector<uint8_t> resize_rgb_bicubic_window(const uint8_t * src, int src_w, int src_h, int dst_w, int dst_h,
                                               const ResizeWindow & window, ResizeKernel kernel = ResizeKernel::Auto);

// Whether ResizeKernel::Auto uses the AVX2 code on this machine.
bool resize_uses_avx2();

} // namespace vl
