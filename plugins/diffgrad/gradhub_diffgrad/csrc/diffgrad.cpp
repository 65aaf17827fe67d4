// diffGrad's fused CPU step: one pass over memory per element (read w, g, m, v, g_prev;
// write w, m, v, g_prev), parallel over chunks of every tensor of the list.
//
// Per element, as the per-tensor path in diffgrad.py (and diffGrad_v2.py):
//   g  = grad + weight_decay * w              (only when weight_decay != 0)
//   m  = beta1 m + (1 - beta1) g
//   v  = beta2 v + (1 - beta2) g^2
//   xi = sigmoid(|g_prev - g|)                (the friction coefficient, DFC)
//   g_prev = g
//   w  = w - step_size * xi m / (sqrt(v) + eps),  step_size = lr sqrt(1 - beta2^t) / (1 - beta1^t)
#include "gradhub_kernels.h"

namespace {

template <typename T, bool Decay>
void diffgrad_span(T* w, const T* g, T* m, T* v, T* prev, int64_t n, T beta1, T beta2, T eps, T weight_decay,
                   T step_size) {
  const T keep1 = beta1, take1 = T(1) - beta1, keep2 = beta2, take2 = T(1) - beta2;
  for (int64_t i = 0; i < n; ++i) {
    const T grad = Decay ? g[i] + weight_decay * w[i] : g[i];
    const T mi = m[i] * keep1 + grad * take1;
    const T vi = v[i] * keep2 + grad * grad * take2;
    const T friction = gradhub::sigmoid_abs(prev[i] - grad);
    m[i] = mi;
    v[i] = vi;
    prev[i] = grad;
    w[i] = w[i] - step_size * (friction * mi) / (std::sqrt(vi) + eps);
  }
}

void diffgrad_(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
               at::TensorList previous_grads, double beta1, double beta2, double eps, double weight_decay,
               double step_size) {
  const char* method = "diffgrad";
  gradhub::check_list(method, "params", params, params);
  gradhub::check_list(method, "grads", grads, params);
  gradhub::check_list(method, "exp_avgs", exp_avgs, params);
  gradhub::check_list(method, "exp_avg_sqs", exp_avg_sqs, params);
  gradhub::check_list(method, "previous_grads", previous_grads, params);
  if (params.empty()) return;
  std::vector<int64_t> sizes;
  for (const auto& p : params) sizes.push_back(p.numel());
  const auto spans = gradhub::make_spans(sizes, gradhub::kGrain);
  gradhub::dispatch_floating(params[0].scalar_type(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    gradhub::for_each_span(spans, [&](const gradhub::Span& s) {
      const int64_t t = s.tensor, n = s.end - s.begin;
      T* w = params[t].data_ptr<T>() + s.begin;
      const T* g = grads[t].data_ptr<T>() + s.begin;
      T* m = exp_avgs[t].data_ptr<T>() + s.begin;
      T* v = exp_avg_sqs[t].data_ptr<T>() + s.begin;
      T* prev = previous_grads[t].data_ptr<T>() + s.begin;
      if (weight_decay != 0) {
        diffgrad_span<T, true>(w, g, m, v, prev, n, T(beta1), T(beta2), T(eps), T(weight_decay), T(step_size));
      } else {
        diffgrad_span<T, false>(w, g, m, v, prev, n, T(beta1), T(beta2), T(eps), T(0), T(step_size));
      }
    });
  });
}

}  // namespace

TORCH_LIBRARY(GRADHUB_LIBRARY, m) {
  m.def(
      "diffgrad_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, Tensor(c!)[] exp_avg_sqs, "
      "Tensor(d!)[] previous_grads, float beta1, float beta2, float eps, float weight_decay, float step_size) -> ()",
      &diffgrad_);
}
