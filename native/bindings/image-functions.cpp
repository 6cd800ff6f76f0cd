// Image decoding and preprocessing for lib/decode/Image.ts and lib/preprocess: decodeImage, resizeRgb, patchify,
// imageSupport. The work runs on libuv's thread pool (PromiseWorker); arguments are checked on the JS thread.
#include <napi.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "bindings/convert.h"
#include "bindings/registry.h"
#include "bindings/worker.h"
#include "decode/image-load.h"
#include "preprocess/patchify.h"
#include "preprocess/resize.h"

namespace vl {

namespace {

Napi::Uint8Array arg_uint8(const Napi::CallbackInfo & info, size_t i, const char * name) {
    if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Uint8Array or Buffer");
    }
    return info[i].As<Napi::Uint8Array>();
}

int arg_dimension(const Napi::CallbackInfo & info, size_t i, const char * name, int max = 1 << 20) {
    if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
    const double d = info[i].As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < 1 || d > max) {
        throw Napi::RangeError::New(info.Env(), std::string(name) + " must be an integer between 1 and " + std::to_string(max));
    }
    return static_cast<int>(d);
}

// Packed RGB of width x height must be exactly data.length bytes.
void check_rgb_length(Napi::Env env, const Napi::Uint8Array & data, int width, int height) {
    const uint64_t expected = uint64_t(width) * uint64_t(height) * 3;
    if (data.ByteLength() != expected) {
        throw Napi::RangeError::New(env, "data has " + std::to_string(data.ByteLength()) + " bytes but " + std::to_string(width) + "x" +
                                             std::to_string(height) + " RGB needs " + std::to_string(expected));
    }
}

Napi::Uint8Array new_uint8(Napi::Env env, const std::vector<uint8_t> & bytes) {
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes.size());
    if (!bytes.empty()) std::memcpy(buffer.Data(), bytes.data(), bytes.size());
    return Napi::Uint8Array::New(env, bytes.size(), buffer, 0);
}

std::array<float, 3> opt_triple(const Napi::Object & o, const char * key) {
    Napi::Value v = o.Get(key);
    std::array<float, 3> out{};
    if (!v.IsArray() && !v.IsTypedArray()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be an array of 3 numbers");
    Napi::Object arr = v.As<Napi::Object>();
    if (arr.Get("length").ToNumber().Uint32Value() != 3) throw Napi::RangeError::New(o.Env(), std::string(key) + " must have 3 values");
    for (uint32_t c = 0; c < 3; c++) {
        Napi::Value x = arr.Get(c);
        if (!x.IsNumber() || !std::isfinite(x.As<Napi::Number>().DoubleValue())) {
            throw Napi::TypeError::New(o.Env(), std::string(key) + " must contain finite numbers");
        }
        out[c] = static_cast<float>(x.As<Napi::Number>().DoubleValue());
    }
    return out;
}

// decodeImage(input: string | Uint8Array, options?: { maxPixels?: number }) -> Promise<{ width, height, data }>
Napi::Value DecodeImage(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    ImageLoadOptions options;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
        Napi::Object o = arg_object(info, 1, "options");
        options.max_pixels = static_cast<uint64_t>(opt_int(o, "maxPixels", static_cast<int64_t>(kDefaultMaxImagePixels), 0, int64_t(1) << 53));
    }
    auto result = std::make_shared<RgbImage>();
    auto resolve = [result](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("width", result->width);
        out.Set("height", result->height);
        out.Set("data", new_uint8(env, result->data));
        result->data = {};
        return out;
    };
    if (info.Length() > 0 && info[0].IsString()) {
        std::string path = info[0].As<Napi::String>().Utf8Value();
        return PromiseWorker::run(env, "vidllama.decodeImage", [path, options, result] { *result = load_image_file(path, options); }, resolve);
    }
    Napi::Uint8Array data = arg_uint8(info, 0, "input");
    const uint8_t * bytes = data.Data();
    const size_t size = data.ByteLength();
    // The worker reads the caller's bytes in place; keep_alive pins them until it is done.
    return PromiseWorker::run(
        env, "vidllama.decodeImage", [bytes, size, options, result] { *result = decode_image(bytes, size, options); }, resolve,
        {data.As<Napi::Object>()});
}

