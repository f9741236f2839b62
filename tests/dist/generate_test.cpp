// dist tier: generation across ranks against an independent PyTorch reference
// (tests/reference/tiny_models.py, written from the Hugging Face model definitions).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <boost/json.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/reference_generation.h"

using namespace std::chrono_literals;
using namespace rankserve::testing;
namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

const std::string kBin = RANKSERVE_BIN;
const std::string& kReference = rankserve::testing::kReferenceScript;
const std::string kPrompt = "5,17,300,42";

Output generate(const std::string& model, const std::string& flags) { return generate_all(model, {kPrompt}, flags)[0]; }

}  // namespace

TEST_CASE("GPT-2, OPT and post-LN OPT generate what the PyTorch reference generates, at TP 1, 2, 4 and PP 2") {
  const std::vector<std::string> prompts{kPrompt, "7", "100,200,300,400,500,600,700,800,900"};
  for (const char* family : {"gpt2", "opt", "opt-postln"}) {
    const std::string model = make_model(family);
    const std::vector<Output> want = reference_generate_all(model, prompts, 10);
    for (const char* tp : {"--tp 1", "--tp 2", "--tp 4", "--tp 1 --pp 2", "--tp 2 --pp 2"}) {
      const std::vector<Output> got = generate_all(model, prompts, fmt::format("--gpus 4 {}", tp));
      for (size_t i = 0; i < prompts.size(); ++i) {
        INFO(family << " " << tp << ", prompt " << prompts[i]);
        check_close(got[i], want[i], 1e-4);
      }
    }
    fs::remove_all(model);
  }
}

TEST_CASE("decoding with the KV cache equals recomputing the whole sequence every step") {
  const std::string model = make_model("opt");
  check_close(generate(model, "--gpus 4 --tp 2"), generate(model, "--gpus 4 --tp 2 --no-kv-cache"), 1e-4);
  fs::remove_all(model);
}

TEST_CASE("a sharded safetensors checkpoint with an index loads like the single file") {
  const std::string model = make_model("gpt2");
  const Output single = generate(model, "--gpus 4 --tp 2");
  reference("shard " + model);
  REQUIRE(fs::exists(fs::path(model) / "model.safetensors.index.json"));
  REQUIRE_FALSE(fs::exists(fs::path(model) / "model.safetensors"));
  check_close(generate(model, "--gpus 4 --tp 2"), single, 1e-6);
  fs::remove_all(model);
}

TEST_CASE("random/125M is the same model at TP 1 and TP 2: each rank creates only its shard") {
  auto one = generate("random/125M", "--tp 1 --gpus 1");
  auto two = generate("random/125M", "--tp 2 --gpus 2");
  check_close(two, one, 1e-4);
}

TEST_CASE("damaged checkpoints exit with the load code, naming the file and the tensor") {
  const std::string model = make_model("opt");
  const std::string file = (fs::path(model) / "model.safetensors").string();
  auto flags = fmt::format("generate --gpus 2 --tp 2 --model-path {} --prompt-ids 1,2 --timeout 60", model);

  fs::resize_file(file, fs::file_size(file) - 1000);  // truncated
  auto truncated = run(fmt::format("{} {}", kBin, flags), 60s);
  INFO(truncated.output);
  CHECK(truncated.code == 5);
  CHECK(truncated.output.find(file) != std::string::npos);
  CHECK(truncated.output.find("past the file end") != std::string::npos);

  auto patch = run(fmt::format("sed -i 's/\"ffn_dim\": 256/\"ffn_dim\": 512/' {}/config.json", model), 10s);
  REQUIRE(patch.code == 0);
  auto reshaped = run(fmt::format("{} make opt {} && sed -i 's/\"ffn_dim\": 256/\"ffn_dim\": 512/' {}/config.json && {} {}",
                                  kReference, model, model, kBin, flags),
                      120s);
  INFO(reshaped.output);
  CHECK(reshaped.code == 5);
  CHECK(reshaped.output.find("model.decoder.layers.0.fc1.weight has shape [256, 64] but the config implies [512, 64]") !=
        std::string::npos);

  auto missing_key = run(fmt::format("{} make opt {} && sed -i 's/\"num_hidden_layers\": 2,//' {}/config.json && {} {}",
                                     kReference, model, model, kBin, flags),
                         120s);
  INFO(missing_key.output);
  CHECK(missing_key.code == 5);
  CHECK(missing_key.output.find("config.json: \"num_hidden_layers\" is missing") != std::string::npos);
  fs::remove_all(model);
}

