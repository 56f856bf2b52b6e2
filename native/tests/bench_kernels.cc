// Times binary_conv2d alone (no MXNet), activation packing included, on the shapes of
// benchmarks/bench_binary_conv.py: 3x3, stride 1, pad 1, batch 1, inputs rotating over ten images; on the
// ISA in use (the best, or BINARY_MODELS_ISA's) and every slower one this machine supports.
// Usage: OMP_NUM_THREADS=1 build/bench_kernels [samples]   (make bench runs it for 1 and 2 threads)
//        build/bench_kernels --stages [samples]   the dense stages and norm_pools of meliusnet22 and
//                                                  binary_densenet28 at 224x224, batch 1, per ISA
//        build/bench_kernels --l1 [samples]       the micro-kernel alone on one tile held in L1
//        build/bench_kernels --gradients [samples]  binary_conv2d_train's backward (kernels/conv_gradient.h)
//                                                  on meliusnet22's convolution shapes at batch 8, per float
//                                                  micro-kernel, in float MACs per ns
// The last two report CPU time (of all threads: run them with OMP_NUM_THREADS=1), which a busy machine
// disturbs far less than the wall clock.
// BM_BENCH_CLOCK=wall makes them report the wall clock instead (to compare thread counts).
// Under valgrind --tool=callgrind, a few samples give instruction counts per kernel piece that do not
// depend on the machine's load.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "../kernels/binary_conv.h"
#include "../kernels/conv_gradient.h"
#include "../kernels/dense_stage.h"
#include "../kernels/isa.h"
#include "../kernels/microkernels.h"
#include "../kernels/gemm.h"
#include "../kernels/norm_pool.h"

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

