// One conjugate-gradient iteration in one call, on the CPU (Hestenes & Stiefel 1952; the textbook
// recurrence of gradhub_dcdm.cg with recompute_residual=False):
//
//   q = A p,  c = p^T q                        (pass 1: the product, and the curvature beside it)
//   alpha = rr / c;  x += alpha p;  r -= alpha q;  rr' = r^T r     (pass 2)
//   p = r + (rr' / rr) p                        (pass 3)
//
// and returns (c, rr'). When c is not positive (or NaN) it returns (c, NaN) after pass 1 and
// leaves x, r and p as they were: the caller raises the breakdown error.
//
// A is a dense row-major (n, n) matrix or a CSR matrix (int32 or int64 indices). Rows are split
// into blocks of about `grain` multiply-adds; each block's partial dot product is kept apart and
// the partials are added in block order, so the answer does not depend on the number of threads.
// A matrix with no more than `grain` multiply-adds is one block, done by the calling thread
// without at::parallel_for (whose single-task path still cost about 10 us per pass here: what
// made a 64^2 Poisson iteration 38 us instead of 16). Dot products accumulate in double, in SIMD
// lanes; a dense A is read eight rows at a time (eight independent sums per pass over p). Memory traffic per iteration: A once, p twice, q three times, x and r
// once each (scipy's cg, and the unfused path: seven passes over n plus A).
#include "gradhub_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

namespace {

struct Blocks {
  int64_t count;
  int64_t rows;  // rows per block (the last may have fewer)
};

Blocks row_blocks(int64_t n, int64_t work_per_row, int64_t grain) {
  const int64_t rows = std::max<int64_t>(1, grain / std::max<int64_t>(1, work_per_row));
  return {n == 0 ? 0 : (n + rows - 1) / rows, rows};
}

template <typename F>
double blockwise_sum(const Blocks& blocks, int64_t n, const F& block_sum) {
  if (blocks.count == 1) return block_sum(0, n);  // on the calling thread
  std::vector<double> partial(static_cast<size_t>(blocks.count), 0.0);
  at::parallel_for(0, blocks.count, 1, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      const int64_t begin = b * blocks.rows;
      partial[static_cast<size_t>(b)] = block_sum(begin, std::min(n, begin + blocks.rows));
    }
  });
  double total = 0.0;
  for (double value : partial) total += value;
  return total;
}

// The element loops of passes 2 and 3 as functions of plain (restrict) pointers: written inside the lambdas
// below, GCC vectorised their loads through the captured references as gathers, several times slower.
template <typename T>
double step_block(T* __restrict x, T* __restrict r, const T* __restrict p, const T* __restrict q, T alpha,
                  int64_t begin, int64_t end) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = begin; i < end; ++i) {
    x[i] += alpha * p[i];
    const T ri = r[i] - alpha * q[i];
    r[i] = ri;
    sum += static_cast<double>(ri) * static_cast<double>(ri);
  }
  return sum;
}

template <typename T>
void direction_block(T* __restrict p, const T* __restrict r, T beta, int64_t begin, int64_t end) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) p[i] = r[i] + beta * p[i];
}

// Passes 2 and 3 (after the product); returns rr' or NaN on a non-positive curvature.
template <typename T>
double update(T* x, T* r, T* p, const T* q, int64_t n, double rr, double curvature, int64_t grain) {
  if (!(curvature > 0.0)) return std::numeric_limits<double>::quiet_NaN();
  const T alpha = static_cast<T>(rr / curvature);
  const Blocks blocks = row_blocks(n, 1, grain);
  const double rr_new = blockwise_sum(
      blocks, n, [&](int64_t begin, int64_t end) { return step_block(x, r, p, q, alpha, begin, end); });
  const T beta = static_cast<T>(rr > 0.0 ? rr_new / rr : 0.0);
  const auto direction = [&](int64_t first, int64_t last) {
    direction_block(p, r, beta, first * blocks.rows, std::min(n, last * blocks.rows));
  };
  if (blocks.count == 1) {
    direction(0, 1);
  } else {
    at::parallel_for(0, blocks.count, 1, direction);
  }
  return rr_new;
}

void check_vectors(const at::Tensor& x, const at::Tensor& r, const at::Tensor& p, const at::Tensor& q, int64_t n,
                   at::ScalarType dtype) {
  for (const at::Tensor* t : {&x, &r, &p, &q}) {
    TORCH_CHECK(t->device().is_cpu() && t->is_contiguous() && t->dim() == 1 && t->size(0) == n &&
                    t->scalar_type() == dtype,
                "cg: the fused kernel takes contiguous CPU vectors of ", n, " elements of the matrix's dtype ", dtype);
  }
}