TEST_CASE("a text prompt is tokenized like GPT-2's encoder and the continuation is decoded") {
  const std::string& encoder_dir = rankserve::testing::kGpt2Vocabulary;
  const std::string text = "Hello, world! Don't stop: 123 déjà vu 🙂";
  // The prompt travels through a file so the shell never has to quote it.
  const std::string text_file = (fs::temp_directory_path() / fmt::format("rankserve-prompt-{}", ::getpid())).string();
  std::ofstream(text_file) << text;
  auto node = [&](const std::string& script) {
    auto r = run(fmt::format("node -e '{}' \"$(cat {})\"", script, text_file), 30s);
    REQUIRE_MESSAGE(r.code == 0, r.output);
    return r.output;
  };
  const std::string require = fmt::format("const e = require(\"{}\");", encoder_dir);
  const json::value encoded = json::parse(node(require + " console.log(JSON.stringify(e.encode(process.argv[1])))"));
  std::vector<int64_t> ids;
  for (auto& id : encoded.as_array()) ids.push_back(id.to_number<int64_t>());

  for (const char* family : {"gpt2", "opt"}) {
    INFO(family);
    const fs::path model = fs::path(make_model(family));
    rankserve::testing::make_text_checkpoint(family, model.string());
    auto r = run(fmt::format("{} generate --gpus 2 --tp 2 --model-path {} --prompt \"$(cat {})\" --max-tokens 6 --json "
                             "--log-level warn --timeout 60",
                             kBin, model.string(), text_file),
                 120s);
    INFO(r.output);
    REQUIRE(r.code == 0);
    const json::value out = json::parse(r.output.substr(r.output.rfind("{\"")));
    std::vector<int64_t> prompt_ids, generated;
    for (auto& id : out.at("prompt_ids").as_array()) prompt_ids.push_back(id.to_number<int64_t>());
    for (auto& id : out.at("generated_ids").as_array()) generated.push_back(id.to_number<int64_t>());
    std::vector<int64_t> expected = ids;
    if (std::string(family) == "opt") expected.insert(expected.begin(), 2);  // OPT prompts start with </s>
    CHECK(prompt_ids == expected);

    std::string joined;
    for (int64_t id : prompt_ids) joined += (joined.empty() ? "" : ",") + std::to_string(id);
    CHECK(reference_generate(model.string(), joined, 6).ids == generated);

    std::string generated_json = "[";
    for (int64_t id : generated) generated_json += (generated_json.size() > 1 ? "," : "") + std::to_string(id);
    const std::string decoded = node(require + " console.log(JSON.stringify(e.decode(" + generated_json + "])))");
    CHECK(out.at("text").as_string() == text + json::parse(decoded).as_string().c_str());
    fs::remove_all(model);
  }
}

TEST_CASE("a batch of prompts of different lengths equals the same prompts run one by one") {
  const std::string model = make_model("opt-postln");
  const std::vector<std::string> prompts{"5,17,300,42", "7,8", "100,200,300,400,500,600,700"};
  const std::vector<Output> lines = generate_all(model, prompts, "--gpus 4 --tp 2 --pp 2", 8);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto alone = run(fmt::format("{} generate --gpus 1 --model-path {} --prompt-ids {} --max-tokens 8 --json --log-level warn",
                                 kBin, model, prompts[i]),
                     120s);
    REQUIRE_MESSAGE(alone.code == 0, alone.output);
    check_close(lines[i], parse_output(alone.output), 1e-4);
  }
  fs::remove_all(model);
}

