// Vision tower bindings: loadVision(), Vision.encode() and the Embeddings it returns, FrameState for DiffFP across
// calls. Preprocessing (Pillow-compatible resize, normalize, patchify), pruning and encoding all run on the worker.
#include <napi.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bindings/convert.h"
#include "bindings/progress.h"
#include "bindings/registry.h"
#include "bindings/vision-wrap.h"
#include "bindings/worker.h"
#include "bindings/wraps.h"
#include "common/error.h"
#include "encode/vision-encoder.h"
#include "preprocess/patchify.h"
#include "preprocess/resize.h"
#include "prune/frame-diff.h"

namespace vl {

struct VisionState {
    VisionModelPtr model;
    std::unique_ptr<VisionEncoder> encoder;
    std::atomic<bool> busy{false};
};

namespace {

// One image or frame as received from JS (pixels copied: the worker must not read JS memory).
struct PendingItem {
    std::vector<uint8_t> rgb;
    int width = 0, height = 0, target_w = 0, target_h = 0, merge = 1;
    bool prune = false;
    float threshold = 0.1f;
    int min_tokens = 1;
};

int32_t get_int(const Napi::Object & o, const char * key, int32_t min, int32_t max) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != static_cast<int64_t>(d) || d < min || d > max) {
        throw Napi::RangeError::New(o.Env(), std::string(key) + " must be an integer between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return static_cast<int32_t>(d);
}

} // namespace

// ---- FrameState ---------------------------------------------------------------------------------------------------

Napi::Function FrameStateWrap::Init(Napi::Env env) {
    return DefineClass(env, "FrameState", {InstanceMethod<&FrameStateWrap::Reset>("reset")});
}

FrameStateWrap::FrameStateWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<FrameStateWrap>(info), state_(std::make_shared<FrameState>()) {}

Napi::Value FrameStateWrap::Reset(const Napi::CallbackInfo & info) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->patches.clear();
    state_->grid_h = state_->grid_w = 0;
    return info.Env().Undefined();
}

// ---- Embeddings ---------------------------------------------------------------------------------------------------

Napi::Function EmbeddingsWrap::Init(Napi::Env env) {
    return DefineClass(env, "Embeddings", {
        InstanceAccessor<&EmbeddingsWrap::NTokens>("nTokens"),
        InstanceAccessor<&EmbeddingsWrap::Width>("width"),
        InstanceMethod<&EmbeddingsWrap::ToFloat32Array>("toFloat32Array"),
    });
}

EmbeddingsWrap::EmbeddingsWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<EmbeddingsWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "Embeddings are created by Vision.encode()");
    data_ = *info[0].As<Napi::External<EmbeddingsData>>().Data();
}

Napi::Object EmbeddingsWrap::New(Napi::Env env, EmbeddingsData data) {
    auto * holder = new EmbeddingsData(std::move(data));
    auto ext = Napi::External<EmbeddingsData>::New(env, holder, [](Napi::Env, EmbeddingsData * p) { delete p; });
    return Addon::of(env).embeddings_ctor.New({ext});
}

EmbeddingsWrap * EmbeddingsWrap::unwrap(Napi::Env env, const Napi::Value & v, const char * name) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(Addon::of(env).embeddings_ctor.Value())) {
        throw Napi::TypeError::New(env, std::string(name) + " must be an Embeddings object");
    }
    return Unwrap(v.As<Napi::Object>());
}

Napi::Value EmbeddingsWrap::NTokens(const Napi::CallbackInfo & info) {
    return Napi::Number::New(info.Env(), static_cast<double>(data_.values->size() / data_.width));
}

Napi::Value EmbeddingsWrap::Width(const Napi::CallbackInfo & info) { return Napi::Number::New(info.Env(), data_.width); }

// toFloat32Array(firstToken = 0, count = all) -> a copy of those rows
Napi::Value EmbeddingsWrap::ToFloat32Array(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const size_t n = data_.values->size() / data_.width;
    const size_t first = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    const size_t count = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : n - std::min(first, n);
    if (first + count > n) throw Napi::RangeError::New(env, "token range out of bounds");
    Napi::Float32Array a = Napi::Float32Array::New(env, count * data_.width);
    std::copy(data_.values->begin() + first * data_.width, data_.values->begin() + (first + count) * data_.width, a.Data());
    return a;
}