// The process's CPU time in ms: on a shared machine, unlike the wall clock, it leaves out the time other
// processes hold the core (their cache traffic stays in). With one thread it is the latency of an idle core.
double cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// CPU ms, or with BM_BENCH_CLOCK=wall the wall clock's ms (what a second thread shortens).
double clock_ms() {
  static const bool wall = std::getenv("BM_BENCH_CLOCK") && std::string(std::getenv("BM_BENCH_CLOCK")) == "wall";
  if (!wall) return cpu_ms();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// (best, median) CPU ms of `run` over `samples` calls after 3 warm-up calls.
template <typename Run>
std::pair<double, double> time_ms(int samples, Run run) {
  std::vector<double> ms;
  for (int i = 0; i < samples + 3; ++i) {
    const double start = clock_ms();
    run(i);
    if (i >= 3) ms.push_back(clock_ms() - start);
  }
  std::sort(ms.begin(), ms.end());
  return {ms.front(), ms[ms.size() / 2]};
}

// A model's native parts at 224x224, batch 1: its dense stages (in channels, side, units) and its norm_pools
// (channels, side, pooling kernel, stride, pad), as the converter fuses them (stem: BN + ReLU after each of
// its convolutions, the last with MaxPool 3/2; transitions: BN -> MaxPool 2/2 -> ReLU; head: BN -> ReLU).
struct ModelParts {
  const char* name;
  std::vector<std::tuple<int, int, std::string>> stages;
  std::vector<std::tuple<int, int, int, int, int>> pools;
};

void bench_stages(const std::vector<Isa>& isas, int samples) {
  const std::vector<std::tuple<int, int, int, int, int>> stem{{32, 112, 1, 1, 0}, {32, 112, 1, 1, 0}, {64, 112, 3, 2, 1}};
  std::vector<ModelParts> models{
      {"meliusnet22", {{64, 56, "DIDIDIDI"}, {160, 28, "DIDIDIDIDI"}, {224, 14, "DIDIDIDI"}, {256, 7, "DIDIDIDI"}},
       {{320, 56, 2, 2, 0}, {480, 28, 2, 2, 0}, {480, 14, 2, 2, 0}, {512, 7, 1, 1, 0}}},
      {"binary_densenet28", {{64, 56, "DDDDDD"}, {160, 28, "DDDDDD"}, {192, 14, "DDDDDD"}, {256, 7, "DDDDD"}},
       {{448, 56, 2, 2, 0}, {544, 28, 2, 2, 0}, {576, 14, 2, 2, 0}, {576, 7, 1, 1, 0}}}};
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
  };
  std::printf("| Model | Part | ISA | best ms | median ms | binary MACs/ns |\n|---|---|---|---|---|---|\n");
  for (ModelParts& m : models) {
    m.pools.insert(m.pools.begin(), stem.begin(), stem.end());
    for (Isa isa : isas) {
      double total_best = 0, total_macs = 0;
      for (const auto& [channels, side, units] : m.stages) {
        binary_models::DenseStageShape s;
        s.in_channels = channels;
        s.height = s.width = side;
        s.units = units;
        std::vector<uint64_t> weights(s.weight_words());
        for (uint64_t& w : weights) w = (uint64_t(rng()) << 32) ^ rng();
        const std::vector<float> input = random(size_t(channels) * side * side), thresholds = random(s.threshold_count());
        const std::vector<float> directions(s.threshold_count(), 1.0f);
        std::vector<float> output(size_t(s.out_channels()) * side * side);
        std::vector<unsigned char> workspace(binary_models::dense_stage_workspace_bytes(s));
        const auto [best, median] = time_ms(samples, [&](int) {
          binary_models::dense_stage(s, input.data(), weights.data(), thresholds.data(), directions.data(), nullptr,
                                     output.data(), workspace.data(), isa);
        });
        double macs = 0;
        for (int u = 0; u < int(units.size()); ++u) macs += double(side) * side * s.growth * s.unit_in_channels(u) * 9;
        total_best += best;
        total_macs += macs;
        std::printf("| %s | dense stage %dx%dx%d %s | %s | %.3f | %.3f | %.0f |\n", m.name, side, side, channels,
                    units.c_str(), binary_models::isa_name(isa), best, median, macs / best / 1e6);
      }
      std::printf("| %s | all dense stages | %s | %.3f | | %.0f |\n", m.name, binary_models::isa_name(isa), total_best,
                  total_macs / total_best / 1e6);
    }
    const Isa active = binary_models::active_isa();  // norm_pool follows the active ISA
    for (Isa isa : isas) {
      binary_models::set_active_isa(isa);
      double total_best = 0;
      for (const auto& [channels, side, kernel, stride, pad] : m.pools) {
        binary_models::NormPoolShape s;
        s.channels = channels;
        s.height = s.width = side;
        s.kernel_h = s.kernel_w = kernel;
        s.stride_h = s.stride_w = stride;
        s.pad_h = s.pad_w = pad;
        s.relu = true;
        const std::vector<float> input = random(size_t(channels) * side * side), mean = random(channels),
                                 scale = random(channels), shift = random(channels);
        std::vector<float> output(size_t(channels) * s.out_height() * s.out_width());
        const auto [best, median] = time_ms(samples, [&](int) {
          binary_models::norm_pool(s, input.data(), mean.data(), scale.data(), shift.data(), output.data());
        });
        total_best += best;
        std::printf("| %s | norm_pool %dx%dx%d pool %d/%d | %s | %.3f | %.3f | |\n", m.name, side, side, channels, kernel,
                    stride, binary_models::isa_name(isa), best, median);
      }
      std::printf("| %s | all norm_pools | %s | %.3f | | |\n", m.name, binary_models::isa_name(isa), total_best);
    }
    binary_models::set_active_isa(active);
  }
}

// The micro-kernel alone, on one tile whose receptive fields (reduction words) and weights stay in L1: the
// bound the convolutions approach when the gather, packing and outputs cost nothing.
void bench_l1(const std::vector<Isa>& isas, int samples) {
  std::printf("| reduction words | ISA | ns per call (4 blocks) | binary MACs/ns |\n|---|---|---|---|\n");
  std::mt19937_64 rng(1);
  for (int reduction : {9, 18, 36, 72, 144}) {
    // x: room for the rows of any tile layout (at most 3)
    std::vector<uint64_t> x(size_t(reduction) * 3 * binary_models::kTilePixels), w(size_t(reduction) * 4 * 4 * 2);
    for (uint64_t& v : x) v = rng();
    for (uint64_t& v : w) v = rng();
    for (Isa isa : isas) {
      const binary_models::KernelSet& kernels = binary_models::kernels_for(isa);
      binary_models::TileArgs args{};
      args.x = x.data();
      args.reduction = reduction;
      args.weights = w.data();
      args.block_stride = int64_t(reduction) * 4;
      args.blocks = binary_models::kTileBlocks;
      alignas(64) int32_t counts[binary_models::kTileBlocks * 4 * binary_models::kTilePixels];
      const int calls = 2000;
      const auto [best, median] = time_ms(samples, [&](int) {
        for (int i = 0; i < calls; ++i) kernels.xor_popcount(args, counts);
      });
      const double ns = best * 1e6 / calls;
      const double macs = 64.0 * reduction * binary_models::kTileBlocks * 4 * binary_models::kTilePixels;
      std::printf("| %d | %s | %.1f | %.0f |\n", reduction, binary_models::isa_name(isa), ns, macs / ns);
      (void)median;
    }
  }
}

