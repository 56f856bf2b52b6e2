#include "dense_stage.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace binary_models {

int DenseStageShape::out_channels() const {
  return in_channels + growth * int(std::count(units.begin(), units.end(), 'D'));
}

int DenseStageShape::unit_in_channels(int u) const {
  return in_channels + growth * int(std::count(units.begin(), units.begin() + u, 'D'));
}

ConvShape DenseStageShape::unit_shape(int u) const {
  ConvShape s;
  s.batch = batch;
  s.in_channels = unit_in_channels(u);
  s.height = height;
  s.width = width;
  s.out_channels = growth;
  s.kernel_h = s.kernel_w = kernel;
  s.dilate_h = s.dilate_w = dilation;
  s.pad_h = s.pad_w = dilation * (kernel - 1) / 2;
  s.pad_mode = pad_mode;
  return s;
}

int64_t DenseStageShape::weight_words() const {
  int64_t words = 0;
  for (int u = 0; u < int(units.size()); ++u) words += unit_shape(u).packed_weight_words();
  return words;
}

int64_t DenseStageShape::threshold_count() const {
  int64_t count = 0;
  for (int u = 0; u < int(units.size()); ++u) count += unit_in_channels(u);
  return count;
}

std::string DenseStageShape::check() const {
  if (units.empty()) return "units is empty (one letter per unit: D dense, I improvement)";
  for (char unit : units)
    if (unit != 'D' && unit != 'I') return std::string("units '") + units + "': expected only the letters D and I";
  if (kernel > 0 && kernel % 2 == 0)  // (the unit shapes refuse kernels out of range)
    return "kernel " + std::to_string(kernel) + " is not supported (a unit keeps the size: an odd kernel)";
  if (growth < 1 || growth > kMaxChannels)
    return "growth " + std::to_string(growth) + " is not supported (allowed: 1.." + std::to_string(kMaxChannels) + ")";
  if (in_channels < growth && units[0] == 'I')
    return "an improvement unit needs at least growth (" + std::to_string(growth) + ") input channels";
  if (int64_t(in_channels) + int64_t(growth) * int64_t(units.size()) > kMaxChannels)
    return "the stage's " + std::to_string(int64_t(in_channels) + int64_t(growth) * int64_t(units.size())) +
           " output channels are not supported (at most " + std::to_string(kMaxChannels) + ")";
  for (int u = 0; u < int(units.size()); ++u)
    if (std::string problem = unit_shape(u).check(); !problem.empty()) return problem;
  return "";
}

namespace {

// The workspace: the largest unit's packed activations (binary_conv2d's workspace, reused by every unit),
// then, 64-byte aligned, an improvement unit's outputs before they are added.
size_t improvement_offset(const DenseStageShape& s) {
  size_t packed = 0;
  for (int u = 0; u < int(s.units.size()); ++u) packed = std::max(packed, workspace_bytes(s.unit_shape(u)));
  return (packed + 63) / 64 * 64;
}

}  // namespace

size_t dense_stage_workspace_bytes(const DenseStageShape& s) {
  return improvement_offset(s) + size_t(s.batch) * s.growth * s.height * s.width * sizeof(float);
}

void dense_stage(const DenseStageShape& s, const float* input, const uint64_t* weights, const float* thresholds,
                 const float* directions, const float* scales, float* output, void* workspace, Isa isa) {
  std::vector<unsigned char> owned;
  if (!workspace) {
    owned.resize(dense_stage_workspace_bytes(s));
    workspace = owned.data();
  }
  float* improvement = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + improvement_offset(s));

  const int64_t plane = int64_t(s.height) * s.width, image = int64_t(s.out_channels()) * plane;
  for (int n = 0; n < s.batch; ++n)
    std::memcpy(output + n * image, input + n * s.in_channels * plane, sizeof(float) * s.in_channels * plane);
  for (int u = 0; u < int(s.units.size()); ++u) {
    const ConvShape unit = s.unit_shape(u);
    ConvOptions options;
    options.threshold = thresholds;
    options.direction = directions;
    options.input_image_stride = image;
    const bool dense = s.units[u] == 'D';
    if (dense) options.output_image_stride = image;
    float* target = dense ? output + unit.in_channels * plane : improvement;
    binary_conv2d(unit, output, weights, scales, target, workspace, isa, options);
    if (!dense) {  // the last growth channels += the unit's outputs
      const int64_t count = int64_t(s.growth) * plane;
#pragma omp parallel for schedule(static) if (s.batch * count > (1 << 16))
      for (int n = 0; n < s.batch; ++n) {
        float* last = output + n * image + (unit.in_channels - s.growth) * plane;
        const float* add = improvement + n * count;
        for (int64_t i = 0; i < count; ++i) last[i] += add[i];
      }
    }
    weights += unit.packed_weight_words();
    thresholds += unit.in_channels;
    directions += unit.in_channels;
    if (scales) scales += s.growth;
  }
}

}  // namespace binary_models
