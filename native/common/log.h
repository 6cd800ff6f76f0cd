// Routing of llama.cpp/ggml log output.
//
// By default nothing is printed (a library must not write to the user's terminal); set VIDLLAMA_LOG=debug|info|warn|error
// to see llama.cpp's messages on stderr. Independently, warnings and errors logged on a thread are remembered while a
// LogCapture is alive on that thread, so that a failure can carry llama.cpp's own explanation (e.g. "unknown model
// architecture: 'foo'") instead of a bare "failed".
#pragma once

#include <string>
#include <vector>

namespace vl {

void log_init(); // idempotent; installs the callback for llama.cpp and ggml

class LogCapture {
  public:
    LogCapture();
    ~LogCapture();
    LogCapture(const LogCapture &) = delete;
    LogCapture & operator=(const LogCapture &) = delete;

    // The captured warning/error lines, most relevant (last error) first, joined with "; ".
    std::string summary();
    const std::vector<std::string> & lines() const { return lines_; }
    void add(int level, const std::string & line);

  private:
    LogCapture * previous_;
    std::vector<std::string> lines_;
    std::vector<int> levels_;
};

} // namespace vl