// ---- Vision -------------------------------------------------------------------------------------------------------

Napi::Function VisionWrap::Init(Napi::Env env) {
    return DefineClass(env, "Vision", {
        InstanceMethod<&VisionWrap::Hparams>("hparams"),
        InstanceMethod<&VisionWrap::Info>("info"),
        InstanceMethod<&VisionWrap::Encode>("encode"),
        InstanceMethod<&VisionWrap::Dispose>("dispose"),
    });
}

VisionWrap::VisionWrap(const Napi::CallbackInfo & info) : Napi::ObjectWrap<VisionWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "Vision objects are created by loadVision()");
    state_ = *info[0].As<Napi::External<std::shared_ptr<VisionState>>>().Data();
}

Napi::Value VisionWrap::Hparams(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) throw_js(env, "VL_DISPOSED", "the vision projector was disposed");
    const VisionHparams & hp = state_->model->hparams();
    Napi::Object o = Napi::Object::New(env);
    o.Set("hidden", hp.hidden);
    o.Set("ffn", hp.ffn);
    o.Set("layers", hp.layers);
    o.Set("heads", hp.heads);
    o.Set("patchSize", hp.patch_size);
    o.Set("projectionDim", hp.proj_dim);
    o.Set("eps", hp.eps);
    o.Set("ropeTheta", hp.rope_theta);
    Napi::Array mean = Napi::Array::New(env, 3), stdv = Napi::Array::New(env, 3);
    for (uint32_t c = 0; c < 3; c++) {
        mean.Set(c, hp.mean[c]);
        stdv.Set(c, hp.std[c]);
    }
    o.Set("imageMean", mean);
    o.Set("imageStd", stdv);
    o.Set("rescaleFactor", hp.rescale);
    o.Set("imageMergeSize", hp.image_merge);
    o.Set("videoMergeSize", hp.video_merge);
    o.Set("imageMinTokens", hp.image_min_tokens);
    o.Set("imageMaxTokens", hp.image_max_tokens);
    o.Set("resample", hp.resample);
    o.Set("videoFps", hp.video_fps);
    o.Set("videoMaxFrames", hp.video_max_frames);
    o.Set("tokenCompression", hp.token_compression);
    o.Set("diffThreshold", hp.diff_threshold);
    o.Set("minTokensPerFrame", hp.min_tokens_per_frame);
    o.Set("imageTokenId", hp.image_token_id);
    return o;
}

Napi::Value VisionWrap::Info(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) throw_js(env, "VL_DISPOSED", "the vision projector was disposed");
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", state_->model->device_name());
    o.Set("weightsBytes", static_cast<double>(state_->model->weights_bytes()));
    o.Set("computeBytes", static_cast<double>(state_->busy.load() ? 0 : state_->encoder->compute_buffer_bytes()));
    return o;
}

