// SIMD kernel bodies for fastcpu.cc. Not a normal header: fastcpu.cc
// includes it several times, each time inside its own namespace and
// `#pragma GCC target` region, after defining
//   FC_W         lanes per vector (16 = AVX-512, 8 = AVX2, 4 = generic)
//   FC_FMA(a,b,c) a*b+c for vectors (fused where the target has FMA)
//   FC_HSUM(v), FC_HMAX(v) (optional) horizontal sum / max of a vector
// It uses only GCC vector extensions plus FC_FMA, so the same source is the
// AVX-512, AVX2+FMA and portable (SSE2 / NEON) variant.
//
// Every kernel reads and writes f32, row-major, contiguous memory; input and
// output may be the same buffer (each element is read before it is written).

typedef float V __attribute__((vector_size(FC_W * 4)));
typedef int32_t VI __attribute__((vector_size(FC_W * 4)));

static inline V ld(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
static inline void st(float* p, V v) { __builtin_memcpy(p, &v, sizeof v); }
static inline V splat(float x) { return V{} + x; }
static inline V vfma(V a, V b, V c) { return FC_FMA(a, b, c); }

// NaN-propagating clamp of the exp argument: comparisons with NaN are false,
// so NaN passes through.
static inline V vexp(V x) {
  const V lo = splat(-104.0f), hi = splat(89.0f);
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  // n = round(x / ln 2) via the 1.5*2^23 trick: the sum's low mantissa bits
  // hold n exactly (|n| <= 151 < 2^22).
  const V magic = splat(12582912.0f);
  V t = vfma(x, splat(1.44269504088896341f), magic);
  V n = t - magic;
  VI ni = (VI)t - (VI)magic;
  // Cody-Waite: r = x - n*ln2 with ln2 = hi + lo, hi exact in 9 bits so n*hi
  // is exact even without FMA. |r| <= ~0.3466.
  V r = vfma(n, splat(-0.693359375f), x);
  r = vfma(n, splat(2.12194440e-4f), r);
  // exp(r) by its Taylor polynomial of degree 7: truncation error
  // <= 0.3466^8/8! * e^0.35 ~= 3.2e-9 relative, far below f32 rounding.
  V p = splat(1.0f / 5040.0f);
  p = vfma(p, r, splat(1.0f / 720.0f));
  p = vfma(p, r, splat(1.0f / 120.0f));
  p = vfma(p, r, splat(1.0f / 24.0f));
  p = vfma(p, r, splat(1.0f / 6.0f));
  p = vfma(p, r, splat(0.5f));
  p = vfma(p, r, splat(1.0f));
  p = vfma(p, r, splat(1.0f));
  // Scale by 2^n as 2^n1 * 2^n2 (n1 = n>>1, n2 = n-n1, both in [-76, 64]):
  // each factor is a normal float, so results that overflow become +inf and
  // results below FLT_MIN become correctly scaled subnormals or 0.
  VI n1 = ni >> 1;
  VI n2 = ni - n1;
  V s1 = (V)((n1 + 127) << 23);
  V s2 = (V)((n2 + 127) << 23);
  return p * s1 * s2;
}

static inline V vsigmoid(V x) { return splat(1.0f) / (splat(1.0f) + vexp(-x)); }

// Horizontal reductions: FC_HSUM / FC_HMAX when the variant defines them
// (shuffle trees from intrinsics), else a scalar loop.
static inline float hsum(V v) {
#ifdef FC_HSUM
  return FC_HSUM(v);
#else
  float s = 0;
  for (int i = 0; i < FC_W; i++) s += v[i];
  return s;
#endif
}
static inline float hmax(V v) {
#ifdef FC_HMAX
  return FC_HMAX(v);
#else
  float m = v[0];
  for (int i = 1; i < FC_W; i++) m = v[i] > m ? v[i] : m;
  return m;
#endif
}

// Elementwise drivers: whole vectors, then the tail through a padded buffer.
template <class F>
static inline void map1(const float* x, float* y, size_t n, F f) {
  size_t i = 0;
  for (; i + 2 * FC_W <= n; i += 2 * FC_W) {
    V a = f(ld(x + i)), b = f(ld(x + i + FC_W));
    st(y + i, a);
    st(y + i + FC_W, b);
  }
  for (; i + FC_W <= n; i += FC_W) st(y + i, f(ld(x + i)));
  if (i < n) {
    float buf[FC_W] = {};
    __builtin_memcpy(buf, x + i, (n - i) * 4);
    st(buf, f(ld(buf)));
    __builtin_memcpy(y + i, buf, (n - i) * 4);
  }
}

template <class F>
static inline void map2(const float* a, const float* b, float* y, size_t n, F f) {
  size_t i = 0;
  for (; i + 2 * FC_W <= n; i += 2 * FC_W) {
    V u = f(ld(a + i), ld(b + i)), v = f(ld(a + i + FC_W), ld(b + i + FC_W));
    st(y + i, u);
    st(y + i + FC_W, v);
  }
  for (; i + FC_W <= n; i += FC_W) st(y + i, f(ld(a + i), ld(b + i)));
  if (i < n) {
    float ba[FC_W] = {}, bb[FC_W] = {};
    __builtin_memcpy(ba, a + i, (n - i) * 4);
    __builtin_memcpy(bb, b + i, (n - i) * 4);
    st(ba, f(ld(ba), ld(bb)));
    __builtin_memcpy(y + i, ba, (n - i) * 4);
  }
}

// Functors rather than lambdas: member functions defined in the including
// `#pragma GCC target` region get its target; lambdas' invokers may not.
struct FExp {
  V operator()(V v) const { return vexp(v); }
};
struct FSigmoid {
  V operator()(V v) const { return vsigmoid(v); }
};
struct FSigmoidMul {  // a * sigmoid(g)
  V operator()(V a, V g) const { return a / (splat(1.0f) + vexp(-g)); }
};
struct FSiluMul {  // silu(a) * b = a * b * sigmoid(a)
  V operator()(V a, V b) const { return (a * b) / (splat(1.0f) + vexp(-a)); }
};
struct FScale {
  V s;
  V operator()(V v) const { return v * s; }
};

static void k_exp(const float* x, float* y, size_t n) { map1(x, y, n, FExp{}); }
static void k_sigmoid(const float* x, float* y, size_t n) { map1(x, y, n, FSigmoid{}); }
static void k_sigmoid_mul(const float* a, const float* g, float* y, size_t n) {
  map2(a, g, y, n, FSigmoidMul{});
}
static void k_silu_mul(const float* a, const float* b, float* y, size_t n) {
  map2(a, b, y, n, FSiluMul{});
}

// rows of [a | b] (2h wide) -> rows of silu(a) * b (h wide)
static void k_swiglu_rows(const float* x, float* y, size_t rows, size_t h) {
  for (size_t r = 0; r < rows; r++) k_silu_mul(x + r * 2 * h, x + r * 2 * h + h, y + r * h, h);
}

// Numerically stable softmax of each row: exp(x - max) / sum, f32 sums.
static void k_softmax_rows(const float* x, float* y, size_t rows, size_t n) {
  const float ninf = -__builtin_inff();
  for (size_t r = 0; r < rows; r++, x += n, y += n) {
    size_t i = 0;
    V vm = splat(ninf);
    for (; i + FC_W <= n; i += FC_W) {
      V v = ld(x + i);
      vm = v > vm ? v : vm;
    }
    float m = hmax(vm);
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    V mv = splat(m), vs = splat(0.0f);
    i = 0;
    for (; i + FC_W <= n; i += FC_W) {
      V e = vexp(ld(x + i) - mv);
      st(y + i, e);
      vs += e;
    }
    if (i < n) {
      float buf[FC_W];
      for (int j = 0; j < FC_W; j++) buf[j] = ninf;
      __builtin_memcpy(buf, x + i, (n - i) * 4);
      V e = vexp(ld(buf) - mv);
      // lanes past n hold exp(-inf - m) = 0 unless m is +-inf or NaN, in
      // which case the row's sum is NaN/inf anyway; mask them explicitly.
      for (size_t j = n - i; j < (size_t)FC_W; j++) e[j] = 0;
      st(buf, e);
      vs += e;
      __builtin_memcpy(y + i, buf, (n - i) * 4);
    }
    map1(y, y, n, FScale{splat(1.0f / hsum(vs))});
  }
}

// One row of softmax(scale*x + b_0 + ... + b_{nb-1}): b[j] points at bias
// j's values for this row, read as a per-row scalar when sc[j] is set. Each
// bias value below -1e9 (so -inf) is read as -1e9; NaN passes through. The
// sum is formed in bias order in f32 into y, then y is softmaxed in place.
static inline V clamp_bias(V v) {
  const V lo = splat(-1e9f);
  return v < lo ? lo : v;
}
static inline float clamp_bias1(float v) { return v < -1e9f ? -1e9f : v; }

static void k_softmax_bias_row(const float* x, float* y, size_t n, float scale,
                               const float* const* b, const unsigned char* sc, int nb) {
  const V sv = splat(scale);
  size_t i = 0;
  for (; i + FC_W <= n; i += FC_W) {
    V v = ld(x + i) * sv;
    for (int j = 0; j < nb; j++) v = v + clamp_bias(sc[j] ? splat(b[j][0]) : ld(b[j] + i));
    st(y + i, v);
  }
  for (; i < n; i++) {
    float v = x[i] * scale;
    for (int j = 0; j < nb; j++) v = v + clamp_bias1(sc[j] ? b[j][0] : b[j][i]);
    y[i] = v;
  }
  k_softmax_rows(y, y, 1, n);
}

// LayerNorm of each row: (x - mean) / sqrt(var + eps) * w + b, two-pass
// mean/variance in f32. w and b may be null.
template <bool HW, bool HB>
static void ln_rows(const float* x, const float* w, const float* b, float* y,
                    size_t rows, size_t n, float eps) {
  for (size_t r = 0; r < rows; r++, x += n, y += n) {
    size_t i = 0;
    V vs = splat(0.0f);
    for (; i + FC_W <= n; i += FC_W) vs += ld(x + i);
    float s = hsum(vs);
    for (; i < n; i++) s += x[i];
    float mean = s / (float)n;
    V mv = splat(mean);
    vs = splat(0.0f);
    i = 0;
    for (; i + FC_W <= n; i += FC_W) {
      V d = ld(x + i) - mv;
      vs = vfma(d, d, vs);
    }
    float q = hsum(vs);
    for (; i < n; i++) q += (x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / __builtin_sqrtf(q / (float)n + eps);
    V rv = splat(rstd);
    i = 0;
    for (; i + FC_W <= n; i += FC_W) {
      V v = (ld(x + i) - mv) * rv;
      if (HW) v = v * ld(w + i);
      if (HB) v = v + ld(b + i);
      st(y + i, v);
    }
    for (; i < n; i++) {
      float v = (x[i] - mean) * rstd;
      if (HW) v *= w[i];
      if (HB) v += b[i];
      y[i] = v;
    }
  }
}

static void k_layernorm_rows(const float* x, const float* w, const float* b, float* y,
                             size_t rows, size_t n, float eps) {
  if (w && b) ln_rows<true, true>(x, w, b, y, rows, n, eps);
  else if (w) ln_rows<true, false>(x, w, b, y, rows, n, eps);
  else if (b) ln_rows<false, true>(x, w, b, y, rows, n, eps);
  else ln_rows<false, false>(x, w, b, y, rows, n, eps);
}


// ---- small GEMM for the fused attention (FastAttention) ----
//
// c[i, :] = sum_p a[i, p] * b[p, :] for i < m over np columns, where np is
// a multiple of FC_W: b is packed row-major with row stride ldb >= np (the
// caller zero-pads columns past the real width), c has row stride ldc >= np
// and every column < np of the m rows is written (no read of c, so no beta
// pass). a is read in place through strides (ars, acs): one broadcast per
// element, so it may be any strided view. The accumulation over p is in
// order, one FMA per term, in f32.
//
// Register blocking: FC_MR rows x 2 vectors of accumulators (16 zmm with
// AVX-512; 12 ymm/xmm for the 16-register variants); rows past m in the last
// block recompute row m-1 and are not stored.
#if FC_W == 16
#define FC_MR 8
#else
#define FC_MR 6
#endif

template <int NV>
static inline void gemm_block(size_t kd, const float* const* ar, ptrdiff_t acs, const float* b,
                              size_t ldb, float* c, size_t ldc, size_t rows) {
  V acc[FC_MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < FC_MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = splat(0.0f);
  for (size_t p = 0; p < kd; p++) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) bv[v] = ld(b + p * ldb + v * FC_W);
#pragma GCC unroll 16
    for (int r = 0; r < FC_MR; r++) {
      V av = splat(ar[r][(ptrdiff_t)p * acs]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = vfma(av, bv[v], acc[r][v]);
    }
  }
  // Unrolled with a guard so acc stays in registers (a loop to a run-time
  // bound would index it dynamically).
#pragma GCC unroll 16
  for (int r = 0; r < FC_MR; r++)
    if ((size_t)r < rows)
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) st(c + r * ldc + v * FC_W, acc[r][v]);
}

static void k_gemm(size_t m, size_t np, size_t kd, const float* a, ptrdiff_t ars, ptrdiff_t acs,
                   const float* b, size_t ldb, float* c, size_t ldc) {
  for (size_t i0 = 0; i0 < m; i0 += FC_MR) {
    size_t rows = m - i0 < (size_t)FC_MR ? m - i0 : (size_t)FC_MR;
    const float* ar[FC_MR];
    for (int r = 0; r < FC_MR; r++)
      ar[r] = a + (ptrdiff_t)(i0 + ((size_t)r < rows ? (size_t)r : rows - 1)) * ars;
    float* cr = c + i0 * ldc;
    size_t j = 0;
    for (; j + 2 * FC_W <= np; j += 2 * FC_W) gemm_block<2>(kd, ar, acs, b + j, ldb, cr + j, ldc, rows);
    if (j < np) gemm_block<1>(kd, ar, acs, b + j, ldb, cr + j, ldc, rows);
  }
}
#undef FC_MR

static const Kernels kTable = {
    k_exp, k_sigmoid, k_sigmoid_mul, k_silu_mul, k_swiglu_rows, k_softmax_rows, k_layernorm_rows,
    k_softmax_bias_row, k_gemm, FC_W,
};
