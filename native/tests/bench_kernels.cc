// Times binary_conv2d alone (no MXNet), activation packing included, on the shapes of
// benchmarks/bench_binary_conv.py: 3x3, stride 1, pad 1, batch 1, inputs rotating over ten images; on the
// ISA in use (the best, or BINARY_MODELS_ISA's) and every slower one this machine supports.
// Usage: OMP_NUM_THREADS=1 build/bench_kernels [samples]   (make bench runs it for 1 and 2 threads)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../kernels/binary_conv.h"

using binary_models::ConvShape;
using binary_models::Isa;

// "model name (family F model M)" from /proc/cpuinfo, as lscpu shows them.
std::string cpu_model() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, name = "unknown CPU", family, model;
  while (std::getline(cpuinfo, line) && line.find("flags") != 0) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon + 2 > line.size()) continue;
    const std::string value = line.substr(colon + 2);
    if (line.find("model name") == 0) name = value;
    else if (line.find("cpu family") == 0) family = value;
    else if (line.find("model") == 0) model = value;
  }
  return name + " (family " + family + " model " + model + ")";
}

int main(int argc, char** argv) {
  const int samples = argc > 1 ? std::atoi(argv[1]) : 200;
  std::vector<Isa> isas{binary_models::active_isa()};  // the one in use, then the slower ones
  for (Isa isa : {Isa::kAvx2, Isa::kNeon, Isa::kScalar})
    if (isa < isas[0] && binary_models::isa_supported(isa)) isas.push_back(isa);
  std::printf("%s; kernels: %s (best here: %s)\n", cpu_model().c_str(),
              binary_models::isa_name(binary_models::active_isa()), binary_models::isa_name(binary_models::best_isa()));
  const int shapes[][3] = {{14, 256, 64}, {14, 256, 256}, {28, 128, 128}, {56, 64, 64}, {7, 512, 64}};
  const int images = 10;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::printf("| Shape | ISA | best ms | median ms | binary MACs/ns |\n|---|---|---|---|---|\n");
  for (const auto& shape : shapes) {
    ConvShape s;
    s.height = s.width = shape[0];
    s.in_channels = shape[1];
    s.out_channels = shape[2];
    s.kernel_h = s.kernel_w = 3;
    s.pad_h = s.pad_w = 1;
    const size_t image = size_t(s.in_channels) * s.height * s.width;
    std::vector<float> input(images * image), weights(size_t(s.out_channels) * s.in_channels * 9);
    std::vector<float> output(size_t(s.out_channels) * s.height * s.width);
    for (float& v : input) v = normal(rng);
    for (float& v : weights) v = normal(rng);
    std::vector<uint64_t> packed(s.packed_weight_words()), workspace(binary_models::workspace_bytes(s) / 8);
    binary_models::pack_weights(s, weights.data(), packed.data());
    for (Isa isa : isas) {
      std::vector<double> ms;
      for (int i = 0; i < samples + 5; ++i) {
        const auto start = std::chrono::steady_clock::now();
        binary_models::binary_conv2d(s, input.data() + (i % images) * image, packed.data(), nullptr, output.data(),
                                     workspace.data(), isa);
        if (i >= 5) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      }
      std::sort(ms.begin(), ms.end());
      const double macs = double(s.height) * s.width * s.out_channels * s.in_channels * 9;
      std::printf("| %dx%dx%d->%d | %s | %.3f | %.3f | %.0f |\n", shape[0], shape[0], shape[1], shape[2],
                  binary_models::isa_name(isa), ms.front(), ms[ms.size() / 2], macs / ms.front() / 1e6);
    }
  }
  return 0;
}
