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
        InstanceMethod<&Addon::ChooseDevice>("chooseDevice"),
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
    });
    exports.Set("backends", backends_object(env));
    register_quantize_functions(env, exports);
    register_vision_functions(env, exports);
    register_image_functions(env, exports);
}

Napi::Value Addon::SystemInfo(const Napi::CallbackInfo & info) { return Napi::String::New(info.Env(), system_info()); }

// chooseDevice(gpu, gpuIndex) -> { name, description, gpu, reason }: where a model loaded with these options would run
// (the test graph of a GPU device runs once per process, then its verdict is remembered).
Napi::Value Addon::ChooseDevice(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "chooseDevice(gpu: string, gpuIndex: number)");
    try {
        return device_object(env, choose_device(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Number>().Int32Value()));
    } catch (const Error & e) {
        throw_js(env, e);
    }
}

// { dir, cpuVariant, cpuReason, cpuVariants: [{ name, file, score }], modules: [{ name, file, loaded, devices, error? }],
//   devices: [{ name, description, backend, type, memoryTotal, memoryFree }] }
Napi::Object backends_object(Napi::Env env) {
    const BackendReport & r = backend_report();
    Napi::Object o = Napi::Object::New(env);
    o.Set("dir", r.dir);
    o.Set("cpuVariant", r.cpu_variant);
    o.Set("cpuReason", r.cpu_reason);
    Napi::Array variants = Napi::Array::New(env, r.cpu_variants.size());
    for (size_t i = 0; i < r.cpu_variants.size(); i++) {
        Napi::Object v = Napi::Object::New(env);
        v.Set("name", r.cpu_variants[i].name);
        v.Set("file", r.cpu_variants[i].file);
        v.Set("score", r.cpu_variants[i].score);
        variants.Set(static_cast<uint32_t>(i), v);
    }
    o.Set("cpuVariants", variants);
    Napi::Array modules = Napi::Array::New(env, r.modules.size());
    for (size_t i = 0; i < r.modules.size(); i++) {
        Napi::Object m = Napi::Object::New(env);
        m.Set("name", r.modules[i].name);
        m.Set("file", r.modules[i].file);
        m.Set("loaded", r.modules[i].loaded);
        m.Set("devices", static_cast<double>(r.modules[i].devices));
        if (!r.modules[i].error.empty()) m.Set("error", r.modules[i].error);
        modules.Set(static_cast<uint32_t>(i), m);
    }
    o.Set("modules", modules);
    Napi::Array devices = Napi::Array::New(env);
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(dev, &free, &total);
        const auto type = ggml_backend_dev_type(dev);
        Napi::Object d = Napi::Object::New(env);
        d.Set("name", ggml_backend_dev_name(dev));
        d.Set("description", ggml_backend_dev_description(dev));
        d.Set("backend", ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)));
        d.Set("type", type == GGML_BACKEND_DEVICE_TYPE_CPU ? "cpu" : type == GGML_BACKEND_DEVICE_TYPE_GPU ? "gpu"
                      : type == GGML_BACKEND_DEVICE_TYPE_IGPU ? "igpu" : "accelerator");
        d.Set("memoryTotal", static_cast<double>(total));
        d.Set("memoryFree", static_cast<double>(free));
        devices.Set(static_cast<uint32_t>(i), d);
    }
    o.Set("devices", devices);
    return o;
}

Napi::Object device_object(Napi::Env env, const DeviceChoice & c) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", c.name);
    o.Set("description", c.description);
    o.Set("gpu", c.device != nullptr);
    o.Set("reason", c.reason);
    return o;
}

// loadModel({ path, gpuLayers?, useMmap?, vocabOnly? }, onProgress?: (fraction) => void, abort?) -> Promise<Model>
Napi::Value Addon::LoadModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = arg_object(info, 0, "params");
    ModelParams p;
    Napi::Value path = o.Get("path");
    if (!path.IsString()) throw Napi::TypeError::New(env, "path must be a string");
    p.path = path.As<Napi::String>().Utf8Value();
    p.gpu = opt_string(o, "gpu", "auto");
    p.gpu_index = static_cast<int>(opt_int(o, "gpuIndex", 0, 0, 1 << 20));
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
