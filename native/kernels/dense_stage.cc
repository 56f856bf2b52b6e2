#include "dense_stage.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "conv_run.h"

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
  uint64_t* packed = static_cast<uint64_t*>(workspace);
  float* improvement = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + improvement_offset(s));
  const KernelSet& kernels = kernels_for(isa);
  const int64_t plane = int64_t(s.height) * s.width, image = int64_t(s.out_channels()) * plane;

  // Every unit planned for one team, as large as the largest unit's plan wants: the units run in it one after
  // the other, a barrier apart (a team started per unit costs a wake-up of each thread, many microseconds
  // where threads wait asleep).
  const int units = int(s.units.size());
  std::vector<ConvShape> shapes(units);
  std::vector<ConvOptions> options(units);
  std::vector<std::unique_ptr<ConvRun>> runs(units);
  int threads = 1;
  for (int u = 0; u < units; ++u) {
    shapes[u] = s.unit_shape(u);
    ConvOptions& o = options[u];
    o.threshold = thresholds;
    o.direction = directions;
    o.input_image_stride = image;
    if (s.units[u] == 'D') o.output_image_stride = image;  // else into `improvement`, then added
    thresholds += shapes[u].in_channels;
    directions += shapes[u].in_channels;
    threads = std::max(threads, ConvPlan(shapes[u], max_threads(), o).threads);
  }
  for (int u = 0; u < units; ++u) runs[u] = std::make_unique<ConvRun>(shapes[u], threads, options[u]);

  // The element-wise passes share every image's floats out in chunks of whole cache lines (at batch 1 a split
  // over images would leave every other thread idle).
  const int64_t chunk = 4096, input_floats = int64_t(s.in_channels) * plane, growth_floats = s.growth * plane;
  const int64_t input_chunks = (input_floats + chunk - 1) / chunk, growth_chunks = (growth_floats + chunk - 1) / chunk;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
#pragma omp for schedule(static)  // the input into the stage's first channels
    for (int64_t item = 0; item < s.batch * input_chunks; ++item) {
      const int64_t n = item / input_chunks, begin = item % input_chunks * chunk;
      std::memcpy(output + n * image + begin, input + n * input_floats + begin,
                  sizeof(float) * std::min(chunk, input_floats - begin));
    }
    const uint64_t* unit_weights = weights;
    const float* unit_scales = scales;
    for (int u = 0; u < units; ++u) {
      float* target = s.units[u] == 'D' ? output + shapes[u].in_channels * plane : improvement;
      runs[u]->run(kernels, output, unit_weights, unit_scales, target, packed);
      if (s.units[u] == 'I') {  // the last growth channels += the unit's outputs
#pragma omp for schedule(static)
        for (int64_t item = 0; item < s.batch * growth_chunks; ++item) {
          const int64_t n = item / growth_chunks, begin = item % growth_chunks * chunk;
          const int64_t end = std::min(growth_floats, begin + chunk);
          float* last = output + n * image + (shapes[u].in_channels - s.growth) * plane;
          const float* add = improvement + n * growth_floats;
          for (int64_t i = begin; i < end; ++i) last[i] += add[i];
        }
      }
      unit_weights += shapes[u].packed_weight_words();
      if (unit_scales) unit_scales += s.growth;
    }
  }
}

}  // namespace binary_models
