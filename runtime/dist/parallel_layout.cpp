#include "runtime/dist/parallel_layout.h"

#include <algorithm>

namespace rankserve::runtime {

std::string_view to_string(GroupKind kind) {
  switch (kind) {
    case GroupKind::world: return "world";
    case GroupKind::tp: return "tp";
    case GroupKind::pp: return "pp";
    case GroupKind::dp: return "dp";
  }
  return "world";
}

std::vector<std::vector<int>> ParallelLayout::groups(GroupKind kind) const {
  std::vector<std::vector<int>> out;
  const int dp = dp_size();
  switch (kind) {
    case GroupKind::world: {
      std::vector<int> all(static_cast<size_t>(world_size));
      for (int r = 0; r < world_size; ++r) all[static_cast<size_t>(r)] = r;
      out.push_back(std::move(all));
      break;
    }
    case GroupKind::tp:
      for (int first = 0; first < world_size; first += tp_size) {
        std::vector<int> g;
        for (int t = 0; t < tp_size; ++t) g.push_back(first + t);
        out.push_back(std::move(g));
      }
      break;
    case GroupKind::dp:
      for (int p = 0; p < pp_size; ++p)
        for (int t = 0; t < tp_size; ++t) {
          std::vector<int> g;
          for (int d = 0; d < dp; ++d) g.push_back(p * dp * tp_size + d * tp_size + t);
          out.push_back(std::move(g));
        }
      break;
    case GroupKind::pp:
      for (int d = 0; d < dp; ++d)
        for (int t = 0; t < tp_size; ++t) {
          std::vector<int> g;
          for (int p = 0; p < pp_size; ++p) g.push_back(p * dp * tp_size + d * tp_size + t);
          out.push_back(std::move(g));
        }
      break;
  }
  return out;
}

std::vector<int> ParallelLayout::group_of(GroupKind kind, int rank) const {
  for (auto& g : groups(kind)) {
    if (std::find(g.begin(), g.end(), rank) != g.end()) return g;
  }
  return {};
}

}  // namespace rankserve::runtime
