// Errors about a setting the user chose (the model path, the TP size, the rendezvous timeout, ...),
// so that a front end can name the setting as its users set it: the runtime's message says it in
// the runtime's own words (setting_words), and the launcher puts its flag in their place
// (launcher/setting_flags.h), e.g. "the tensor-parallel size 5" -> "--tp 5".
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"

namespace rankserve {

enum class Setting {
  model_path,      // the checkpoint folder or file, or a random/<name> model
  tokenizer_path,  // the tokenizer folder
  tensor_parallel_size,
  pipeline_parallel_size,
  rendezvous_timeout,  // how long ranks wait for each other at start-up
  store_port,          // the TCP port of the rendezvous store
  max_queue_size,      // requests the scheduler queues before it refuses more
};

// How runtime messages name `setting`: "the tensor-parallel size", ...
std::string_view setting_words(Setting setting) noexcept;

// An Error whose message names `setting` in setting_words(setting). Caught as Error like any other;
// rethrow it (throw;) rather than copy it into a plain Error, which would drop the setting.
class SettingError : public Error {
 public:
  SettingError(ErrorCode code, const std::string& message, Setting setting) : Error(code, message), setting_(setting) {}
  Setting setting() const noexcept { return setting_; }

 private:
  Setting setting_;
};

// `error`'s message with the first setting_words() in it replaced by `name` (a flag, "--tp"), or
// with " (name)" appended when the words are not in it; unchanged when `name` is empty.
std::string message_naming(const SettingError& error, std::string_view name);

}  // namespace rankserve
