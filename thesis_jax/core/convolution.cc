// A 2-D convolution's forward pass and kernel gradient on the CPU (NHWC input, HWIO kernel, any
// stride and padding, float32), as XLA FFI custom calls; see conv_kernel.py, whose reference is
// jax.lax.conv_general_dilated and its gradient with respect to the kernel:
//
//   y[n, oy, ox, co] = sum over ky, kx, ci of x[n, oy * sh + ky - top, ox * sw + kx - left, ci]
//                                              * w[ky, kx, ci, co]
//   dw[ky, kx, ci, co] = sum over n, oy, ox of x[n, oy * sh + ky - top, ox * sw + kx - left, ci]
//                                              * g[n, oy, ox, co]
//
// with x zero outside the image. Each image is first copied into a zero-padded buffer, so the
// loops need no bounds checks and, for a kernel row ky, the (kx, ci) entries the convolution pairs
// with one output pixel are one contiguous run in the padded row and in w. Output channels go 16
// to a vector register (AVX-512; GCC's vector extensions elsewhere); one output channel is its own
// case, vectorised along the run. Images are shared out over XLA's intra-op threads; for the
// kernel gradient the batch comes in groups, x [G, N, H, W, Ci] and g [G, N, Ho, Wo, Co], each
// summed on one thread into dw [G, kh, kw, Ci, Co], which the caller sums. Unlike XLA:CPU's own
// kernel gradient, x is read where it lies rather than first copied batch-minor.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "parallel_for.h"  // thesis_jax/core/native
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kLanes = 16;  // output channels per accumulator row (one AVX-512 register)
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

struct Geometry {
  int64_t height, width, in_channels;     // of x
  int64_t out_height, out_width, out_channels;  // of g
  int64_t kernel_height, kernel_width, stride_h, stride_w, top, left;
};

// Copies image x [H, W, Ci] into padded [(Ho - 1) * sh + kh, (Wo - 1) * sw + kw, Ci]: the rows and
// columns the convolution reads, zeros outside the image.
void PadImage(const Geometry& s, const float* x, float* padded) {
  const int64_t padded_height = (s.out_height - 1) * s.stride_h + s.kernel_height;
  const int64_t padded_width = (s.out_width - 1) * s.stride_w + s.kernel_width;
  const int64_t ci_count = s.in_channels;
  for (int64_t py = 0; py < padded_height; ++py) {
    const int64_t iy = py - s.top;
    float* row = padded + py * padded_width * ci_count;
    if (iy < 0 || iy >= s.height) {
      std::fill(row, row + padded_width * ci_count, 0.0f);
      continue;
    }
    for (int64_t px = 0; px < padded_width; ++px) {
      const int64_t ix = px - s.left;
      float* pixel = row + px * ci_count;
      if (ix < 0 || ix >= s.width) {
        std::fill(pixel, pixel + ci_count, 0.0f);
      } else {
        std::memcpy(pixel, x + (iy * s.width + ix) * ci_count, ci_count * sizeof(float));
      }
    }
  }
}

int64_t PaddedSize(const Geometry& s) {
  return ((s.out_height - 1) * s.stride_h + s.kernel_height) *
         ((s.out_width - 1) * s.stride_w + s.kernel_width) * s.in_channels;
}

// Calls f.template operator()<k>() for k = count when 1 <= count <= kMaxBlock.
constexpr int kMaxBlock = 12;  // accumulator registers, leaving room for the operands
template <typename F, int k = 1>
inline void WithBlock(int64_t count, F&& f) {
  if constexpr (k <= kMaxBlock) {
    if (count == k) {
      f.template operator()<k>();
    } else {
      WithBlock<F, k + 1>(count, std::forward<F>(f));
    }
  }
}

