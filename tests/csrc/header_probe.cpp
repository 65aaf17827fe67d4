// Exposes pieces of gradhub_kernels.h to tests/test_native.py.
#include "gradhub_kernels.h"

namespace {

// x <- exp_nonpositive(x) elementwise, run through make_spans / for_each_span with `grain`.
void exp_(at::TensorList tensors, int64_t grain) {
  gradhub::check_list("probe", "tensors", tensors, tensors);
  if (tensors.empty()) return;
  std::vector<int64_t> sizes;
  for (const auto& t : tensors) sizes.push_back(t.numel());
  const auto spans = gradhub::make_spans(sizes, grain);
  gradhub::dispatch_floating(tensors[0].scalar_type(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    gradhub::for_each_span(spans, [&](const gradhub::Span& s) {
      T* x = tensors[s.tensor].data_ptr<T>();
      for (int64_t i = s.begin; i < s.end; ++i) x[i] = gradhub::exp_nonpositive(x[i]);
    });
  });
}

// The spans make_spans cuts `sizes` into, flattened: tensor, begin, end, tensor, begin, end, ...
std::vector<int64_t> spans(std::vector<int64_t> sizes, int64_t grain) {
  std::vector<int64_t> flat;
  for (const auto& span : gradhub::make_spans(sizes, grain)) {
    flat.insert(flat.end(), {span.tensor, span.begin, span.end});
  }
  return flat;
}

}  // namespace

TORCH_LIBRARY(GRADHUB_LIBRARY, m) {
  m.def("exp_(Tensor(a!)[] tensors, int grain) -> ()", &exp_);
  m.def("spans(int[] sizes, int grain) -> int[]", &spans);
}
