// Prototype: the forward of one TIM-Net temporal-aware block (TAB) branch as one
// TensorFlow CPU op (issue 16, item 3). Forward only; no gradient is registered.
//
//   z1 = [x(t - d), x(t)] @ w1 + b1                  causal dilated conv, kernel 2
//   h1 = relu(z1 * s1 + t1) * mask1                   BN (batch or moving stats), spatial dropout
//   z2 = [h1(t - d), h1(t)] @ w2 + b2
//   h2 = relu(z2 * s2 + t2) * mask2
//   y  = x * sigmoid(h2)
//
// with s = gamma / sqrt(var + eps), t = beta - mean * s. In training mode mean / var are
// the batch statistics over (batch, time) (biased variance, as tf.nn.moments) and are
// returned so that the caller can update the moving statistics; in inference mode the
// moving statistics are used, the masks are ignored, and the op returns them unchanged.
// relu(z * s + t) * m == relu(z * (s m) + t m) for m >= 0, so the mask rides on s, t.
//
// Layout: x (B, T, C) float32; w (2C, C) = the Keras kernel (2, C, C) flattened: rows
// 0..C-1 multiply the input delayed by `dilation` frames, rows C..2C-1 the input itself.
// gamma, beta, mean, variance, bias: (C,); masks (B, C).
//
// Work is split over the batch (one utterance's (T, C) slab stays in L1/L2 through both
// convolutions). The matmul is a register-blocked AVX-512 loop: 8 rows x 48 columns of
// accumulators (C <= 48), the weights padded to 48 columns; a plain loop otherwise.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/util/work_sharder.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

using namespace tensorflow;  // NOLINT

REGISTER_OP("FusedTabForward")
    .Input("x: float")
    .Input("w1: float")
    .Input("b1: float")
    .Input("gamma1: float")
    .Input("beta1: float")
    .Input("mean1: float")
    .Input("var1: float")
    .Input("mask1: float")
    .Input("w2: float")
    .Input("b2: float")
    .Input("gamma2: float")
    .Input("beta2: float")
    .Input("mean2: float")
    .Input("var2: float")
    .Input("mask2: float")
    .Output("y: float")
    .Output("batch_mean1: float")
    .Output("batch_var1: float")
    .Output("batch_mean2: float")
    .Output("batch_var2: float")
    .Attr("dilation: int >= 1")
    .Attr("epsilon: float = 0.001")
    .Attr("training: bool = true")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      shape_inference::DimensionHandle ch = c->Dim(c->input(0), 2);
      for (int i = 1; i <= 4; ++i) c->set_output(i, c->Vector(ch));
      return OkStatus();
    });

