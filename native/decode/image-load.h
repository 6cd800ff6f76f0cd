// Image decoding to packed RGB8: JPEG, PNG, BMP and GIF (first frame) through stb_image, WebP through libwebp.
//
// The result matches what the reference pipeline feeds the model, `PIL.Image.open(path).convert("RGB")`: alpha is
// dropped (not composited), grey is replicated into R, G and B, palettes are expanded, 16-bit samples keep their high
// byte. The header is read first and an image larger than `max_pixels` is refused before any pixel buffer is
// allocated. Every failure is a vl::Error (InvalidArgument for unusable data, Io for unreadable files) whose message
// says what is wrong (format not recognised, truncated, too large, ...).
//
// All functions are thread-safe and may run on worker threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vl {

// Default pixel limit (width * height) of a decoded image: 100 megapixels.
constexpr uint64_t kDefaultMaxImagePixels = 100'000'000;

enum class ImageFormat { Unknown, Jpeg, Png, Bmp, Gif, WebP };

// "JPEG", "PNG", ... ("unknown" for Unknown).
const char * image_format_name(ImageFormat format);

// The container format from the first bytes (magic numbers); Unknown when none matches.
ImageFormat sniff_image_format(const uint8_t * data, size_t size);

// Packed RGB8, rows top to bottom, no padding: data.size() == width * height * 3.
struct RgbImage {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> data;
};

// Header information, read without decoding pixels.
struct ImageInfo {
    ImageFormat format = ImageFormat::Unknown;
    int width = 0;
    int height = 0;
};

struct ImageLoadOptions {
    // Largest accepted width * height; larger images are refused before decoding. 0 means no limit.
    uint64_t max_pixels = kDefaultMaxImagePixels;
};

// Reads the format and dimensions from the header. Throws when the format is not recognised or the header is corrupt.
ImageInfo probe_image(const uint8_t * data, size_t size);

// Decodes an encoded image held in memory.
RgbImage decode_image(const uint8_t * data, size_t size, const ImageLoadOptions & options = {});

// Reads and decodes an image file.
RgbImage load_image_file(const std::string & path, const ImageLoadOptions & options = {});

// Validates raw pixels (channels 3 = RGB, 4 = RGBA, whose alpha is dropped) and returns them as RGB8.
RgbImage image_from_pixels(const uint8_t * data, size_t size, int width, int height, int channels);

// Whether this build decodes WebP (CMake option VIDLLAMA_WEBP).
bool image_webp_supported();

} // namespace vl
