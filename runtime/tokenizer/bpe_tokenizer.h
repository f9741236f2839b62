// GPT-2 byte-level BPE tokenizer (the GPT-2, OPT and RoBERTa vocabularies) and the streaming decoder
// the server uses to turn sampled ids into text. Loaded once at start-up; then read-only and usable
// from any thread. Torch-free; the regex engine (PCRE2) stays inside the .cpp files.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rankserve::runtime {

// A token matched verbatim in the text before pre-tokenization and BPE run, as Hugging Face does for
// "added_tokens" ("<|endoftext|>" in GPT-2, "</s>" in OPT). Matching is leftmost, longest first.
struct AddedToken {
  std::string content;  // the raw text matched, and what the id decodes to
  int32_t id = 0;
  bool lstrip = false;  // the match also takes the ASCII whitespace before it (RoBERTa's "<mask>")
  bool rstrip = false;  // the match also takes the ASCII whitespace after it
};

// A byte-level BPE model as its files spell it: the input of BpeTokenizer::from_model.
struct BpeModel {
  std::unordered_map<std::string, int32_t> vocab;           // vocab.json: alphabet spelling -> id
  std::vector<std::pair<std::string, std::string>> merges;  // merges.txt order: rank 0 first
  std::vector<AddedToken> added_tokens;
  std::string vocab_origin = "vocab";    // names the vocabulary's file in error messages
  std::string merges_origin = "merges";  // names the merges' file in error messages
};

class BpeTokenizer {
 public:
  // Loads GPT-2's two files. `special_tokens` lists vocab.json tokens (raw text, e.g. "<|endoftext|>")
  // to match whole in encode(); the files themselves do not say which tokens are special.
  // Throws Error(load) "tokenizer: <file>: <what was wrong>" for an unreadable file, malformed JSON,
  // a malformed merge line, a merge naming a token not in the vocabulary, or an unknown special token.
  static BpeTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt,
                                 std::span<const std::string> special_tokens = {});

  // The same from the files' contents (e.g. members of a .nemo archive); `origin` names each in errors.
  struct NamedText {
    std::string text;
    std::string origin;
  };
  static BpeTokenizer from_texts(const NamedText& vocab_json, const NamedText& merges_txt,
                                 std::span<const std::string> special_tokens = {});

  // Loads a Hugging Face tokenizer.json whose model is BPE over the ByteLevel pre-tokenizer (GPT-2,
  // OPT); merges as "a b" strings or ["a", "b"] pairs; added_tokens become whole-text matches. The
  // post-processor is not applied: callers add BOS/EOS ids themselves. Throws Error(load) naming the
  // file, also for features this tokenizer does not implement (a normalizer, add_prefix_space,
  // continuing_subword_prefix, byte_fallback, ignore_merges, dropout).
  static BpeTokenizer from_tokenizer_json(const std::string& path);

  // Builds from an already parsed model; the loaders above end here. Requires every one of the 256
  // byte symbols in the vocabulary. Throws Error(load) naming the model's origins.
  static BpeTokenizer from_model(const BpeModel& model);

  BpeTokenizer(BpeTokenizer&&) noexcept;
  BpeTokenizer& operator=(BpeTokenizer&&) noexcept;
  ~BpeTokenizer();

  // Token ids of `text`, byte-exact with openai/gpt-2's encoder.py. Any thread, concurrently.
  // Never throws for user text: bytes that are not valid UTF-8 are encoded as their own piece, so
  // decode(encode(text)) == text whenever `text` is valid UTF-8.
  std::vector<int32_t> encode(std::string_view text) const;

  // The text of `ids` as well-formed UTF-8 (each ill-formed byte run becomes U+FFFD, like encoder.py's
  // errors="replace"). Throws Error(usage) for an id that has no token (see token_text).
  std::string decode(std::span<const int32_t> ids) const;

  // One more than the largest id; ids below it may still be unused in a sparse tokenizer.json.
  int32_t vocab_size() const;

  // The id whose raw text is `token` (" the" -> 262 in GPT-2; an added token wins over a vocabulary
  // entry with the same text); nullopt when there is none.
  std::optional<int32_t> token_id(std::string_view token) const;

  // The raw bytes of token `id`, possibly part of a UTF-8 character ("\xF0\x9F" is half an emoji).
  // Valid while the tokenizer lives. Throws Error(usage) naming the id if it has no token.
  std::string_view token_text(int32_t id) const;

 private:
  struct Impl;
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of sampled ids into text pieces that are always whole UTF-8 characters, holding back
// the bytes of a character that later tokens complete. One per request, on one thread at a time; it
// borrows the tokenizer, which must outlive it. The pieces of push() followed by finish() concatenate
// to decode() of the same ids.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const BpeTokenizer& tokenizer) : tokenizer_(&tokenizer) {}

  // The text that `id` completes: possibly empty, never part of a character. Ill-formed bytes that no
  // later byte can fix come out as U+FFFD at once. Throws like BpeTokenizer::token_text.
  std::string push(int32_t id);

  // push(id) and the id's own text (BpeTokenizer::decode of the id alone: a partial character as
  // U+FFFD), from one look-up of its bytes. Throws like push.
  struct Decoded {
    std::string text;   // what push(id) returns
    std::string token;  // the id's own text
  };
  Decoded push_token(int32_t id);

  // Flushes a held-back incomplete character as U+FFFD (empty if nothing is held back); the decoder
  // can then start a new stream.
  std::string finish();

 private:
  std::string release(std::string_view bytes);  // appends `bytes`, returns the whole characters

  const BpeTokenizer* tokenizer_;
  std::string pending_;  // bytes of one incomplete character, at most 3
};

}  // namespace rankserve::runtime
