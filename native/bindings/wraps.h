// The JS-visible native classes. Each owns one core object through a shared_ptr, so that work already queued on a
// worker thread keeps what it uses alive even if JavaScript disposes the wrapper meanwhile.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "common/abort.h"
#include "llm/context.h"
#include "llm/model.h"
#include "sample/sampler.h"

namespace vl {

// new AbortFlag(); flag.abort(); flag.aborted
class AbortWrap : public Napi::ObjectWrap<AbortWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit AbortWrap(const Napi::CallbackInfo & info);
    // The flag behind an optional AbortFlag argument (null when the argument is undefined/null).
    static AbortFlagPtr from(const Napi::CallbackInfo & info, size_t i);
    const AbortFlagPtr & flag() const { return flag_; }

  private:
    Napi::Value Abort(const Napi::CallbackInfo & info);
    Napi::Value Aborted(const Napi::CallbackInfo & info);
    AbortFlagPtr flag_;
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::Object New(Napi::Env env, TextModelPtr model);
    explicit ModelWrap(const Napi::CallbackInfo & info);
    static ModelWrap * unwrap(Napi::Env env, const Napi::Value & v, const char * name);
    const TextModelPtr & model(Napi::Env env) const; // throws VL_DISPOSED after dispose()

  private:
    Napi::Value Info(const Napi::CallbackInfo & info);
    Napi::Value Metadata(const Napi::CallbackInfo & info);
    Napi::Value Tokenize(const Napi::CallbackInfo & info);
    Napi::Value Detokenize(const Napi::CallbackInfo & info);
    Napi::Value TokenPiece(const Napi::CallbackInfo & info);
    Napi::Value IsEog(const Napi::CallbackInfo & info);
    Napi::Value SpecialTokens(const Napi::CallbackInfo & info);
    Napi::Value CreateContext(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    TextModelPtr model_;
};

class SamplerWrap : public Napi::ObjectWrap<SamplerWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit SamplerWrap(const Napi::CallbackInfo & info); // new Sampler(model, params)
    static SamplerWrap * unwrap(Napi::Env env, const Napi::Value & v, const char * name);
    const std::shared_ptr<Sampler> & sampler() const { return sampler_; }

  private:
    Napi::Value Accept(const Napi::CallbackInfo & info);
    std::shared_ptr<Sampler> sampler_;
    TextModelPtr model_;
};

class ContextWrap : public Napi::ObjectWrap<ContextWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::Object New(Napi::Env env, std::shared_ptr<TextContext> ctx);
    explicit ContextWrap(const Napi::CallbackInfo & info);

  private:
    // Claims the context for one operation; throws VL_BUSY / VL_DISPOSED. The returned guard releases it.
    std::shared_ptr<TextContext> claim(Napi::Env env);
    Napi::Value Evaluate(const Napi::CallbackInfo & info);
    Napi::Value EvaluateEmbeddings(const Napi::CallbackInfo & info);
    Napi::Value Logits(const Napi::CallbackInfo & info);
    Napi::Value Truncate(const Napi::CallbackInfo & info);
    Napi::Value Remove(const Napi::CallbackInfo & info);
    Napi::Value Shift(const Napi::CallbackInfo & info);
    Napi::Value SaveState(const Napi::CallbackInfo & info);
    Napi::Value LoadState(const Napi::CallbackInfo & info);
    Napi::Value Info(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);

    std::shared_ptr<TextContext> ctx_;
    std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
};

} // namespace vl
