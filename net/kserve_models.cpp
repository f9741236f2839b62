#include "net/kserve_models.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <limits>

#include "core/utf8.h"
#include "net/http_types.h"
#include "net/json_fields.h"

namespace rankserve::net {

namespace {

bool is_integer_type(DataType t) { return t == DataType::int32 || t == DataType::int64; }

// Datatype check: the contract's type, except that INT32 and INT64 stand in for each other (clients
// built for one example send the other's widths; the values are range-checked anyway).
void check_datatype(const Tensor& t, const TensorSpec& spec) {
  if (t.datatype == spec.datatype) return;
  if (is_integer_type(t.datatype) && is_integer_type(spec.datatype)) return;
  throw field_error(fmt::format("input '{}'", t.name),
                    fmt::format("has datatype {}; expected {}", to_string(t.datatype), to_string(spec.datatype)));
}

std::string field_of(const Tensor& t) { return fmt::format("input '{}'", t.name); }

// A BYTES input used as text (prompts, end strings) must be UTF-8: a binary tensor carries raw bytes,
// and the text is tokenized and echoed into JSON outputs.
void check_text(const Tensor& t) {
  for (size_t i = 0; i < t.strings.size(); ++i) {
    if (const auto at = invalid_utf8_offset(t.strings[i])) {
      throw field_error(
          field_of(t),
          fmt::format("element {} is not valid UTF-8 (at byte {}); expected UTF-8 text (encode it as UTF-8)", i, *at));
    }
  }
}

// Elements per sample: the batch is the first dimension of every input.
int64_t per_sample(const Tensor& t, int64_t batch) {
  if (t.shape.empty()) throw field_error(field_of(t), "has shape []; expected [batch, ...] with the batch size first");
  if (t.shape[0] != batch) {
    throw field_error(field_of(t), fmt::format("has batch dimension {}; the prompt input has batch {}", t.shape[0], batch));
  }
  return batch == 0 ? 0 : t.num_elements() / batch;
}

// One value per sample (shape [batch] or [batch, 1]).
void check_scalar_per_sample(const Tensor& t, int64_t batch) {
  if (per_sample(t, batch) != 1) {
    throw field_error(field_of(t),
                      fmt::format("has shape [{}]; expected one value per sample ([{}, 1])", fmt::join(t.shape, ","), batch));
  }
}

struct SampleReader {
  const InferRequest& request;
  const ModelContract& contract;
  int64_t batch;