TEST_CASE("sampling with a seed is reproducible across runs and tensor-parallel layouts") {
  const std::string model = make_model("gpt2");
  const std::string flags = "--sample --temperature 1.5 --top-k 50 --top-p 0.95 --seed 11";
  const Output first = generate(model, fmt::format("--gpus 2 --tp 2 {}", flags));
  check_close(generate(model, fmt::format("--gpus 2 --tp 2 {}", flags)), first, 1e-6);
  check_close(generate(model, fmt::format("--gpus 1 --tp 1 {}", flags)), first, 1e-4);
  CHECK(generate(model, "--gpus 2 --tp 2 --sample --temperature 1.5 --top-k 50 --top-p 0.95 --seed 12").ids != first.ids);
  fs::remove_all(model);
}

TEST_CASE("bad sampling options are usage errors naming the flag") {
  auto r =
      run(fmt::format("{} generate --model-path random/125M --prompt-ids 1 --sample --temperature 0 --top-p 1.5", kBin), 30s);
  INFO(r.output);
  CHECK(r.code == 2);
  CHECK(r.output.find("--temperature=0 must be > 0") != std::string::npos);
  CHECK(r.output.find("--top-p=1.5 must be in (0, 1]") != std::string::npos);
}

TEST_CASE("an old-style pytorch_model.bin (torch.save) loads like the same weights in safetensors") {
  for (const char* family : {"gpt2", "opt"}) {
    INFO(family);
    const std::string model = make_model(family);
    const Output from_safetensors = generate(model, "--gpus 2 --tp 2");
    reference("make-bin " + model);
    REQUIRE(fs::exists(fs::path(model) / "pytorch_model.bin"));
    REQUIRE_FALSE(fs::exists(fs::path(model) / "model.safetensors"));
    check_close(generate(model, "--gpus 2 --tp 2"), from_safetensors, 1e-6);
    fs::remove_all(model);
  }
}

TEST_CASE("NeMo Megatron GPT checkpoints saved at TP 1 or 2 generate what the reference generates at any run TP") {
  for (const char* family : {"gpt2-erf", "gpt2"}) {  // NeMo's gelu: exact (fusion off) or tanh (fusion on)
    const std::string source = make_model(family);
    const Output want = reference_generate(source, kPrompt, 10);
    for (int saved_tp : {1, 2}) {
      const std::string nemo = source + fmt::format("-nemo{}", saved_tp);
      reference(fmt::format("make-nemo {} {} {}", source, nemo, saved_tp));
      for (const char* tp : {"--tp 1", "--tp 2", "--tp 4"}) {
        INFO(family << " saved at TP " << saved_tp << ", run with " << tp);
        check_close(generate(nemo, fmt::format("--gpus 4 {}", tp)), want, 1e-4);
      }
      // The .nemo archive itself, read in place (Python's tarfile, as NeMo writes it).
      reference(fmt::format("pack-nemo {} {}.nemo tar", nemo, nemo));
      check_close(generate(nemo + ".nemo", "--gpus 2 --tp 2"), want, 1e-4);
      fs::remove_all(nemo);
      fs::remove(nemo + ".nemo");
    }
    fs::remove_all(source);
  }
}

