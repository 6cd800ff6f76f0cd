// Pillow-compatible bicubic resize (see resize.h). The weights must be computed with exactly Pillow's double-precision
// expressions, in the same order: CMake compiles this file with -ffp-contract=off so that no multiply-add is fused.
#include "preprocess/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

#include "common/error.h"

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define VL_RESIZE_AVX2 1
#include <immintrin.h>
#endif

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace vl {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2; // 22, as Pillow
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

inline uint8_t clip8(int32_t v) {
    v >>= kPrecisionBits; // arithmetic shift: floor division, as Pillow's lookup table index
    return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// ---- portable passes ----------------------------------------------------------------------------------------------------

// dst row r = horizontal resample of src row (r + row_offset), for r in [0, rows).
void horizontal_portable(const uint8_t * src, int src_w, int row_offset, int rows, uint8_t * dst, int dst_w,
                         const ResampleWeights & w) {
    const size_t src_stride = size_t(src_w) * 3, dst_stride = size_t(dst_w) * 3;
    for (int r = 0; r < rows; r++) {
        const uint8_t * in = src + size_t(r + row_offset) * src_stride;
        uint8_t * out = dst + size_t(r) * dst_stride;
        for (int xx = 0; xx < dst_w; xx++) {
            const uint8_t * p = in + size_t(w.first[xx]) * 3;
            const int32_t * k = &w.weights[size_t(xx) * size_t(w.ksize)];
            const int n = w.count[xx];
            int32_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
            for (int x = 0; x < n; x++) {
                s0 += p[x * 3 + 0] * k[x];
                s1 += p[x * 3 + 1] * k[x];
                s2 += p[x * 3 + 2] * k[x];
            }
            out[xx * 3 + 0] = clip8(s0);
            out[xx * 3 + 1] = clip8(s1);
            out[xx * 3 + 2] = clip8(s2);
        }
    }
}

// dst row yy = vertical resample over src rows (first[yy] ... first[yy] + count[yy] - 1); rows are `width` pixels.
void vertical_portable(const uint8_t * src, int width, uint8_t * dst, int dst_h, const ResampleWeights & w) {
    const size_t stride = size_t(width) * 3;
    std::vector<int32_t> acc(stride);
    for (int yy = 0; yy < dst_h; yy++) {
        const int32_t * k = &w.weights[size_t(yy) * size_t(w.ksize)];
        const int n = w.count[yy];
        std::fill(acc.begin(), acc.end(), kHalf);
        for (int y = 0; y < n; y++) {
            const uint8_t * in = src + size_t(w.first[yy] + y) * stride;
            const int32_t ky = k[y];
            for (size_t i = 0; i < stride; i++) acc[i] += in[i] * ky;
        }
        uint8_t * out = dst + size_t(yy) * stride;
        for (size_t i = 0; i < stride; i++) out[i] = clip8(acc[i]);
    }
}

// ---- AVX2 passes (same integer arithmetic, so the same results) --------------------------------------------------------
#ifdef VL_RESIZE_AVX2

// Sum over the taps of output pixel xx: (hi << 15) + lo per lane (exact modulo 2^32, see horizontal_avx2); the two
// 128-bit lanes hold the partial [R G B 0] sums of the even and the odd pairs of taps.
// (Vectors pass by reference: by value they would change the ABI of a function compiled for a different target.)
__attribute__((target("avx2"), always_inline)) inline void pixel_sums(const uint8_t * in, int xx, const ResampleWeights & w,
                                                                    const int16_t * kv, int groups_max, const int * groups,
                                                                    const __m256i & shuffle, __m256i & sum) {
    const uint8_t * p = in + size_t(w.first[size_t(xx)]) * 3;
    const int16_t * kp = kv + size_t(xx) * size_t(groups_max) * 32;
    const int g_count = groups[xx];
    __m256i acc_hi = _mm256_setzero_si256(), acc_lo = _mm256_setzero_si256();
    for (int g = 0; g < g_count; g++, p += 12, kp += 32) {
        const __m256i px = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))), shuffle);
        acc_hi = _mm256_add_epi32(acc_hi, _mm256_madd_epi16(px, _mm256_load_si256(reinterpret_cast<const __m256i *>(kp))));
        acc_lo = _mm256_add_epi32(acc_lo, _mm256_madd_epi16(px, _mm256_load_si256(reinterpret_cast<const __m256i *>(kp + 16))));
    }
    sum = _mm256_add_epi32(_mm256_slli_epi32(acc_hi, 15), acc_lo);
}

