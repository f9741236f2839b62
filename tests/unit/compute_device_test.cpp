// Where and in which dtype a rank computes (runtime/engine.h), as the launcher's memory plan sees it.
#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "core/error.h"
#include "runtime/engine.h"
#include "runtime/model/config_text.h"

using namespace rankserve::runtime;

TEST_CASE("--dtype auto is fp32 on the CPU and the checkpoint's half type on a GPU") {
  ModelConfig fp16_checkpoint, other;
  fp16_checkpoint.torch_dtype = "float16";
  other.torch_dtype = "float32";
  CHECK(resolve_dtype(ComputeDtype::automatic, "cpu", fp16_checkpoint) == ComputeDtype::fp32);
  CHECK(resolve_dtype(ComputeDtype::automatic, "cuda:0", fp16_checkpoint) == ComputeDtype::fp16);
  CHECK(resolve_dtype(ComputeDtype::automatic, "cuda:1", other) == ComputeDtype::bf16);
  CHECK(resolve_dtype(ComputeDtype::automatic, "cuda:0", ModelConfig{}) == ComputeDtype::bf16);  // random weights
  CHECK(resolve_dtype(ComputeDtype::fp32, "cuda:0", fp16_checkpoint) == ComputeDtype::fp32);
  CHECK(resolve_dtype(ComputeDtype::bf16, "cpu", other) == ComputeDtype::bf16);
  CHECK(element_bytes(ComputeDtype::fp32) == 4);
  CHECK(element_bytes(ComputeDtype::bf16) == 2);
}

TEST_CASE("a GPU rank computes on its device only with a CUDA libtorch") {
  CHECK(compute_device_of("cpu") == "cpu");
  CHECK(compute_device_of("cuda:1") == (at::globalContext().hasCUDA() ? "cuda:1" : "cpu"));
  CHECK_THROWS_AS(compute_device_of("banana"), rankserve::Error);
}

TEST_CASE("config.json's torch_dtype is kept for --dtype auto") {
  const ModelConfig c = parse_hf_config(
      R"({"model_type":"gpt2","n_embd":64,"n_layer":2,"n_head":4,"n_positions":32,"vocab_size":100,"torch_dtype":"float16"})",
      "config.json");
  CHECK(c.torch_dtype == "float16");
}