TEST_CASE(
    "NeMo checkpoints with pipeline stages, untied output, kv_channels, megatron_legacy QKV and amp_O2 bf16 weights "
    "generate what the Megatron reference generates at any run layout, also from a gzip-compressed .nemo") {
  struct Case {
    const char* family;  // tests/reference/tiny_models.py megatron options
    int saved_tp, saved_pp;
    std::vector<std::string> runs;  // the first runs with the saved layout as the default
  };
  const std::vector<Case> cases = {
      {"megatron-untied-kv-legacy-o2",
       2,
       2,
       {"--gpus 4", "--gpus 1 --tp 1 --pp 1", "--gpus 4 --tp 4 --pp 1", "--gpus 4 --tp 1 --pp 4"}},
      {"megatron-erf", 1, 2, {"--gpus 2", "--gpus 2 --tp 2 --pp 1"}},  // tied: the last stage holds its own copy
      {"megatron-kv-legacy", 4, 1, {"--gpus 4", "--gpus 2 --tp 1 --pp 2"}},
  };
  for (const Case& c : cases) {
    const std::string source = make_model(c.family);
    const Output want = reference_generate(source, kPrompt, 10);
    const std::string nemo = source + "-nemo";
    reference(fmt::format("make-nemo {} {} {} {}", source, nemo, c.saved_tp, c.saved_pp));
    for (const std::string& layout : c.runs) {
      INFO(c.family << " saved at TP " << c.saved_tp << " PP " << c.saved_pp << ", run with " << layout);
      check_close(generate(nemo, layout), want, 1e-4);
    }
    reference(fmt::format("pack-nemo {} {}.nemo gz", nemo, nemo));
    INFO(c.family << " as a gzip-compressed .nemo");
    check_close(generate(nemo + ".nemo", c.runs[0]), want, 1e-4);
    fs::remove_all(source);
    fs::remove_all(nemo);
    fs::remove(nemo + ".nemo");
  }
}

