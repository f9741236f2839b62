#!/usr/bin/env node
// Writes the golden data of tests/unit/bpe_tokenizer_test.cpp into the folder given as argument (the
// CTest fixture "tokenizer_golden" runs it before the unit tier):
//   gpt2_golden.json           {"vocab_json", "merges_txt", "tokenizer_json", "tokenizer_json_pairs",
//                               "cases": [{"text", "ids"}]}
//   gpt2_tokenizer.json        GPT-2 as a Hugging Face tokenizer.json, merges as "a b" strings
//   gpt2_tokenizer_pairs.json  the same with merges as ["a", "b"] pairs (newer tokenizers releases)
// The ids come from gpt-3-encoder's encode(), an independent JavaScript port of openai/gpt-2's
// encoder.py, pinned by package-lock.json and installed by `npm ci --prefix tests/unit/tokenizer`.
'use strict';
const fs = require('fs');
const path = require('path');

const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: node make_golden.js <output folder>');
  process.exit(2);
}
let encoderDir;
try {
  encoderDir = path.dirname(require.resolve('gpt-3-encoder/package.json'));
} catch {
  console.error('make_golden: gpt-3-encoder is not installed; expected it under tests/unit/tokenizer/node_modules ' +
                '(run: npm ci --prefix tests/unit/tokenizer, as scripts/setup.sh does)');
  process.exit(1);
}
const { encode } = require('gpt-3-encoder');

// gpt-3-encoder's pattern uses JavaScript's \s, which differs from encoder.py's (Python regex's \s,
// the Unicode White_Space property) on two characters: JavaScript adds U+FEFF and lacks U+0085. Its
// ids for text holding them are not GPT-2's, so they stay out of this corpus; bpe_tokenizer_test.cpp
// checks them against ids from encoder.py itself.
const kNotLikeEncoderPy = /[\u0085\ufeff]/u;