namespace {

constexpr int kPad = 48;  // padded channel count (3 AVX-512 vectors)
constexpr int kRows = 8;  // rows per register block

// Weights (2C, C) -> (2C, kPad), zero padded; bias -> kPad.
struct PackedConv {
  std::vector<float> w;
  float b[kPad];
  PackedConv(const float* src_w, const float* src_b, int c) : w(2 * c * kPad, 0.f) {
    for (int k = 0; k < 2 * c; ++k) std::memcpy(&w[k * kPad], src_w + k * c, c * sizeof(float));
    std::fill(b, b + kPad, 0.f);
    std::memcpy(b, src_b, c * sizeof(float));
  }
};

#ifdef __AVX512F__
// z[t, :] = [in(t - d), in(t)] @ w + b for rows t0 .. t0 + R - 1 of one slab (T, C);
// adds the rows' sums and sums of squares to sum / sq (kPad each).
template <int R>
inline void ConvRows(const float* in, int t0, int d, int c, const PackedConv& p, const float* zero_row,
                     float* z, float* sum, float* sq) {
  __m512 acc[R][3];
  const __m512 b0 = _mm512_loadu_ps(p.b), b1 = _mm512_loadu_ps(p.b + 16), b2 = _mm512_loadu_ps(p.b + 32);
  const float* cur[R];
  const float* del[R];
  for (int r = 0; r < R; ++r) {
    acc[r][0] = b0; acc[r][1] = b1; acc[r][2] = b2;
    const int t = t0 + r;
    cur[r] = in + static_cast<int64_t>(t) * c;
    del[r] = t >= d ? in + static_cast<int64_t>(t - d) * c : zero_row;
  }
  const float* w = p.w.data();
  for (int k = 0; k < c; ++k, w += kPad) {
    const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16), w2 = _mm512_loadu_ps(w + 32);
    for (int r = 0; r < R; ++r) {
      const __m512 v = _mm512_set1_ps(del[r][k]);
      acc[r][0] = _mm512_fmadd_ps(v, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(v, w1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(v, w2, acc[r][2]);
    }
  }
  for (int k = 0; k < c; ++k, w += kPad) {
    const __m512 w0 = _mm512_loadu_ps(w), w1 = _mm512_loadu_ps(w + 16), w2 = _mm512_loadu_ps(w + 32);
    for (int r = 0; r < R; ++r) {
      const __m512 v = _mm512_set1_ps(cur[r][k]);
      acc[r][0] = _mm512_fmadd_ps(v, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(v, w1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(v, w2, acc[r][2]);
    }
  }
  const __mmask16 last = static_cast<__mmask16>((1u << (c - 32)) - 1u);
  __m512 s0 = _mm512_loadu_ps(sum), s1 = _mm512_loadu_ps(sum + 16), s2 = _mm512_loadu_ps(sum + 32);
  __m512 q0 = _mm512_loadu_ps(sq), q1 = _mm512_loadu_ps(sq + 16), q2 = _mm512_loadu_ps(sq + 32);
  for (int r = 0; r < R; ++r) {
    float* out = z + static_cast<int64_t>(t0 + r) * c;
    _mm512_storeu_ps(out, acc[r][0]);
    _mm512_storeu_ps(out + 16, acc[r][1]);
    _mm512_mask_storeu_ps(out + 32, last, acc[r][2]);
    s0 = _mm512_add_ps(s0, acc[r][0]); q0 = _mm512_fmadd_ps(acc[r][0], acc[r][0], q0);
    s1 = _mm512_add_ps(s1, acc[r][1]); q1 = _mm512_fmadd_ps(acc[r][1], acc[r][1], q1);
    s2 = _mm512_add_ps(s2, acc[r][2]); q2 = _mm512_fmadd_ps(acc[r][2], acc[r][2], q2);
  }
  _mm512_storeu_ps(sum, s0); _mm512_storeu_ps(sum + 16, s1); _mm512_storeu_ps(sum + 32, s2);
  _mm512_storeu_ps(sq, q0); _mm512_storeu_ps(sq + 16, q1); _mm512_storeu_ps(sq + 32, q2);
}

// exp(x) for x <= 0 (x >= -87.3): 2^n * p(r), r = x - n ln2, |r| <= ln2 / 2, degree-6 Taylor.
inline __m512 ExpNonPositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}
#endif

// Plain fallback for any C (and CPUs without AVX-512).
inline void ConvRowsScalar(const float* in, int t0, int rows, int d, int c, const PackedConv& p,
                           float* z, float* sum, float* sq) {
  for (int t = t0; t < t0 + rows; ++t) {
    float* out = z + static_cast<int64_t>(t) * c;
    for (int j = 0; j < c; ++j) out[j] = p.b[j];
    if (t >= d) {
      const float* del = in + static_cast<int64_t>(t - d) * c;
      for (int k = 0; k < c; ++k)
        for (int j = 0; j < c; ++j) out[j] += del[k] * p.w[k * kPad + j];
    }
    const float* cur = in + static_cast<int64_t>(t) * c;
    for (int k = 0; k < c; ++k)
      for (int j = 0; j < c; ++j) out[j] += cur[k] * p.w[(c + k) * kPad + j];
    for (int j = 0; j < c; ++j) { sum[j] += out[j]; sq[j] += out[j] * out[j]; }
  }
}

// Convolution of one slab (T, C) into z (T, C); per-channel sum / sum of squares.
void ConvSlab(const float* in, int T, int d, int c, const PackedConv& p, const float* zero_row, float* z,
              float* sum, float* sq) {
  std::fill(sum, sum + kPad, 0.f);
  std::fill(sq, sq + kPad, 0.f);
#ifdef __AVX512F__
  if (c > 32 && c <= kPad) {
    int t = 0;
    for (; t + kRows <= T; t += kRows) ConvRows<kRows>(in, t, d, c, p, zero_row, z, sum, sq);
    switch (T - t) {
      case 7: ConvRows<7>(in, t, d, c, p, zero_row, z, sum, sq); break;
      case 6: ConvRows<6>(in, t, d, c, p, zero_row, z, sum, sq); break;
      case 5: ConvRows<5>(in, t, d, c, p, zero_row, z, sum, sq); break;
      case 4: ConvRows<4>(in, t, d, c, p, zero_row, z, sum, sq); break;
      case 3: ConvRows<3>(in, t, d, c, p, zero_row, z, sum, sq); break;
      case 2: ConvRows<2>(in, t, d, c, p, zero_row, z, sum, sq); break;
      case 1: ConvRows<1>(in, t, d, c, p, zero_row, z, sum, sq); break;
      default: break;
    }
    return;
  }
#endif
  ConvRowsScalar(in, 0, T, d, c, p, z, sum, sq);
}

// In place: z <- relu(z * a + s), a and s per channel (kPad).
void AffineRelu(float* z, int T, int c, const float* a, const float* s) {
#ifdef __AVX512F__
  if (c > 32 && c <= kPad) {
    const __mmask16 last = static_cast<__mmask16>((1u << (c - 32)) - 1u);
    const __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + 16), a2 = _mm512_loadu_ps(a + 32);
    const __m512 s0 = _mm512_loadu_ps(s), s1 = _mm512_loadu_ps(s + 16), s2 = _mm512_loadu_ps(s + 32);
    const __m512 zero = _mm512_setzero_ps();
    for (int t = 0; t < T; ++t) {
      float* row = z + static_cast<int64_t>(t) * c;
      _mm512_storeu_ps(row, _mm512_max_ps(_mm512_fmadd_ps(_mm512_loadu_ps(row), a0, s0), zero));
      _mm512_storeu_ps(row + 16, _mm512_max_ps(_mm512_fmadd_ps(_mm512_loadu_ps(row + 16), a1, s1), zero));
      _mm512_mask_storeu_ps(
          row + 32, last,
          _mm512_max_ps(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(last, row + 32), a2, s2), zero));
    }
    return;
  }
#endif
  for (int64_t i = 0; i < static_cast<int64_t>(T) * c; ++i) z[i] = std::max(z[i] * a[i % c] + s[i % c], 0.f);
}

// y = x * sigmoid(relu(z * a + s)).
void Gate(const float* x, const float* z, int T, int c, const float* a, const float* s, float* y) {
#ifdef __AVX512F__
  if (c > 32 && c <= kPad) {
    const __mmask16 full = 0xFFFF;
    const __mmask16 last = static_cast<__mmask16>((1u << (c - 32)) - 1u);
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    for (int t = 0; t < T; ++t) {
      const int64_t o = static_cast<int64_t>(t) * c;
      for (int v = 0; v < 3; ++v) {
        const __mmask16 m = v == 2 ? last : full;
        const __m512 h = _mm512_max_ps(
            _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, z + o + 16 * v), _mm512_loadu_ps(a + 16 * v),
                            _mm512_loadu_ps(s + 16 * v)),
            zero);
        const __m512 g = _mm512_div_ps(one, _mm512_add_ps(one, ExpNonPositive(_mm512_sub_ps(zero, h))));
        _mm512_mask_storeu_ps(y + o + 16 * v, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + o + 16 * v), g));
      }
    }
    return;
  }
