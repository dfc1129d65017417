// JaxPaint's stroke integral on the CPU, as an XLA FFI custom call (see stroke_kernel.py).
//
// The same sum as `jax_paint.dense_line_integral`: at every pixel centre q, for each straight
// segment of a stroke, the dab profile m(|q - c(u)|^2 / r^2) integrated along the segment,
// closed form because m is linear in rr on its two pieces. The dense JAX version evaluates it
// at all size^2 pixels for every segment; a pixel further than r from a segment gets exactly
// zero from it (both ends of the integral clip to the same limit), so this kernel visits only
// the pixels inside each segment's bounding box grown by r: a thin stroke touches a few hundred
// of a 64x64 canvas's 4,096 pixels. Same arithmetic in the same order per term, so the sums
// agree with the dense version to float32 rounding (different order of the segment sums only).
//
// Strokes are independent: they are shared out over XLA's intra-op threads (ParallelFor).

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "parallel_for.h"  // thesis_jax/core/native
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr float kHardness = 0.2f;  // libmypaint dry_brush; jax_paint.HARDNESS

// One stroke: `segments` segments (x0, y0) -> (x1, y1), dab radius `radius`, summed into
// depth[size * size] (row-major, y then x), which this zeroes first.
void StrokeDepth(const float* start, const float* end, int64_t segments, float radius,
                 int64_t size, float* depth) {
  std::fill(depth, depth + size * size, 0.0f);
  if (!(radius > 0.0f)) return;  // no ink (and no division by zero)
  const float radius2 = radius * radius;
  const float outer_offset = kHardness / (1.0f - kHardness);
  // (offset, slope, limit^2) of the two pieces, as in dab_line_integral.
  const float offset[2] = {1.0f - outer_offset, outer_offset};
  const float slope[2] = {outer_offset - (1.0f / kHardness - 1.0f), -outer_offset};
  const float limit2[2] = {kHardness * radius2, radius2};
  float linear_slope[2], cubic[2];
  for (int p = 0; p < 2; ++p) {
    linear_slope[p] = slope[p] / radius2;
    cubic[p] = slope[p] / (3.0f * radius2);
  }
  for (int64_t s = 0; s < segments; ++s) {
    const float sx = start[2 * s], sy = start[2 * s + 1];
    const float ex = end[2 * s], ey = end[2 * s + 1];
    const float deltax = ex - sx, deltay = ey - sy;
    const float length = std::sqrt(deltax * deltax + deltay * deltay);
    const float norm = std::max(length, 1e-6f);
    const float ux = deltax / norm, uy = deltay / norm;
    // Pixel centres (i + 0.5) within r of the segment's bounding box; the rest get zero.
    const int64_t x_lo = std::max<int64_t>(0, std::floor(std::min(sx, ex) - radius - 0.5f));
    const int64_t x_hi = std::min<int64_t>(size - 1, std::ceil(std::max(sx, ex) + radius - 0.5f));
    const int64_t y_lo = std::max<int64_t>(0, std::floor(std::min(sy, ey) - radius - 0.5f));
    const int64_t y_hi = std::min<int64_t>(size - 1, std::ceil(std::max(sy, ey) + radius - 0.5f));
    for (int64_t y = y_lo; y <= y_hi; ++y) {
      const float dy = (static_cast<float>(y) + 0.5f) - sy;
      float* row = depth + y * size;
      for (int64_t x = x_lo; x <= x_hi; ++x) {  // vectorised by the compiler
        const float dx = (static_cast<float>(x) + 0.5f) - sx;
        const float along = dx * ux + dy * uy;
        const float across = dx * uy - dy * ux;
        const float across2 = across * across;
        const float w1 = length - along;  // the segment is w in [-along, length - along]
        float sum = 0.0f;
        for (int p = 0; p < 2; ++p) {
          const float limit = std::sqrt(std::max(limit2[p] - across2, 0.0f));
          const float linear = offset[p] + linear_slope[p] * across2;
          const float hi = std::min(std::max(w1, -limit), limit);
          const float lo = std::min(std::max(-along, -limit), limit);
          sum += hi * (linear + cubic[p] * hi * hi) - lo * (linear + cubic[p] * lo * lo);
        }
        row[x] += sum;
      }
    }
  }
}

ffi::Error StrokeDepthImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> start,
                           ffi::Buffer<ffi::F32> end, ffi::Buffer<ffi::F32> radius,
                           ffi::ResultBuffer<ffi::F32> depth) {
  const auto dims = start.dimensions();
  const auto out_dims = depth->dimensions();
  if (dims.size() < 2 || dims.back() != 2 || out_dims.size() < 2) {
    return ffi::Error::InvalidArgument("stroke_depth: start must be [..., S, 2]");
  }
  const int64_t segments = dims[dims.size() - 2];
  const int64_t strokes = radius.element_count();
  const int64_t size = out_dims.back();
  if (start.element_count() != strokes * segments * 2 ||
      end.element_count() != start.element_count() ||
      depth->element_count() != strokes * size * size || out_dims[out_dims.size() - 2] != size) {
    return ffi::Error::InvalidArgument(
        "stroke_depth: expected start, end [..., S, 2], radius [...], depth [..., size, size]");
  }
  const float* start_data = start.typed_data();
  const float* end_data = end.typed_data();
  const float* radius_data = radius.typed_data();
  float* depth_data = depth->typed_data();
  thesis_jax::ParallelFor(pool, strokes, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) {
      StrokeDepth(start_data + b * segments * 2, end_data + b * segments * 2, segments,
                  radius_data[b], size, depth_data + b * size * size);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ThesisJaxStrokeDepth, StrokeDepthImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
