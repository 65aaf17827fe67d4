// AdamP's and SGDP's fused CPU step (Heo et al., ICLR 2021, Algorithms 1 and 2).
//
// Per weight w with gradient g (negated when maximising) and state, as the multi-tensor
// path in multitensor.py computes it:
//   Adam: m <- m + (1 - beta1)(g - m);  v <- beta2 v + (1 - beta2) g^2;
//         u = m / (sqrt(v) + eps sqrt(1 - beta2^t))   (Nesterov: m - (1 - beta1)(m - g))
//   SGD:  b <- momentum b + (1 - dampening) g;  u = b  (Nesterov: g + momentum b)
//   w <- w (1 - decay f) - step_size (u - w s)
// where s is the per-row projection scale (zero unless a view finds w scale-invariant)
// and f = wd_ratio for projected weights, 1 otherwise. SGDP without Nesterov projects its
// momentum buffer itself (b <- b - w s), as the official code does.
//
// Memory traffic. The scale-invariance test needs every row's <g, w>, |g|, |w| before any
// row is updated (the channel view takes a max over rows), so a matrix costs two passes:
// statistics (read g, w), then a row at a time: update the state, and, where the channel
// view fired, the row's <w, u> while the row is still in cache, then the weight. That is
// 8 + 28 bytes per float32 parameter for AdamP (the Adam floor is 28), unless the second pass
// finds w and g still in the last-level cache: large matrices go in batches of about
// `batch_bytes` of w and g (statistics of the batch, then its updates, the update's row chunks
// in reverse so each thread starts where the statistics ended). Matrices of at most
// `grain` elements are done whole by one thread, so both passes hit cache; larger ones and
// vectors are split into chunks of about `grain` elements (whole rows) across threads. The layer view
// (one scale from every row) needs a third pass over that weight. Vectors (dim <= 1) are
// never projected: one pass. Row sums accumulate in double, in SIMD lanes (omp simd).
#include "gradhub_kernels.h"

namespace {

template <typename T>
struct Scalars {
  T sign, beta1, beta2, scaled_eps, momentum, dampening, step_size, decay, delta, wd_ratio, eps;
};

// The optimizer's rule: the state update and the direction u, elementwise.
template <typename T, bool Adam, bool Nesterov>
struct Rule {
  static inline T update(T* s1, T* s2, T g, const Scalars<T>& c) {
    if constexpr (Adam) {
      const T m = *s1 + (T(1) - c.beta1) * (g - *s1);
      const T v = c.beta2 * *s2 + (T(1) - c.beta2) * g * g;
      *s1 = m;
      *s2 = v;
      const T numerator = Nesterov ? m - (T(1) - c.beta1) * (m - g) : m;
      return numerator / (std::sqrt(v) + c.scaled_eps);
    } else {
      const T b = c.momentum * *s1 + (T(1) - c.dampening) * g;
      *s1 = b;
      return Nesterov ? g + c.momentum * b : b;
    }
  }
  static inline T direction(const T* s1, const T* s2, T g, const Scalars<T>& c) {
    if constexpr (Adam) {
      const T numerator = Nesterov ? *s1 - (T(1) - c.beta1) * (*s1 - g) : *s1;
      return numerator / (std::sqrt(*s2) + c.scaled_eps);
    } else {
      return Nesterov ? g + c.momentum * *s1 : *s1;
    }
  }
};

// Pointers to one tensor's data (s2 is null for SGD).
template <typename T>
struct Views {
  T* w;
  const T* g;
  T* s1;
  T* s2;
  Views offset(int64_t i) const { return {w + i, g + i, s1 + i, s2 ? s2 + i : nullptr}; }
};

template <typename T, bool Adam, bool Nesterov>
struct Kernel {
  using R = Rule<T, Adam, Nesterov>;
  static constexpr bool kInPlace = !Adam && !Nesterov;  // SGDP's update is its momentum buffer
  Scalars<T> c;

  // State update and w <- w f - step_size u (no projection).
  void update_step(Views<T> x, int64_t n, T f) const {
    T* __restrict w = x.w;
    const T* __restrict g = x.g;
    T* __restrict s1 = x.s1;
    T* __restrict s2 = x.s2;
    for (int64_t i = 0; i < n; ++i) {
      const T u = R::update(s1 + i, Adam ? s2 + i : s1 + i, c.sign * g[i], c);
      w[i] = w[i] * f - c.step_size * u;
    }
  }

