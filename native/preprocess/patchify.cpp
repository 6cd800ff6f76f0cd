// Normalisation + merge-block patch order (see patchify.h).
#include "preprocess/patchify.h"

#include <cmath>
#include <string>

#include "common/error.h"

namespace vl {

std::array<std::array<float, 256>, 3> normalize_table(const PatchifyParams & params) {
    double scale = params.rescale;
    if (static_cast<float>(scale) == static_cast<float>(1.0 / 255.0)) scale = 1.0 / 255.0;
    std::array<std::array<float, 256>, 3> table{};
    for (int c = 0; c < 3; c++) {
        for (int v = 0; v < 256; v++) {
            // transformers: rescale = (image.astype(float64) * scale).astype(float32); normalize = (x - mean) / std in float32
            const float rescaled = static_cast<float>(static_cast<double>(v) * scale);
            table[size_t(c)][size_t(v)] = (rescaled - params.mean[size_t(c)]) / params.std[size_t(c)];
        }
    }
    return table;
}

void check_patchify(int width, int height, const PatchifyParams & p) {
    if (p.patch_size < 1 || p.patch_size > 1024) throw Error(ErrorCode::InvalidArgument, "patchSize must be between 1 and 1024, got " + std::to_string(p.patch_size));
    if (p.merge_size < 1 || p.merge_size > 64) throw Error(ErrorCode::InvalidArgument, "mergeSize must be between 1 and 64, got " + std::to_string(p.merge_size));
    for (int c = 0; c < 3; c++) {
        if (!std::isfinite(p.mean[size_t(c)]) || !std::isfinite(p.std[size_t(c)]) || p.std[size_t(c)] == 0.0f) {
            throw Error(ErrorCode::InvalidArgument, "mean and std must be finite and std non-zero");
        }
    }
    if (!std::isfinite(p.rescale)) throw Error(ErrorCode::InvalidArgument, "rescale must be finite");
    const int factor = p.patch_size * p.merge_size;
    if (width <= 0 || height <= 0 || width % factor != 0 || height % factor != 0) {
        throw Error(ErrorCode::InvalidArgument, "image size " + std::to_string(width) + "x" + std::to_string(height) +
                                                    " is not a positive multiple of patchSize * mergeSize = " + std::to_string(factor));
    }
}

void patchify_rgb(const uint8_t * rgb, int width, int height, const PatchifyParams & params, float * values, int32_t * positions) {
    check_patchify(width, height, params);
    const auto table = normalize_table(params);
    const int p = params.patch_size, m = params.merge_size;
    const int grid_h = height / p, grid_w = width / p;
    const size_t stride = size_t(width) * 3;
    size_t row = 0;
    float * out = values;
    for (int bh = 0; bh < grid_h / m; bh++) {
        for (int bw = 0; bw < grid_w / m; bw++) {
            for (int mh = 0; mh < m; mh++) {
                for (int mw = 0; mw < m; mw++) {
                    const int ph = bh * m + mh, pw = bw * m + mw;
                    const uint8_t * patch = rgb + size_t(ph) * size_t(p) * stride + size_t(pw) * size_t(p) * 3;
                    for (int c = 0; c < 3; c++) {
                        const float * lut = table[size_t(c)].data();
                        for (int py = 0; py < p; py++) {
                            const uint8_t * src = patch + size_t(py) * stride + size_t(c);
                            for (int px = 0; px < p; px++) *out++ = lut[src[size_t(px) * 3]];
                        }
                    }
                    if (positions) {
                        positions[2 * row] = ph;
                        positions[2 * row + 1] = pw;
                    }
                    row++;
                }
            }
        }
    }
}

Patches patchify_rgb(const uint8_t * rgb, int width, int height, const PatchifyParams & params) {
    check_patchify(width, height, params);
    Patches out;
    out.grid_h = height / params.patch_size;
    out.grid_w = width / params.patch_size;
    out.row_size = 3 * params.patch_size * params.patch_size;
    const size_t rows = size_t(out.grid_h) * size_t(out.grid_w);
    out.values.resize(rows * size_t(out.row_size));
    out.positions.resize(rows * 2);
    patchify_rgb(rgb, width, height, params, out.values.data(), out.positions.data());
    return out;
}

} // namespace vl
