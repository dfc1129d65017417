// DeepWarp's bilinear sampler (thesis eq. 4.3.2) and its gradients on the CPU, as XLA FFI custom
// calls (see warp_kernel.py; the conventions are warp.py's, which is the reference).
//
// out[b, y, x, c] interpolates image[b, :, :, c] at (x + flow[b, y, x, 0], y + flow[b, y, x, 1]),
// the position clamped to the image; the cell is [x0, x0 + 1] with x0 = min(floor(x), W - 2). The
// image gradient scatters the incoming gradient g with the four bilinear weights; the flow
// gradient is g times the slope of the bilinear surface on the cell, zero along a direction whose
// position was clamped from outside. One pass over memory each way, float32, rows (forward) or
// images (backward: each image's scatter stays on one thread) shared out over XLA's threads.

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "parallel_for.h"  // thesis_jax/core/native
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Cell {
  int64_t x0, x1, y0, y1;  // the cell's corners (x1 = x0 + 1 unless the image is 1 wide)
  float wx, wy;            // the position's fractions within the cell
  bool inside_x, inside_y;  // the position was not clamped along x (y)
};

inline Cell CellAt(int64_t x, int64_t y, const float* flow, int64_t height, int64_t width) {
  Cell cell;
  float px = static_cast<float>(x) + flow[0];
  float py = static_cast<float>(y) + flow[1];
  const float x_max = static_cast<float>(width - 1), y_max = static_cast<float>(height - 1);
  cell.inside_x = px >= 0.0f && px <= x_max;
  cell.inside_y = py >= 0.0f && py <= y_max;
  px = std::min(std::max(px, 0.0f), x_max);
  py = std::min(std::max(py, 0.0f), y_max);
  // px, py >= 0 after the clamp, so truncation is floor.
  cell.x0 = std::min<int64_t>(static_cast<int64_t>(px), std::max<int64_t>(width - 2, 0));
  cell.y0 = std::min<int64_t>(static_cast<int64_t>(py), std::max<int64_t>(height - 2, 0));
  cell.x1 = std::min(cell.x0 + 1, width - 1);
  cell.y1 = std::min(cell.y0 + 1, height - 1);
  cell.wx = px - static_cast<float>(cell.x0);
  cell.wy = py - static_cast<float>(cell.y0);
  return cell;
}

struct Shape {
  int64_t batch, height, width, channels;
};

ffi::Error CheckShapes(const ffi::Buffer<ffi::F32>& image, const ffi::Buffer<ffi::F32>& flow,
                       Shape* shape) {
  const auto dims = image.dimensions();
  const auto flow_dims = flow.dimensions();
  if (dims.size() != 4 || flow_dims.size() != 4 || flow_dims[3] != 2 || flow_dims[0] != dims[0] ||
      flow_dims[1] != dims[1] || flow_dims[2] != dims[2]) {
    return ffi::Error::InvalidArgument("bilinear_warp: expects image [B, H, W, C], flow [B, H, W, 2]");
  }
  *shape = {dims[0], dims[1], dims[2], dims[3]};
  return ffi::Error::Success();
}

// Rows [first, last) of the output (row r = b * H + y). kChannels > 0 fixes C at compile time.
template <int kChannels>
void ForwardRows(const Shape& s, const float* image_data, const float* flow_data, float* out_data,
                 int64_t first, int64_t last) {
  const int64_t C = kChannels > 0 ? kChannels : s.channels, row_size = s.width * C;
  for (int64_t r = first; r < last; ++r) {
    const int64_t b = r / s.height, y = r % s.height;
    const float* source = image_data + b * s.height * row_size;
    for (int64_t x = 0; x < s.width; ++x) {
      const int64_t pixel = r * s.width + x;
      const Cell cell = CellAt(x, y, flow_data + 2 * pixel, s.height, s.width);
      const float* top_left = source + cell.y0 * row_size + cell.x0 * C;
      const float* top_right = source + cell.y0 * row_size + cell.x1 * C;
      const float* bottom_left = source + cell.y1 * row_size + cell.x0 * C;
      const float* bottom_right = source + cell.y1 * row_size + cell.x1 * C;
      float* target = out_data + pixel * C;
      for (int64_t c = 0; c < C; ++c) {
        const float top = (1.0f - cell.wx) * top_left[c] + cell.wx * top_right[c];
        const float bottom = (1.0f - cell.wx) * bottom_left[c] + cell.wx * bottom_right[c];
        target[c] = (1.0f - cell.wy) * top + cell.wy * bottom;
      }
    }
  }
}

// Calls kernel.template operator()<kChannels>() with C fixed for the usual channel counts.
template <typename Kernel>
void WithChannels(int64_t channels, const Kernel& kernel) {
  switch (channels) {
    case 1: return kernel.template operator()<1>();
    case 2: return kernel.template operator()<2>();
    case 3: return kernel.template operator()<3>();
    case 4: return kernel.template operator()<4>();
    default: return kernel.template operator()<0>();
  }
}