// encode(items, { maxBatchPatches? }, onProgress?, abort?, frameState?) -> Promise<Embeddings>
// items: [{ rgb: Uint8Array, width, height, targetWidth, targetHeight, merge, prune?: { threshold, minTokens } }]
// Items with `prune` are video frames compared, in order, with the previous frame (from frameState for the first one).
Napi::Value VisionWrap::Encode(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!state_) throw_js(env, "VL_DISPOSED", "the vision projector was disposed");
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "items must be an array");
    const VisionHparams & hp = state_->model->hparams();
    Napi::Array arr = info[0].As<Napi::Array>();
    auto items = std::make_shared<std::vector<PendingItem>>(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
        if (!arr.Get(i).IsObject()) throw Napi::TypeError::New(env, "items[" + std::to_string(i) + "] must be an object");
        Napi::Object o = arr.Get(i).As<Napi::Object>();
        PendingItem & it = (*items)[i];
        it.width = get_int(o, "width", 1, 1 << 20);
        it.height = get_int(o, "height", 1, 1 << 20);
        it.merge = get_int(o, "merge", 1, 8);
        const int32_t align = hp.patch_size * it.merge;
        it.target_w = get_int(o, "targetWidth", align, 1 << 20);
        it.target_h = get_int(o, "targetHeight", align, 1 << 20);
        if (it.target_w % align || it.target_h % align) {
            throw Napi::RangeError::New(env, "target size must be a multiple of patch size × merge (" + std::to_string(align) + ")");
        }
        Napi::Value rgb = o.Get("rgb");
        if (!rgb.IsTypedArray() || rgb.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
            throw Napi::TypeError::New(env, "rgb must be a Uint8Array");
        }
        Napi::Uint8Array bytes = rgb.As<Napi::Uint8Array>();
        if (bytes.ByteLength() != static_cast<size_t>(it.width) * it.height * 3) {
            throw Napi::RangeError::New(env, "rgb must hold width × height × 3 bytes");
        }
        it.rgb.assign(bytes.Data(), bytes.Data() + bytes.ByteLength());
        Napi::Value prune = o.Get("prune");
        if (prune.IsObject()) {
            it.prune = true;
            it.threshold = static_cast<float>(opt_number(prune.As<Napi::Object>(), "threshold", hp.diff_threshold, 0, 1e9));
            it.min_tokens = static_cast<int>(opt_int(prune.As<Napi::Object>(), "minTokens", hp.min_tokens_per_frame, 0, 1 << 30));
        }
    }
    Napi::Object options = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    VisionEncodeOptions eo;
    eo.max_batch_patches = static_cast<int32_t>(opt_int(options, "maxBatchPatches", eo.max_batch_patches, 1, 1 << 24));
    JsProgress progress(env, info.Length() > 2 ? info[2] : env.Undefined(), "vidllama.encodeProgress");
    AbortFlagPtr abort = AbortWrap::from(info, 3);
    std::shared_ptr<FrameState> frame_state;
    std::vector<Napi::Object> keep{info.This().As<Napi::Object>()};
    if (info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull()) {
        if (!info[4].IsObject() || !info[4].As<Napi::Object>().InstanceOf(Addon::of(env).frame_state_ctor.Value())) {
            throw Napi::TypeError::New(env, "frameState must be a FrameState");
        }
        frame_state = FrameStateWrap::Unwrap(info[4].As<Napi::Object>())->state();
        keep.push_back(info[4].As<Napi::Object>());
    }
    bool expected = false;
    if (!state_->busy.compare_exchange_strong(expected, true)) {
        progress.release();
        throw_js(env, "VL_BUSY", "the vision projector is already encoding");
    }
    auto state = state_;
    auto result = std::make_shared<EmbeddingsData>();
    result->width = hp.proj_dim;
    result->values = std::make_shared<std::vector<float>>();
    return PromiseWorker::run(
        env, "vidllama.encode",
        [state, items, eo, progress, abort, frame_state, result] {
            JsProgressRelease release{progress};
            struct BusyRelease {
                std::atomic<bool> & busy;
                ~BusyRelease() { busy.store(false); }
            } busy{state->busy};
            const VisionHparams & hp = state->model->hparams();
            PatchifyParams pp;
            pp.patch_size = hp.patch_size;
            pp.mean = hp.mean;
            pp.std = hp.std;
            pp.rescale = hp.rescale;
            const int row_size = 3 * hp.patch_size * hp.patch_size;
            // Preprocess every item (resize, normalize, patchify), then prune video frames against their predecessor.
            std::vector<Patches> patches(items->size());
            std::vector<VisionItem> vitems(items->size());
            std::unique_lock<std::mutex> frame_lock;
            if (frame_state) frame_lock = std::unique_lock<std::mutex>(frame_state->mutex);
            const Patches * previous = nullptr;
            for (size_t i = 0; i < items->size(); i++) {
                if (abort && abort->aborted()) throw Error(ErrorCode::Aborted, "vision encoding aborted");
                PendingItem & it = (*items)[i];
                pp.merge_size = it.merge;
                const uint8_t * pixels = it.rgb.data();
                std::vector<uint8_t> resized;
                if (it.target_w != it.width || it.target_h != it.height) {
                    resized = resize_rgb_bicubic(it.rgb.data(), it.width, it.height, it.target_w, it.target_h);
                    pixels = resized.data();
                }
                patches[i] = patchify_rgb(pixels, it.target_w, it.target_h, pp);
                std::vector<uint8_t>().swap(it.rgb); // the source pixels are no longer needed
                VisionItem & v = vitems[i];
                v.patches = patches[i].values.data();
                v.grid_h = patches[i].grid_h;
                v.grid_w = patches[i].grid_w;
                v.merge = it.merge;
                v.keep_all = true;
                result->merged.push_back(v.n_merged());
                if (it.prune) {
                    const float * prev = nullptr;
                    if (previous && previous->grid_h == v.grid_h && previous->grid_w == v.grid_w) {
                        prev = previous->values.data();
                    } else if (!previous && frame_state && frame_state->grid_h == v.grid_h && frame_state->grid_w == v.grid_w) {
                        prev = frame_state->patches.data();
                    }
                    FrameDiffResult diff = frame_diff_keep(prev, v.patches, v.grid_h, v.grid_w, v.merge, row_size, it.threshold, it.min_tokens);
                    if (static_cast<int32_t>(diff.keep.size()) != v.n_merged()) {
                        v.keep_all = false;
                        v.keep = std::move(diff.keep);
                    }
                    previous = &patches[i];
                }
            }
            if (frame_state && previous) {
                frame_state->patches = previous->values;
                frame_state->grid_h = previous->grid_h;
                frame_state->grid_w = previous->grid_w;
            }
            for (const VisionItem & v : vitems) {
                result->kept.push_back(v.keep_all ? std::vector<int32_t>{} : v.keep);
                result->all_kept.push_back(v.keep_all);
            }
            result->counts = state->encoder->encode(vitems, *result->values, abort,
                                                    [&progress](int32_t done, int32_t total) { progress.report(done, total); }, eo);
        },
        [result](Napi::Env env) -> Napi::Value {
            Napi::Object emb = EmbeddingsWrap::New(env, *result);
            Napi::Object out = Napi::Object::New(env);
            out.Set("embeddings", emb);
            out.Set("counts", to_int32_array(env, result->counts));
            out.Set("merged", to_int32_array(env, result->merged));
            Napi::Array kept = Napi::Array::New(env, result->kept.size());
            for (size_t i = 0; i < result->kept.size(); i++) {
                kept.Set(static_cast<uint32_t>(i), result->all_kept[i] ? env.Null() : Napi::Value(to_int32_array(env, result->kept[i])));
            }
            out.Set("kept", kept);
            return out;
        },
        keep);
}