  // State update; returns <w, u>.
  double update_dot(Views<T> x, int64_t n) const {
    T* __restrict w = x.w;
    const T* __restrict g = x.g;
    T* __restrict s1 = x.s1;
    T* __restrict s2 = x.s2;
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t i = 0; i < n; ++i) {
      dot += double(w[i]) * double(R::update(s1 + i, Adam ? s2 + i : s1 + i, c.sign * g[i], c));
    }
    return dot;
  }

  // From updated state: w <- w f - step_size (u - w s).
  void project_step(Views<T> x, int64_t n, T s, T f) const {
    T* __restrict w = x.w;
    const T* __restrict g = x.g;
    T* __restrict s1 = x.s1;
    T* __restrict s2 = x.s2;
    if constexpr (kInPlace) {
      for (int64_t i = 0; i < n; ++i) {
        const T b = s1[i] - w[i] * s;
        s1[i] = b;
        w[i] = w[i] * f - c.step_size * b;
      }
    } else {
      const T factor = c.step_size * s + f;
      for (int64_t i = 0; i < n; ++i) {
        w[i] = w[i] * factor - c.step_size * R::direction(s1 + i, Adam ? s2 + i : s1 + i, c.sign * g[i], c);
      }
    }
  }

  // Per row: <g, w>, |g|^2, |w|^2 into stats[3 r ..].
  void statistics(Views<T> x, int64_t row_length, int64_t r0, int64_t r1, double* stats) const {
    for (int64_t r = r0; r < r1; ++r) {
      const T* __restrict w = x.w + r * row_length;
      const T* __restrict g = x.g + r * row_length;
      double gw = 0, gg = 0, ww = 0;
#pragma omp simd reduction(+ : gw, gg, ww)
      for (int64_t i = 0; i < row_length; ++i) {
        const double gi = double(c.sign * g[i]), wi = double(w[i]);
        gw += gi * wi;
        gg += gi * gi;
        ww += wi * wi;
      }
      stats[3 * r] = gw;
      stats[3 * r + 1] = gg;
      stats[3 * r + 2] = ww;
    }
  }

  // 0: not scale-invariant; 1: channel view (every row); 2: layer view (the whole weight).
  int decide(const double* stats, int64_t rows, int64_t row_length) const {
    const double eps = double(c.eps), delta = double(c.delta);
    double largest = 0, gw = 0, gg = 0, ww = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double cosine = std::fabs(stats[3 * r]) /
                            (std::max(std::sqrt(stats[3 * r + 1]), eps) * std::max(std::sqrt(stats[3 * r + 2]), eps));
      largest = std::max(largest, cosine);
      if (std::isnan(cosine)) largest = cosine;
      gw += stats[3 * r];
      gg += stats[3 * r + 1];
      ww += stats[3 * r + 2];
    }
    if (largest < delta / std::sqrt(double(row_length))) return 1;
    const double cosine = std::fabs(gw) / (std::max(std::sqrt(gg), eps) * std::max(std::sqrt(ww), eps));
    return cosine < delta / std::sqrt(double(rows * row_length)) ? 2 : 0;
  }

  T decay_factor(bool projected) const { return T(1) - c.decay * (projected ? c.wd_ratio : T(1)); }

  T channel_scale(double dot, double square_norm) const {
    const double norm = std::sqrt(square_norm) + double(c.eps);
    return T(dot / (norm * norm));
  }

  // Rows [r0, r1) of a matrix whose mode is 0 or 1: each row's update is done while it is in cache.
  void rows_step(Views<T> x, int64_t row_length, int64_t r0, int64_t r1, int mode, const double* stats) const {
    const T f = decay_factor(mode != 0);
    for (int64_t r = r0; r < r1; ++r) {
      const Views<T> row = x.offset(r * row_length);
      if (mode == 0) {
        update_step(row, row_length, f);
      } else {
        const double dot = update_dot(row, row_length);
        project_step(row, row_length, channel_scale(dot, stats[3 * r + 2]), f);
      }
    }
  }

  // A whole matrix, all three phases (for small matrices, one thread, in cache).
  void matrix_step(Views<T> x, int64_t rows, int64_t row_length, double* stats) const {
    statistics(x, row_length, 0, rows, stats);
    const int mode = decide(stats, rows, row_length);
    if (mode != 2) {
      rows_step(x, row_length, 0, rows, mode, stats);
      return;
    }
    double dot = 0, square_norm = 0;
    for (int64_t r = 0; r < rows; ++r) square_norm += stats[3 * r + 2];
    dot = update_dot(x, rows * row_length);
    project_step(x, rows * row_length, channel_scale(dot, square_norm), decay_factor(true));
  }
};