ffi::Error ForwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> image,
                       ffi::Buffer<ffi::F32> flow, ffi::ResultBuffer<ffi::F32> out) {
  Shape s;
  if (ffi::Error error = CheckShapes(image, flow, &s); error.failure()) return error;
  const float* image_data = image.typed_data();
  const float* flow_data = flow.typed_data();
  float* out_data = out->typed_data();
  thesis_jax::ParallelFor(pool, s.batch * s.height, [&](int64_t first, int64_t last) {
    WithChannels(s.channels, [&]<int kChannels>() {
      ForwardRows<kChannels>(s, image_data, flow_data, out_data, first, last);
    });
  });
  return ffi::Error::Success();
}

// The flow gradient, and the image gradient when image_grad is not null.
template <int kChannels>
void Backward(const Shape& s, const float* image_data, const float* flow_data, const float* g_data,
              float* image_grad, float* flow_grad, int64_t b) {
  const int64_t C = kChannels > 0 ? kChannels : s.channels, row_size = s.width * C;
  const float* source = image_data + b * s.height * row_size;
  float* grad_source = image_grad ? image_grad + b * s.height * row_size : nullptr;
  if (grad_source) std::fill(grad_source, grad_source + s.height * row_size, 0.0f);
  for (int64_t y = 0; y < s.height; ++y) {
    for (int64_t x = 0; x < s.width; ++x) {
      const int64_t pixel = (b * s.height + y) * s.width + x;
      const Cell cell = CellAt(x, y, flow_data + 2 * pixel, s.height, s.width);
      const int64_t tl = cell.y0 * row_size + cell.x0 * C, tr = cell.y0 * row_size + cell.x1 * C;
      const int64_t bl = cell.y1 * row_size + cell.x0 * C, br = cell.y1 * row_size + cell.x1 * C;
      const float* g = g_data + pixel * C;
      float grad_x = 0.0f, grad_y = 0.0f;
      for (int64_t c = 0; c < C; ++c) {
        const float slope_x = (1.0f - cell.wy) * (source[tr + c] - source[tl + c]) +
                              cell.wy * (source[br + c] - source[bl + c]);
        const float top = (1.0f - cell.wx) * source[tl + c] + cell.wx * source[tr + c];
        const float bottom = (1.0f - cell.wx) * source[bl + c] + cell.wx * source[br + c];
        grad_x += g[c] * slope_x;
        grad_y += g[c] * (bottom - top);
      }
      flow_grad[2 * pixel] = cell.inside_x ? grad_x : 0.0f;
      flow_grad[2 * pixel + 1] = cell.inside_y ? grad_y : 0.0f;
      if (grad_source) {
        const float w00 = (1.0f - cell.wy) * (1.0f - cell.wx), w01 = (1.0f - cell.wy) * cell.wx;
        const float w10 = cell.wy * (1.0f - cell.wx), w11 = cell.wy * cell.wx;
        for (int64_t c = 0; c < C; ++c) {
          grad_source[tl + c] += w00 * g[c];
          grad_source[tr + c] += w01 * g[c];
          grad_source[bl + c] += w10 * g[c];
          grad_source[br + c] += w11 * g[c];
        }
      }
    }
  }
}

// Both handlers below: the flow gradient, and the image gradient unless image_grad is null.
ffi::Error RunBackward(ffi::ThreadPool& pool, const ffi::Buffer<ffi::F32>& image,
                       const ffi::Buffer<ffi::F32>& flow, const ffi::Buffer<ffi::F32>& g,
                       float* image_grad, float* flow_grad) {
  Shape s;
  if (ffi::Error error = CheckShapes(image, flow, &s); error.failure()) return error;
  const float *image_data = image.typed_data(), *flow_data = flow.typed_data();
  const float* g_data = g.typed_data();
  thesis_jax::ParallelFor(pool, s.batch, [&](int64_t first, int64_t last) {
    WithChannels(s.channels, [&]<int kChannels>() {
      for (int64_t b = first; b < last; ++b) {
        Backward<kChannels>(s, image_data, flow_data, g_data, image_grad, flow_grad, b);
      }
    });
  });
  return ffi::Error::Success();
}

ffi::Error BackwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> image,
                        ffi::Buffer<ffi::F32> flow, ffi::Buffer<ffi::F32> g,
                        ffi::ResultBuffer<ffi::F32> image_grad,
                        ffi::ResultBuffer<ffi::F32> flow_grad) {
  return RunBackward(pool, image, flow, g, image_grad->typed_data(), flow_grad->typed_data());
}

ffi::Error FlowBackwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> image,
                            ffi::Buffer<ffi::F32> flow, ffi::Buffer<ffi::F32> g,
                            ffi::ResultBuffer<ffi::F32> flow_grad) {
  return RunBackward(pool, image, flow, g, nullptr, flow_grad->typed_data());
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ThesisJaxWarpForward, ForwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(ThesisJaxWarpBackward, BackwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(ThesisJaxWarpFlowBackward, FlowBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
