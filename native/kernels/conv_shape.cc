// ConvShape: output sizes and the checks of what the kernels support.
#include "conv_shape.h"

#include <initializer_list>
#include <limits>

namespace binary_models {
namespace {

std::string range_problem(const char* name, int value, int low, int high) {
  if (value >= low && value <= high) return "";
  return std::string(name) + " " + std::to_string(value) + " is not supported (allowed: " + std::to_string(low) +
         ".." + std::to_string(high) + ")";
}

std::string first_problem(std::initializer_list<std::string> problems) {
  for (const std::string& problem : problems)
    if (!problem.empty()) return problem;
  return "";
}

}  // namespace

int ConvShape::out_height() const { return (height + 2 * pad_h - dilate_h * (kernel_h - 1) - 1) / stride_h + 1; }
int ConvShape::out_width() const { return (width + 2 * pad_w - dilate_w * (kernel_w - 1) - 1) / stride_w + 1; }

std::string ConvShape::check_weights() const {
  if (groups < 1) return "num_group " + std::to_string(groups) + " must be >= 1";
  if (in_channels < 1 || in_channels % groups)
    return "in_channels " + std::to_string(in_channels) + " must be a positive multiple of num_group " +
           std::to_string(groups);
  if (out_channels < 1 || out_channels % groups)
    return "num_filter " + std::to_string(out_channels) + " must be a positive multiple of num_group " +
           std::to_string(groups);
  return first_problem({range_problem("in_channels", in_channels, 1, kMaxChannels),
                        range_problem("num_filter", out_channels, 1, kMaxChannels),
                        range_problem("kernel height", kernel_h, 1, kMaxKernel),
                        range_problem("kernel width", kernel_w, 1, kMaxKernel)});
}

std::string ConvShape::check_geometry() const {
  return first_problem({check_weights(), range_problem("stride", stride_h, 1, kMaxStride),
                        range_problem("stride", stride_w, 1, kMaxStride),
                        range_problem("dilate", dilate_h, 1, kMaxDilation),
                        range_problem("dilate", dilate_w, 1, kMaxDilation), range_problem("pad", pad_h, 0, kMaxSize),
                        range_problem("pad", pad_w, 0, kMaxSize)});
}

std::string ConvShape::check() const {
  std::string problem =
      first_problem({check_geometry(), range_problem("batch", batch, 0, 1 << 30),
                     range_problem("height", height, 1, kMaxSize), range_problem("width", width, 1, kMaxSize)});
  if (!problem.empty()) return problem;
  if (height + 2 * pad_h < dilate_h * (kernel_h - 1) + 1 || width + 2 * pad_w < dilate_w * (kernel_w - 1) + 1)
    return "the (dilated) kernel is larger than the padded input";
  if (int64_t(out_height()) * out_width() > std::numeric_limits<int>::max())
    return "the output has more than 2^31 - 1 pixels per channel";
  return "";
}

ConvShape dense_shape(int batch, int in_units, int units) {
  ConvShape s;
  s.batch = batch;
  s.in_channels = in_units;
  s.height = s.width = 1;
  s.out_channels = units;
  return s;
}

}  // namespace binary_models