Napi::Value VisionWrap::Dispose(const Napi::CallbackInfo & info) {
    state_.reset();
    return info.Env().Undefined();
}

// loadVision({ path, useGpu?, threads? }, onProgress?, abort?) -> Promise<Vision>
Napi::Value LoadVision(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = arg_object(info, 0, "params");
    VisionModelParams p;
    Napi::Value path = o.Get("path");
    if (!path.IsString()) throw Napi::TypeError::New(env, "path must be a string");
    p.path = path.As<Napi::String>().Utf8Value();
    p.use_gpu = opt_bool(o, "useGpu", true);
    p.n_threads = static_cast<int32_t>(opt_int(o, "threads", 0, 0, 1024));
    JsProgress progress(env, info.Length() > 1 ? info[1] : env.Undefined(), "vidllama.visionLoadProgress");
    AbortFlagPtr abort = AbortWrap::from(info, 2);
    auto result = std::make_shared<std::shared_ptr<VisionState>>();
    return PromiseWorker::run(
        env, "vidllama.loadVision",
        [p, progress, abort, result] {
            JsProgressRelease release{progress};
            auto state = std::make_shared<VisionState>();
            state->model = VisionModel::load(p, [&progress](float f) { progress.report(f); }, abort);
            state->encoder = std::make_unique<VisionEncoder>(state->model);
            *result = state;
        },
        [result](Napi::Env env) -> Napi::Value {
            auto * holder = new std::shared_ptr<VisionState>(*result);
            auto ext = Napi::External<std::shared_ptr<VisionState>>::New(env, holder, [](Napi::Env, std::shared_ptr<VisionState> * h) { delete h; });
            return Addon::of(env).vision_ctor.New({ext});
        });
}

void register_vision_functions(Napi::Env env, Napi::Object exports) {
    exports.Set("loadVision", Napi::Function::New<LoadVision>(env, "loadVision"));
}

} // namespace vl
