// Image decoding: stb_image for JPEG/PNG/BMP/GIF, libwebp for WebP. See image-load.h for the contract.
//
// stb_image is lenient with damaged input (it decodes a truncated JPEG or BMP as if the missing bytes were zero), and
// its GIF first frame differs from PIL's for transparent pixels. So each format gets a small structural check before
// stb runs, and the GIF output is fixed up to what PIL produces (see fix_gif_first_frame).
#include "decode/image-load.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <system_error>

#include "common/error.h"

// The only translation unit of vidllama that compiles stb_image. STB_IMAGE_STATIC keeps every stb symbol local to this
// file, so it cannot clash with another copy (llama.cpp's mtmd, or another addon in the same process).
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO // files are read by load_image_file (UTF-8 paths on every platform)
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include "stb/stb_image.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#ifdef VIDLLAMA_WEBP
#include <webp/decode.h>
#ifdef VIDLLAMA_WEBP_DEMUX
#include <webp/demux.h>
#endif
#endif

namespace vl {

namespace {

std::string format_message(const char * fmt, ...) {
    char buf[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(buf, sizeof(buf), fmt, args);
    va_end(args);
    return buf;
}

[[noreturn]] void fail(const std::string & message) { throw Error(ErrorCode::InvalidArgument, message); }

uint32_t be16(const uint8_t * p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t be32(const uint8_t * p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
uint32_t le16(const uint8_t * p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
uint32_t le32(const uint8_t * p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24); }

void check_dimensions(ImageFormat format, int64_t width, int64_t height, uint64_t max_pixels) {
    if (width <= 0 || height <= 0) {
        fail(format_message("corrupt %s header: invalid dimensions %lldx%lld", image_format_name(format),
                            static_cast<long long>(width), static_cast<long long>(height)));
    }
    const uint64_t pixels = static_cast<uint64_t>(width) * static_cast<uint64_t>(height);
    if (max_pixels != 0 && pixels > max_pixels) {
        fail(format_message("the %s image is %lldx%lld = %llu pixels, more than the limit of %llu pixels (maxPixels); "
                            "it was refused before decoding",
                            image_format_name(format), static_cast<long long>(width), static_cast<long long>(height),
                            static_cast<unsigned long long>(pixels), static_cast<unsigned long long>(max_pixels)));
    }
}

// A readable description of data that is not one of the supported formats.
std::string describe_unknown(const uint8_t * d, size_t n) {
    // magic strings may contain NUL bytes: their length comes from the literal, not strlen
    auto starts = [&](const auto & magic, size_t at = 0) {
        const size_t len = sizeof(magic) - 1;
        return n >= at + len && std::memcmp(d + at, magic, len) == 0;
    };
    const char * known = nullptr;
    if (starts("II*\0") || starts("MM\0*")) known = "TIFF";
    else if (starts("ftypavif", 4) || starts("ftypavis", 4)) known = "AVIF";
    else if (starts("ftyphei", 4) || starts("ftypmif1", 4) || starts("ftypmsf1", 4) || starts("ftyphev", 4)) known = "HEIF/HEIC";
    else if (starts("ftyp", 4)) known = "an MP4/QuickTime-family file (for a video use the video input)";
    else if (starts("\x1a\x45\xdf\xa3")) known = "a Matroska/WebM file (for a video use the video input)";
    else if (starts("RIFF") && starts("AVI ", 8)) known = "an AVI file (for a video use the video input)";
    else if (starts("\xff\x0a") || starts("\0\0\0\x0cJXL ")) known = "JPEG XL";
    else if (starts("8BPS")) known = "Photoshop (PSD)";
    else if (starts("\0\0\1\0")) known = "ICO";
    else if (starts("%PDF")) known = "PDF";
    else if (starts("<svg") || starts("<?xml")) known = "SVG/XML text";
    else if (starts("P1") || starts("P2") || starts("P3") || starts("P4") || starts("P5") || starts("P6")) known = "PNM";
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(n, 8); i++) head += format_message("%02x", d[i]);
    std::string msg = "image format not recognised (supported: JPEG, PNG, BMP, GIF, WebP)";
    if (known) msg += std::string("; the data looks like ") + known + ", which is not supported";
    return msg + "; first bytes: " + head;
}

// ---- JPEG: stb decodes a stream that stops early as if the rest were zeros; PIL (libjpeg) refuses it. ----------------
enum class JpegEnd { Complete, Truncated, Malformed };

JpegEnd jpeg_stream_end(const uint8_t * d, size_t n) {
    size_t pos = 2; // after SOI
    for (;;) {
        if (pos >= n) return JpegEnd::Truncated;
        if (d[pos] != 0xFF) return JpegEnd::Malformed;
        while (pos < n && d[pos] == 0xFF) pos++; // fill bytes
        if (pos >= n) return JpegEnd::Truncated;
        const uint8_t m = d[pos++];
        if (m == 0xD9) return JpegEnd::Complete; // EOI
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue; // TEM, RSTn: no length
        if (m == 0x00) return JpegEnd::Malformed;
        if (pos + 2 > n) return JpegEnd::Truncated;
        const size_t len = be16(d + pos);
        if (len < 2) return JpegEnd::Malformed;
        if (pos + len > n) return JpegEnd::Truncated;
        pos += len;
        if (m != 0xDA) continue;
        // SOS: entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or a restart marker.
        for (;;) {
            const void * ff = pos < n ? std::memchr(d + pos, 0xFF, n - pos) : nullptr;
            if (!ff) return JpegEnd::Truncated;
            pos = static_cast<size_t>(static_cast<const uint8_t *>(ff) - d);
            if (pos + 1 >= n) return JpegEnd::Truncated;
            const uint8_t next = d[pos + 1];
            if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
                pos += 2;
            } else if (next == 0xFF) {
                pos += 1;
            } else {
                break; // a marker starts at pos
            }
        }
    }
}

// ---- PNG: every chunk must be complete and match its CRC (stb checks neither; PIL refuses truncated data and zlib
// streams that fail their checksum); a missing IEND alone is accepted, as PIL does. ------------------------------------
uint32_t crc32_update(uint32_t crc, const uint8_t * p, size_t n) {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

// Returns how many leading bytes hold whole chunks; append_iend says that an IEND chunk must be added after them.
size_t png_checked_length(const uint8_t * d, size_t n, bool & append_iend) {
    append_iend = false;
    size_t pos = 8;
    bool saw_idat = false;
    while (pos + 8 <= n) {
        const uint64_t len = be32(d + pos);
        char type[5] = {0, 0, 0, 0, 0};
        for (int i = 0; i < 4; i++) {
            const uint8_t c = d[pos + 4 + size_t(i)];
            type[i] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ? char(c) : '?';
        }
        const bool is_idat = std::memcmp(type, "IDAT", 4) == 0;
        if (std::memcmp(type, "IEND", 4) == 0) return n;
        if (pos + 12 + len > n) {
            fail(format_message("PNG data is truncated: chunk %s needs %llu bytes but only %llu remain", type,
                                static_cast<unsigned long long>(len + 12), static_cast<unsigned long long>(n - pos)));
        }
        if (crc32_update(0, d + pos + 4, size_t(len) + 4) != be32(d + pos + 8 + len)) {
            fail(format_message("corrupt PNG data: chunk %s fails its CRC check", type));
        }
        saw_idat = saw_idat || is_idat;
        pos += 12 + len;
    }
    if (!saw_idat) fail("PNG data is truncated: no image data (IDAT chunk) before the end of the data");
    append_iend = true; // all chunks up to pos are whole; only IEND (or a piece of it) is missing
    return pos;
}

// ---- BMP: stb reads missing pixel rows as zeros; refuse data shorter than the header says. --------------------------
void check_bmp_length(const uint8_t * d, size_t n) {
    if (n < 26) fail("BMP data is truncated: the header is incomplete");
    const uint64_t offset = le32(d + 10);
    const uint32_t header_size = le32(d + 14);
    int64_t width = 0, height = 0;
    uint32_t bpp = 0, compression = 0;
    if (header_size == 12) {
        width = le16(d + 18);
        height = le16(d + 20);
        bpp = le16(d + 24);
    } else if (header_size >= 40) {
        if (n < 34) fail("BMP data is truncated: the header is incomplete");
        width = static_cast<int32_t>(le32(d + 18));
        height = static_cast<int32_t>(le32(d + 22));
        bpp = le16(d + 28);
        compression = le32(d + 30);
    } else {
        return; // unusual header: let stb judge
    }
    if (height < 0) height = -height;
    const bool uncompressed = compression == 0 || compression == 3 || compression == 6;
    if (!uncompressed || width <= 0 || height == 0 || (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)) return;
    // The padding at the end of the last stored row may be missing (PIL accepts that too).
    const uint64_t row_bits = static_cast<uint64_t>(width) * bpp;
    const uint64_t row = ((row_bits + 31) / 32) * 4;
    const uint64_t needed = offset + row * static_cast<uint64_t>(height - 1) + (row_bits + 7) / 8;
    if (needed > n) {
        fail(format_message("BMP data is truncated: the pixel data needs %llu bytes but the data has %llu",
                            static_cast<unsigned long long>(needed), static_cast<unsigned long long>(n)));
    }
}

// ---- GIF: what PIL shows for the first frame. ------------------------------------------------------------------------
// PIL keeps the first frame in palette mode: pixels of the transparent index keep that palette entry's colour, and the
// canvas outside the frame's rectangle is filled with the transparent index (or index 0 when there is none). stb
// instead leaves transparent pixels black and fills the outside with the background colour.
struct GifFrameInfo {
    int x = 0, y = 0, w = 0, h = 0;
    std::array<uint8_t, 768> palette{};
    int palette_entries = 0;
    int transparent = -1;
};

GifFrameInfo parse_gif_first_frame(const uint8_t * d, size_t n) {
    GifFrameInfo info;
    if (n < 13) fail("GIF data is truncated: the header is incomplete");
    const uint8_t flags = d[10];
    size_t pos = 13;
    std::array<uint8_t, 768> global{};
    int global_entries = 0;
    if (flags & 0x80) {
        global_entries = 2 << (flags & 7);
        if (pos + 3 * size_t(global_entries) > n) fail("GIF data is truncated: the colour table is incomplete");
        std::memcpy(global.data(), d + pos, 3 * size_t(global_entries));
        pos += 3 * size_t(global_entries);
    }
    // Data ending exactly where the next sub-block would start is accepted for the image data (PIL decodes such files).
    auto skip_sub_blocks = [&](const char * what, bool end_ok) {
        for (;;) {
            if (pos >= n) {
                if (end_ok) return;
                fail(format_message("GIF data is truncated inside %s", what));
            }
            const size_t len = d[pos++];
            if (len == 0) return;
            if (pos + len > n) fail(format_message("GIF data is truncated inside %s", what));
            pos += len;
        }
    };
    for (;;) {
        if (pos >= n) fail("GIF data is truncated: no image before the end of the data");
        const uint8_t tag = d[pos++];
        if (tag == 0x21) { // extension
            if (pos >= n) fail("GIF data is truncated inside an extension block");
            const uint8_t label = d[pos++];
            if (label == 0xF9 && pos + 5 <= n && d[pos] >= 4 && (d[pos + 1] & 1)) info.transparent = d[pos + 4];
            skip_sub_blocks("an extension block", false);
        } else if (tag == 0x2C) { // image descriptor
            if (pos + 9 > n) fail("GIF data is truncated inside the image descriptor");
            info.x = int(le16(d + pos));
            info.y = int(le16(d + pos + 2));
            info.w = int(le16(d + pos + 4));
            info.h = int(le16(d + pos + 6));
            const uint8_t lflags = d[pos + 8];
            pos += 9;
            if (lflags & 0x80) {
                info.palette_entries = 2 << (lflags & 7);
                if (pos + 3 * size_t(info.palette_entries) > n) fail("GIF data is truncated: the local colour table is incomplete");
                std::memcpy(info.palette.data(), d + pos, 3 * size_t(info.palette_entries));
                pos += 3 * size_t(info.palette_entries);
            } else {
                info.palette = global;
                info.palette_entries = global_entries;
            }
            if (info.palette_entries == 0) fail("unsupported GIF: the first frame has no colour table");
            pos += 1; // LZW minimum code size
            skip_sub_blocks("the first frame's image data", true);
            return info;
        } else if (tag == 0x3B) {
            fail("corrupt GIF: the file ends before its first image");
        } else {
            fail(format_message("corrupt GIF: unexpected block type 0x%02x", tag));
        }
    }
}

// rgba: stb's first frame (RGBA, canvas size). Writes RGB into out.
void fix_gif_first_frame(const GifFrameInfo & info, const uint8_t * rgba, int width, int height, uint8_t * out) {
    auto colour = [&](int index, uint8_t * dst) {
        if (index < info.palette_entries) {
            std::memcpy(dst, &info.palette[size_t(index) * 3], 3);
        } else { // PIL's palette beyond the stored entries is a grey ramp
            dst[0] = dst[1] = dst[2] = static_cast<uint8_t>(index);
        }
    };
    uint8_t fill[3];
    colour(info.transparent >= 0 ? info.transparent : 0, fill);
    for (int y = 0; y < height; y++) {
        const bool row_inside = y >= info.y && y < info.y + info.h;
        for (int x = 0; x < width; x++) {
            const size_t i = size_t(y) * size_t(width) + size_t(x);
            const bool inside = row_inside && x >= info.x && x < info.x + info.w;
            uint8_t * dst = out + i * 3;
            if (!inside || rgba[i * 4 + 3] == 0) {
                std::memcpy(dst, fill, 3); // outside the frame, or a pixel of the transparent index
            } else {
                std::memcpy(dst, rgba + i * 4, 3);
            }
        }
    }
}

// ---- Dimensions from the header, read by us: stb's own header readers refuse images over 2^30 bytes with a vague
// message, and the pixel limit must be checked first. Returns false when the header does not say (stb then decides).
bool header_dimensions(ImageFormat format, const uint8_t * d, size_t n, int64_t & width, int64_t & height) {
    switch (format) {
        case ImageFormat::Png:
            if (n < 24 || std::memcmp(d + 12, "IHDR", 4) != 0) fail("corrupt PNG data: the IHDR header chunk is missing");
            width = be32(d + 16);
            height = be32(d + 20);
            return true;
        case ImageFormat::Gif:
            if (n < 10) fail("GIF data is truncated: the header is incomplete");
            width = le16(d + 6);
            height = le16(d + 8);
            return true;
        case ImageFormat::Bmp: {
            if (n < 26) fail("BMP data is truncated: the header is incomplete");
            const uint32_t header_size = le32(d + 14);
            if (header_size == 12) {
                width = le16(d + 18);
                height = le16(d + 20);
                return true;
            }
            if (header_size < 40) return false;
            width = static_cast<int32_t>(le32(d + 18));
            height = static_cast<int32_t>(le32(d + 22));
            if (height < 0) height = -height;
            return true;
        }
        case ImageFormat::Jpeg: {
            size_t pos = 2;
            while (pos + 4 <= n && d[pos] == 0xFF) {
                while (pos < n && d[pos] == 0xFF) pos++;
                if (pos + 3 > n) return false;
                const uint8_t m = d[pos++];
                if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;
                if (m == 0xD9 || m == 0xDA) return false; // no frame header before the scan
                const size_t len = be16(d + pos);
                const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
                if (sof) {
                    if (pos + 7 > n) fail("JPEG data is truncated inside the frame header");
                    height = be16(d + pos + 3);
                    width = be16(d + pos + 5);
                    return height != 0; // 0: the height comes later (DNL marker)
                }
                if (len < 2) return false;
                pos += len;
            }
            return false;
        }
        default: return false;
    }
}

// ---- stb_image path ---------------------------------------------------------------------------------------------------
struct StbFree {
    void operator()(stbi_uc * p) const { stbi_image_free(p); }
};

[[noreturn]] void fail_stb(ImageFormat format) {
    const char * reason = stbi_failure_reason();
    if (reason && std::strcmp(reason, "outofmem") == 0) throw std::bad_alloc();
    fail(format_message("corrupt or unsupported %s data (stb_image: %s)", image_format_name(format), reason ? reason : "unknown error"));
}

RgbImage decode_stb(ImageFormat format, const uint8_t * data, size_t size, const ImageLoadOptions & options) {
    if (size > static_cast<size_t>(INT_MAX)) fail(format_message("the %s data is too large (%llu bytes)", image_format_name(format), static_cast<unsigned long long>(size)));
    int64_t header_w = 0, header_h = 0;
    if (header_dimensions(format, data, size, header_w, header_h)) check_dimensions(format, header_w, header_h, options.max_pixels);
    std::vector<uint8_t> patched; // PNG without IEND
    GifFrameInfo gif;
    if (format == ImageFormat::Jpeg) {
        if (jpeg_stream_end(data, size) == JpegEnd::Truncated) fail("JPEG data is truncated: the end-of-image marker is missing");
    } else if (format == ImageFormat::Png) {
        bool append_iend = false;
        const size_t length = png_checked_length(data, size, append_iend);
        if (append_iend) {
            static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
            patched.reserve(length + sizeof(iend));
            patched.assign(data, data + length);
            patched.insert(patched.end(), iend, iend + sizeof(iend));
            data = patched.data();
            size = patched.size();
        }
    } else if (format == ImageFormat::Bmp) {
        check_bmp_length(data, size);
    } else if (format == ImageFormat::Gif) {
        gif = parse_gif_first_frame(data, size);
    }

    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &comp)) {
        const char * reason = stbi_failure_reason();
        fail(format_message("cannot read the %s header (stb_image: %s)", image_format_name(format), reason ? reason : "unknown error"));
    }
    check_dimensions(format, w, h, options.max_pixels);

    const int channels = format == ImageFormat::Gif ? 4 : 3;
    int dw = 0, dh = 0, dc = 0;
    std::unique_ptr<stbi_uc, StbFree> pixels(stbi_load_from_memory(data, static_cast<int>(size), &dw, &dh, &dc, channels));
    if (!pixels) fail_stb(format);
    if (dw != w || dh != h) fail(format_message("corrupt %s data: the header says %dx%d but %dx%d was decoded", image_format_name(format), w, h, dw, dh));

    RgbImage out;
    out.width = w;
    out.height = h;
    out.data.resize(size_t(w) * size_t(h) * 3);
    if (format == ImageFormat::Gif) {
        fix_gif_first_frame(gif, pixels.get(), w, h, out.data.data());
    } else {
        std::memcpy(out.data.data(), pixels.get(), out.data.size());
    }
    return out;
}

// ---- WebP -------------------------------------------------------------------------------------------------------------
#ifdef VIDLLAMA_WEBP
const char * webp_status_text(VP8StatusCode status) {
    switch (status) {
        case VP8_STATUS_OK: return "ok";
        case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
        case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
        case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
        case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
        case VP8_STATUS_SUSPENDED: return "suspended";
        case VP8_STATUS_USER_ABORT: return "aborted";
        case VP8_STATUS_NOT_ENOUGH_DATA: return "truncated data";
    }
    return "unknown error";
}

[[noreturn]] void fail_webp(VP8StatusCode status) {
    if (status == VP8_STATUS_OUT_OF_MEMORY) throw std::bad_alloc();
    if (status == VP8_STATUS_NOT_ENOUGH_DATA) fail("WebP data is truncated");
    fail(format_message("corrupt or unsupported WebP data (libwebp: %s)", webp_status_text(status)));
}

RgbImage decode_webp(const uint8_t * data, size_t size, const ImageLoadOptions & options) {
    WebPBitstreamFeatures features;
    VP8StatusCode status = WebPGetFeatures(data, size, &features);
    if (status != VP8_STATUS_OK) fail_webp(status);
    check_dimensions(ImageFormat::WebP, features.width, features.height, options.max_pixels);
    RgbImage out;
    out.width = features.width;
    out.height = features.height;
    const size_t n_pixels = size_t(out.width) * size_t(out.height);

    if (features.has_animation) {
#ifdef VIDLLAMA_WEBP_DEMUX
        // First frame composited on the canvas, as PIL's WebPAnimDecoder path does.
        WebPAnimDecoderOptions anim_options;
        if (!WebPAnimDecoderOptionsInit(&anim_options)) fail("libwebp version mismatch");
        anim_options.color_mode = MODE_RGBA;
        anim_options.use_threads = 0;
        WebPData webp_data{data, size};
        std::unique_ptr<WebPAnimDecoder, void (*)(WebPAnimDecoder *)> dec(WebPAnimDecoderNew(&webp_data, &anim_options), WebPAnimDecoderDelete);
        if (!dec) fail("corrupt or truncated animated WebP data (libwebp could not parse the animation)");
        WebPAnimInfo info;
        if (!WebPAnimDecoderGetInfo(dec.get(), &info)) fail("corrupt animated WebP data");
        check_dimensions(ImageFormat::WebP, info.canvas_width, info.canvas_height, options.max_pixels);
        uint8_t * rgba = nullptr;
        int timestamp = 0;
        if (!WebPAnimDecoderGetNext(dec.get(), &rgba, &timestamp) || !rgba) fail("corrupt or truncated animated WebP data (the first frame cannot be decoded)");
        out.width = int(info.canvas_width);
        out.height = int(info.canvas_height);
        out.data.resize(size_t(out.width) * size_t(out.height) * 3);
        const size_t count = size_t(out.width) * size_t(out.height);
        for (size_t i = 0; i < count; i++) std::memcpy(&out.data[i * 3], rgba + i * 4, 3);
        return out;
#else
        fail("animated WebP is not supported by this build (it was compiled without libwebpdemux)");
#endif
    }

    out.data.resize(n_pixels * 3);
    WebPDecoderConfig config;
    if (!WebPInitDecoderConfig(&config)) fail("libwebp version mismatch");
    config.output.colorspace = MODE_RGB; // alpha, if any, is dropped
    config.output.is_external_memory = 1;
    config.output.u.RGBA.rgba = out.data.data();
    config.output.u.RGBA.stride = out.width * 3;
    config.output.u.RGBA.size = out.data.size();
    status = WebPDecode(data, size, &config);
    WebPFreeDecBuffer(&config.output);
    if (status != VP8_STATUS_OK) fail_webp(status);
    return out;
}
#endif

} // namespace

const char * image_format_name(ImageFormat format) {
    switch (format) {
        case ImageFormat::Jpeg: return "JPEG";
        case ImageFormat::Png: return "PNG";
        case ImageFormat::Bmp: return "BMP";
        case ImageFormat::Gif: return "GIF";
        case ImageFormat::WebP: return "WebP";
        case ImageFormat::Unknown: break;
    }
    return "unknown";
}

ImageFormat sniff_image_format(const uint8_t * d, size_t n) {
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return ImageFormat::Jpeg;
    if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::Png;
    if (n >= 6 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) return ImageFormat::Gif;
    if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return ImageFormat::WebP;
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return ImageFormat::Bmp;
    return ImageFormat::Unknown;
}

bool image_webp_supported() {
#ifdef VIDLLAMA_WEBP
    return true;
#else
    return false;
#endif
}

ImageInfo probe_image(const uint8_t * data, size_t size) {
    if (size == 0) fail("the image data is empty");
    ImageInfo info;
    info.format = sniff_image_format(data, size);
    switch (info.format) {
        case ImageFormat::Unknown: fail(describe_unknown(data, size));
        case ImageFormat::WebP: {
#ifdef VIDLLAMA_WEBP
            WebPBitstreamFeatures features;
            VP8StatusCode status = WebPGetFeatures(data, size, &features);
            if (status != VP8_STATUS_OK) fail_webp(status);
            info.width = features.width;
            info.height = features.height;
            return info;
#else
            fail("WebP images are not supported by this build of vidllama (it was compiled without libwebp, CMake option VIDLLAMA_WEBP)");
#endif
        }
        default: {
            int64_t w = 0, h = 0;
            if (header_dimensions(info.format, data, size, w, h) && w > 0 && h > 0 && w <= INT_MAX && h <= INT_MAX) {
                info.width = static_cast<int>(w);
                info.height = static_cast<int>(h);
                return info;
            }
            if (size > static_cast<size_t>(INT_MAX)) fail("the image data is too large");
            int comp = 0;
            if (!stbi_info_from_memory(data, static_cast<int>(size), &info.width, &info.height, &comp)) {
                const char * reason = stbi_failure_reason();
                fail(format_message("cannot read the %s header (stb_image: %s)", image_format_name(info.format), reason ? reason : "unknown error"));
            }
            return info;
        }
    }
}

RgbImage decode_image(const uint8_t * data, size_t size, const ImageLoadOptions & options) {
    if (size == 0) fail("the image data is empty");
    const ImageFormat format = sniff_image_format(data, size);
    switch (format) {
        case ImageFormat::Unknown: fail(describe_unknown(data, size));
        case ImageFormat::WebP:
#ifdef VIDLLAMA_WEBP
            return decode_webp(data, size, options);
#else
            fail("WebP images are not supported by this build of vidllama (it was compiled without libwebp, CMake option VIDLLAMA_WEBP)");
#endif
        default: return decode_stb(format, data, size, options);
    }
}

RgbImage load_image_file(const std::string & path, const ImageLoadOptions & options) {
    namespace fs = std::filesystem;
#if defined(__cpp_char8_t)
    const fs::path p(reinterpret_cast<const char8_t *>(path.c_str()));
#else
    const fs::path p = fs::u8path(path);
#endif
    std::error_code ec;
    const fs::file_status status = fs::status(p, ec);
    if (status.type() == fs::file_type::not_found) throw Error(ErrorCode::Io, "no such file");
    if (ec) throw Error(ErrorCode::Io, "cannot access the file: " + ec.message());
    if (fs::is_directory(status)) throw Error(ErrorCode::Io, "is a directory, not an image file");
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Error(ErrorCode::Io, "cannot open the file for reading");
    in.seekg(0, std::ios::end);
    const std::streamoff length = in.tellg();
    if (length < 0) throw Error(ErrorCode::Io, "cannot determine the file size");
    if (static_cast<uint64_t>(length) > static_cast<uint64_t>(INT_MAX)) {
        fail(format_message("the file is too large to be an image (%lld bytes)", static_cast<long long>(length)));
    }
    in.seekg(0, std::ios::beg);
    std::vector<uint8_t> bytes(static_cast<size_t>(length));
    if (length > 0 && !in.read(reinterpret_cast<char *>(bytes.data()), length)) throw Error(ErrorCode::Io, "reading the file failed");
    if (bytes.empty()) fail("the file is empty");
    return decode_image(bytes.data(), bytes.size(), options);
}

RgbImage image_from_pixels(const uint8_t * data, size_t size, int width, int height, int channels) {
    if (width <= 0 || height <= 0) fail(format_message("invalid pixel dimensions %dx%d", width, height));
    if (channels != 3 && channels != 4) fail(format_message("unsupported channel count %d (expected 3 for RGB or 4 for RGBA)", channels));
    const uint64_t expected = uint64_t(width) * uint64_t(height) * uint64_t(channels);
    if (expected != size) {
        fail(format_message("pixel data has %llu bytes but %dx%d %s needs %llu", static_cast<unsigned long long>(size), width,
                            height, channels == 3 ? "RGB" : "RGBA", static_cast<unsigned long long>(expected)));
    }
    RgbImage out;
    out.width = width;
    out.height = height;
    if (channels == 3) {
        out.data.assign(data, data + size);
    } else {
        const size_t n = size_t(width) * size_t(height);
        out.data.resize(n * 3);
        for (size_t i = 0; i < n; i++) std::memcpy(&out.data[i * 3], data + i * 4, 3);
    }
    return out;
}

} // namespace vl
