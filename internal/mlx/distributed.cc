//go:build cgo && !nomlx

#include "distributed.h"

#include <chrono>
#include <climits>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "mlx/distributed/distributed.h"
#include "mlx/distributed/ops.h"
#include "mlx/mlx.h"

namespace mx = mlx::core;
namespace md = mlx::core::distributed;

namespace {

thread_local std::string d_err;

std::mutex g_mu;
std::optional<md::Group> g_group;

mx::array& DA(mlxs_array h) {
  if (h.ctx == nullptr) throw std::invalid_argument("null array handle");
  return *static_cast<mx::array*>(h.ctx);
}

void dput(mlxs_array* out, mx::array a) { out->ctx = new mx::array(std::move(a)); }

md::Group group() {
  std::lock_guard<std::mutex> l(g_mu);
  if (!g_group) throw std::runtime_error("distributed group not initialised");
  return *g_group;
}

int norm_axis(int axis, int ndim) {
  int a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim)
    throw std::invalid_argument("axis " + std::to_string(axis) + " out of range for rank " +
                                std::to_string(ndim));
  return a;
}

mx::Dtype dist_dtype(int d) {
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

// all_gather concatenates along axis 0; gather along any axis by moving it
// to the front and back.
mx::array gather_axis(const mx::array& x, int axis, const md::Group& g) {
  int a = norm_axis(axis, x.ndim());
  if (g.size() == 1) return x;
  if (a == 0) return md::all_gather(x, g);
  auto front = mx::moveaxis(x, a, 0);
  return mx::moveaxis(md::all_gather(front, g), 0, a);
}

mx::array all_to_all(const mx::array& x, int split_axis, int concat_axis, const md::Group& g) {
  int nd = x.ndim();
  int sa = norm_axis(split_axis, nd), ca = norm_axis(concat_axis, nd);
  int p = g.size(), r = g.rank();
  if (x.shape(sa) % p != 0)
    throw std::invalid_argument("all_to_all: axis " + std::to_string(sa) + " of size " +
                                std::to_string(x.shape(sa)) + " does not split into " +
                                std::to_string(p) + " equal parts");
  if (p == 1) return x;
  if (sa == ca) throw std::invalid_argument("all_to_all: split and concat axis are the same");
  // [p·d0, …] → [p, d0, …]: the leading axis is the source rank.
  auto all = md::all_gather(x, g);
  mx::Shape s = x.shape();
  s.insert(s.begin(), p);
  all = mx::reshape(all, s);
  int c = x.shape(sa) / p;
  mx::Shape start(nd + 1, 0), stop = all.shape();
  start[sa + 1] = r * c;
  stop[sa + 1] = (r + 1) * c;
  auto mine = mx::slice(all, start, stop);  // [p, …, c at sa, …]
  // Put the source-rank axis just before concat_axis and merge the two.
  auto moved = mx::moveaxis(mine, 0, ca);  // […, p, d_ca, …]
  mx::Shape out = x.shape();
  out[sa] = c;
  out[ca] = x.shape(ca) * p;
  return mx::reshape(moved, out);
}

}  // namespace

#define DTRY try {
#define DCATCH                                  \
  return 0;                                     \
  }                                             \
  catch (const std::exception& e) {             \
    d_err = e.what();                           \
    return 1;                                   \
  }                                             \
  catch (...) {                                 \
    d_err = "unknown C++ exception";            \
    return 1;                                   \
  }

extern "C" {

const char* mlxs_dist_last_error(void) { return d_err.c_str(); }

int mlxs_dist_is_available(const char* backend, bool* out) {
  DTRY *out = md::is_available(std::string(backend));
  DCATCH
}

int mlxs_dist_init(const char* backend, int timeout_ms, int* rank, int* size) {
  DTRY std::string bk(backend);
  {
    std::lock_guard<std::mutex> l(g_mu);
    if (g_group) {
      *rank = g_group->rank();
      *size = g_group->size();
      return 0;
    }
  }
  // The ring backend blocks in accept() until its left neighbour connects;
  // run it on its own thread so a missing peer is a timeout, not a hang.
  auto pr = std::make_shared<std::promise<md::Group>>();
  auto fut = pr->get_future();
  std::thread([pr, bk]() {
    try {
      pr->set_value(md::init(/*strict=*/bk != "any", bk));
    } catch (...) {
      try {
        pr->set_exception(std::current_exception());
      } catch (...) {
      }
    }
  }).detach();
  if (timeout_ms > 0 &&
      fut.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready)
    throw std::runtime_error("distributed init (" + bk + "): peers did not connect within " +
                             std::to_string(timeout_ms) + " ms");
  md::Group g = fut.get();
  std::lock_guard<std::mutex> l(g_mu);
  g_group.emplace(g);
  *rank = g.rank();
  *size = g.size();
  DCATCH
}

int mlxs_dist_group(int* rank, int* size) {
  DTRY std::lock_guard<std::mutex> l(g_mu);
  *rank = g_group ? g_group->rank() : 0;
  *size = g_group ? g_group->size() : 1;
  DCATCH
}

int mlxs_dist_all_sum(mlxs_array* out, mlxs_array x) {
  DTRY auto g = group();
  dput(out, g.size() == 1 ? DA(x) : md::all_sum(DA(x), g));
  DCATCH
}

int mlxs_dist_all_gather(mlxs_array* out, mlxs_array x, int axis) {
  DTRY dput(out, gather_axis(DA(x), axis, group()));
  DCATCH
}

int mlxs_dist_all_to_all(mlxs_array* out, mlxs_array x, int split_axis, int concat_axis) {
  DTRY dput(out, all_to_all(DA(x), split_axis, concat_axis, group()));
  DCATCH
}

int mlxs_dist_send(mlxs_array* out, mlxs_array x, int dst) {
  DTRY dput(out, md::send(DA(x), dst, group()));
  DCATCH
}

int mlxs_dist_recv(mlxs_array* out, const int64_t* shape, int ndim, int dtype, int src) {
  DTRY if (ndim < 0 || ndim > 64) throw std::invalid_argument("bad rank");
  mx::Shape s;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || shape[i] > INT32_MAX) throw std::invalid_argument("bad dimension");
    s.push_back(static_cast<int32_t>(shape[i]));
  }
  dput(out, md::recv(s, dist_dtype(dtype), src, group()));
  DCATCH
}

}  // extern "C"