// Horizontal pass with 16-bit multiply-adds (vpmaddwd), exact despite Pillow's 22-bit weights: each weight is split
// as k = hi * 2^15 + lo with 0 <= lo < 2^15 and |hi| <= 2^8, both fit int16, and sum(p * k) = (sum(p * hi) << 15) +
// sum(p * lo). Every product and pair sum fits int32 and the int32 additions wrap, so the result equals the exact
// integer sum modulo 2^32, which is the sum itself (Pillow's sum fits int32).
//
// Taps go four at a time: one 16-byte load holds pixels j..j+3 (12 bytes used); a byte shuffle of it (the same 16
// bytes in both 128-bit lanes) gives the int16 pairs (R_j, R_j+1, G_j, G_j+1, B_j, B_j+1, 0, 0) in the low lane and
// the same for j+2, j+3 in the high lane; vpmaddwd with (k_j, k_j+1) x 3 gives R, G, B partial sums in int32 lanes.
__attribute__((target("avx2"))) void horizontal_avx2(const uint8_t * src, int src_w, int src_h, int row_offset, int rows,
                                                      uint8_t * dst, int dst_w, const ResampleWeights & w) {
    const int groups_max = (w.ksize + 3) / 4;
    // Per output pixel and group of 4 taps: the hi and lo weight vectors (16 int16 each).
    // (std::vector<__m256i> would drop the type's 32-byte alignment: keep int16 storage and align by hand)
    std::vector<int16_t> kv_storage(size_t(dst_w) * size_t(groups_max) * 32 + 16);
    int16_t * kv = kv_storage.data();
    while (reinterpret_cast<uintptr_t>(kv) % 32 != 0) kv++;
    std::vector<int> groups(static_cast<size_t>(dst_w));
    size_t read_end = 0; // bytes from the start of a row that a row's loads may touch
    for (int xx = 0; xx < dst_w; xx++) {
        const int32_t * k = &w.weights[size_t(xx) * size_t(w.ksize)];
        const int n = w.count[xx];
        const int g_count = (n + 3) / 4;
        groups[size_t(xx)] = g_count;
        read_end = std::max(read_end, size_t(w.first[xx]) * 3 + size_t(g_count) * 12 + 4);
        for (int g = 0; g < g_count; g++) {
            int16_t hi[16] = {0}, lo[16] = {0};
            for (int t = 0; t < 4; t++) {
                const int tap = 4 * g + t;
                const int32_t kk = tap < n ? k[tap] : 0;
                const int16_t h = static_cast<int16_t>(kk >> 15); // arithmetic shift: floor
                const int16_t l = static_cast<int16_t>(kk - (static_cast<int32_t>(h) << 15));
                const int lane = (t / 2) * 8, odd = t % 2;
                for (int c = 0; c < 3; c++) {
                    hi[lane + 2 * c + odd] = h;
                    lo[lane + 2 * c + odd] = l;
                }
            }
            int16_t * dstk = kv + (size_t(xx) * size_t(groups_max) + size_t(g)) * 32;
            std::memcpy(dstk, hi, sizeof(hi));
            std::memcpy(dstk + 16, lo, sizeof(lo));
        }
    }
    const size_t src_stride = size_t(src_w) * 3, dst_stride = size_t(dst_w) * 3;
    const size_t total = src_stride * size_t(src_h);
    // Rows whose loads would run past the end of the image are read from a zero-padded copy.
    std::vector<uint8_t> padded(std::max(read_end, src_stride) + 32, 0);
    const __m256i shuffle = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1, //
                                             6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
    const __m128i half = _mm_set1_epi32(kHalf);
    for (int r = 0; r < rows; r++) {
        const size_t y = size_t(r + row_offset);
        const uint8_t * in = src + y * src_stride;
        if (y * src_stride + read_end > total) {
            std::memcpy(padded.data(), in, src_stride);
            in = padded.data();
        }
        uint8_t * out = dst + size_t(r) * dst_stride;
        for (int xx = 0; xx < dst_w; xx++) {
            __m256i a;
            pixel_sums(in, xx, w, kv, groups_max, groups.data(), shuffle, a);
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
            s = _mm_srai_epi32(_mm_add_epi32(s, half), kPrecisionBits);
            s = _mm_packus_epi16(_mm_packs_epi32(s, s), s);
            const uint32_t v = static_cast<uint32_t>(_mm_cvtsi128_si32(s));
            out[xx * 3 + 0] = static_cast<uint8_t>(v);
            out[xx * 3 + 1] = static_cast<uint8_t>(v >> 8);
            out[xx * 3 + 2] = static_cast<uint8_t>(v >> 16);
        }
    }
}