// resizeRgb(data, width, height, newWidth, newHeight, options?: { portable?: boolean, window?: { left, top, width,
// height } }) -> Promise<Uint8Array>: the whole resized picture, or only the window of it (resize_rgb_bicubic_window).
Napi::Value ResizeRgb(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Uint8Array data = arg_uint8(info, 0, "data");
    const int width = arg_dimension(info, 1, "width");
    const int height = arg_dimension(info, 2, "height");
    // With a window only the window is computed, so the virtual resized size may be far larger (see resize.h).
    const int new_width = arg_dimension(info, 3, "newWidth", 1 << 30);
    const int new_height = arg_dimension(info, 4, "newHeight", 1 << 30);
    check_rgb_length(env, data, width, height);
    ResizeKernel kernel = ResizeKernel::Auto;
    bool has_window = false;
    ResizeWindow window;
    if (info.Length() > 5 && !info[5].IsUndefined()) {
        Napi::Object o = arg_object(info, 5, "options");
        if (opt_bool(o, "portable", false)) kernel = ResizeKernel::Portable;
        Napi::Value w = o.Get("window");
        if (!w.IsUndefined()) {
            if (!w.IsObject()) throw Napi::TypeError::New(env, "options.window must be an object { left, top, width, height }");
            Napi::Object wo = w.As<Napi::Object>();
            has_window = true;
            window.left = static_cast<int>(opt_int(wo, "left", 0, -(1 << 30), 1 << 30));
            window.top = static_cast<int>(opt_int(wo, "top", 0, -(1 << 30), 1 << 30));
            window.width = static_cast<int>(opt_int(wo, "width", 0, 1, 1 << 16));
            window.height = static_cast<int>(opt_int(wo, "height", 0, 1, 1 << 16));
        }
    }
    if (!has_window && (new_width > 1 << 20 || new_height > 1 << 20)) {
        throw Napi::RangeError::New(env, "newWidth and newHeight must be integers between 1 and 1048576 (larger only with a window)");
    }
    // The output is allocated here and filled in place by the worker.
    const size_t out_size = has_window ? size_t(window.width) * size_t(window.height) * 3 : size_t(new_width) * size_t(new_height) * 3;
    Napi::Uint8Array out = Napi::Uint8Array::New(env, out_size);
    const uint8_t * src = data.Data();
    uint8_t * dst = out.Data();
    auto out_ref = std::make_shared<Napi::Reference<Napi::Uint8Array>>(Napi::Persistent(out));
    return PromiseWorker::run(
        env, "vidllama.resizeRgb",
        [src, width, height, dst, new_width, new_height, kernel, has_window, window] {
            if (has_window) resize_rgb_bicubic_window(src, width, height, new_width, new_height, window, dst, kernel);
            else resize_rgb_bicubic(src, width, height, dst, new_width, new_height, kernel);
        },
        [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); }, {data.As<Napi::Object>(), out.As<Napi::Object>()});
}

// patchify(data, width, height, { patchSize, mergeSize, mean, std, rescale })
//   -> Promise<{ patches: Float32Array, positions: Int32Array, gridHeight, gridWidth }>
Napi::Value Patchify(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Uint8Array data = arg_uint8(info, 0, "data");
    const int width = arg_dimension(info, 1, "width");
    const int height = arg_dimension(info, 2, "height");
    check_rgb_length(env, data, width, height);
    Napi::Object o = arg_object(info, 3, "params");
    PatchifyParams params;
    params.patch_size = static_cast<int>(opt_int(o, "patchSize", 14, 1, 1024));
    params.merge_size = static_cast<int>(opt_int(o, "mergeSize", 1, 1, 64));
    params.mean = opt_triple(o, "mean");
    params.std = opt_triple(o, "std");
    params.rescale = opt_number(o, "rescale", 1.0 / 255.0, -1e30, 1e30);
    guard(env, [&] { check_patchify(width, height, params); });
    const int grid_h = height / params.patch_size, grid_w = width / params.patch_size;
    const size_t rows = size_t(grid_h) * size_t(grid_w);
    const size_t row_size = size_t(3) * size_t(params.patch_size) * size_t(params.patch_size);
    Napi::Float32Array patches = Napi::Float32Array::New(env, rows * row_size);
    Napi::Int32Array positions = Napi::Int32Array::New(env, rows * 2);
    Napi::Object result = Napi::Object::New(env);
    result.Set("patches", patches);
    result.Set("positions", positions);
    result.Set("gridHeight", grid_h);
    result.Set("gridWidth", grid_w);
    auto result_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(result));
    const uint8_t * src = data.Data();
    float * values = patches.Data();
    int32_t * pos = positions.Data();
    return PromiseWorker::run(
        env, "vidllama.patchify", [src, width, height, params, values, pos] { patchify_rgb(src, width, height, params, values, pos); },
        [result_ref](Napi::Env) -> Napi::Value { return result_ref->Value(); }, {data.As<Napi::Object>(), result});
}

// imageSupport() -> { webp, webpAnimation, resizeAvx2 }
Napi::Value ImageSupport(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("webp", image_webp_supported());
#if defined(VIDLLAMA_WEBP) && defined(VIDLLAMA_WEBP_DEMUX)
    out.Set("webpAnimation", true);
#else
    out.Set("webpAnimation", false);
#endif
    out.Set("resizeAvx2", resize_uses_avx2());
    return out;
}

} // namespace

void register_image_functions(Napi::Env env, Napi::Object exports) {
    exports.Set("decodeImage", Napi::Function::New<DecodeImage>(env, "decodeImage"));
    exports.Set("resizeRgb", Napi::Function::New<ResizeRgb>(env, "resizeRgb"));
    exports.Set("patchify", Napi::Function::New<Patchify>(env, "patchify"));
    exports.Set("imageSupport", Napi::Function::New<ImageSupport>(env, "imageSupport"));
}

} // namespace vl
