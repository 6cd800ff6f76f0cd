// Module entry: registers the native classes and functions. lib/native/types.ts declares this surface for TypeScript.
#include "bindings/addon.h"

#include <memory>

#include "bindings/convert.h"
#include "bindings/registry.h"
#include "bindings/vision-wrap.h"
#include "bindings/worker.h"
#include "bindings/wraps.h"
#include "llm/backend.h"

namespace vl {

Addon::Addon(Napi::Env env, Napi::Object exports) {
    backend_init();
    Napi::Function model = ModelWrap::Init(env);
    Napi::Function context = ContextWrap::Init(env);
    Napi::Function sampler = SamplerWrap::Init(env);
    Napi::Function abort = AbortWrap::Init(env);
    model_ctor = Napi::Persistent(model);
    context_ctor = Napi::Persistent(context);
    sampler_ctor = Napi::Persistent(sampler);
    abort_ctor = Napi::Persistent(abort);
    Napi::Function vision = VisionWrap::Init(env);
    Napi::Function embeddings = EmbeddingsWrap::Init(env);
    Napi::Function patches = PatchesWrap::Init(env);
    Napi::Function frame_state = FrameStateWrap::Init(env);
    Napi::Function encoder_reuse = EncoderReuseWrap::Init(env);
    vision_ctor = Napi::Persistent(vision);
    embeddings_ctor = Napi::Persistent(embeddings);
    patches_ctor = Napi::Persistent(patches);
    frame_state_ctor = Napi::Persistent(frame_state);
    encoder_reuse_ctor = Napi::Persistent(encoder_reuse);
    DefineAddon(exports, {
        InstanceMethod<&Addon::SystemInfo>("systemInfo"),
        InstanceMethod<&Addon::LoadModel>("loadModel"),
        InstanceValue("Model", model),
        InstanceValue("Context", context),
        InstanceValue("Sampler", sampler),
        InstanceValue("AbortFlag", abort),
        InstanceValue("Vision", vision),
        InstanceValue("Embeddings", embeddings),
        InstanceValue("Patches", patches),
        InstanceValue("FrameState", frame_state),
        InstanceValue("EncoderReuse", encoder_reuse),
        InstanceValue("gpuBackend", Napi::String::New(env, gpu_backend_name())),
    });
    register_quantize_functions(env, exports);
    register_vision_functions(env, exports);
    register_image_functions(env, exports);
}

Napi::Value Addon::SystemInfo(const Napi::CallbackInfo & info) { return Napi::String::New(info.Env(), system_info()); }

// loadModel({ path, gpuLayers?, useMmap?, vocabOnly? }, onProgress?: (fraction) => void, abort?) -> Promise<Model>
Napi::Value Addon::LoadModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = arg_object(info, 0, "params");
    ModelParams p;
    Napi::Value path = o.Get("path");
    if (!path.IsString()) throw Napi::TypeError::New(env, "path must be a string");
    p.path = path.As<Napi::String>().Utf8Value();
    p.gpu_layers = static_cast<int32_t>(opt_int(o, "gpuLayers", -1, -1, 1 << 20));
    p.use_mmap = opt_bool(o, "useMmap", true);
    p.vocab_only = opt_bool(o, "vocabOnly", false);
    AbortFlagPtr abort = AbortWrap::from(info, 2);

    // Progress goes to JS through a thread-safe function; it is released when the load ends.
    std::shared_ptr<Napi::ThreadSafeFunction> progress;
    if (info.Length() > 1 && info[1].IsFunction()) {
        progress = std::make_shared<Napi::ThreadSafeFunction>(
            Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "vidllama.loadProgress", 0, 1));
    }
    auto result = std::make_shared<TextModelPtr>();
    return PromiseWorker::run(
        env, "vidllama.loadModel",
        [p, abort, progress, result] {
            struct Release {
                std::shared_ptr<Napi::ThreadSafeFunction> tsfn;
                ~Release() { if (tsfn) tsfn->Release(); }
            } release{progress};
            ProgressFn on_progress;
            if (progress) {
                on_progress = [progress](float fraction) {
                    progress->NonBlockingCall([fraction](Napi::Env env, Napi::Function fn) {
                        try {
                            fn.Call({Napi::Number::New(env, fraction)});
                        } catch (const Napi::Error &) {
                            // a throwing progress listener must not take the process down; the TS layer reports it
                        }
                    });
                };
            }
            *result = TextModel::load(p, on_progress, abort);
        },
        [result](Napi::Env env) -> Napi::Value { return ModelWrap::New(env, *result); });
}

} // namespace vl

using VidllamaAddon = vl::Addon;
NODE_API_ADDON(VidllamaAddon)
