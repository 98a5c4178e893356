//go:build cgo && !nomlx

#include "shim.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include <sys/sysinfo.h>

#include "mlx_required.h"
#include "cuda_io.h"
#include "gpu_kernels.h"

namespace mx = mlx::core;

// Implemented in Go (closure.go). Returns 0 on success; on failure *err is a
// malloc'ed message that the caller frees.
extern "C" int mlxsGoClosureCall(uintptr_t token, mlxs_array* in, int nin,
                                 mlxs_array** outs, int* nout, char** err);

namespace {

thread_local std::string g_err;

using Fn = std::function<std::vector<mx::array>(const std::vector<mx::array>&)>;

struct Function {
  Fn f;
};

struct Safetensors {
  std::vector<std::pair<std::string, mx::array>> arrays;
  std::vector<std::pair<std::string, std::string>> meta;
};

// Tokens of Go closures MLX no longer references; drained by Go. MLX may drop
// a copy from any thread (e.g. at exit), so this is guarded and never calls Go.
std::mutex g_dead_mu;
std::vector<uintptr_t> g_dead;

struct TokenGuard {
  uintptr_t token;
  ~TokenGuard() {
    std::lock_guard<std::mutex> l(g_dead_mu);
    g_dead.push_back(token);
  }
};

mx::array& A(mlxs_array h) {
  if (h.ctx == nullptr) throw std::invalid_argument("null array handle");
  return *static_cast<mx::array*>(h.ctx);
}

Function& F(mlxs_function h) {
  if (h.ctx == nullptr) throw std::invalid_argument("null function handle");
  return *static_cast<Function*>(h.ctx);
}

void put(mlxs_array* out, mx::array a) { out->ctx = new mx::array(std::move(a)); }

mx::Dtype to_dtype(int d) {
  using V = mx::Dtype::Val;
  switch (static_cast<V>(d)) {
    case V::bool_: return mx::bool_;
    case V::uint8: return mx::uint8;
    case V::uint16: return mx::uint16;
    case V::uint32: return mx::uint32;
    case V::uint64: return mx::uint64;
    case V::int8: return mx::int8;
    case V::int16: return mx::int16;
    case V::int32: return mx::int32;
    case V::int64: return mx::int64;
    case V::float16: return mx::float16;
    case V::float32: return mx::float32;
    case V::float64: return mx::float64;
    case V::bfloat16: return mx::bfloat16;
    case V::complex64: return mx::complex64;
  }
  throw std::invalid_argument("unknown dtype " + std::to_string(d));
}

// MLX shapes are int32; reject what would silently wrap.
mx::Shape to_shape(const int64_t* s, int n, bool allow_neg_one = false) {
  if (n < 0 || n > 64) throw std::invalid_argument("bad rank " + std::to_string(n));
  mx::Shape out;
  out.reserve(n);
  for (int i = 0; i < n; i++) {
    if (s[i] > INT32_MAX || s[i] < (allow_neg_one ? -1 : 0))
      throw std::invalid_argument("bad dimension " + std::to_string(s[i]));
    out.push_back(static_cast<int32_t>(s[i]));
  }
  return out;
}

// Like to_shape but for slice bounds, which may be negative.
mx::Shape to_ints(const int64_t* s, int n) {
  if (n < 0 || n > 64) throw std::invalid_argument("bad rank " + std::to_string(n));
  mx::Shape out;
  out.reserve(n);
  for (int i = 0; i < n; i++) {
    if (s[i] > INT32_MAX || s[i] < INT32_MIN)
      throw std::invalid_argument("index out of int32 range");
    out.push_back(static_cast<int32_t>(s[i]));
  }
  return out;
}

std::vector<int> to_axes(const int* a, int n) {
  if (n < 0 || n > 64) throw std::invalid_argument("bad axis count");
  return std::vector<int>(a, a + n);
}

// Normalizes axes against rank nd; MLX checks most ops itself, but a few
// (expand_dims at high ranks, argmax) index before checking.
int norm_axis(int ax, int nd, const char* what) {
  int a = ax < 0 ? ax + nd : ax;
  if (a < 0 || a >= nd)
    throw std::invalid_argument(std::string(what) + ": axis " + std::to_string(ax) +
                                " out of range for rank " + std::to_string(nd));
  return a;
}

std::vector<mx::array> arrs(const mlxs_array* hs, int n) {
  if (n < 0) throw std::invalid_argument("negative array count");
  std::vector<mx::array> v;
  v.reserve(n);
  for (int i = 0; i < n; i++) v.push_back(A(hs[i]));
  return v;
}

mx::Device device(int type, int index) {
  if (type != 0 && type != 1) throw std::invalid_argument("unknown device type");
  return mx::Device(type == 0 ? mx::Device::cpu : mx::Device::gpu, index);
}

// Walks the (possibly broadcast or permuted) layout of an evaluated array and
// writes its elements row-major.
void strided_copy(const char* src, char* dst, const mx::Shape& shape,
                  const mx::Strides& strides, size_t item) {
  int nd = static_cast<int>(shape.size());
  if (nd == 0) {
    std::memcpy(dst, src, item);
    return;
  }
  std::vector<int64_t> idx(nd, 0);
  int64_t inner = shape[nd - 1];
  int64_t inner_stride = strides[nd - 1];
  size_t total = 1;
  for (auto s : shape) total *= s;
  if (total == 0) return;
  size_t rows = total / inner;
  for (size_t r = 0; r < rows; r++) {
    int64_t off = 0;
    for (int d = 0; d < nd - 1; d++) off += idx[d] * strides[d];
    const char* p = src + off * static_cast<int64_t>(item);
    if (inner_stride == 1) {
      std::memcpy(dst, p, inner * item);
      dst += inner * item;
    } else {
      for (int64_t j = 0; j < inner; j++) {
        std::memcpy(dst, p + j * inner_stride * static_cast<int64_t>(item), item);
        dst += item;
      }
    }
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// MLX's gather and scatter kernels do not bounds-check indices on CPU: an
// out-of-range index reads or writes outside the buffer and can crash the
// process. ONNX leaves out-of-range indices undefined, so clamp them to
// [-n, n-1] (MLX wraps negatives) to keep that undefined result memory-safe.
mx::array safe_index(const mx::array& idx, int n) {
  if (!mx::issubdtype(idx.dtype(), mx::integer)) return idx;  // MLX rejects these
  if (n == 0) {
    if (idx.size() != 0) throw std::invalid_argument("index into an empty axis");
    return idx;
  }
  bool sign = mx::issubdtype(idx.dtype(), mx::signedinteger);
  auto lo = mx::astype(mx::array(sign ? -static_cast<int64_t>(n) : 0, mx::int64), idx.dtype());
  auto hi = mx::astype(mx::array(static_cast<int64_t>(n) - 1, mx::int64), idx.dtype());
  return mx::clip(idx, lo, hi);
}

// For gathers of slices: an index i along an axis of size n must satisfy
// 0 <= i (after wrapping negatives) and i + slice <= n.
mx::array safe_slice_index(const mx::array& idx, int n, int slice) {
  if (!mx::issubdtype(idx.dtype(), mx::integer)) return idx;
  if (slice > n) throw std::invalid_argument("gather slice larger than the axis");
  mx::array i = idx;
  if (mx::issubdtype(idx.dtype(), mx::signedinteger)) {
    auto zero = mx::astype(mx::array(0, mx::int64), idx.dtype());
    auto nn = mx::astype(mx::array(static_cast<int64_t>(n), mx::int64), idx.dtype());
    i = mx::where(mx::less(idx, zero), mx::add(idx, nn), idx);
  }
  auto lo = mx::astype(mx::array(0, mx::int64), idx.dtype());
  auto hi = mx::astype(mx::array(static_cast<int64_t>(n - slice), mx::int64), idx.dtype());
  return mx::clip(i, lo, hi);
}

// MLX's CPU allocator does not check malloc's result: an array larger than
// the machine can hold crashes the process inside a worker thread, out of
// reach of any catch. Before evaluating, walk the pending graph and refuse any
// single buffer larger than available memory (or MLX's memory limit, which
// callers can lower). A graph whose many smaller buffers together exhaust
// memory is not caught.
void guard_memory(const std::vector<mx::array>& roots) {
  struct sysinfo si;
  size_t avail = SIZE_MAX;
  if (sysinfo(&si) == 0)
    avail = (static_cast<size_t>(si.freeram) + si.bufferram + si.freeswap) * si.mem_unit;
  avail = std::min(avail, mx::get_memory_limit());
  std::vector<mx::array> stack(roots.begin(), roots.end());
  std::unordered_set<std::uintptr_t> seen;
  while (!stack.empty()) {
    mx::array a = std::move(stack.back());
    stack.pop_back();
    if (!seen.insert(a.id()).second) continue;
    if (a.status() != mx::array::unscheduled || !a.has_primitive()) continue;
    for (const auto& o : a.outputs()) {
      size_t n = o.dtype().size();
      for (auto d : o.shape()) {
        if (d != 0 && n > SIZE_MAX / static_cast<size_t>(d)) n = SIZE_MAX;
        else n *= d;
      }
      if (n > avail)
        throw std::runtime_error("evaluation needs a " + std::to_string(n) +
                                 "-byte buffer; only " + std::to_string(avail) +
                                 " bytes are available (memory limit or free RAM)");
    }
    for (const auto& in : a.inputs()) stack.push_back(in);
  }
}

}  // namespace

#define TRY try {
#define CATCH                                   \
  return 0;                                     \
  }                                             \
  catch (const std::exception& e) {             \
    g_err = e.what();                           \
    return 1;                                   \
  }                                             \
  catch (...) {                                 \
    g_err = "unknown C++ exception";            \
    return 1;                                   \
  }

extern "C" {

const char* mlxs_last_error(void) { return g_err.c_str(); }

int mlxs_gpu_softmax_bias(mlxs_array* out, mlxs_array logits, const mlxs_array* biases, int n) {
  TRY put(out, mlxs::gpu_softmax_bias(A(logits), arrs(biases, n)));
  CATCH
}

int mlxs_gpu_bias_sum(mlxs_array* out, const int64_t* shape, int ndim, int dtype, bool clamp_f16,
                      const mlxs_array* biases, int n) {
  TRY put(out, mlxs::gpu_bias_sum(to_shape(shape, ndim), to_dtype(dtype), clamp_f16, arrs(biases, n)));
  CATCH
}

int mlxs_gpu_flash_attention(mlxs_array* out, mlxs_array q, mlxs_array k, mlxs_array v, const mlxs_array* biases,
                             int n, float scale, int dtype, bool mma) {
  TRY const mx::array* qp = q.ctx ? &A(q) : nullptr;
  const mx::array* kp = k.ctx ? &A(k) : nullptr;
  put(out, mlxs::gpu_flash_attention(qp, kp, A(v), arrs(biases, n), scale, to_dtype(dtype), mma));
  CATCH
}

int mlxs_gpu_layer_norm(mlxs_array* out, mlxs_array x, const mlxs_array* weight, const mlxs_array* bias, float eps) {
  TRY put(out, mlxs::gpu_layer_norm(A(x), weight ? &A(*weight) : nullptr, bias ? &A(*bias) : nullptr, eps));
  CATCH
}

int mlxs_gpu_mem_info(int64_t* free_bytes, int64_t* total_bytes, int* ok) {
  TRY *ok = mlxs::cuda_mem_info(free_bytes, total_bytes) ? 1 : 0;
  CATCH
}

int mlxs_gpu_io_status(const char** out) {
  TRY *out = mlxs::cuda_io_status();
  CATCH
}

int mlxs_gpu_io_set_mode(const char* mode) {
  TRY if (!mlxs::cuda_io_set_mode(mode))
    throw std::invalid_argument(std::string("unknown GPU transfer mode \"") + (mode ? mode : "") +
                                "\": want managed, direct, staged or registered");
  CATCH
}

int mlxs_gpu_io_selftest(size_t nbytes, size_t buf_bytes, int nbufs, int threads, long* pieces) {
  TRY *pieces = mlxs::cuda_io_selftest(nbytes, buf_bytes, nbufs, threads);
  CATCH
}

int mlxs_version(const char** out) {
  TRY *out = mx::version();
  CATCH
}

int mlxs_device_count(int type, int* out) {
  TRY *out = mx::device_count(type == 0 ? mx::Device::cpu : mx::Device::gpu);
  CATCH
}

int mlxs_device_available(int type, int index, bool* out) {
  TRY *out = mx::is_available(device(type, index));
  CATCH
}

int mlxs_default_device(int* type, int* index) {
  TRY const auto& d = mx::default_device();
  *type = d.type == mx::Device::cpu ? 0 : 1;
  *index = d.index;
  CATCH
}

int mlxs_set_default_device(int type, int index) {
  TRY auto d = device(type, index);
  if (!mx::is_available(d)) throw std::invalid_argument("device not available");
  mx::set_default_device(d);
  CATCH
}

int mlxs_device_name(int type, int index, char* buf, size_t cap) {
  TRY std::string name;
  auto d = device(type, index);
  if (mx::is_available(d)) {
    const auto& info = mx::device_info(d);
    auto it = info.find("device_name");
    if (it != info.end() && std::holds_alternative<std::string>(it->second))
      name = std::get<std::string>(it->second);
  }
  if (cap > 0) {
    size_t n = std::min(cap - 1, name.size());
    std::memcpy(buf, name.data(), n);
    buf[n] = 0;
  }
  CATCH
}

int mlxs_synchronize(void) {
  TRY mx::synchronize();
  CATCH
}

int mlxs_memory(size_t* active, size_t* peak, size_t* cache, size_t* limit) {
  TRY *active = mx::get_active_memory();
  *peak = mx::get_peak_memory();
  *cache = mx::get_cache_memory();
  *limit = mx::get_memory_limit();
  CATCH
}

int mlxs_reset_peak_memory(void) {
  TRY mx::reset_peak_memory();
  CATCH
}

int mlxs_set_memory_limit(size_t limit, size_t* prev) {
  TRY *prev = mx::set_memory_limit(limit);
  CATCH
}

int mlxs_set_cache_limit(size_t limit, size_t* prev) {
  TRY *prev = mx::set_cache_limit(limit);
  CATCH
}

int mlxs_clear_cache(void) {
  TRY mx::clear_cache();
  CATCH
}

int mlxs_set_compile_enabled(bool on) {
  TRY if (on) mx::enable_compile();
  else mx::disable_compile();
  CATCH
}

// ---- arrays ----

int mlxs_array_free(mlxs_array a) {
  TRY delete static_cast<mx::array*>(a.ctx);
  CATCH
}

int mlxs_array_copy_handle(mlxs_array* out, mlxs_array a) {
  TRY put(out, A(a));
  CATCH
}

int mlxs_array_from_data(mlxs_array* out, const void* data, size_t nbytes,
                         const int64_t* shape, int ndim, int dtype) {
  TRY auto dt = to_dtype(dtype);
  auto sh = to_shape(shape, ndim);
  size_t n = 1;
  for (auto d : sh) {
    if (d != 0 && n > SIZE_MAX / static_cast<size_t>(d))
      throw std::invalid_argument("shape too large");
    n *= d;
  }
  if (n * dt.size() != nbytes)
    throw std::invalid_argument("data has " + std::to_string(nbytes) +
                                " bytes, shape and dtype need " +
                                std::to_string(n * dt.size()));
  mx::array direct = mx::array(0.0f);
  if (mlxs::cuda_upload(data, nbytes, sh, dt, &direct)) {  // GPU device memory (cuda_io.cc)
    put(out, std::move(direct));
    return 0;
  }
  auto buf = mx::allocator::malloc(std::max<size_t>(nbytes, 1));
  if (buf.buffer().raw_ptr() == nullptr) throw std::bad_alloc();
  if (nbytes > 0) std::memcpy(buf.buffer().raw_ptr(), data, nbytes);
  put(out, mx::array(std::move(buf), std::move(sh), dt));
  CATCH
}

int mlxs_array_scalar(mlxs_array* out, double v, int dtype) {
  TRY auto dt = to_dtype(dtype);
  // Through float64 would lose int64 precision, and float64 scalars are
  // CPU-only; build in the closest exact type then cast.
  if (dt == mx::int64 || dt == mx::uint64 || dt == mx::int32)
    put(out, mx::astype(mx::array(static_cast<int64_t>(v), mx::int64), dt));
  else if (dt == mx::bool_)
    put(out, mx::array(v != 0));
  else
    put(out, mx::astype(mx::array(static_cast<float>(v), mx::float32), dt));
  CATCH
}

int mlxs_array_ndim(mlxs_array a, int* out) {
  TRY *out = static_cast<int>(A(a).ndim());
  CATCH
}

int mlxs_array_shape(mlxs_array a, int64_t* shape) {
  TRY const auto& s = A(a).shape();
  for (size_t i = 0; i < s.size(); i++) shape[i] = s[i];
  CATCH
}

int mlxs_array_dtype(mlxs_array a, int* out) {
  TRY *out = static_cast<int>(A(a).dtype().val());
  CATCH
}

int mlxs_array_size(mlxs_array a, size_t* out) {
  TRY *out = A(a).size();
  CATCH
}

int mlxs_array_read(mlxs_array h, void* dst, size_t nbytes) {
  TRY auto& a = A(h);
  if (a.nbytes() != nbytes)
    throw std::invalid_argument("read buffer has " + std::to_string(nbytes) +
                                " bytes, array has " + std::to_string(a.nbytes()));
  guard_memory({a});
  a.eval();
  if (nbytes == 0) return 0;
  if (mlxs::cuda_read(a, dst, nbytes)) return 0;  // GPU device memory (cuda_io.cc)
  strided_copy(a.data<char>(), static_cast<char*>(dst), a.shape(), a.strides(),
               a.itemsize());
  CATCH
}

int mlxs_eval(const mlxs_array* as, int n) {
  TRY auto v = arrs(as, n);
  guard_memory(v);
  mx::eval(std::move(v));
  CATCH
}

// ---- ops ----

int mlxs_unary(int op, mlxs_array* out, mlxs_array h) {
  TRY auto& a = A(h);
  switch (op) {
    case MLXS_ABS: put(out, mx::abs(a)); break;
    case MLXS_NEG: put(out, mx::negative(a)); break;
    case MLXS_SIGN: put(out, mx::sign(a)); break;
    case MLXS_EXP: put(out, mx::exp(a)); break;
    case MLXS_LOG: put(out, mx::log(a)); break;
    case MLXS_SQRT: put(out, mx::sqrt(a)); break;
    case MLXS_RSQRT: put(out, mx::rsqrt(a)); break;
    case MLXS_TANH: put(out, mx::tanh(a)); break;
    case MLXS_ERF: put(out, mx::erf(a)); break;
    case MLXS_SIGMOID: put(out, mx::sigmoid(a)); break;
    case MLXS_FLOOR: put(out, mx::floor(a)); break;
    case MLXS_CEIL: put(out, mx::ceil(a)); break;
    case MLXS_ROUND: put(out, mx::round(a)); break;
    case MLXS_RECIPROCAL: put(out, mx::reciprocal(a)); break;
    case MLXS_SIN: put(out, mx::sin(a)); break;
    case MLXS_COS: put(out, mx::cos(a)); break;
    case MLXS_ISNAN: put(out, mx::isnan(a)); break;
    case MLXS_ISINF: put(out, mx::isinf(a)); break;
    case MLXS_LOGICAL_NOT: put(out, mx::logical_not(a)); break;
    case MLXS_SQUARE: put(out, mx::square(a)); break;
    case MLXS_LOG1P: put(out, mx::log1p(a)); break;
    case MLXS_EXPM1: put(out, mx::expm1(a)); break;
    case MLXS_COPY: put(out, mx::copy(a)); break;
    case MLXS_TAN: put(out, mx::tan(a)); break;
    case MLXS_ERFINV: put(out, mx::erfinv(a)); break;
    case MLXS_STOP_GRADIENT: put(out, mx::stop_gradient(a)); break;
    case MLXS_ISFINITE: put(out, mx::isfinite(a)); break;
    default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
  }
  CATCH
}

int mlxs_binary(int op, mlxs_array* out, mlxs_array ha, mlxs_array hb) {
  TRY auto& a = A(ha);
  auto& b = A(hb);
  switch (op) {
    case MLXS_ADD: put(out, mx::add(a, b)); break;
    case MLXS_SUB: put(out, mx::subtract(a, b)); break;
    case MLXS_MUL: put(out, mx::multiply(a, b)); break;
    case MLXS_DIV: put(out, mx::divide(a, b)); break;
    case MLXS_POW: put(out, mx::power(a, b)); break;
    case MLXS_REMAINDER: put(out, mx::remainder(a, b)); break;
    case MLXS_MAXIMUM: put(out, mx::maximum(a, b)); break;
    case MLXS_MINIMUM: put(out, mx::minimum(a, b)); break;
    case MLXS_EQUAL: put(out, mx::equal(a, b)); break;
    case MLXS_NOT_EQUAL: put(out, mx::not_equal(a, b)); break;
    case MLXS_LESS: put(out, mx::less(a, b)); break;
    case MLXS_LESS_EQUAL: put(out, mx::less_equal(a, b)); break;
    case MLXS_GREATER: put(out, mx::greater(a, b)); break;
    case MLXS_GREATER_EQUAL: put(out, mx::greater_equal(a, b)); break;
    case MLXS_LOGICAL_AND: put(out, mx::logical_and(a, b)); break;
    case MLXS_LOGICAL_OR: put(out, mx::logical_or(a, b)); break;
    case MLXS_MATMUL:
      // MLX asserts on 0-d operands deep inside; reject up front.
      if (a.ndim() == 0 || b.ndim() == 0)
        throw std::invalid_argument("matmul operands must have rank >= 1");
      put(out, mx::matmul(a, b));
      break;
    case MLXS_FLOOR_DIVIDE: put(out, mx::floor_divide(a, b)); break;
    case MLXS_ARCTAN2: put(out, mx::arctan2(a, b)); break;
    default: throw std::invalid_argument("unknown binary op " + std::to_string(op));
  }
  CATCH
}

int mlxs_reduce(int op, mlxs_array* out, mlxs_array h, const int* axes_p,
                int naxes, bool keepdims) {
  TRY auto& a = A(h);
  int nd = static_cast<int>(a.ndim());
  std::vector<int> axes;
  if (naxes < 0) {
    for (int i = 0; i < nd; i++) axes.push_back(i);
  } else {
    axes = to_axes(axes_p, naxes);
    for (auto& ax : axes) ax = norm_axis(ax, nd, "reduce");
  }
  switch (op) {
    case MLXS_SUM: put(out, mx::sum(a, axes, keepdims)); break;
    case MLXS_MEAN: put(out, mx::mean(a, axes, keepdims)); break;
    case MLXS_MAX: put(out, mx::max(a, axes, keepdims)); break;
    case MLXS_MIN: put(out, mx::min(a, axes, keepdims)); break;
    case MLXS_PROD: put(out, mx::prod(a, axes, keepdims)); break;
    case MLXS_ALL: put(out, mx::all(a, axes, keepdims)); break;
    case MLXS_ANY: put(out, mx::any(a, axes, keepdims)); break;
    case MLXS_LOGSUMEXP: put(out, mx::logsumexp(a, axes, keepdims)); break;
    case MLXS_ARGMAX:
    case MLXS_ARGMIN:
      if (axes.size() != 1) throw std::invalid_argument("argmax/argmin take exactly one axis");
      put(out, op == MLXS_ARGMAX ? mx::argmax(a, axes[0], keepdims)
                                 : mx::argmin(a, axes[0], keepdims));
      break;
    default: throw std::invalid_argument("unknown reduction " + std::to_string(op));
  }
  CATCH
}

int mlxs_where(mlxs_array* out, mlxs_array c, mlxs_array x, mlxs_array y) {
  TRY put(out, mx::where(A(c), A(x), A(y)));
  CATCH
}

int mlxs_astype(mlxs_array* out, mlxs_array a, int dtype) {
  TRY put(out, mx::astype(A(a), to_dtype(dtype)));
  CATCH
}

int mlxs_contiguous(mlxs_array* out, mlxs_array a) {
  TRY put(out, mx::contiguous(A(a), /*allow_col_major=*/false));
  CATCH
}

int mlxs_depends(mlxs_array* out, mlxs_array x, mlxs_array dep) {
  TRY put(out, mx::depends({A(x)}, {A(dep)})[0]);
  CATCH
}

int mlxs_clip(mlxs_array* out, mlxs_array a, const mlxs_array* lo,
              const mlxs_array* hi) {
  TRY std::optional<mx::array> l, h;
  if (lo) l = A(*lo);
  if (hi) h = A(*hi);
  if (!l && !h) throw std::invalid_argument("clip needs a lower or an upper bound");
  put(out, mx::clip(A(a), l, h));
  CATCH
}

int mlxs_einsum(mlxs_array* out, const char* subscripts, const mlxs_array* ops, int n) {
  TRY put(out, mx::einsum(subscripts, arrs(ops, n)));
  CATCH
}

int mlxs_reshape(mlxs_array* out, mlxs_array a, const int64_t* shape, int n) {
  TRY put(out, mx::reshape(A(a), to_shape(shape, n, true)));
  CATCH
}

int mlxs_transpose(mlxs_array* out, mlxs_array h, const int* perm, int n) {
  TRY put(out, mx::transpose(A(h), to_axes(perm, n)));
  CATCH
}

int mlxs_broadcast_to(mlxs_array* out, mlxs_array a, const int64_t* shape, int n) {
  TRY put(out, mx::broadcast_to(A(a), to_shape(shape, n)));
  CATCH
}

int mlxs_expand_dims(mlxs_array* out, mlxs_array h, const int* axes, int n) {
  TRY auto& a = A(h);
  auto ax = to_axes(axes, n);
  int nd = static_cast<int>(a.ndim()) + n;
  for (auto& x : ax) x = norm_axis(x, nd, "expand_dims");
  put(out, mx::expand_dims(a, ax));
  CATCH
}

int mlxs_squeeze(mlxs_array* out, mlxs_array h, const int* axes, int n) {
  TRY auto& a = A(h);
  if (n < 0) {
    put(out, mx::squeeze(a));
  } else {
    auto ax = to_axes(axes, n);
    for (auto& x : ax) x = norm_axis(x, static_cast<int>(a.ndim()), "squeeze");
    put(out, mx::squeeze(a, ax));
  }
  CATCH
}

int mlxs_slice(mlxs_array* out, mlxs_array h, const int64_t* start,
               const int64_t* stop, const int64_t* strides, int n) {
  TRY auto& a = A(h);
  if (n != static_cast<int>(a.ndim()))
    throw std::invalid_argument("slice needs start/stop/strides for every axis");
  auto st = to_ints(strides, n);
  for (auto s : st)
    if (s == 0) throw std::invalid_argument("slice stride 0");
  put(out, mx::slice(a, to_ints(start, n), to_ints(stop, n), st));
  CATCH
}

int mlxs_slice_update(mlxs_array* out, mlxs_array src, mlxs_array upd,
                      const int64_t* start, const int64_t* stop,
                      const int64_t* strides, int n) {
  TRY auto& a = A(src);
  if (n != static_cast<int>(a.ndim()))
    throw std::invalid_argument("slice_update needs start/stop/strides for every axis");
  auto st = to_ints(strides, n);
  for (auto s : st)
    if (s == 0) throw std::invalid_argument("slice stride 0");
  put(out, mx::slice_update(a, A(upd), to_ints(start, n), to_ints(stop, n), st));
  CATCH
}

int mlxs_concatenate(mlxs_array* out, const mlxs_array* as, int n, int axis) {
  TRY if (n < 1) throw std::invalid_argument("concatenate of no arrays");
  put(out, mx::concatenate(arrs(as, n), axis));
  CATCH
}

int mlxs_stack(mlxs_array* out, const mlxs_array* as, int n, int axis) {
  TRY if (n < 1) throw std::invalid_argument("stack of no arrays");
  put(out, mx::stack(arrs(as, n), axis));
  CATCH
}

int mlxs_split(mlxs_array* outs, mlxs_array h, const int64_t* indices, int nidx, int axis) {
  TRY auto& a = A(h);
  int ax = norm_axis(axis, static_cast<int>(a.ndim()), "split");
  auto idx = to_ints(indices, nidx);
  for (int i = 0; i < nidx; i++) {
    if (idx[i] < 0 || idx[i] > a.shape(ax) || (i > 0 && idx[i] < idx[i - 1]))
      throw std::invalid_argument("split indices must be ascending within [0, dim]");
  }
  auto parts = mx::split(a, idx, ax);
  if (static_cast<int>(parts.size()) != nidx + 1)
    throw std::runtime_error("split returned an unexpected number of parts");
  for (int i = 0; i <= nidx; i++) put(&outs[i], parts[i]);
  CATCH
}

int mlxs_take(mlxs_array* out, mlxs_array a, mlxs_array idx, int axis) {
  TRY auto& x = A(a);
  int ax = norm_axis(axis, static_cast<int>(x.ndim()), "take");
  put(out, mx::take(x, safe_index(A(idx), x.shape(ax)), ax));
  CATCH
}

int mlxs_take_along_axis(mlxs_array* out, mlxs_array a, mlxs_array idx, int axis) {
  TRY auto& x = A(a);
  int ax = norm_axis(axis, static_cast<int>(x.ndim()), "take_along_axis");
  put(out, mx::take_along_axis(x, safe_index(A(idx), x.shape(ax)), ax));
  CATCH
}

int mlxs_put_along_axis(mlxs_array* out, mlxs_array a, mlxs_array idx,
                        mlxs_array vals, int axis) {
  TRY auto& x = A(a);
  int ax = norm_axis(axis, static_cast<int>(x.ndim()), "put_along_axis");
  put(out, mx::put_along_axis(x, safe_index(A(idx), x.shape(ax)), A(vals), ax));
  CATCH
}

int mlxs_gather(mlxs_array* out, mlxs_array a, const mlxs_array* idx, int nidx,
                const int* axes, const int64_t* slice_sizes, int nslice) {
  TRY auto& x = A(a);
  int nd = static_cast<int>(x.ndim());
  if (nslice != nd) throw std::invalid_argument("gather needs a slice size for every axis");
  auto ax = to_axes(axes, nidx);
  auto ss = to_shape(slice_sizes, nslice);
  for (int i = 0; i < nd; i++)
    if (ss[i] > x.shape(i)) throw std::invalid_argument("gather slice larger than the axis");
  for (auto& v : ax) v = norm_axis(v, nd, "gather");
  auto ind = arrs(idx, nidx);
  for (int i = 0; i < nidx; i++) ind[i] = safe_slice_index(ind[i], x.shape(ax[i]), ss[ax[i]]);
  put(out, mx::gather(x, ind, ax, ss));
  CATCH
}

int mlxs_scatter(mlxs_array* out, mlxs_array a, const mlxs_array* idx, int nidx,
                 mlxs_array updates, const int* axes, int mode) {
  TRY auto& x = A(a);
  auto ax = to_axes(axes, nidx);
  for (auto& v : ax) v = norm_axis(v, static_cast<int>(x.ndim()), "scatter");
  auto ind = arrs(idx, nidx);
  for (int i = 0; i < nidx; i++) ind[i] = safe_index(ind[i], x.shape(ax[i]));
  if (mode == 0)
    put(out, mx::scatter(x, ind, A(updates), ax));
  else if (mode == 1)
    put(out, mx::scatter_add(x, ind, A(updates), ax));
  else
    throw std::invalid_argument("unknown scatter mode");
  CATCH
}

int mlxs_pad(mlxs_array* out, mlxs_array h, const int64_t* low,
             const int64_t* high, int n, mlxs_array value) {
  TRY auto& a = A(h);
  if (n != static_cast<int>(a.ndim()))
    throw std::invalid_argument("pad needs low/high for every axis");
  std::vector<int> axes(n);
  for (int i = 0; i < n; i++) axes[i] = i;
  put(out, mx::pad(a, axes, to_shape(low, n), to_shape(high, n), A(value)));
  CATCH
}

int mlxs_tile(mlxs_array* out, mlxs_array a, const int* reps, int n) {
  TRY put(out, mx::tile(A(a), to_axes(reps, n)));
  CATCH
}

int mlxs_arange(mlxs_array* out, double start, double stop, double step, int dtype) {
  TRY if (step == 0) throw std::invalid_argument("arange step 0");
  put(out, mx::arange(start, stop, step, to_dtype(dtype)));
  CATCH
}

int mlxs_full(mlxs_array* out, const int64_t* shape, int n, mlxs_array value, int dtype) {
  TRY put(out, mx::full(to_shape(shape, n), A(value), to_dtype(dtype)));
  CATCH
}

int mlxs_cumsum(mlxs_array* out, mlxs_array h, int axis, bool reverse, bool inclusive) {
  TRY auto& a = A(h);
  int ax = norm_axis(axis, static_cast<int>(a.ndim()), "cumsum");
  put(out, mx::cumsum(a, ax, reverse, inclusive));
  CATCH
}

int mlxs_tri(mlxs_array* out, mlxs_array h, int k, bool upper) {
  TRY auto& a = A(h);
  if (a.ndim() < 2) throw std::invalid_argument("tril/triu need rank >= 2");
  put(out, upper ? mx::triu(a, k) : mx::tril(a, k));
  CATCH
}

int mlxs_softmax(mlxs_array* out, mlxs_array h, const int* axes, int n, bool precise) {
  TRY auto& a = A(h);
  auto ax = to_axes(axes, n);
  for (auto& v : ax) v = norm_axis(v, static_cast<int>(a.ndim()), "softmax");
  put(out, mx::softmax(a, ax, precise));
  CATCH
}

int mlxs_layer_norm(mlxs_array* out, mlxs_array x, const mlxs_array* weight,
                    const mlxs_array* bias, float eps) {
  TRY std::optional<mx::array> w, b;
  if (weight) w = A(*weight);
  if (bias) b = A(*bias);
  put(out, mx::fast::layer_norm(A(x), w, b, eps));
  CATCH
}

int mlxs_rms_norm(mlxs_array* out, mlxs_array x, const mlxs_array* weight, float eps) {
  TRY std::optional<mx::array> w;
  if (weight) w = A(*weight);
  put(out, mx::fast::rms_norm(A(x), w, eps));
  CATCH
}

int mlxs_sdpa(mlxs_array* out, mlxs_array q, mlxs_array k, mlxs_array v,
              float scale, const mlxs_array* mask) {
  TRY auto& Q = A(q);
  auto& K = A(k);
  auto& V = A(v);
  if (Q.ndim() != 4 || K.ndim() != 4 || V.ndim() != 4)
    throw std::invalid_argument("scaled_dot_product_attention needs rank-4 q, k, v");
  if (mask)
    put(out, mx::fast::scaled_dot_product_attention(Q, K, V, scale, "array", A(*mask)));
  else
    put(out, mx::fast::scaled_dot_product_attention(Q, K, V, scale));
  CATCH
}

// ---- functions ----

int mlxs_closure_new(mlxs_function* out, uintptr_t token) {
  // Built in place: a TokenGuard temporary copied into make_shared would run
  // its destructor at once and mark the token dead before the first call.
  TRY auto guard = std::shared_ptr<TokenGuard>(new TokenGuard{token});
  auto fn = new Function{[guard](const std::vector<mx::array>& in) {
    int nin = static_cast<int>(in.size());
    std::vector<mlxs_array> hs(nin);
    for (int i = 0; i < nin; i++) hs[i].ctx = new mx::array(in[i]);
    mlxs_array* outs = nullptr;
    int nout = 0;
    char* err = nullptr;
    // Go owns the input handles from here on, even on failure.
    int rc = mlxsGoClosureCall(guard->token, hs.data(), nin, &outs, &nout, &err);
    if (rc != 0) {
      std::string msg = err ? err : "Go closure failed";
      std::free(err);
      for (int i = 0; i < nout; i++) delete static_cast<mx::array*>(outs[i].ctx);
      std::free(outs);
      throw std::runtime_error(msg);
    }
    std::vector<mx::array> res;
    res.reserve(nout);
    for (int i = 0; i < nout; i++) {
      auto* p = static_cast<mx::array*>(outs[i].ctx);
      res.push_back(*p);
      delete p;
    }
    std::free(outs);
    return res;
  }};
  out->ctx = fn;
  CATCH
}

int mlxs_function_free(mlxs_function f) {
  TRY delete static_cast<Function*>(f.ctx);
  CATCH
}

int mlxs_compile(mlxs_function* out, mlxs_function f, bool shapeless) {
  TRY out->ctx = new Function{mx::compile(F(f).f, shapeless)};
  CATCH
}

int mlxs_function_call(mlxs_function f, const mlxs_array* in, int nin,
                       mlxs_array** outs, int* nout) {
  TRY auto res = F(f).f(arrs(in, nin));
  auto* hs = static_cast<mlxs_array*>(std::malloc(sizeof(mlxs_array) * std::max<size_t>(res.size(), 1)));
  if (!hs) throw std::bad_alloc();
  for (size_t i = 0; i < res.size(); i++) hs[i].ctx = new mx::array(res[i]);
  *outs = hs;
  *nout = static_cast<int>(res.size());
  CATCH
}

int mlxs_handles_free(mlxs_array* hs) {
  std::free(hs);
  return 0;
}

int mlxs_take_dead_tokens(uintptr_t* buf, int cap, int* n) {
  TRY std::lock_guard<std::mutex> l(g_dead_mu);
  int k = std::min<int>(cap, static_cast<int>(g_dead.size()));
  for (int i = 0; i < k; i++) buf[i] = g_dead[g_dead.size() - 1 - i];
  g_dead.resize(g_dead.size() - k);
  *n = k;
  CATCH
}

int mlxs_export_function(const char* path, mlxs_function f, const mlxs_array* args,
                         int nargs, bool shapeless) {
  TRY mx::export_function(path, F(f).f, arrs(args, nargs), shapeless);
  CATCH
}

int mlxs_import_function(mlxs_function* out, const char* path) {
  TRY auto imp = std::make_shared<mx::ImportedFunction>(mx::import_function(path));
  out->ctx = new Function{[imp](const std::vector<mx::array>& in) { return (*imp)(in); }};
  CATCH
}

// ---- safetensors ----

int mlxs_load_safetensors(mlxs_st* out, const char* path) {
  TRY auto loaded = mx::load_safetensors(std::string(path));
  auto* st = new Safetensors;
  std::map<std::string, mx::array> sorted(loaded.first.begin(), loaded.first.end());
  for (auto& kv : sorted) st->arrays.emplace_back(kv.first, kv.second);
  std::map<std::string, std::string> meta(loaded.second.begin(), loaded.second.end());
  for (auto& kv : meta) st->meta.emplace_back(kv.first, kv.second);
  out->ctx = st;
  CATCH
}

int mlxs_st_free(mlxs_st st) {
  TRY delete static_cast<Safetensors*>(st.ctx);
  CATCH
}

int mlxs_st_counts(mlxs_st h, int* narrays, int* nmeta) {
  TRY auto* st = static_cast<Safetensors*>(h.ctx);
  *narrays = static_cast<int>(st->arrays.size());
  *nmeta = static_cast<int>(st->meta.size());
  CATCH
}

int mlxs_st_array(mlxs_st h, int i, const char** name, mlxs_array* out) {
  TRY auto* st = static_cast<Safetensors*>(h.ctx);
  auto& kv = st->arrays.at(i);
  *name = kv.first.c_str();
  put(out, kv.second);
  CATCH
}

int mlxs_st_meta(mlxs_st h, int i, const char** key, const char** val) {
  TRY auto* st = static_cast<Safetensors*>(h.ctx);
  auto& kv = st->meta.at(i);
  *key = kv.first.c_str();
  *val = kv.second.c_str();
  CATCH
}

int mlxs_save_safetensors(const char* path, const char* const* names,
                          const mlxs_array* arrays, int n,
                          const char* const* mkeys, const char* const* mvals, int nmeta) {
  TRY std::unordered_map<std::string, mx::array> m;
  for (int i = 0; i < n; i++) {
    if (!m.emplace(names[i], A(arrays[i])).second)
      throw std::invalid_argument(std::string("duplicate tensor name ") + names[i]);
  }
  std::unordered_map<std::string, std::string> meta;
  for (int i = 0; i < nmeta; i++) meta[mkeys[i]] = mvals[i];
  mx::save_safetensors(std::string(path), m, meta);
  CATCH
}

}  // extern "C"