const handWritten = [
  'Hello world', 'Hello, world!', 'The quick brown fox jumps over the lazy dog.', 'hello', ' hello', '  hello',
  'GPT-2 is a language model.', 'rankserve serves models across GPUs and nodes.',
  "don't", "Don't", "DON'T", "I'M", "I'm", "we'll", "We'LL", "they've", "she'd", "it's", "you're", "YOU'RE",
  "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "''s", "'''", "it''s", "rock 'n' roll", "the '90s", "O'Neil's",
  "can't won't shouldn't", "I'd've", "y'all're", "'S'T'RE'VE'M'LL'D", "x's y't z're",
  '0', '12', '123', '1234', '12345', '123456789012345678901234567890', '3.14159', '1,000,000', '-42', '+1e-9',
  '2024-05-17', '12:30:45', '$19.99', '100%', '#1', 'v1.2.3', '0x7fffffff', '١٢٣٤٥', '２０２４年', 'Ⅻ Ⅳ', '²³¹ ½ ¾',
  '', ' ', '  ', '   ', '\t', '\t\t', '\n', '\n\n', '\n\n\n', '\r\n', '\r\n\r\n', ' \n ', '\n \n', 'a  b',
  'a   b', 'a    b', '  leading', 'trailing  ', 'trailing ', '\ttab\tseparated\tvalues', 'line one\nline two',
  'line\n\nparagraph', 'a \t b', 'a\t\t b', 'end.\n', '    indented code', 'x\u000by\u000cz', 'mixed \u00a0nbsp',
  'ideographic\u3000space', 'thin\u2009space', 'em\u2003space', 'line\u2028separator', 'zero\u200bwidth',
  'mongolian\u180evowel', 'mongolian \u180evowel', 'a \u180e\u180e b', 'unit\u001fseparator', 'a\u00a0\u00a0 b', '\u3000\u3000x',
  '!!!', '...', '?!?!', '---', '***', '===', '~~~', '<<>>', 'a,b', ',,,', ',, ,,', ',,,,,,,,,,,,,,,,', '"quoted"',
  '(parenthesised)', '[bracketed]', '{braced}', 'a.b.c', 'a/b\\c', 'email@example.com',
  'https://example.com/path?query=1&x=y#frag', '<|endoftext|>', 'a<|endoftext|>b', '</s>', '<s>hi</s>',
  '@@@@', '$$$', '%%%%', '^^^', '&&&&&&', '||', '//', '/* comment */', '// comment', '#!/bin/sh', '-->', '<!--',
  '你好，世界', '中文分词测试。', 'こんにちは世界', 'カタカナとひらがな', '안녕하세요 세계', 'Привет, мир!',
  'Съешь же ещё этих мягких французских булок', 'Γειά σου Κόσμε', 'مرحبا بالعالم', 'שלום עולם', 'नमस्ते दुनिया',
  'हिन्दी भाषा', 'สวัสดีชาวโลก', 'Tiếng Việt có dấu', 'e\u0301te\u0301 decomposed', 'Zürich Straße Øresund',
  'ﬁ ligature', 'ǅemal', 'İstanbul ıi', 'ΣΊΣΥΦΟΣ', 'ქართული', 'Հայերեն', 'ትግርኛ', 'ᚠᛇᚻ runes', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '😀', '😀😀😀', '👍🏽', '👨‍👩‍👧‍👦', '🇫🇷🇩🇪', '❤️', '1️⃣', '🙂 smile', 'emoji😀inside', '🤖🚀✨',
  '∑∫√∞≠≤≥', '€£¥₹₿', '©®™', '┌─┐│└┘', '♠♣♥♦', '→←↑↓', '°C °F', 'α+β=γ', 'x² + y² = z²',
  'def f(x):\n    return x ** 2\n', 'std::vector<int> v{1, 2, 3};', 'for (int i = 0; i < n; ++i) {}',
  '{"key": "value", "n": [1, 2, 3]}', '<html><body class="x">Hi</body></html>', '| a | b |\n|---|---|',
  '**bold** _italic_ `code`', 'SELECT * FROM t WHERE id = 1;', 'C:\\Program Files\\x', 'x=1;y=2;z=x+y',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'Supercalifragilisticexpialidocious', 'pneumonoultramicroscopicsilicovolcanoconiosis',
  'ThisIsCamelCaseText', 'snake_case_identifier_name', 'ALLCAPSWORDS', 'MiXeD cAsE', 'aBcDeFgHiJ',
];

// Deterministic generator (mulberry32), so the corpus is the same on every machine.
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const next = random(20240517);
const pick = (list) => list[Math.floor(next() * list.length)];

const words = ['the', 'The', 'model', 'GPU', 'don\'t', 'we\'ll', 'I\'M', '42', '3.5', '2024', 'naïve', 'café',
  'Straße', '東京', 'ソフト', '서울', 'Москва', 'Αθήνα', 'القاهرة', 'ירושלים', 'मुंबई', 'กรุงเทพ', '😀', '👍🏽',
  '🇯🇵', '!!', '...', '--', '"', '\'', '(', ')', '€5', '½', '٣', 'x²', 'tok_en', 'http://a.b/c', '<tag>'];
const separators = ['', ' ', ' ', ' ', '  ', '   ', '\n', '\n\n', '\t', ' \n', '\n ', ', ', '. ', '\u00a0', '\u3000',
  '\r\n', '-', '/', ''];

const generated = [];
for (const word of words) {
  for (const separator of [' ', '  ', '\n', '', '\t ']) generated.push(word + separator + pick(words));
}
for (let i = 0; i < 160; ++i) {
  let text = '';
  const count = 1 + Math.floor(next() * 9);
  for (let k = 0; k < count; ++k) text += (k > 0 ? pick(separators) : '') + pick(words);
  if (next() < 0.2) text = pick(separators) + text;
  if (next() < 0.2) text += pick(separators);
  generated.push(text);
}

const corpus = [...new Set([...handWritten, ...generated])];
for (const text of corpus) {
  if (kNotLikeEncoderPy.test(text)) throw new Error(`make_golden: corpus holds U+0085 or U+FEFF: ${JSON.stringify(text)}`);
}

fs.mkdirSync(outDir, { recursive: true });
const vocabJson = path.join(encoderDir, 'encoder.json');
const mergesTxt = path.join(encoderDir, 'vocab.bpe');
const vocab = JSON.parse(fs.readFileSync(vocabJson, 'utf8'));
// vocab.bpe: a "#version" line, one merge per line, a final newline (encoder.py reads lines [1:-1]).
const mergeLines = fs.readFileSync(mergesTxt, 'utf8').split('\n').slice(1, -1);

// The layout of the Hugging Face Hub's gpt2/tokenizer.json.
function tokenizerJson(merges) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false,
                     normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
             fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}
const tokenizerPath = path.join(outDir, 'gpt2_tokenizer.json');
const tokenizerPairsPath = path.join(outDir, 'gpt2_tokenizer_pairs.json');
fs.writeFileSync(tokenizerPath, JSON.stringify(tokenizerJson(mergeLines), null, 2));
fs.writeFileSync(tokenizerPairsPath, JSON.stringify(tokenizerJson(mergeLines.map((line) => line.split(' ')))));

const golden = {
  reference: `gpt-3-encoder ${require('gpt-3-encoder/package.json').version}`,
  vocab_json: vocabJson,
  merges_txt: mergesTxt,
  tokenizer_json: tokenizerPath,
  tokenizer_json_pairs: tokenizerPairsPath,
  cases: corpus.map((text) => ({ text, ids: encode(text) })),
};
fs.writeFileSync(path.join(outDir, 'gpt2_golden.json'), JSON.stringify(golden));
console.log(`make_golden: ${golden.cases.length} strings encoded by ${golden.reference} into ${outDir}`);