__attribute__((target("avx2"))) void vertical_avx2(const uint8_t * src, int width, uint8_t * dst, int dst_h, const ResampleWeights & w) {
    const size_t stride = size_t(width) * 3;
    const size_t vec_end = stride - stride % 32;
    const __m256i half = _mm256_set1_epi32(kHalf);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int yy = 0; yy < dst_h; yy++) {
        const int32_t * k = &w.weights[size_t(yy) * size_t(w.ksize)];
        const int n = w.count[yy];
        const uint8_t * base = src + size_t(w.first[yy]) * stride;
        uint8_t * out = dst + size_t(yy) * stride;
        for (size_t i = 0; i < vec_end; i += 32) {
            __m256i a0 = half, a1 = half, a2 = half, a3 = half;
            const uint8_t * p = base + i;
            for (int y = 0; y < n; y++, p += stride) {
                const __m256i ky = _mm256_set1_epi32(k[y]);
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p))), ky));
                a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p + 8))), ky));
                a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p + 16))), ky));
                a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p + 24))), ky));
            }
            a0 = _mm256_srai_epi32(a0, kPrecisionBits);
            a1 = _mm256_srai_epi32(a1, kPrecisionBits);
            a2 = _mm256_srai_epi32(a2, kPrecisionBits);
            a3 = _mm256_srai_epi32(a3, kPrecisionBits);
            // packs/packus saturate to int16 then to 0..255 (= Pillow's clip); they work per 128-bit lane, the
            // permutation restores the byte order.
            __m256i bytes = _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3));
            bytes = _mm256_permutevar8x32_epi32(bytes, order);
            _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + i), bytes);
        }
        for (size_t i = vec_end; i < stride; i++) {
            int32_t s = kHalf;
            const uint8_t * p = base + i;
            for (int y = 0; y < n; y++, p += stride) s += *p * k[y];
            out[i] = clip8(s);
        }
    }
}

bool cpu_has_avx2() {
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0;
    }();
    return has;
}

#endif // VL_RESIZE_AVX2

void check_size(const char * what, int w, int h) {
    if (w <= 0 || h <= 0) {
        throw Error(ErrorCode::InvalidArgument, std::string(what) + " size must be positive, got " + std::to_string(w) + "x" + std::to_string(h));
    }
    if (uint64_t(w) * uint64_t(h) * 3 > uint64_t(std::numeric_limits<int32_t>::max()) * 4) {
        throw Error(ErrorCode::InvalidArgument, std::string(what) + " image is too large: " + std::to_string(w) + "x" + std::to_string(h));
    }
}

} // namespace

ResampleWeights bicubic_weights(int in_size, int out_size) {
    return bicubic_weights(in_size, out_size, 0, out_size);
}