// At most this many blocks over the triangle: each block keeps a row of n partial products (the scratch is
// count * n doubles, and the final sum reads count entries per row), so the count must not grow with n^2 / grain
// (a 30,000^2 matrix would have wanted 6,867 blocks and 1.6 GB of scratch). 64 keeps it below 64 n doubles,
// under 1/100 of A's size above n = 6,400, and still gives every thread of a 64-core machine a block.
constexpr int64_t kMaxTriangleBlocks = 64;

// Row bounds of blocks of about `grain` multiply-adds each (at most kMaxTriangleBlocks of them) over the upper
// triangle (row i holds n - i entries): block k ends where the rows above it hold k/count of the triangle.
// Depends on n and grain only, not on the number of threads.
std::vector<int64_t> triangle_blocks(int64_t n, int64_t grain) {
  const double total = 0.5 * static_cast<double>(n) * static_cast<double>(n + 1);
  const auto wanted = static_cast<int64_t>(std::ceil(total / static_cast<double>(std::max<int64_t>(1, grain))));
  const int64_t count = std::max<int64_t>(1, std::min({n, wanted, kMaxTriangleBlocks}));
  std::vector<int64_t> bounds{0};
  for (int64_t k = 1; k < count; ++k) {
    const auto bound = n - static_cast<int64_t>(std::llround(static_cast<double>(n) *
                                                             std::sqrt(1.0 - static_cast<double>(k) / count)));
    if (bound > bounds.back() && bound < n) bounds.push_back(bound);
  }
  bounds.push_back(n);
  return bounds;
}

// s[begin..n) = the contributions of rows [begin, end) of the upper triangle of a symmetric A to A p:
// each entry a_ij (j >= i) is read once and used twice, s_i += a_ij p_j and (j > i) s_j += a_ij p_i,
// four rows per pass (four dot products and one update of s[j] per element of p).
template <typename T>
void upper_rows(const T* a, const T* p, double* s, int64_t n, int64_t begin, int64_t end) {
  std::fill(s + begin, s + n, 0.0);
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const T *r0 = a + i * n, *r1 = r0 + n, *r2 = r1 + n, *r3 = r2 + n;
    const double p0 = p[i], p1 = p[i + 1], p2 = p[i + 2], p3 = p[i + 3];
    // the 4 x 4 block on the diagonal (upper half): rows i..i+3, columns i..i+3
    double d0 = r0[i] * p0 + r0[i + 1] * p1 + r0[i + 2] * p2 + r0[i + 3] * p3;
    double d1 = r0[i + 1] * p0 + r1[i + 1] * p1 + r1[i + 2] * p2 + r1[i + 3] * p3;
    double d2 = r0[i + 2] * p0 + r1[i + 2] * p1 + r2[i + 2] * p2 + r2[i + 3] * p3;
    double d3 = r0[i + 3] * p0 + r1[i + 3] * p1 + r2[i + 3] * p2 + r3[i + 3] * p3;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
    for (int64_t j = i + 4; j < n; ++j) {
      const double pj = p[j], v0 = r0[j], v1 = r1[j], v2 = r2[j], v3 = r3[j];
      d0 += v0 * pj;
      d1 += v1 * pj;
      d2 += v2 * pj;
      d3 += v3 * pj;
      s[j] += v0 * p0 + v1 * p1 + v2 * p2 + v3 * p3;
    }
    s[i] += d0;
    s[i + 1] += d1;
    s[i + 2] += d2;
    s[i + 3] += d3;
  }
  for (; i < end; ++i) {
    const T* row = a + i * n;
    const double pi = p[i];
    double d = static_cast<double>(row[i]) * pi;
#pragma omp simd reduction(+ : d)
    for (int64_t j = i + 1; j < n; ++j) {
      const double v = row[j];
      d += v * static_cast<double>(p[j]);
      s[j] += v * pi;
    }
    s[i] += d;
  }
}