template <typename T, bool Adam, bool Nesterov>
void run(at::TensorList params, at::TensorList grads, at::TensorList state1, at::TensorList state2,
         const Scalars<T>& c, int64_t grain, int64_t batch_bytes) {
  const Kernel<T, Adam, Nesterov> k{c};
  const int64_t count = static_cast<int64_t>(params.size());
  std::vector<Views<T>> views(count);
  std::vector<int64_t> rows(count), row_length(count), stat_offset(count, -1);
  int64_t stat_rows = 0;
  for (int64_t t = 0; t < count; ++t) {
    views[t] = {params[t].data_ptr<T>(), grads[t].data_ptr<T>(), state1[t].data_ptr<T>(),
                Adam ? state2[t].data_ptr<T>() : nullptr};
    const bool matrix = params[t].dim() > 1 && params[t].numel() > 0;
    rows[t] = matrix ? params[t].size(0) : 1;
    row_length[t] = matrix ? params[t].numel() / rows[t] : params[t].numel();
    if (matrix) {
      stat_offset[t] = stat_rows;
      stat_rows += rows[t];
    }
  }
  std::vector<double> stats(3 * stat_rows);
  // Phase A: vectors in element chunks, small matrices whole (one thread each, in cache).
  std::vector<gradhub::Span> tasks;
  std::vector<int64_t> large;
  for (int64_t t = 0; t < count; ++t) {
    const int64_t numel = params[t].numel();
    if (stat_offset[t] < 0) {
      for (int64_t b = 0; b < numel; b += grain) tasks.push_back({t, b, std::min(numel, b + grain)});
    } else if (numel <= grain) {
      tasks.push_back({t, 0, rows[t]});
    } else {
      large.push_back(t);
    }
  }
  gradhub::for_each_span(tasks, [&](const gradhub::Span& s) {
    const int64_t t = s.tensor;
    if (stat_offset[t] < 0) {
      k.update_step(views[t].offset(s.begin), s.end - s.begin, k.decay_factor(false));
    } else {
      k.matrix_step(views[t], rows[t], row_length[t], stats.data() + 3 * stat_offset[t]);
    }
  });
  // Large matrices in batches of about `batch_bytes` of weights and gradients, so that the
  // update pass finds in cache what the statistics pass just read. Its row chunks run in
  // reverse order: each thread starts where the statistics pass ended.
  std::vector<int> modes(count, 0);
  std::vector<T> scales(count, T(0));
  for (size_t first = 0; first < large.size();) {
    size_t last = first + 1;
    int64_t bytes = 2 * params[large[first]].numel() * int64_t(sizeof(T));
    while (last < large.size() && bytes + 2 * params[large[last]].numel() * int64_t(sizeof(T)) <= batch_bytes) {
      bytes += 2 * params[large[last]].numel() * int64_t(sizeof(T));
      ++last;
    }
    std::vector<gradhub::Span> stat_tasks;
    for (size_t i = first; i < last; ++i) {
      const int64_t t = large[i];
      const int64_t step = std::max<int64_t>(1, grain / row_length[t]);
      for (int64_t r = 0; r < rows[t]; r += step) stat_tasks.push_back({t, r, std::min(rows[t], r + step)});
    }
    gradhub::for_each_span(stat_tasks, [&](const gradhub::Span& s) {
      k.statistics(views[s.tensor], row_length[s.tensor], s.begin, s.end, stats.data() + 3 * stat_offset[s.tensor]);
    });
    std::vector<gradhub::Span> row_tasks, layer_tasks;
    for (auto it = stat_tasks.rbegin(); it != stat_tasks.rend(); ++it) {
      const int64_t t = it->tensor;
      if (it->end == rows[t]) modes[t] = k.decide(stats.data() + 3 * stat_offset[t], rows[t], row_length[t]);
      (modes[t] == 2 ? layer_tasks : row_tasks).push_back(*it);
    }
    first = last;
    gradhub::for_each_span(row_tasks, [&](const gradhub::Span& s) {
      const int64_t t = s.tensor;
      k.rows_step(views[t], row_length[t], s.begin, s.end, modes[t], stats.data() + 3 * stat_offset[t]);
    });
    if (layer_tasks.empty()) continue;
    // Layer view: state update and <w, u> per row, one scale per weight, then the step.
    gradhub::for_each_span(layer_tasks, [&](const gradhub::Span& s) {
      const int64_t t = s.tensor;
      double* stat = stats.data() + 3 * stat_offset[t];
      for (int64_t r = s.begin; r < s.end; ++r) stat[3 * r] = k.update_dot(views[t].offset(r * row_length[t]), row_length[t]);
    });
    for (const gradhub::Span& s : layer_tasks) {
      const int64_t t = s.tensor;
      if (s.end != rows[t]) continue;
      const double* stat = stats.data() + 3 * stat_offset[t];
      double dot = 0, square_norm = 0;
      for (int64_t r = 0; r < rows[t]; ++r) {
        dot += stat[3 * r];
        square_norm += stat[3 * r + 2];
      }
      scales[t] = k.channel_scale(dot, square_norm);
    }
    gradhub::for_each_span(layer_tasks, [&](const gradhub::Span& s) {
      const int64_t t = s.tensor;
      k.project_step(views[t].offset(s.begin * row_length[t]), (s.end - s.begin) * row_length[t], scales[t],
                     k.decay_factor(true));
    });
  }
}