  const Tensor* find(std::string_view name, DataType type) const {
    const Tensor* t = request.find_input(name);
    if (t == nullptr) return nullptr;
    for (const TensorSpec& spec : contract.inputs) {
      if (spec.name == name) check_datatype(*t, spec);
    }
    (void)type;
    check_scalar_per_sample(*t, batch);
    return t;
  }
  std::optional<double> number(std::string_view name, DataType type, int64_t sample) const {
    const Tensor* t = find(name, type);
    if (t == nullptr) return std::nullopt;
    return t->numbers.at(static_cast<size_t>(sample));
  }
};

int checked_int(double value, std::string_view input, int64_t lowest, std::string_view expected) {
  if (!(value >= static_cast<double>(lowest) && value <= std::numeric_limits<int>::max())) {  // NaN too
    throw field_error(fmt::format("input '{}'", input), fmt::format("is {}; expected {}", value, expected));
  }
  return static_cast<int>(value);
}

void reject_unknown_inputs(const ModelContract& contract, const InferRequest& request) {
  for (const Tensor& t : request.inputs) {
    const bool known =
        std::any_of(contract.inputs.begin(), contract.inputs.end(), [&](const TensorSpec& s) { return s.name == t.name; });
    if (!known) {
      std::vector<std::string> names;
      for (const TensorSpec& s : contract.inputs) names.push_back(s.name);
      throw field_error(field_of(t), fmt::format("is not an input of this model; expected some of {}", fmt::join(names, ", ")));
    }
  }
}

}  // namespace

ModelContract contract_for(const ModelInfo& model) {
  ModelContract c;
  c.opt = model.family == "opt";
  c.max_context = model.max_context;
  if (c.opt) {
    c.max_batch_size = model.max_batch_size > 0 ? model.max_batch_size : kOptMaxBatchSize;
    c.prompt_input = "input";
    c.inputs = {{"input", DataType::bytes, {1}, false}, {"output_length", DataType::int64, {1}, true}};
    c.outputs = {{"output", DataType::bytes, {1}, false}};
    return c;
  }
  c.max_batch_size = model.max_batch_size > 0 ? model.max_batch_size : kGptMaxBatchSize;
  c.prompt_input = "prompts";
  c.inputs = {
      {"tasks", DataType::bytes, {1}, true},
      {"prompts", DataType::bytes, {1}, false},
      {"max_length", DataType::int32, {1}, true},
      {"min_length", DataType::int32, {1}, true},
      {"use_greedy", DataType::boolean, {1}, true},
      {"temperature", DataType::fp32, {1}, true},
      {"top_k", DataType::int32, {1}, true},
      {"top_p", DataType::fp32, {1}, true},
      {"repetition_penalty", DataType::fp32, {1}, true},
      {"add_BOS", DataType::boolean, {1}, true},
      {"all_probs", DataType::boolean, {1}, true},
      {"compute_logprob", DataType::boolean, {1}, true},
      {"end_strings", DataType::bytes, {-1}, true},
  };
  c.outputs = {{"sentences", DataType::bytes, {1}, false},
               {"tokens", DataType::bytes, {-1}, false},
               {"token_ids", DataType::int32, {-1}, false},
               {"logprob", DataType::fp32, {-1}, false}};
  return c;
}

GenerationSettings nemo_default_settings() {
  GenerationSettings s;
  s.greedy = true;
  s.temperature = 1.0f;
  s.top_k = 0;
  s.top_p = 1.0f;
  s.repetition_penalty = 1.0f;
  s.add_bos = true;
  s.stop = {kGptEndOfText};
  s.keep_stop = true;
  s.min_tokens = 0;
  s.max_tokens = 30;
  return s;
}

std::vector<TextRequest> build_requests(const ModelContract& contract, const InferRequest& request, Clock::time_point deadline) {
  reject_unknown_inputs(contract, request);
  const Tensor* prompts = request.find_input(contract.prompt_input);
  if (prompts == nullptr) throw field_error(fmt::format("input '{}'", contract.prompt_input), "is missing; it is required");
  check_datatype(*prompts, contract.inputs[contract.opt ? 0 : 1]);
  check_text(*prompts);
  if (const Tensor* ends = request.find_input("end_strings")) check_text(*ends);
  if (prompts->shape.empty()) throw field_error(field_of(*prompts), "has shape []; expected [batch, 1]");
  const int64_t batch = prompts->shape[0];
  check_scalar_per_sample(*prompts, batch);
  if (batch < 1) throw field_error(field_of(*prompts), "has batch 0; expected at least one prompt");
  if (batch > contract.max_batch_size) {
    throw field_error(field_of(*prompts), fmt::format("has batch {}; this model's max_batch_size is {} (split the request)",
                                                      batch, contract.max_batch_size));
  }
  SampleReader read{request, contract, batch};
  std::vector<TextRequest> out;
  for (int64_t i = 0; i < batch; ++i) {
    TextRequest r;
    r.prompt = prompts->strings[static_cast<size_t>(i)];
    r.deadline = deadline;
    GenerationSettings& s = r.settings;
    // A request seed gives sample i the seed + i, so equal prompts in one batch still differ.
    const std::optional<uint64_t> seed =
        request.seed ? std::optional<uint64_t>(static_cast<uint64_t>(*request.seed + i)) : std::nullopt;
    if (contract.opt) {
      s.greedy = true;  // the OPT example decodes greedily; parameters.temperature > 0 samples
      s.max_tokens = 16;
      s.max_tokens_field = "input 'output_length'";
      s.seed = seed;
      if (auto v = read.number("output_length", DataType::int64, i))
        s.max_tokens = checked_int(*v, "output_length", 0, "new tokens >= 0 (0: the prompt alone)");
      if (request.temperature) {
        if (*request.temperature < 0)
          throw field_error("parameters.temperature", fmt::format("is {}; expected >= 0 (0: greedy)", *request.temperature));
        s.greedy = *request.temperature == 0;
        if (!s.greedy) s.temperature = to_float32(*request.temperature, "parameters.temperature");
      }
      if (request.top_p) {
        if (!(*request.top_p > 0) || *request.top_p > 1)
          throw field_error("parameters.top_p", fmt::format("is {}; expected (0, 1]", *request.top_p));
        s.top_p = to_float32(*request.top_p, "parameters.top_p");
      }
      out.push_back(std::move(r));
      continue;
    }
    s = nemo_default_settings();
    s.max_tokens_field = "input 'max_length'";
    s.seed = seed;
    if (auto v = read.number("max_length", DataType::int32, i)) {
      s.max_tokens = checked_int(*v, "max_length", 1, "new tokens >= 1");
      // NeMo generates at most up to the model's sequence length, whatever max_length asks (the
      // service then clips prompt + max_tokens to the context, as for any request).
      if (contract.max_context > 0) s.max_tokens = std::min(s.max_tokens, contract.max_context);
    }
    if (auto v = read.number("min_length", DataType::int32, i))
      s.min_tokens = checked_int(*v, "min_length", 0, "new tokens >= 0");
    s.min_tokens = std::min(s.min_tokens, s.max_tokens);  // NeMo generates at most max_length whatever min_length says
    if (auto v = read.number("use_greedy", DataType::boolean, i)) s.greedy = *v != 0;
    if (auto v = read.number("temperature", DataType::fp32, i)) {
      if (!(*v >= 0) || (*v == 0 && !s.greedy)) {
        throw field_error("input 'temperature'",
                          fmt::format("is {}; expected > 0 when sampling (use_greedy false), >= 0 otherwise", *v));
      }
      if (*v > 0) s.temperature = to_float32(*v, "input 'temperature'");
    }
    if (auto v = read.number("top_k", DataType::int32, i)) s.top_k = checked_int(*v, "top_k", 0, "0 (no limit) or more");
    if (auto v = read.number("top_p", DataType::fp32, i)) {
      if (*v < 0 || *v > 1) throw field_error("input 'top_p'", fmt::format("is {}; expected 0..1 (0 and 1: off)", *v));
      s.top_p = *v == 0 ? 1.0f : to_float32(*v, "input 'top_p'");  // NeMo treats top_p 0 as no nucleus filtering
    }
    if (auto v = read.number("repetition_penalty", DataType::fp32, i)) {
      if (!(*v > 0)) throw field_error("input 'repetition_penalty'", fmt::format("is {}; expected > 0 (1: off)", *v));
      s.repetition_penalty = to_float32(*v, "input 'repetition_penalty'");
    }
    if (auto v = read.number("add_BOS", DataType::boolean, i)) s.add_bos = *v != 0;
    read.number("all_probs", DataType::boolean, i);        // validated; full_logprob is not produced
    read.number("compute_logprob", DataType::boolean, i);  // read again by build_outputs
    if (const Tensor* tasks = request.find_input("tasks")) {
      check_datatype(*tasks, contract.inputs[0]);
      per_sample(*tasks, batch);  // NeMo's task name ("text_generation"); only its batch is checked
    }
    if (const Tensor* ends = request.find_input("end_strings")) {
      check_datatype(*ends, contract.inputs.back());
      const int64_t k = per_sample(*ends, batch);
      s.stop.clear();
      for (int64_t j = 0; j < k; ++j) {
        const std::string& e = ends->strings[static_cast<size_t>(i * k + j)];
        if (!e.empty()) s.stop.push_back(e);  // empty strings pad ragged rows
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

void check_requested_outputs(const ModelContract& contract, const InferRequest& request) {
  for (const RequestedOutput& w : request.outputs) {
    const bool known =
        std::any_of(contract.outputs.begin(), contract.outputs.end(), [&](const TensorSpec& s) { return s.name == w.name; });
    if (!known) {
      std::vector<std::string> names;
      for (const TensorSpec& s : contract.outputs) names.push_back(s.name);
      throw field_error(fmt::format("output '{}'", w.name),
                        fmt::format("is not an output of this model; expected some of {}", fmt::join(names, ", ")));
    }
  }
}

std::string strip_end_of_text(std::string sentence) {
  const std::string_view eot = kGptEndOfText;
  while (sentence.ends_with(eot)) {
    sentence.resize(sentence.size() - eot.size());
  }
  return sentence;
}

std::vector<EncodedOutput> build_outputs(const ModelContract& contract, const InferRequest& request,
                                         const std::vector<std::string>& prompts, const std::vector<SampleState>& samples) {
  const int64_t batch = static_cast<int64_t>(samples.size());
  std::vector<RequestedOutput> wanted = request.outputs;
  if (wanted.empty()) {
    bool logprob = false;
    if (const Tensor* t = request.find_input("compute_logprob"); t != nullptr && !contract.opt) {
      logprob = std::any_of(t->numbers.begin(), t->numbers.end(), [](double v) { return v != 0; });
    }
    for (const TensorSpec& spec : contract.outputs) {
      if (spec.name == "logprob" && !logprob) continue;
      wanted.push_back({spec.name, request.binary_data_output});
    }
  }
  size_t longest = 0;
  for (const SampleState& s : samples) longest = std::max(longest, s.tokens.size());

  std::vector<EncodedOutput> out;
  for (const RequestedOutput& w : wanted) {
    Tensor t;
    t.name = w.name;
    if (w.name == "output" && contract.opt) {
      t.datatype = DataType::bytes;
      t.shape = {batch, 1};
      for (int64_t i = 0; i < batch; ++i)
        t.strings.push_back(prompts[static_cast<size_t>(i)] + samples[static_cast<size_t>(i)].text);
    } else if (w.name == "sentences" && !contract.opt) {
      t.datatype = DataType::bytes;
      t.shape = {batch, 1};
      for (int64_t i = 0; i < batch; ++i) {
        t.strings.push_back(strip_end_of_text(prompts[static_cast<size_t>(i)] + samples[static_cast<size_t>(i)].text));
      }
    } else if ((w.name == "tokens" || w.name == "token_ids" || w.name == "logprob") && !contract.opt) {
      // Generated tokens only (not the prompt's), rows padded to the longest: "" / -1 / 0.0.
      t.datatype = w.name == "tokens" ? DataType::bytes : w.name == "token_ids" ? DataType::int32 : DataType::fp32;
      t.shape = {batch, static_cast<int64_t>(longest)};
      for (const SampleState& s : samples) {
        for (size_t j = 0; j < longest; ++j) {
          const bool has = j < s.tokens.size();
          if (w.name == "tokens") t.strings.push_back(has ? s.tokens[j].token : std::string());
          else if (w.name == "token_ids") t.numbers.push_back(has ? s.tokens[j].id : -1);
          else t.numbers.push_back(has ? s.tokens[j].logprob : 0.0);
        }
      }
    } else {
      std::vector<std::string> names;
      for (const TensorSpec& s : contract.outputs) names.push_back(s.name);
      throw field_error(fmt::format("output '{}'", w.name),
                        fmt::format("is not an output of this model; expected some of {}", fmt::join(names, ", ")));
    }
    out.push_back({std::move(t), w.binary});
  }
  return out;
}

}  // namespace rankserve::net
