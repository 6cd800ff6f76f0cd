// Per-environment addon state (one instance per Node.js main thread or worker thread): the constructors of the
// wrapped classes, so native code can create JS objects of them.
#pragma once

#include <napi.h>

#include "llm/backend.h"

namespace vl {

// The backend modules found and loaded, the CPU variant in use and every device (llm/backend.h BackendReport).
Napi::Object backends_object(Napi::Env env);
// Where a model or projector runs: { name, description, gpu, reason }.
Napi::Object device_object(Napi::Env env, const DeviceChoice & choice);

class Addon : public Napi::Addon<Addon> {
  public:
    Addon(Napi::Env env, Napi::Object exports);
    static Addon & of(Napi::Env env) { return *env.GetInstanceData<Addon>(); }

    Napi::FunctionReference model_ctor;
    Napi::FunctionReference context_ctor;
    Napi::FunctionReference sampler_ctor;
    Napi::FunctionReference abort_ctor;
    Napi::FunctionReference vision_ctor;
    Napi::FunctionReference embeddings_ctor;
    Napi::FunctionReference patches_ctor;
    Napi::FunctionReference frame_state_ctor;
    Napi::FunctionReference encoder_reuse_ctor;

  private:
    Napi::Value SystemInfo(const Napi::CallbackInfo & info);
    Napi::Value ChooseDevice(const Napi::CallbackInfo & info);
    Napi::Value LoadModel(const Napi::CallbackInfo & info);
};

} // namespace vl