template <bool Adam>
void dispatch(const char* method, at::TensorList params, at::TensorList grads, at::TensorList state1,
              at::TensorList state2, bool nesterov, bool maximize, const Scalars<double>& c, int64_t grain,
              int64_t batch_bytes) {
  TORCH_CHECK(grain > 0, method, ": grain must be positive, got ", grain);
  gradhub::check_list(method, "params", params, params);
  gradhub::check_list(method, "grads", grads, params);
  gradhub::check_list(method, Adam ? "exp_avgs" : "momentum_buffers", state1, params);
  if (Adam) gradhub::check_list(method, "exp_avg_sqs", state2, params);
  if (params.empty()) return;
  gradhub::dispatch_floating(params[0].scalar_type(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const Scalars<T> typed{T(maximize ? -1 : 1), T(c.beta1),     T(c.beta2),   T(c.scaled_eps),
                           T(c.momentum),        T(c.dampening), T(c.step_size), T(c.decay),
                           T(c.delta),           T(c.wd_ratio),  T(c.eps)};
    if (nesterov) {
      run<T, Adam, true>(params, grads, state1, state2, typed, grain, batch_bytes);
    } else {
      run<T, Adam, false>(params, grads, state1, state2, typed, grain, batch_bytes);
    }
  });
}

void adamp_(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
            double beta1, double beta2, double scaled_eps, double step_size, double decay, double delta,
            double wd_ratio, double eps, bool nesterov, bool maximize, int64_t grain, int64_t batch_bytes) {
  const Scalars<double> c{1, beta1, beta2, scaled_eps, 0, 0, step_size, decay, delta, wd_ratio, eps};
  dispatch<true>("adamp", params, grads, exp_avgs, exp_avg_sqs, nesterov, maximize, c, grain, batch_bytes);
}

void sgdp_(at::TensorList params, at::TensorList grads, at::TensorList momentum_buffers, double momentum,
           double dampening, double step_size, double decay, double delta, double wd_ratio, double eps, bool nesterov,
           bool maximize, int64_t grain, int64_t batch_bytes) {
  const Scalars<double> c{1, 0, 0, 0, momentum, dampening, step_size, decay, delta, wd_ratio, eps};
  dispatch<false>("sgdp", params, grads, momentum_buffers, {}, nesterov, maximize, c, grain, batch_bytes);
}

}  // namespace

TORCH_LIBRARY(GRADHUB_LIBRARY, m) {
  m.def(
      "adamp_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, Tensor(c!)[] exp_avg_sqs, float beta1, "
      "float beta2, float scaled_eps, float step_size, float decay, float delta, float wd_ratio, float eps, "
      "bool nesterov, bool maximize, int grain, int batch_bytes) -> ()",
      &adamp_);
  m.def(
      "sgdp_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] momentum_buffers, float momentum, float dampening, "
      "float step_size, float decay, float delta, float wd_ratio, float eps, bool nesterov, bool maximize, "
      "int grain, int batch_bytes) -> ()",
      &sgdp_);
}