#endif
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < c; ++j) {
      const int64_t i = static_cast<int64_t>(t) * c + j;
      const float h = std::max(z[i] * a[j] + s[j], 0.f);
      y[i] = x[i] / (1.f + std::exp(-h));
    }
}

class FusedTabForwardOp : public OpKernel {
 public:
  explicit FusedTabForwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("dilation", &dilation_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("training", &training_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    OP_REQUIRES(ctx, x_t.dims() == 3, errors::InvalidArgument("x must be (batch, time, channels)"));
    const int B = static_cast<int>(x_t.dim_size(0));
    const int T = static_cast<int>(x_t.dim_size(1));
    const int C = static_cast<int>(x_t.dim_size(2));
    OP_REQUIRES(ctx, C <= kPad, errors::InvalidArgument("prototype supports at most 48 channels"));
    for (int i : {1, 8}) {
      OP_REQUIRES(ctx, ctx->input(i).NumElements() == 2 * C * C,
                  errors::InvalidArgument("kernel must be (2C, C)"));
    }
    for (int i : {2, 3, 4, 5, 6, 9, 10, 11, 12, 13}) {
      OP_REQUIRES(ctx, ctx->input(i).NumElements() == C, errors::InvalidArgument("vector must be (C,)"));
    }
    if (training_) {
      for (int i : {7, 14}) {
        OP_REQUIRES(ctx, ctx->input(i).NumElements() == static_cast<int64_t>(B) * C,
                    errors::InvalidArgument("mask must be (batch, C)"));
      }
    }
    auto vec = [&](int i) { return ctx->input(i).flat<float>().data(); };
    const float* x = vec(0);
    const PackedConv conv1(vec(1), vec(2), C), conv2(vec(8), vec(9), C);

    Tensor* y_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x_t.shape(), &y_t));
    float* y = y_t->flat<float>().data();
    Tensor* stat_t[4];
    for (int i = 0; i < 4; ++i) OP_REQUIRES_OK(ctx, ctx->allocate_output(1 + i, TensorShape({C}), &stat_t[i]));

