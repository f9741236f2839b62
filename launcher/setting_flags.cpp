#include "launcher/setting_flags.h"

namespace rankserve::launcher {

std::string_view flag_of(Setting setting) noexcept {
  switch (setting) {
    case Setting::model_path: return "--model-path";
    case Setting::tokenizer_path: return "--tokenizer";
    case Setting::tensor_parallel_size: return "--tp";
    case Setting::pipeline_parallel_size: return "--pp";
    case Setting::rendezvous_timeout: return "--timeout";
    case Setting::store_port: return "--store-port";
    case Setting::max_queue_size: return "--max-queue-size";
  }
  return "";
}

std::string user_message(const std::exception& error) {
  if (const auto* e = dynamic_cast<const SettingError*>(&error)) return message_naming(*e, flag_of(e->setting()));
  return error.what();
}

Error with_flags(const Error& error) { return Error(error.code(), user_message(error)); }

}  // namespace rankserve::launcher
