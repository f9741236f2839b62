// Megatron-style rank arithmetic: rank = pp_rank * (dp * tp) + dp_rank * tp + tp_rank, so a
// tensor-parallel group is tp consecutive ranks (one node when tp <= GPUs per node). Pure.
#pragma once

#include <string_view>
#include <vector>

namespace rankserve::runtime {

enum class GroupKind { world, tp, pp, dp };
std::string_view to_string(GroupKind kind);

struct ParallelLayout {
  int world_size = 1;
  int tp_size = 1;
  int pp_size = 1;

  int dp_size() const { return world_size / (tp_size * pp_size); }
  int tp_rank(int rank) const { return rank % tp_size; }
  int dp_rank(int rank) const { return (rank / tp_size) % dp_size(); }
  int pp_rank(int rank) const { return rank / (tp_size * dp_size()); }

  // Global ranks of the group of `kind` that holds `rank`, in group-rank order.
  std::vector<int> group_of(GroupKind kind, int rank) const;
  // Every group of `kind`, each in group-rank order; the index is the group's id.
  std::vector<std::vector<int>> groups(GroupKind kind) const;
};

}  // namespace rankserve::runtime