std::tuple<double, double> cg_dense_step(const at::Tensor& A, at::Tensor& x, at::Tensor& r, at::Tensor& p,
                                         at::Tensor& q, double rr, int64_t grain) {
  TORCH_CHECK(A.device().is_cpu() && A.dim() == 2 && A.size(0) == A.size(1) && A.is_contiguous(),
              "cg: the fused kernel takes a contiguous square CPU matrix");
  const auto dtype = A.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "cg: the fused kernel handles float32 and float64, got ",
              dtype);
  const int64_t n = A.size(0);
  check_vectors(x, r, p, q, n, dtype);
  const std::vector<int64_t> bounds = triangle_blocks(n, grain);
  const auto count = static_cast<int64_t>(bounds.size()) - 1;
  // one row of partial products per block (block k writes entries bounds[k]..n), kept by the calling
  // thread between calls so an iteration allocates nothing
  thread_local std::vector<double> scratch;
  scratch.resize(static_cast<size_t>(std::max<int64_t>(1, count * n)));
  double* partial = scratch.data();
  double curvature = 0.0, rr_new = 0.0;
  gradhub::dispatch_floating(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* a = A.data_ptr<T>();
    T *xs = x.data_ptr<T>(), *rs = r.data_ptr<T>(), *ps = p.data_ptr<T>(), *qs = q.data_ptr<T>();
    const auto rows = [&](int64_t first, int64_t last) {
      for (int64_t k = first; k < last; ++k) upper_rows(a, ps, partial + k * n, n, bounds[k], bounds[k + 1]);
    };
    if (count == 1) {
      rows(0, 1);
    } else {
      at::parallel_for(0, count, 1, rows);
    }
    // q_i = the blocks' partials in block order (block k holds entries bounds[k]..n), and p^T q beside it
    curvature = blockwise_sum(row_blocks(n, count, grain), n, [&](int64_t begin, int64_t end) {
      double sum = 0.0;
      for (int64_t i = begin; i < end; ++i) {
        double acc = 0.0;
        for (int64_t k = 0; k < count && bounds[k] <= i; ++k) acc += partial[k * n + i];
        const T product = static_cast<T>(acc);
        qs[i] = product;
        sum += static_cast<double>(ps[i]) * static_cast<double>(product);
      }
      return sum;
    });
    rr_new = update(xs, rs, ps, qs, n, rr, curvature, grain);
  });
  return {curvature, rr_new};
}

template <typename T, typename I>
double csr_product(const I* crow, const I* col, const T* values, const T* p, T* q, int64_t n, int64_t grain) {
  const int64_t nnz = static_cast<int64_t>(crow[n]);
  const Blocks blocks = row_blocks(n, n == 0 ? 1 : std::max<int64_t>(1, nnz / n), grain);
  return blockwise_sum(blocks, n, [&](int64_t begin, int64_t end) {
    double sum = 0.0;
    int64_t k = static_cast<int64_t>(crow[begin]);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t row_end = static_cast<int64_t>(crow[i + 1]);
      double acc = 0.0;
      for (; k < row_end; ++k) acc += static_cast<double>(values[k]) * static_cast<double>(p[col[k]]);
      const T product = static_cast<T>(acc);
      q[i] = product;
      sum += static_cast<double>(p[i]) * static_cast<double>(product);
    }
    return sum;
  });
}

std::tuple<double, double> cg_csr_step(const at::Tensor& crow, const at::Tensor& col, const at::Tensor& values,
                                       at::Tensor& x, at::Tensor& r, at::Tensor& p, at::Tensor& q, double rr,
                                       int64_t grain) {
  const auto dtype = values.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "cg: the fused kernel handles float32 and float64, got ",
              dtype);
  TORCH_CHECK(crow.scalar_type() == col.scalar_type() &&
                  (crow.scalar_type() == at::kInt || crow.scalar_type() == at::kLong),
              "cg: the fused kernel takes int32 or int64 CSR indices");
  TORCH_CHECK(crow.is_contiguous() && col.is_contiguous() && values.is_contiguous() && crow.dim() == 1,
              "cg: the fused kernel takes contiguous CSR arrays");
  const int64_t n = crow.size(0) - 1;
  check_vectors(x, r, p, q, n, dtype);
  double curvature = 0.0, rr_new = 0.0;
  gradhub::dispatch_floating(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    T *xs = x.data_ptr<T>(), *rs = r.data_ptr<T>(), *ps = p.data_ptr<T>(), *qs = q.data_ptr<T>();
    const T* vs = values.data_ptr<T>();
    if (crow.scalar_type() == at::kInt) {
      curvature = csr_product(crow.data_ptr<int32_t>(), col.data_ptr<int32_t>(), vs, ps, qs, n, grain);
    } else {
      curvature = csr_product(crow.data_ptr<int64_t>(), col.data_ptr<int64_t>(), vs, ps, qs, n, grain);
    }
    rr_new = update(xs, rs, ps, qs, n, rr, curvature, grain);
  });
  return {curvature, rr_new};
}

}  // namespace

TORCH_LIBRARY(GRADHUB_LIBRARY, m) {
  m.def("cg_dense_step(Tensor A, Tensor(a!) x, Tensor(b!) r, Tensor(c!) p, Tensor(d!) q, float rr, int grain) "
        "-> (float, float)",
        &cg_dense_step);
  m.def("cg_csr_step(Tensor crow, Tensor col, Tensor values, Tensor(a!) x, Tensor(b!) r, Tensor(c!) p, "
        "Tensor(d!) q, float rr, int grain) -> (float, float)",
        &cg_csr_step);
}
