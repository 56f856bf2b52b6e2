#include "float_conv.h"

#include <algorithm>

#include "gemm.h"

namespace binary_models {
namespace {

constexpr int64_t kMaxSide = 1 << 16;
constexpr int64_t kMinParallelWork = 1 << 15;  // multiply-adds below which a second thread does not pay off

enum class Path { kDirect, kPadded, kIm2col };

Path path_of(const FloatConvShape& s) {
  if (s.stride_h != 1 || s.stride_w != 1) return Path::kIm2col;
  return s.kernel_h == 1 && s.kernel_w == 1 && s.pad_h == 0 && s.pad_w == 0 ? Path::kDirect : Path::kPadded;
}

int64_t round_up(int64_t floats) { return (floats + 15) / 16 * 16; }  // 64 bytes

// Per group: rows (K) and columns (N) of the product, and where its rows are (`step` floats from one group's
// to the next). `source` floats of workspace hold the padded copy or im2col's columns of all groups, `result`
// the padded path's products (over the padded width), each rounded up to 64 bytes.
struct Plan {
  Path path;
  int64_t rows, columns, step, source = 0, result = 0, padded_width = 0, padded_plane = 0;
};

Plan plan_of(const FloatConvShape& s) {
  const int64_t channels = s.channels / s.groups, out_h = s.out_height(), out_w = s.out_width();
  Plan p{path_of(s), channels * s.kernel_h * s.kernel_w, out_h * out_w, channels * s.height * s.width};
  if (p.path == Path::kIm2col) {
    p.step = p.rows * p.columns;
    p.source = s.groups * p.step;
  } else if (p.path == Path::kPadded) {
    p.padded_width = s.width + 2 * s.pad_w;
    p.padded_plane = (s.height + 2 * s.pad_h) * p.padded_width;
    p.step = channels * p.padded_plane;
    p.source = s.groups * p.step;
    p.columns = (out_h - 1) * p.padded_width + out_w;  // the last row's extra columns are not needed
    p.result = s.filters * p.columns;
  }
  p.source = round_up(p.source), p.result = round_up(p.result);
  return p;
}

// The channels with pad_h rows and pad_w columns of zeros around each plane (split over the team).
void pad(const FloatConvShape& s, const float* image, const Plan& p, float* padded) {
#pragma omp for schedule(static)
  for (int64_t c = 0; c < s.channels; ++c) {
    float* plane = padded + c * p.padded_plane;
    std::fill(plane, plane + s.pad_h * p.padded_width, 0.0f);
    for (int64_t y = 0; y < s.height; ++y) {
      float* line = plane + (y + s.pad_h) * p.padded_width;
      std::fill(line, line + s.pad_w, 0.0f);
      std::copy_n(image + (c * s.height + y) * s.width, s.width, line + s.pad_w);
      std::fill(line + s.pad_w + s.width, line + p.padded_width, 0.0f);
    }
    std::fill(plane + (s.pad_h + s.height) * p.padded_width, plane + p.padded_plane, 0.0f);
  }
}

// col[(c * kh + ky) * kw + kx][y * out_w + x] = image[c][y * stride + ky * dilate - pad][...], 0 outside
// (split over the team).
void im2col(const FloatConvShape& s, const float* image, float* col) {
  const int64_t taps = int64_t(s.kernel_h) * s.kernel_w, out_h = s.out_height(), out_w = s.out_width();
#pragma omp for schedule(static)
  for (int64_t row = 0; row < s.channels * taps; ++row) {
    const int64_t c = row / taps, ky = row % taps / s.kernel_w, kx = row % s.kernel_w;
    const float* plane = image + c * s.height * s.width;
    float* dst = col + row * out_h * out_w;
    for (int64_t y = 0; y < out_h; ++y) {
      const int64_t iy = y * s.stride_h + ky * s.dilate_h - s.pad_h;
      float* line = dst + y * out_w;
      if (iy < 0 || iy >= s.height) {
        std::fill(line, line + out_w, 0.0f);
        continue;
      }
      // the columns whose tap is inside the image: x from `first` to `last` (ix = x * stride + offset)
      const int64_t offset = kx * s.dilate_w - s.pad_w;
      const int64_t first = std::min(out_w, std::max<int64_t>(0, (-offset + s.stride_w - 1) / s.stride_w));
      const int64_t last = std::max(first, std::min(out_w, (s.width - offset + s.stride_w - 1) / s.stride_w));
      const float* source = plane + iy * s.width;
      std::fill(line, line + first, 0.0f);
      for (int64_t x = first; x < last; ++x) line[x] = source[x * s.stride_w + offset];
      std::fill(line + last, line + out_w, 0.0f);
    }
  }
}

}  // namespace

std::string FloatConvShape::check_attributes() const {
  for (int side : {kernel_h, kernel_w, stride_h, stride_w, dilate_h, dilate_w})
    if (side < 1 || side > kMaxSide) return "kernel, stride and dilate must be 1 to 65536";
  if (pad_h < 0 || pad_w < 0 || pad_h > kMaxSide || pad_w > kMaxSide) return "pad must be 0 to 65536";
  if (filters < 1 || groups < 1) return "num_filter and num_group must be positive";
  if (filters % groups) return "num_filter must be a multiple of num_group";
  return "";
}

std::string FloatConvShape::check() const {
  if (std::string problem = check_attributes(); !problem.empty()) return problem;
  if (batch < 1 || channels < 1 || height < 1 || width < 1 || height > kMaxSide || width > kMaxSide)
    return "data's dimensions must be positive, height and width at most 65536";
  if (channels % groups) return "data has " + std::to_string(channels) + " channels, not a multiple of num_group";
  if (height + 2 * pad_h < dilate_h * (kernel_h - 1) + 1 || width + 2 * pad_w < dilate_w * (kernel_w - 1) + 1)
    return "the kernel is larger than the padded input";
  return "";
}

size_t FloatConvShape::workspace_bytes() const {
  const Plan p = plan_of(*this);
  return size_t(round_up(2 * p.rows) + p.source + p.result +
                int64_t(gemm_workspace_floats(groups, filters / groups, p.rows))) * sizeof(float);
}

// One parallel region for the whole convolution: the copy, the products of all groups and the copy-out (with
// the bias) split over the team, with a barrier between them. The weights are packed once, for the first image.
void float_conv(const FloatConvShape& s, const float* input, const float* weight, const float* bias, float* output,
                void* workspace) {
  const Plan p = plan_of(s);
  const int64_t out_h = s.out_height(), out_w = s.out_width(), pixels = out_h * out_w, per_group = s.filters / s.groups;
  int64_t* offsets = static_cast<int64_t*>(workspace);
  float* source = static_cast<float*>(workspace) + round_up(2 * p.rows);
  float* result = source + p.source;
  float* scratch = result + p.result;
  for (int64_t row = 0; row < p.rows; ++row) {  // (c * kh + ky) * kw + kx
    const int64_t c = row / (s.kernel_h * s.kernel_w), ky = row / s.kernel_w % s.kernel_h, kx = row % s.kernel_w;
    offsets[row] = p.path == Path::kDirect   ? row * s.height * s.width
                   : p.path == Path::kPadded ? c * p.padded_plane + ky * s.dilate_h * p.padded_width + kx * s.dilate_w
                                             : row * pixels;
  }
#pragma omp parallel if (s.batch * s.filters * pixels * p.rows > kMinParallelWork)
  for (int64_t n = 0; n < s.batch; ++n) {
    const float* image = input + n * s.channels * s.height * s.width;
    float* target = output + n * s.filters * pixels;
    if (p.path == Path::kDirect) {
      gemm(s.groups, per_group, p.rows, pixels, weight, image, p.step, offsets, target, per_group * pixels, pixels,
           scratch, n > 0);
    } else if (p.path == Path::kIm2col) {
      im2col(s, image, source);
      gemm(s.groups, per_group, p.rows, pixels, weight, source, p.step, offsets, target, per_group * pixels, pixels,
           scratch, n > 0);
    } else {
      pad(s, image, p, source);
      gemm(s.groups, per_group, p.rows, p.columns, weight, source, p.step, offsets, result, per_group * p.columns,
           p.columns, scratch, n > 0);
    }
#pragma omp for schedule(static)
    for (int64_t f = 0; f < s.filters; ++f) {
      float* o = target + f * pixels;
      if (p.path == Path::kPadded)
        for (int64_t y = 0; y < out_h; ++y)
          std::copy_n(result + f * p.columns + y * p.padded_width, out_w, o + y * out_w);
      if (bias)
        for (int64_t q = 0; q < pixels; ++q) o[q] += bias[f];
    }
  }
}

}  // namespace binary_models