// Kernel gradient: for kernel row ky, the kernel's entries (kx, ci) form one contiguous run of
// kw * Ci floats in w, and the input values they meet at an output pixel one contiguous run in the
// padded image's row. A block of that run (j, j + kBlock) accumulates, for 16 output channels from
// co, over every output pixel of the image.
template <int kBlock>
inline void AccumulateBlock(const Geometry& s, const float* padded, int64_t padded_width,
                            const float* g, float* dw, int64_t ky, int64_t j, int64_t co) {
  Vec acc[kBlock];
  for (int c = 0; c < kBlock; ++c) acc[c] = Vec{};
  const int64_t pixel_step = s.stride_w * s.in_channels;
  for (int64_t oy = 0; oy < s.out_height; ++oy) {
    const float* x_run = padded + (oy * s.stride_h + ky) * padded_width * s.in_channels + j;
    const float* g_row = g + oy * s.out_width * s.out_channels + co;
    for (int64_t ox = 0; ox < s.out_width; ++ox) {
      const float* xp = x_run + ox * pixel_step;
      Vec gv;
      std::memcpy(&gv, g_row + ox * s.out_channels, sizeof(Vec));
      for (int c = 0; c < kBlock; ++c) acc[c] += xp[c] * gv;
    }
  }
  float* out = dw + (ky * s.kernel_width * s.in_channels + j) * s.out_channels + co;
  for (int c = 0; c < kBlock; ++c) {
    Vec sum;
    std::memcpy(&sum, out + c * s.out_channels, sizeof(Vec));
    sum += acc[c];
    std::memcpy(out + c * s.out_channels, &sum, sizeof(Vec));
  }
}

void AccumulateImage(const Geometry& s, const float* x, const float* g, float* dw,
                     float* padded) {
  PadImage(s, x, padded);
  const int64_t padded_width = (s.out_width - 1) * s.stride_w + s.kernel_width;
  const int64_t run = s.kernel_width * s.in_channels;
  for (int64_t ky = 0; ky < s.kernel_height; ++ky) {
    for (int64_t co = 0; co < s.out_channels; co += kLanes) {
      for (int64_t j = 0; j < run; j += kMaxBlock) {
        WithBlock(std::min<int64_t>(kMaxBlock, run - j), [&]<int kBlock>() {
          AccumulateBlock<kBlock>(s, padded, padded_width, g, dw, ky, j, co);
        });
      }
    }
  }
}

// One output channel (a layer that outputs logits, say): dw[ky, kx, ci] sums, for each kernel
// row ky, the padded rows' runs of kw * Ci input values times the output gradient's one value,
// vectorised along the run (contiguous in dw as well).
void AccumulateImageOneOutput(const Geometry& s, const float* x, const float* g, float* dw,
                              float* padded) {
  PadImage(s, x, padded);
  const int64_t padded_width = (s.out_width - 1) * s.stride_w + s.kernel_width;
  const int64_t run = s.kernel_width * s.in_channels;
  const int64_t vectors = run / kLanes;
  const int64_t pixel_step = s.stride_w * s.in_channels;
  for (int64_t ky = 0; ky < s.kernel_height; ++ky) {
    float* out = dw + ky * run;
    for (int64_t oy = 0; oy < s.out_height; ++oy) {
      const float* x_run = padded + (oy * s.stride_h + ky) * padded_width * s.in_channels;
      const float* g_row = g + oy * s.out_width;
      for (int64_t v = 0; v < vectors; v += kMaxBlock) {
        WithBlock(std::min<int64_t>(kMaxBlock, vectors - v), [&]<int kBlock>() {
          Vec acc[kBlock];
          std::memcpy(acc, out + v * kLanes, sizeof(acc));
          for (int64_t ox = 0; ox < s.out_width; ++ox) {
            const float* xp = x_run + ox * pixel_step + v * kLanes;
            const float gv = g_row[ox];
            for (int c = 0; c < kBlock; ++c) {
              Vec xv;
              std::memcpy(&xv, xp + c * kLanes, sizeof(Vec));
              acc[c] += xv * gv;
            }
          }
          std::memcpy(out + v * kLanes, acc, sizeof(acc));
        });
      }
      for (int64_t j = vectors * kLanes; j < run; ++j) {  // the run's last, partial vector
        float sum = 0.0f;
        for (int64_t ox = 0; ox < s.out_width; ++ox) sum += x_run[ox * pixel_step + j] * g_row[ox];
        out[j] += sum;
      }
    }
  }
}

