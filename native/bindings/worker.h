// Runs native work off the JS thread and settles a Promise with the result.
//
// The work function runs on libuv's thread pool and must not touch napi; it stores its result in state captured by
// the `resolve` function, which runs on the JS thread afterwards. vl::Error codes become the `code` property of the
// rejection (lib/native/errors.ts maps them to typed errors). Objects passed as keep_alive stay referenced (and so
// cannot be garbage-collected) until the work is done.
#pragma once

#include <napi.h>

#include <functional>
#include <new>
#include <string>
#include <vector>

#include "common/error.h"

namespace vl {

class PromiseWorker : public Napi::AsyncWorker {
  public:
    using Work = std::function<void()>;
    using Resolve = std::function<Napi::Value(Napi::Env)>;

    static Napi::Promise run(Napi::Env env, const char * name, Work work, Resolve resolve,
                             const std::vector<Napi::Object> & keep_alive = {}) {
        auto * worker = new PromiseWorker(env, name, std::move(work), std::move(resolve), keep_alive);
        Napi::Promise promise = worker->deferred_.Promise();
        worker->Queue(); // AsyncWorker deletes itself after OnOK/OnError
        return promise;
    }

  protected:
    void Execute() override {
        try {
            work_();
        } catch (const Error & e) {
            code_ = error_code_name(e.code());
            SetError(e.what());
        } catch (const std::bad_alloc &) {
            code_ = "VL_OUT_OF_MEMORY";
            SetError("out of memory");
        } catch (const std::exception & e) {
            code_ = "VL_INTERNAL";
            SetError(e.what());
        } catch (...) {
            code_ = "VL_INTERNAL";
            SetError("unknown native error");
        }
    }

    void OnOK() override {
        Napi::Env env = Env();
        try {
            deferred_.Resolve(resolve_(env));
        } catch (const Napi::Error & e) {
            deferred_.Reject(e.Value());
        }
    }

    void OnError(const Napi::Error & e) override {
        Napi::Object err = e.Value();
        err.Set("code", Napi::String::New(Env(), code_));
        deferred_.Reject(err);
    }

  private:
    PromiseWorker(Napi::Env env, const char * name, Work work, Resolve resolve, const std::vector<Napi::Object> & keep_alive)
        : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
          resolve_(std::move(resolve)) {
        for (const auto & obj : keep_alive) keep_.push_back(Napi::Persistent(obj));
    }

    Napi::Promise::Deferred deferred_;
    Work work_;
    Resolve resolve_;
    std::string code_ = "VL_INTERNAL";
    std::vector<Napi::ObjectReference> keep_;
};

// Throws a JS error with a `code` from the JS thread.
[[noreturn]] inline void throw_js(Napi::Env env, const char * code, const std::string & message) {
    Napi::Error err = Napi::Error::New(env, message);
    err.Set("code", Napi::String::New(env, code));
    throw err;
}

[[noreturn]] inline void throw_js(Napi::Env env, const Error & e) { throw_js(env, error_code_name(e.code()), e.what()); }

// Runs f on the JS thread translating vl::Error into a coded JS error.
template <typename F> auto guard(Napi::Env env, F && f) -> decltype(f()) {
    try {
        return f();
    } catch (const Error & e) {
        throw_js(env, e);
    } catch (const Napi::Error &) {
        throw;
    } catch (const std::bad_alloc &) {
        throw_js(env, "VL_OUT_OF_MEMORY", "out of memory");
    } catch (const std::exception & e) {
        throw_js(env, "VL_INTERNAL", e.what());
    }
}

} // namespace vl
