// NeMo Megatron GPT checkpoints (legacy "language_model" layout): a .nemo (tar, read in place; or
// gzip-compressed, decompressed as read) or its extracted folder with model_config.yaml and
// model_weights.ckpt (TP 1), mp_rank_XX/model_weights.ckpt (TP > 1) or
// tp_rank_XX_pp_rank_XXX/model_weights.ckpt (PP > 1). Internal to the runtime.
#pragma once

#include <memory>
#include <string>

#include "runtime/model/model_config.h"
#include "runtime/model/nemo_tokenizer.h"
#include "runtime/model/weight_source.h"

namespace rankserve::runtime {

// Reads model_config.yaml; the vocabulary size comes from the tokenizer's vocab file it references.
// Throws Error(load) naming the file and key, also for layouts and architectures not supported
// (mcore checkpoints, rotary positions, RMSNorm, grouped-query attention, no biases).
ModelConfig read_nemo_config(const std::string& folder);

// Tensors under their full (TP 1, PP 1) names and shapes whatever layout the checkpoint was saved
// with, fused QKV rows in (head, {q,k,v}, dim) order: a slice is read from the shards it spans, so a
// run's TP and PP may differ from the checkpoint's.
std::unique_ptr<WeightSource> open_nemo_source(const std::string& folder, const ModelConfig& config);

}  // namespace rankserve::runtime