ffi::Error KernelGradientImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                              ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dw,
                              int64_t kernel_height, int64_t kernel_width, int64_t stride_h,
                              int64_t stride_w, int64_t top, int64_t left) {
  const auto xd = x.dimensions();
  const auto gd = g.dimensions();
  if (xd.size() != 5 || gd.size() != 5 || xd[0] != gd[0] || xd[1] != gd[1]) {
    return ffi::Error::InvalidArgument(
        "conv kernel gradient: expects x [G, N, H, W, Ci] and g [G, N, Ho, Wo, Co]");
  }
  if (gd[4] % kLanes != 0 && gd[4] != 1) {
    return ffi::Error::InvalidArgument(
        "conv kernel gradient: the output channels must be 1 or a multiple of 16");
  }
  const Geometry s{xd[2],         xd[3],        xd[4],    gd[2],    gd[3], gd[4],
                   kernel_height, kernel_width, stride_h, stride_w, top,   left};
  const int64_t groups = xd[0], images = xd[1];
  const int64_t x_image = s.height * s.width * s.in_channels;
  const int64_t g_image = s.out_height * s.out_width * s.out_channels;
  const int64_t dw_size = kernel_height * kernel_width * s.in_channels * s.out_channels;
  const float* x_data = x.typed_data();
  const float* g_data = g.typed_data();
  float* dw_data = dw->typed_data();
  thesis_jax::ParallelFor(
      pool, groups,
      [&](int64_t first, int64_t last) {
        std::vector<float> padded(PaddedSize(s));
        for (int64_t group = first; group < last; ++group) {
          float* out = dw_data + group * dw_size;
          std::fill(out, out + dw_size, 0.0f);
          for (int64_t n = group * images; n < (group + 1) * images; ++n) {
            const float *image = x_data + n * x_image, *grad = g_data + n * g_image;
            if (s.out_channels == 1) {
              AccumulateImageOneOutput(s, image, grad, out, padded.data());
            } else {
              AccumulateImage(s, image, grad, out, padded.data());
            }
          }
        }
      },
      /*chunks_per_thread=*/1);
  return ffi::Error::Success();
}

// The forward pass, y[n, oy, ox, co] = sum over ky, kx, ci of x[n, oy * sh + ky - top,
// ox * sw + kx - left, ci] * w[ky, kx, ci, co], on the zero-padded image: for each kernel row ky
// the (kx, ci) entries are one contiguous run in w and in the padded row, and kPixels consecutive
// output pixels of a row share each load of a kernel entry's 16 output channels. A row's last
// (width mod 8) pixels go as one smaller block: taken one at a time, each pixel's multiply-adds
// waited on one another (DANN GTSRB's 3x3 input gradient, 18 pixels wide: 30.7 -> 25.8 ms).
template <int kPixels>
inline void ForwardPixels(const Geometry& s, const float* padded, int64_t padded_width,
                          const float* w, float* y_row, int64_t oy, int64_t ox, int64_t co) {
  Vec acc[kPixels];
  for (int p = 0; p < kPixels; ++p) acc[p] = Vec{};
  const int64_t run = s.kernel_width * s.in_channels;
  const int64_t pixel_step = s.stride_w * s.in_channels;
  for (int64_t ky = 0; ky < s.kernel_height; ++ky) {
    const float* x_run =
        padded + ((oy * s.stride_h + ky) * padded_width + ox * s.stride_w) * s.in_channels;
    const float* w_run = w + ky * run * s.out_channels + co;
    for (int64_t j = 0; j < run; ++j) {
      Vec wv;
      std::memcpy(&wv, w_run + j * s.out_channels, sizeof(Vec));
      for (int p = 0; p < kPixels; ++p) acc[p] += x_run[p * pixel_step + j] * wv;
    }
  }
  for (int p = 0; p < kPixels; ++p) {
    std::memcpy(y_row + (ox + p) * s.out_channels + co, &acc[p], sizeof(Vec));
  }
}

void ForwardImage(const Geometry& s, const float* x, const float* w, float* y, float* padded) {
  PadImage(s, x, padded);
  const int64_t padded_width = (s.out_width - 1) * s.stride_w + s.kernel_width;
  constexpr int kPixels = 8;
  for (int64_t oy = 0; oy < s.out_height; ++oy) {
    float* y_row = y + oy * s.out_width * s.out_channels;
    for (int64_t co = 0; co < s.out_channels; co += kLanes) {
      int64_t ox = 0;
      for (; ox + kPixels <= s.out_width; ox += kPixels) {
        ForwardPixels<kPixels>(s, padded, padded_width, w, y_row, oy, ox, co);
      }
      if (ox < s.out_width) {
        WithBlock(s.out_width - ox, [&]<int kBlock>() {
          ForwardPixels<kBlock>(s, padded, padded_width, w, y_row, oy, ox, co);
        });
      }
    }
  }
}

