#include "core/setting_error.h"

#include <fmt/format.h>

namespace rankserve {

std::string_view setting_words(Setting setting) noexcept {
  switch (setting) {
    case Setting::model_path: return "the model path";
    case Setting::tokenizer_path: return "the tokenizer folder";
    case Setting::tensor_parallel_size: return "the tensor-parallel size";
    case Setting::pipeline_parallel_size: return "the pipeline-parallel size";
    case Setting::rendezvous_timeout: return "the rendezvous timeout";
    case Setting::store_port: return "the store port";
    case Setting::max_queue_size: return "the maximum queue size";
  }
  return "the setting";
}

std::string message_naming(const SettingError& error, std::string_view name) {
  std::string message = error.what();
  if (name.empty()) return message;
  const std::string_view words = setting_words(error.setting());
  const size_t at = message.find(words);
  if (at == std::string::npos) return fmt::format("{} ({})", message, name);
  return message.replace(at, words.size(), name);
}

}  // namespace rankserve