// The data and weight gradients of binary convolutions (3x3, pad 1; in channels, side, filters): one of each of
// meliusnet22's stages (64 filters), then resnet_e18's, batch 8, as a training step runs them.
void bench_gradients(const std::vector<Isa>& isas, int samples) {
  const int shapes[][3] = {{256, 56, 64}, {352, 28, 64}, {416, 14, 64}, {448, 7, 64},
                           {64, 56, 64}, {128, 28, 128}, {256, 14, 256}, {512, 7, 512}};
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::printf("| Shape (batch 8) | float micro-kernel | gradient | best ms | median ms | float MACs/ns |\n"
              "|---|---|---|---|---|---|\n");
  for (const auto& shape : shapes) {
    binary_models::FloatConvShape s;
    s.batch = 8, s.channels = shape[0], s.height = s.width = shape[1], s.filters = shape[2];
    s.kernel_h = s.kernel_w = 3, s.pad_h = s.pad_w = 1;
    const double macs = double(s.batch) * s.channels * s.filters * 9 * s.height * s.width;
    std::vector<float> input(size_t(s.batch * s.channels * s.height * s.width)), weight(size_t(s.filters * s.channels * 9)),
        d_output(size_t(s.batch * s.filters * s.height * s.width)), d_input(input.size()), d_weight(weight.size());
    for (auto* v : {&input, &weight, &d_output})
      for (float& x : *v) x = normal(rng);
    for (Isa isa : isas) {
      binary_models::set_active_isa(isa);
      std::vector<char> workspace(std::max(binary_models::conv_data_gradient_bytes(s),
                                           binary_models::conv_weight_gradient_bytes(s)) + 64);
      void* aligned = workspace.data() + (64 - reinterpret_cast<uintptr_t>(workspace.data()) % 64) % 64;
      const auto data = time_ms(samples, [&](int) {
        binary_models::conv_data_gradient(s, d_output.data(), weight.data(), d_input.data(), aligned);
      });
      const auto weights = time_ms(samples, [&](int) {
        binary_models::conv_weight_gradient(s, input.data(), -1.0f, d_output.data(), d_weight.data(), aligned);
      });
      for (const auto& [name, t] : {std::make_pair("data", data), std::make_pair("weight", weights)})
        std::printf("| %ldx%ldx%ld -> %ld | %s | %s | %.2f | %.2f | %.1f |\n", long(s.channels), long(s.height),
                    long(s.width), long(s.filters), binary_models::gemm_isa(), name, t.first, t.second,
                    macs / (t.first * 1e6));
    }
  }
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 && argv[1][0] == '-' ? argv[1] : "";
  const int samples_arg = mode.empty() ? 1 : 2;
  const int samples = argc > samples_arg ? std::atoi(argv[samples_arg]) : (mode.empty() ? 200 : 20);
  std::vector<Isa> isas{binary_models::active_isa()};  // the one in use, then the slower ones
  for (Isa isa : {Isa::kAvx2, Isa::kNeon, Isa::kScalar})
    if (isa < isas[0] && binary_models::isa_supported(isa)) isas.push_back(isa);
  std::printf("%s; kernels: %s (best here: %s)\n", cpu_model().c_str(),
              binary_models::isa_name(binary_models::active_isa()), binary_models::isa_name(binary_models::best_isa()));
  if (mode == "--stages" || mode == "--l1" || mode == "--gradients") {
    if (isas.size() > 1 && isas.back() == Isa::kScalar) isas.pop_back();  // the fast ones only
    if (mode == "--stages") bench_stages(isas, samples);
    else if (mode == "--l1") bench_l1(isas, samples);
    else bench_gradients(isas, samples);
    return 0;
  }
  if (!mode.empty()) {
    std::fprintf(stderr, "unknown option %s (expected --stages, --l1 or --gradients)\n", mode.c_str());
    return 2;
  }
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
