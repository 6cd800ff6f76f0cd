// Reading JS arguments into plain C++ values on the JS thread. Every check names the argument, so a wrong value
// from a caller that bypassed the TypeScript validation still gives a clear TypeError/RangeError, never a crash.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace vl {

inline Napi::Object arg_object(const Napi::CallbackInfo & info, size_t i, const char * name) {
    if (info.Length() <= i || !info[i].IsObject()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an object");
    return info[i].As<Napi::Object>();
}

inline std::string arg_string(const Napi::CallbackInfo & info, size_t i, const char * name) {
    if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
    return info[i].As<Napi::String>().Utf8Value();
}

inline bool arg_bool(const Napi::CallbackInfo & info, size_t i, const char * name, bool fallback) {
    if (info.Length() <= i || info[i].IsUndefined()) return fallback;
    if (!info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a boolean");
    return info[i].As<Napi::Boolean>().Value();
}

inline double opt_number(const Napi::Object & o, const char * key, double fallback, double min, double max) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return fallback;
    if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d < min || d > max) {
        throw Napi::RangeError::New(o.Env(), std::string(key) + " must be between " + std::to_string(min) + " and " +
                                                 std::to_string(max) + ", got " + std::to_string(d));
    }
    return d;
}

inline int64_t opt_int(const Napi::Object & o, const char * key, int64_t fallback, int64_t min, int64_t max) {
    double d = opt_number(o, key, static_cast<double>(fallback), static_cast<double>(min), static_cast<double>(max));
    if (d != std::floor(d)) throw Napi::RangeError::New(o.Env(), std::string(key) + " must be an integer");
    return static_cast<int64_t>(d);
}

inline bool opt_bool(const Napi::Object & o, const char * key, bool fallback) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return fallback;
    if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a boolean");
    return v.As<Napi::Boolean>().Value();
}

inline std::string opt_string(const Napi::Object & o, const char * key, const std::string & fallback) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return fallback;
    if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a string");
    return v.As<Napi::String>().Utf8Value();
}

// Int32Array or array of integers -> token ids
inline std::vector<int32_t> arg_tokens(const Napi::CallbackInfo & info, size_t i, const char * name) {
    if (info.Length() > i && info[i].IsTypedArray()) {
        Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
        if (ta.TypedArrayType() != napi_int32_array) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an Int32Array");
        Napi::Int32Array a = ta.As<Napi::Int32Array>();
        return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
    }
    if (info.Length() > i && info[i].IsArray()) {
        Napi::Array a = info[i].As<Napi::Array>();
        std::vector<int32_t> out(a.Length());
        for (uint32_t k = 0; k < a.Length(); k++) {
            Napi::Value v = a.Get(k);
            if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must contain only integers");
            double d = v.As<Napi::Number>().DoubleValue();
            if (d != std::floor(d) || d < std::numeric_limits<int32_t>::min() || d > std::numeric_limits<int32_t>::max()) {
                throw Napi::RangeError::New(info.Env(), std::string(name) + " must contain only 32-bit integers");
            }
            out[k] = static_cast<int32_t>(d);
        }
        return out;
    }
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be an Int32Array or an array of integers");
}

inline Napi::Int32Array to_int32_array(Napi::Env env, const std::vector<int32_t> & v) {
    Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
    if (!v.empty()) std::copy(v.begin(), v.end(), a.Data());
    return a;
}

} // namespace vl
