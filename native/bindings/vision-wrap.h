// JS classes of the vision side: Vision (a loaded mmproj), Embeddings (encoder output kept in native memory, fed to
// a context without a copy through JS) and FrameState (the previous video frame, for pruning across encode calls).
#pragma once

#include <napi.h>

#include <memory>
#include <mutex>
#include <vector>

#include "bindings/addon.h"

namespace vl {

struct VisionState;

struct FrameState {
    std::mutex mutex;
    std::vector<float> patches;
    int grid_h = 0, grid_w = 0;
};

struct EmbeddingsData {
    std::shared_ptr<std::vector<float>> values; // n_tokens × width
    int32_t width = 0;
    std::vector<int32_t> counts;              // output tokens per item
    std::vector<int32_t> merged;              // merged tokens per item before pruning
    std::vector<std::vector<int32_t>> kept;   // kept token indices per pruned item
    std::vector<bool> all_kept;
};

class FrameStateWrap : public Napi::ObjectWrap<FrameStateWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit FrameStateWrap(const Napi::CallbackInfo & info);
    const std::shared_ptr<FrameState> & state() const { return state_; }

  private:
    Napi::Value Reset(const Napi::CallbackInfo & info);
    std::shared_ptr<FrameState> state_;
};

class EmbeddingsWrap : public Napi::ObjectWrap<EmbeddingsWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    static Napi::Object New(Napi::Env env, EmbeddingsData data);
    static EmbeddingsWrap * unwrap(Napi::Env env, const Napi::Value & v, const char * name);
    explicit EmbeddingsWrap(const Napi::CallbackInfo & info);
    const EmbeddingsData & data() const { return data_; }

  private:
    Napi::Value NTokens(const Napi::CallbackInfo & info);
    Napi::Value Width(const Napi::CallbackInfo & info);
    Napi::Value ToFloat32Array(const Napi::CallbackInfo & info);
    EmbeddingsData data_;
};

class VisionWrap : public Napi::ObjectWrap<VisionWrap> {
  public:
    static Napi::Function Init(Napi::Env env);
    explicit VisionWrap(const Napi::CallbackInfo & info);

  private:
    Napi::Value Hparams(const Napi::CallbackInfo & info);
    Napi::Value Info(const Napi::CallbackInfo & info);
    Napi::Value Encode(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    std::shared_ptr<VisionState> state_;
};

} // namespace vl
