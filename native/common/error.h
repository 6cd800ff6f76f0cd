// Errors of the native core. Every failure that can reach JavaScript is a vl::Error with a stable code; the bindings
// turn it into a JS error whose `code` the TypeScript layer maps to its typed error classes (lib/native/errors.ts).
#pragma once

#include <stdexcept>
#include <string>

namespace vl {

enum class ErrorCode {
    InvalidArgument,   // a value the caller passed is out of range or malformed
    ModelLoad,         // libllama could not load the model (reason in the message)
    ContextCreate,     // libllama could not create a context (usually memory)
    ContextFull,       // the tokens do not fit in the context window
    Decode,            // llama_decode failed for a reason other than abort or a full context
    Aborted,           // the caller's AbortSignal fired
    Io,                // reading or writing a file failed
    StateMismatch,     // a saved state does not belong to this model/context
    Busy,              // another operation is running on the same object
    Disposed,          // the object was disposed
    Internal,
};

const char * error_code_name(ErrorCode code);

class Error : public std::runtime_error {
  public:
    Error(ErrorCode code, const std::string & message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

  private:
    ErrorCode code_;
};

} // namespace vl