    Tensor z1_t, z2_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_FLOAT, x_t.shape(), &z1_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_FLOAT, x_t.shape(), &z2_t));
    float* z1 = z1_t.flat<float>().data();
    float* z2 = z2_t.flat<float>().data();
    const int64_t slab = static_cast<int64_t>(T) * C;
    const float zero_row[kPad] = {0.f};
    std::vector<float> sums(static_cast<size_t>(B) * kPad), sqs(static_cast<size_t>(B) * kPad);
    // Per-utterance folded factors a = s * mask, s' = t * mask for both stages.
    std::vector<float> a1(static_cast<size_t>(B) * kPad, 0.f), s1(a1), a2(a1), s2(a1);

    auto workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    const int64_t cost = slab * 4 * C;  // ~flops per utterance and conv

    // Per-channel (scale, shift) from statistics; fills a[b], s[b] (mask folded in training).
    auto fold = [&](const float* gamma, const float* beta, const float* mean, const float* var,
                     const float* mask, std::vector<float>& a, std::vector<float>& s) {
      for (int j = 0; j < C; ++j) {
        const float scale = gamma[j] / std::sqrt(var[j] + epsilon_);
        const float shift = beta[j] - mean[j] * scale;
        for (int b = 0; b < B; ++b) {
          const float m = training_ ? mask[static_cast<int64_t>(b) * C + j] : 1.f;
          a[b * kPad + j] = scale * m;
          s[b * kPad + j] = shift * m;
        }
      }
    };
    // Batch statistics from the per-utterance sums (double for the reduction).
    auto stats = [&](float* mean, float* var) {
      const double n = static_cast<double>(B) * T;
      for (int j = 0; j < C; ++j) {
        double s = 0, q = 0;
        for (int b = 0; b < B; ++b) { s += sums[b * kPad + j]; q += sqs[b * kPad + j]; }
        const double m = s / n;
        mean[j] = static_cast<float>(m);
        var[j] = static_cast<float>(std::max(q / n - m * m, 0.0));
      }
    };
    float* mean1 = stat_t[0]->flat<float>().data();
    float* var1 = stat_t[1]->flat<float>().data();
    float* mean2 = stat_t[2]->flat<float>().data();
    float* var2 = stat_t[3]->flat<float>().data();
    const int d = dilation_;

    if (!training_) {
      std::copy(vec(5), vec(5) + C, mean1); std::copy(vec(6), vec(6) + C, var1);
      std::copy(vec(12), vec(12) + C, mean2); std::copy(vec(13), vec(13) + C, var2);
      fold(vec(3), vec(4), mean1, var1, nullptr, a1, s1);
      fold(vec(10), vec(11), mean2, var2, nullptr, a2, s2);
      // One pass per utterance: conv1 -> BN/relu -> conv2 -> gate.
      Shard(workers->NumThreads(), workers, B, 2 * cost, [&](int64_t lo, int64_t hi) {
        float sum[kPad], sq[kPad];
        for (int64_t b = lo; b < hi; ++b) {
          ConvSlab(x + b * slab, T, d, C, conv1, zero_row, z1 + b * slab, sum, sq);
          AffineRelu(z1 + b * slab, T, C, &a1[0], &s1[0]);
          ConvSlab(z1 + b * slab, T, d, C, conv2, zero_row, z2 + b * slab, sum, sq);
          Gate(x + b * slab, z2 + b * slab, T, C, &a2[0], &s2[0], y + b * slab);
        }
      });
      return;
    }
    // Training: the batch statistics of each conv separate three passes.
    Shard(workers->NumThreads(), workers, B, cost, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b)
        ConvSlab(x + b * slab, T, d, C, conv1, zero_row, z1 + b * slab, &sums[b * kPad], &sqs[b * kPad]);
    });
    stats(mean1, var1);
    fold(vec(3), vec(4), mean1, var1, vec(7), a1, s1);
    Shard(workers->NumThreads(), workers, B, cost, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b) {
        AffineRelu(z1 + b * slab, T, C, &a1[b * kPad], &s1[b * kPad]);
        ConvSlab(z1 + b * slab, T, d, C, conv2, zero_row, z2 + b * slab, &sums[b * kPad], &sqs[b * kPad]);
      }
    });
    stats(mean2, var2);
    fold(vec(10), vec(11), mean2, var2, vec(14), a2, s2);
    Shard(workers->NumThreads(), workers, B, slab * 20, [&](int64_t lo, int64_t hi) {
      for (int64_t b = lo; b < hi; ++b)
        Gate(x + b * slab, z2 + b * slab, T, C, &a2[b * kPad], &s2[b * kPad], y + b * slab);
    });
  }

 private:
  int dilation_;
  float epsilon_;
  bool training_;
};

REGISTER_KERNEL_BUILDER(Name("FusedTabForward").Device(DEVICE_CPU), FusedTabForwardOp);

}  // namespace
