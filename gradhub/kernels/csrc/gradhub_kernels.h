// Shared pieces of gradhub's hand-written CPU kernels (see gradhub/kernels/native.py).
//
// A kernel library includes this header, defines its operators and registers them with
//   TORCH_LIBRARY(GRADHUB_LIBRARY, m) { m.def("name_(Tensor(a!)[] params, ...) -> ()", &fn); }
// GRADHUB_LIBRARY is defined by the build to a name unique to the sources, flags and CPU.
//
// What is here:
//   * check_list: the guard every operator runs on its tensor lists (same count, CPU, one
//     floating dtype, contiguous, same number of elements as the parameters), with an
//     error that names the method and the list;
//   * make_spans / for_each_span: split a list of tensors into chunks of at most `grain`
//     elements (or rows) and run a function on every chunk on torch's intra-op threads
//     (at::parallel_for), so many small tensors and one large tensor both use every core;
//   * exp_nonpositive: e^x for x <= 0 in float without a library call, so loops containing
//     it vectorise (Cephes expf: |relative error| < 2 ulp); double uses std::exp;
//   * sigmoid_abs: 1 / (1 + e^-|x|), the form diffGrad's friction and similar gates need.
//
// Vectorising: put each `#pragma omp simd` loop in a function of plain (__restrict) pointers and call
// it from the for_each_span / at::parallel_for lambda. Inside a lambda that captures by reference GCC
// vectorises the loop's loads as gathers through the captured pointers (several times slower);
// `-fopt-info-vec-missed` lists them.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifndef GRADHUB_LIBRARY
#error "GRADHUB_LIBRARY must be defined by the build (gradhub.kernels.native.load defines it)"
#endif

namespace gradhub {

// Elements per parallel task: large enough to amortise scheduling, small enough to balance two cores.
constexpr int64_t kGrain = int64_t(1) << 15;

// Rows [begin, end) (or elements) of tensor `tensor` of a list.
struct Span {
  int64_t tensor;
  int64_t begin;
  int64_t end;
};

// Chunks of at most `grain` units over tensors of `sizes` units each (empty tensors give none).
inline std::vector<Span> make_spans(const std::vector<int64_t>& sizes, int64_t grain) {
  std::vector<Span> spans;
  for (int64_t t = 0; t < static_cast<int64_t>(sizes.size()); ++t) {
    for (int64_t begin = 0; begin < sizes[t]; begin += grain) {
      spans.push_back({t, begin, std::min(sizes[t], begin + grain)});
    }
  }
  return spans;
}

// f(span) for every span, on torch's intra-op threads.
template <typename F>
inline void for_each_span(const std::vector<Span>& spans, const F& f) {
  at::parallel_for(0, static_cast<int64_t>(spans.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) f(spans[i]);
  });
}

// Every tensor of `list` is a contiguous CPU tensor of `params`' dtype with as many elements
// as the parameter at the same position. `params` itself is checked with params == list.
inline void check_list(const char* method, const char* name, at::TensorList list, at::TensorList params) {
  TORCH_CHECK(list.size() == params.size(), method, ": fused kernel got ", list.size(), " ", name, " for ",
              params.size(), " parameters");
  if (params.empty()) return;
  const auto dtype = params[0].scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, method,
              ": the fused kernel handles float32 and float64 only, got ", dtype);
  for (size_t i = 0; i < list.size(); ++i) {
    const at::Tensor& t = list[i];
    TORCH_CHECK(t.device().is_cpu(), method, ": ", name, "[", i, "] is on ", t.device(), ", the kernel is CPU-only");
    TORCH_CHECK(t.scalar_type() == dtype, method, ": ", name, "[", i, "] is ", t.scalar_type(), ", expected ", dtype);
    TORCH_CHECK(t.is_contiguous(), method, ": ", name, "[", i, "] is not contiguous");
    TORCH_CHECK(t.numel() == params[i].numel(), method, ": ", name, "[", i, "] has ", t.numel(),
                " elements, its parameter ", params[i].numel());
  }
}

// e^x for x <= 0 (NaN stays NaN; below -87 it returns e^-87 ~ 1.6e-38, which 1 + e^x cannot see).
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float n = std::nearbyint(x * 1.44269504088896341f);  // (floor(y + 0.5) does not vectorise in gcc 12)
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // n >= -126: a normal power of two
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline double exp_nonpositive(double x) { return std::exp(x); }

// 1 / (1 + e^-|x|), in [0.5, 1).
template <typename T>
inline T sigmoid_abs(T x) {
  return T(1) / (T(1) + exp_nonpositive(-std::fabs(x)));
}

// Calls f with a zero pointer of the element type of `dtype` (float or double).
template <typename F>
inline void dispatch_floating(at::ScalarType dtype, const F& f) {
  if (dtype == at::kFloat) {
    f(static_cast<float*>(nullptr));
  } else {
    f(static_cast<double*>(nullptr));
  }
}

}  // namespace gradhub
