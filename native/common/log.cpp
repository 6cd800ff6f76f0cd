#include "common/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "ggml.h"
#include "llama.h"

namespace vl {

namespace {

thread_local LogCapture * current_capture = nullptr;
thread_local std::string pending_line;
thread_local int pending_level = GGML_LOG_LEVEL_NONE;

int stderr_threshold() {
    static const int threshold = [] {
        const char * env = std::getenv("VIDLLAMA_LOG");
        if (!env) return GGML_LOG_LEVEL_NONE + 100; // print nothing
        if (!std::strcmp(env, "debug")) return static_cast<int>(GGML_LOG_LEVEL_DEBUG);
        if (!std::strcmp(env, "info")) return static_cast<int>(GGML_LOG_LEVEL_INFO);
        if (!std::strcmp(env, "warn")) return static_cast<int>(GGML_LOG_LEVEL_WARN);
        return static_cast<int>(GGML_LOG_LEVEL_ERROR);
    }();
    return threshold;
}

void flush_line() {
    if (pending_line.empty()) return;
    while (!pending_line.empty() && (pending_line.back() == '\n' || pending_line.back() == ' ')) pending_line.pop_back();
    if (current_capture && pending_level >= GGML_LOG_LEVEL_WARN && !pending_line.empty()) {
        current_capture->add(pending_level, pending_line);
    }
    pending_line.clear();
}

void log_callback(enum ggml_log_level level, const char * text, void * /*user_data*/) {
    if (level != GGML_LOG_LEVEL_CONT) {
        flush_line();
        pending_level = level;
    }
    const int effective = level == GGML_LOG_LEVEL_CONT ? pending_level : static_cast<int>(level);
    if (effective >= stderr_threshold()) {
        std::fputs(text, stderr);
    }
    pending_line += text;
    if (!pending_line.empty() && pending_line.back() == '\n') flush_line();
}

} // namespace

void log_init() {
    static std::once_flag once;
    std::call_once(once, [] {
        llama_log_set(log_callback, nullptr);
        ggml_log_set(log_callback, nullptr);
    });
}

LogCapture::LogCapture() : previous_(current_capture) { current_capture = this; }

LogCapture::~LogCapture() {
    flush_line();
    current_capture = previous_;
}

void LogCapture::add(int level, const std::string & line) {
    if (lines_.size() >= 32) return;
    lines_.push_back(line);
    levels_.push_back(level);
}

std::string LogCapture::summary() {
    flush_line(); // a message without its trailing newline yet
    std::string out;
    // errors first (most recent first), then warnings
    for (int want : {static_cast<int>(GGML_LOG_LEVEL_ERROR), static_cast<int>(GGML_LOG_LEVEL_WARN)}) {
        for (size_t i = lines_.size(); i-- > 0;) {
            if (levels_[i] != want) continue;
            if (!out.empty()) out += "; ";
            out += lines_[i];
        }
    }
    return out;
}

} // namespace vl
