// Progress reporting from a worker thread to a JS callback through a thread-safe function. The JS callback's
// exceptions are swallowed (a listener must not take the process down); the TypeScript layer wraps listeners anyway.
#pragma once

#include <napi.h>

#include <functional>
#include <memory>

namespace vl {

class JsProgress {
  public:
    // `fn` may be undefined: then report() does nothing.
    JsProgress(Napi::Env env, Napi::Value fn, const char * name) {
        if (fn.IsFunction()) {
            tsfn_ = std::make_shared<Napi::ThreadSafeFunction>(Napi::ThreadSafeFunction::New(env, fn.As<Napi::Function>(), name, 0, 1));
        }
    }
    // Posts (a, b) to the callback; safe from any thread until release().
    void report(double a, double b = 0) const {
        if (!tsfn_) return;
        tsfn_->NonBlockingCall([a, b](Napi::Env env, Napi::Function fn) {
            try {
                fn.Call({Napi::Number::New(env, a), Napi::Number::New(env, b)});
            } catch (const Napi::Error &) {
            }
        });
    }
    // Must be called once when the work ends (any thread).
    void release() const {
        if (tsfn_) tsfn_->Release();
    }

  private:
    std::shared_ptr<Napi::ThreadSafeFunction> tsfn_;
};

// Releases a JsProgress at scope exit.
struct JsProgressRelease {
    const JsProgress & progress;
    ~JsProgressRelease() { progress.release(); }
};

} // namespace vl
