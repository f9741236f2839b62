#include "launcher/setting_flags.h"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "core/error.h"
#include "core/setting_error.h"
#include "launcher/options.h"
#include "runtime/model/model_config.h"

using namespace rankserve;
using namespace rankserve::launcher;

namespace {

constexpr Setting kSettings[] = {
    Setting::model_path,         Setting::tokenizer_path, Setting::tensor_parallel_size, Setting::pipeline_parallel_size,
    Setting::rendezvous_timeout, Setting::store_port,     Setting::max_queue_size};

// The SettingError a runtime function throws.
template <typename F>
SettingError thrown_by(F&& f) {
  try {
    f();
  } catch (const SettingError& e) {
    return e;
  } catch (const std::exception& e) {
    FAIL("not a SettingError: " << e.what());
  }
  FAIL("nothing was thrown");
  return SettingError(ErrorCode::runtime, "", Setting::model_path);
}

}  // namespace

TEST_CASE("a runtime error about a setting says it in the runtime's words and reaches the user with the flag") {
  runtime::ModelConfig c = runtime::random_model_config("random/125M");
  c.num_attention_heads = 12;
  const SettingError tp = thrown_by([&] { runtime::check_shardable(c, 5, 1); });
  CHECK(tp.setting() == Setting::tensor_parallel_size);
  CHECK(std::string(tp.what()).find("options: the tensor-parallel size 5 does not divide the model's 12 attention heads") !=
        std::string::npos);
  CHECK(std::string(tp.what()).find("--") == std::string::npos);
  CHECK(user_message(tp).find("options: --tp 5 does not divide the model's 12 attention heads") != std::string::npos);
  // Caught as the plain Error every caller catches, it is still worded with the flag.
  try {
    runtime::check_shardable(c, 1, 100);
    FAIL("check_shardable accepted 100 stages of 12 layers");
  } catch (const Error& e) {
    CHECK(user_message(e) == "options: --pp 100 exceeds the model's 12 layers");
  }

  const SettingError model = thrown_by([] { runtime::random_model_config("random/nope"); });
  CHECK(model.setting() == Setting::model_path);
  CHECK(user_message(model).rfind("options: --model-path random/nope is not a known random model", 0) == 0);
  CHECK(user_message(model).find("did you mean") == std::string::npos);
  // The OPT example's README table lists random/17B; its code's preset is 175B.
  const SettingError typo = thrown_by([] { runtime::random_model_config("random/17B"); });
  CHECK(user_message(typo).find("; did you mean random/175B?") != std::string::npos);

  const SettingError folder = thrown_by([] { runtime::read_hf_config("/nonexistent-folder"); });
  CHECK(folder.code() == ErrorCode::load);
  CHECK(user_message(folder).find("(is --model-path a model folder?)") != std::string::npos);
}

TEST_CASE("with_flags keeps the category and words the message for the user, as a plain Error") {
  const SettingError e(ErrorCode::rendezvous,
                       "rendezvous: 1 of 2 ranks never arrived (raise the rendezvous timeout if they start slowly)",
                       Setting::rendezvous_timeout);
  const Error worded = with_flags(e);
  CHECK(worded.code() == ErrorCode::rendezvous);
  CHECK(std::string(worded.what()) == "rendezvous: 1 of 2 ranks never arrived (raise --timeout if they start slowly)");
  CHECK(user_message(worded) == worded.what());
}

TEST_CASE("an error naming no setting is shown as it is, and one not in the setting's words gets the flag added") {
  CHECK(user_message(Error(ErrorCode::load, "load: x: cannot open")) == "load: x: cannot open");
  CHECK(user_message(std::runtime_error("plain")) == "plain");
  CHECK(user_message(SettingError(ErrorCode::rendezvous, "rendezvous: port taken", Setting::store_port)) ==
        "rendezvous: port taken (--store-port)");
}

TEST_CASE("every setting has its own words and a flag the command accepts") {
  const ParsedOptions help = parse_options({"--help"}, {});
  for (Setting s : kSettings) {
    CAPTURE(setting_words(s));
    CHECK(setting_words(s).rfind("the ", 0) == 0);
    const std::string flag(flag_of(s));
    REQUIRE(flag.rfind("--", 0) == 0);
    CHECK(help.help_text.find("  " + flag + " ") != std::string::npos);
  }
}
