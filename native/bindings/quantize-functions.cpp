// quantize / dequantize / ggmlTypes for the TypeScript converter (lib/convert).
#include <napi.h>

#include <algorithm>
#include <memory>
#include <thread>

#include "bindings/convert.h"
#include "bindings/registry.h"
#include "bindings/worker.h"
#include "convert/quantize.h"

namespace vl {

namespace {

Napi::Value GgmlTypes(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (const TypeInfo & t : all_types()) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", t.name);
        o.Set("id", static_cast<int32_t>(t.type));
        o.Set("blockSize", static_cast<double>(t.block_size));
        o.Set("typeSize", static_cast<double>(t.type_size));
        o.Set("quantized", t.quantized);
        out.Set(i++, o);
    }
    return out;
}

// quantize(type, src: Float32Array, nRows, nPerRow, threads?) -> Promise<Buffer>
Napi::Value Quantize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string type_name = arg_string(info, 0, "type");
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw Napi::TypeError::New(env, "src must be a Float32Array");
    }
    Napi::Float32Array src = info[1].As<Napi::Float32Array>();
    if (info.Length() < 4 || !info[2].IsNumber() || !info[3].IsNumber()) throw Napi::TypeError::New(env, "nRows and nPerRow must be numbers");
    const int64_t n_rows = info[2].As<Napi::Number>().Int64Value();
    const int64_t n_per_row = info[3].As<Napi::Number>().Int64Value();
    if (n_rows < 0 || n_per_row <= 0 || static_cast<size_t>(n_rows * n_per_row) != src.ElementLength()) {
        throw Napi::RangeError::New(env, "nRows * nPerRow must equal src.length");
    }
    int threads = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().Int32Value() : 0;
    if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
    TypeInfo type = guard(env, [&] { return type_info(type_name); });
    // The worker reads the caller's buffer in place; keep_alive pins it until the work is done.
    const float * data = src.Data();
    auto out = std::make_shared<std::vector<uint8_t>>();
    return PromiseWorker::run(
        env, "vidllama.quantize", [type, data, n_rows, n_per_row, threads, out] { *out = quantize_rows(type, data, n_rows, n_per_row, threads); },
        [out](Napi::Env env) -> Napi::Value { return Napi::Buffer<uint8_t>::Copy(env, out->data(), out->size()); },
        {src.As<Napi::Object>()});
}

// dequantize(type, data: Uint8Array, nElements) -> Float32Array
Napi::Value Dequantize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string type_name = arg_string(info, 0, "type");
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        throw Napi::TypeError::New(env, "data must be a Uint8Array or Buffer");
    }
    Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
    if (info.Length() < 3 || !info[2].IsNumber()) throw Napi::TypeError::New(env, "nElements must be a number");
    const int64_t n = info[2].As<Napi::Number>().Int64Value();
    return guard(env, [&] {
        std::vector<float> out = dequantize(type_info(type_name), data.Data(), data.ByteLength(), n);
        Napi::Float32Array a = Napi::Float32Array::New(env, out.size());
        std::copy(out.begin(), out.end(), a.Data());
        return a;
    });
}

// quantizeModel(inPath, outPath, ftype, threads?) -> Promise<void>: libllama's llama_model_quantize (tests compare its
// per-tensor type choices with the converter's).
Napi::Value QuantizeModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::string in_path = arg_string(info, 0, "inPath");
    std::string out_path = arg_string(info, 1, "outPath");
    if (info.Length() < 3 || !info[2].IsNumber()) throw Napi::TypeError::New(env, "ftype must be a number");
    const int ftype = info[2].As<Napi::Number>().Int32Value();
    int threads = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : 0;
    if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
    return PromiseWorker::run(
        env, "vidllama.quantizeModel", [in_path, out_path, ftype, threads] { quantize_model(in_path, out_path, ftype, threads); },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
}

} // namespace

void register_quantize_functions(Napi::Env env, Napi::Object exports) {
    exports.Set("ggmlTypes", Napi::Function::New<GgmlTypes>(env, "ggmlTypes"));
    exports.Set("quantize", Napi::Function::New<Quantize>(env, "quantize"));
    exports.Set("dequantize", Napi::Function::New<Dequantize>(env, "dequantize"));
    exports.Set("quantizeModel", Napi::Function::New<QuantizeModel>(env, "quantizeModel"));
}

} // namespace vl