ResampleWeights bicubic_weights(int in_size, int out_size, int from, int to) {
    if (in_size <= 0 || out_size <= 0) throw Error(ErrorCode::InvalidArgument, "resample sizes must be positive");
    if (from < 0 || to > out_size || from >= to) throw Error(ErrorCode::InvalidArgument, "resample range must lie within the output");
    const double support_base = 2.0; // bicubic
    // Pillow: in0 = 0, in1 = in_size (floats), scale = (double)(in1 - in0) / outSize
    const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
    double filterscale = scale;
    if (filterscale < 1.0) filterscale = 1.0;
    const double support = support_base * filterscale;
    ResampleWeights w;
    w.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    const int n_out = to - from;
    w.first.resize(size_t(n_out));
    w.count.resize(size_t(n_out));
    w.weights.assign(size_t(n_out) * size_t(w.ksize), 0);
    std::vector<double> k(size_t(w.ksize));
    const double ss = 1.0 / filterscale;
    // Each output sample's weights depend on its own index only, so a range is exactly that part of the full set.
    for (int xx = from; xx < to; xx++) {
        const double center = 0.0 + (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            const double v = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[size_t(x)] = v;
            ww += v;
        }
        int32_t * out = &w.weights[size_t(xx - from) * size_t(w.ksize)];
        for (int x = 0; x < xmax; x++) {
            double v = k[size_t(x)];
            if (ww != 0.0) v /= ww;
            out[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                           : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
        }
        w.first[size_t(xx - from)] = xmin;
        w.count[size_t(xx - from)] = xmax;
    }
    return w;
}

bool resize_uses_avx2() {
#ifdef VL_RESIZE_AVX2
    return cpu_has_avx2();
#else
    return false;
#endif
}

void resize_rgb_bicubic(const uint8_t * src, int src_w, int src_h, uint8_t * dst, int dst_w, int dst_h, ResizeKernel kernel) {
    check_size("source", src_w, src_h);
    check_size("target", dst_w, dst_h);
    const bool need_horizontal = dst_w != src_w;
    const bool need_vertical = dst_h != src_h;
    if (!need_horizontal && !need_vertical) {
        std::memcpy(dst, src, size_t(src_w) * size_t(src_h) * 3);
        return;
    }
    const bool simd = kernel == ResizeKernel::Auto && resize_uses_avx2();

    ResampleWeights vert = bicubic_weights(src_h, dst_h);
    // Rows of the source the vertical pass reads.
    const int ybox_first = vert.first[0];
    const int ybox_last = vert.first[size_t(dst_h) - 1] + vert.count[size_t(dst_h) - 1];

    std::unique_ptr<uint8_t[]> temp; // intermediate image; every byte is written by the horizontal pass
    const uint8_t * vsrc = src; // input of the vertical pass
    if (need_horizontal) {
        const ResampleWeights horiz = bicubic_weights(src_w, dst_w);
        const int rows = ybox_last - ybox_first;
        uint8_t * hdst = dst;
        if (need_vertical) {
            temp.reset(new uint8_t[size_t(dst_w) * size_t(rows) * 3]);
            hdst = temp.get();
            for (int i = 0; i < dst_h; i++) vert.first[size_t(i)] -= ybox_first;
        }
#ifdef VL_RESIZE_AVX2
        if (simd) {
            horizontal_avx2(src, src_w, src_h, ybox_first, rows, hdst, dst_w, horiz);
        } else
#endif
        {
            horizontal_portable(src, src_w, ybox_first, rows, hdst, dst_w, horiz);
        }
        if (!need_vertical) return; // rows == src_h == dst_h here
        vsrc = temp.get();
    }
#ifdef VL_RESIZE_AVX2
    if (simd) {
        vertical_avx2(vsrc, dst_w, dst, dst_h, vert);
        return;
    }
#endif
    vertical_portable(vsrc, dst_w, dst, dst_h, vert);
}

std::vector<uint8_t> resize_rgb_bicubic(const uint8_t * src, int src_w, int src_h, int dst_w, int dst_h, ResizeKernel kernel) {
    check_size("target", dst_w, dst_h);
    std::vector<uint8_t> out(size_t(dst_w) * size_t(dst_h) * 3);
    resize_rgb_bicubic(src, src_w, src_h, out.data(), dst_w, dst_h, kernel);
    return out;
}

namespace {

// Samples [from, to) of a line that is not resampled: one tap of weight 1, so a pass over it copies exactly
// ((p << 22) + 2^21) >> 22 = p).
ResampleWeights identity_weights(int from, int to) {
    ResampleWeights w;
    w.ksize = 1;
    for (int x = from; x < to; x++) {
        w.first.push_back(x);
        w.count.push_back(1);
        w.weights.push_back(int32_t(1) << kPrecisionBits);
    }
    return w;
}

} // namespace

void resize_rgb_bicubic_window(const uint8_t * src, int src_w, int src_h, int dst_w, int dst_h, const ResizeWindow & window,
                               uint8_t * out, ResizeKernel kernel) {
    check_size("source", src_w, src_h);
    if (dst_w <= 0 || dst_h <= 0) {
        throw Error(ErrorCode::InvalidArgument, "target size must be positive, got " + std::to_string(dst_w) + "x" + std::to_string(dst_h));
    }
    check_size("window", window.width, window.height);
    std::memset(out, 0, size_t(window.width) * size_t(window.height) * 3);
    // The part of the window inside the resized picture (int64: a window may reach far outside).
    const int x0 = int(std::max<int64_t>(0, window.left)), x1 = int(std::min<int64_t>(dst_w, int64_t(window.left) + window.width));
    const int y0 = int(std::max<int64_t>(0, window.top)), y1 = int(std::min<int64_t>(dst_h, int64_t(window.top) + window.height));
    if (x0 >= x1 || y0 >= y1) return;
    const int iw = x1 - x0, ih = y1 - y0;
    const bool simd = kernel == ResizeKernel::Auto && resize_uses_avx2();
    const ResampleWeights horiz = dst_w != src_w ? bicubic_weights(src_w, dst_w, x0, x1) : identity_weights(x0, x1);
    ResampleWeights vert = dst_h != src_h ? bicubic_weights(src_h, dst_h, y0, y1) : identity_weights(y0, y1);
    // Source rows the vertical pass reads (first[] and first[] + count[] never decrease along the line).
    const int ybox_first = vert.first[0];
    const int rows = vert.first[size_t(ih) - 1] + vert.count[size_t(ih) - 1] - ybox_first;
    for (int i = 0; i < ih; i++) vert.first[size_t(i)] -= ybox_first;
    std::vector<uint8_t> temp(size_t(iw) * size_t(rows) * 3);
    std::vector<uint8_t> inner(size_t(iw) * size_t(ih) * 3);
#ifdef VL_RESIZE_AVX2
    if (simd) {
        horizontal_avx2(src, src_w, src_h, ybox_first, rows, temp.data(), iw, horiz);
        vertical_avx2(temp.data(), iw, inner.data(), ih, vert);
    } else
#endif
    {
        (void) simd;
        horizontal_portable(src, src_w, ybox_first, rows, temp.data(), iw, horiz);
        vertical_portable(temp.data(), iw, inner.data(), ih, vert);
    }
    for (int y = 0; y < ih; y++) {
        std::memcpy(out + (size_t(y0 - window.top + y) * size_t(window.width) + size_t(x0 - window.left)) * 3, inner.data() + size_t(y) * size_t(iw) * 3,
                    size_t(iw) * 3);
    }
}

std::vector<uint8_t> resize_rgb_bicubic_window(const uint8_t * src, int src_w, int src_h, int dst_w, int dst_h, const ResizeWindow & window,
                                               ResizeKernel kernel) {
    check_size("window", window.width, window.height);
    std::vector<uint8_t> out(size_t(window.width) * size_t(window.height) * 3);
    resize_rgb_bicubic_window(src, src_w, src_h, dst_w, dst_h, window, out.data(), kernel);
    return out;
}

} // namespace vl