TEST_CASE("NeMo configs this runtime does not implement are refused naming the file and the key") {
  const std::string source = make_model("megatron");
  const std::string nemo = source + "-nemo";
  reference(fmt::format("make-nemo {} {} 1", source, nemo));
  const std::string config = nemo + "/model_config.yaml";
  std::string original;
  {
    std::ifstream in(config);
    original.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  for (const char* line : {"position_embedding_type: rope", "normalization: rmsnorm", "num_query_groups: 2", "mcore_gpt: true",
                           "bias: false", "activation: swiglu", "virtual_pipeline_model_parallel_size: 2"}) {
    INFO(line);
    const std::string key = std::string(line).substr(0, std::string(line).find(':'));
    std::istringstream lines(original);
    std::ofstream edited(config);
    for (std::string l; std::getline(lines, l);) {
      if (l.rfind(key + ":", 0) != 0) edited << l << "\n";  // the key's own line is replaced
    }
    edited << line << "\n";
    edited.close();
    auto r = run(fmt::format("{} generate --gpus 1 --model-path {} --prompt-ids 1,2", kBin, nemo), 60s);
    INFO(r.output);
    CHECK(r.code == 5);
    CHECK(r.output.find(config) != std::string::npos);
    CHECK(r.output.find(key) != std::string::npos);
  }
  // A distributed (mcore) checkpoint: weights under model_weights/ instead of model_weights.ckpt.
  std::ofstream(config) << original;
  fs::create_directories(fs::path(nemo) / "model_weights");
  std::ofstream(fs::path(nemo) / "model_weights" / "metadata.json") << R"({"sharded_backend": "torch_dist"})";
  fs::remove(fs::path(nemo) / "model_weights.ckpt");
  auto r = run(fmt::format("{} generate --gpus 1 --model-path {} --prompt-ids 1,2", kBin, nemo), 60s);
  INFO(r.output);
  CHECK(r.code == 5);
  CHECK(r.output.find("distributed (mcore) checkpoint") != std::string::npos);
  fs::remove_all(source);
  fs::remove_all(nemo);
}

TEST_CASE("a .nemo carries its own tokenizer: --prompt needs no --tokenizer and matches the same weights in HF form") {
  const fs::path hf = fs::temp_directory_path() / fmt::format("rankserve-nemo-tok-{}", ::getpid());
  fs::create_directories(hf);
  rankserve::testing::make_text_checkpoint("gpt2", hf.string());
  reference(fmt::format("make-nemo {} {}-nemo 2", hf.string(), hf.string()));
  reference(fmt::format("pack-nemo {}-nemo {}.nemo tar", hf.string(), hf.string()));
  auto from = [&](const std::string& model) {
    auto r = run(fmt::format("{} generate --gpus 2 --tp 2 --model-path {} --prompt 'Hello, world! 1 2 3' --max-tokens 5 --json "
                             "--log-level warn --timeout 60",
                             kBin, model),
                 120s);
    INFO(r.output);
    REQUIRE(r.code == 0);
    return json::parse(r.output.substr(r.output.rfind("{\"")));
  };
  const json::value nemo = from(hf.string() + ".nemo");
  const json::value folder = from(hf.string());
  CHECK(nemo.at("prompt_ids") == folder.at("prompt_ids"));
  CHECK(nemo.at("generated_ids") == folder.at("generated_ids"));
  CHECK(nemo.at("text") == folder.at("text"));
  fs::remove_all(hf);
  fs::remove_all(hf.string() + "-nemo");
  fs::remove(hf.string() + ".nemo");
}

TEST_CASE("a NeMo checkpoint's saved TP and PP are the defaults, and --tp and --pp override them") {
  const fs::path dir = fs::path(make_model("gpt2"));
  reference(fmt::format("make-nemo {} {}-nemo 2 2", dir.string(), dir.string()));
  const std::string nemo = dir.string() + "-nemo";
  auto plain = run(fmt::format("{} generate --gpus 4 --model-path {} --prompt-ids 1,2 --dry-run", kBin, nemo), 60s);
  INFO(plain.output);
  CHECK(plain.code == 0);
  CHECK(plain.output.find("\ntp = 2\n") != std::string::npos);
  CHECK(plain.output.find("\npp = 2\n") != std::string::npos);
  auto forced = run(fmt::format("{} generate --gpus 4 --tp 1 --model-path {} --prompt-ids 1,2 --dry-run", kBin, nemo), 60s);
  INFO(forced.output);
  CHECK(forced.output.find("\ntp = 1\n") != std::string::npos);
  CHECK(forced.output.find("\npp = 2\n") != std::string::npos);
  auto both = run(fmt::format("{} generate --gpus 4 --tp 4 --pp 1 --model-path {} --prompt-ids 1,2 --dry-run", kBin, nemo), 60s);
  INFO(both.output);
  CHECK(both.output.find("\ntp = 4\n") != std::string::npos);
  CHECK(both.output.find("\npp = 1\n") != std::string::npos);
  // The saved TP needs that many ranks: with one, the layout is refused before anything starts.
  auto alone = run(fmt::format("{} generate --gpus 1 --model-path {} --prompt-ids 1,2 --dry-run", kBin, nemo), 60s);
  INFO(alone.output);
  CHECK(alone.code == 3);
  fs::remove_all(dir);
  fs::remove_all(nemo);
}

TEST_CASE("--dtype bf16 computes in bfloat16 across TP and PP and stays close to fp32, and fp16 without GPUs is refused") {
  for (const char* family : {"gpt2", "opt"}) {
    INFO(family);
    const std::string model = make_model(family);
    const Output want = generate(model, "--gpus 1");
    for (const char* layout : {"--gpus 2 --tp 2", "--gpus 4 --tp 2 --pp 2"}) {
      const Output got = generate(model, fmt::format("{} --dtype bf16", layout));
      INFO(layout);
      // bfloat16 keeps 8 bits of mantissa: log-probabilities move by a few hundredths on these models.
      CHECK(got.ids == want.ids);
      for (size_t i = 0; i < std::min(got.logprobs.size(), want.logprobs.size()); ++i) {
        CHECK(std::abs(got.logprobs[i] - want.logprobs[i]) < 0.1);
      }
      bool differs = false;  // and it really ran in bfloat16
      for (size_t i = 0; i < std::min(got.logprobs.size(), want.logprobs.size()); ++i)
        differs |= got.logprobs[i] != want.logprobs[i];
      CHECK(differs);
    }
    fs::remove_all(model);
  }
  auto fp16 = run(fmt::format("{} generate --gpus 1 --model-path random/125M --prompt-ids 1 --dtype fp16", kBin), 60s);
  CHECK(fp16.code == 2);
  CHECK(fp16.output.find("--dtype=fp16 needs GPUs") != std::string::npos);
}