// One output channel: each output pixel is a dot product, per kernel row, of the padded row's
// run of kw * Ci input values with the kernel's, vectorised along the run.
void ForwardImageOneOutput(const Geometry& s, const float* x, const float* w, float* y,
                           float* padded) {
  PadImage(s, x, padded);
  const int64_t padded_width = (s.out_width - 1) * s.stride_w + s.kernel_width;
  const int64_t run = s.kernel_width * s.in_channels;
  const int64_t vectors = run / kLanes;
  for (int64_t oy = 0; oy < s.out_height; ++oy) {
    for (int64_t ox = 0; ox < s.out_width; ++ox) {
      Vec acc{};
      float tail = 0.0f;
      for (int64_t ky = 0; ky < s.kernel_height; ++ky) {
        const float* x_run =
            padded + ((oy * s.stride_h + ky) * padded_width + ox * s.stride_w) * s.in_channels;
        const float* w_run = w + ky * run;
        for (int64_t v = 0; v < vectors * kLanes; v += kLanes) {
          Vec xv, wv;
          std::memcpy(&xv, x_run + v, sizeof(Vec));
          std::memcpy(&wv, w_run + v, sizeof(Vec));
          acc += xv * wv;
        }
        for (int64_t j = vectors * kLanes; j < run; ++j) tail += x_run[j] * w_run[j];
      }
      for (int l = 0; l < kLanes; ++l) tail += acc[l];
      y[oy * s.out_width + ox] = tail;
    }
  }
}

ffi::Error ForwardImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                       ffi::ResultBuffer<ffi::F32> y, int64_t stride_h, int64_t stride_w,
                       int64_t top, int64_t left) {
  const auto xd = x.dimensions();
  const auto wd = w.dimensions();
  const auto yd = y->dimensions();
  if (xd.size() != 4 || wd.size() != 4 || yd.size() != 4 || wd[2] != xd[3] || yd[0] != xd[0] ||
      yd[3] != wd[3]) {
    return ffi::Error::InvalidArgument(
        "conv forward pass: expects x [N, H, W, Ci], w [kh, kw, Ci, Co], y [N, Ho, Wo, Co]");
  }
  if (wd[3] % kLanes != 0 && wd[3] != 1) {
    return ffi::Error::InvalidArgument(
        "conv forward pass: the output channels must be 1 or a multiple of 16");
  }
  const Geometry s{xd[1], xd[2], xd[3], yd[1],    yd[2],    yd[3],
                   wd[0], wd[1], stride_h, stride_w, top, left};
  const int64_t padded_size = PaddedSize(s);
  const int64_t x_image = s.height * s.width * s.in_channels;
  const int64_t y_image = s.out_height * s.out_width * s.out_channels;
  const float* x_data = x.typed_data();
  const float* w_data = w.typed_data();
  float* y_data = y->typed_data();
  thesis_jax::ParallelFor(pool, xd[0], [&](int64_t first, int64_t last) {
    std::vector<float> padded(padded_size);
    for (int64_t n = first; n < last; ++n) {
      const float* image = x_data + n * x_image;
      float* out = y_data + n * y_image;
      if (s.out_channels == 1) {
        ForwardImageOneOutput(s, image, w_data, out, padded.data());
      } else {
        ForwardImage(s, image, w_data, out, padded.data());
      }
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ThesisJaxConvForward, ForwardImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("stride_h")
                                  .Attr<int64_t>("stride_w")
                                  .Attr<int64_t>("top")
                                  .Attr<int64_t>("left"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(ThesisJaxConvKernelGradient, KernelGradientImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("kernel_height")
                                  .Attr<int64_t>("kernel_width")
                                  .Attr<int64_t>("stride_h")
                                  .Attr<int64_t>("stride_w")
                                  .Attr<int64_t>("top")
                                  .Attr<int64_t>("left"));
