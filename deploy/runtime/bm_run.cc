// bm-run: classify images with a packed model through the runtime: no MXNet, no Python.
//
//   bm-run [options] PREFIX IMAGE [IMAGE...]
//
// bm-predict's flags and output (docs/deploy.md) without --library, with --threads. Bad input exits with
// status 2 and one "error: ..." line.
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "../../native/kernels/isa.h"
#include "../cli.h"
#include "../io.h"
#include "image.h"
#include "model.h"

namespace {

const char kUsage[] =
    "usage: bm-run [options] PREFIX IMAGE [IMAGE...]\n"
    "Classify images with a packed model (PREFIX-symbol.json + PREFIX-0000.params) without MXNet.\n"
    "  --threads N         threads (default: OMP_NUM_THREADS, else every core)\n"
    "Environment: BM_RUN_PROFILE=1 prints each operator's median milliseconds on stderr.\n";

int run(int argc, char** argv) {
  using namespace deploy;
  namespace rt = binary_models::runtime;
  if (!omp_num_threads_ok(std::getenv("OMP_NUM_THREADS"))) return 2;
  Options options = parse_options(argc, argv, kUsage, {"--input-size", "--crop-ratio", "--mean", "--std", "--labels",
                                                        "--top", "--repeat", "--threads"});
  std::vector<std::string> encoded;
  for (const std::string& image : options.images) encoded.push_back(read_file(image, "image"));
  std::unique_ptr<rt::Model> model = rt::Model::load(options.prefix);
  model->set_threads(options.threads);
  const Preprocessing& p = options.settings.preprocessing;
  const rt::Shape shape{1, 3, p.input_size, p.input_size};
  std::vector<float> zeros(size_t(rt::element_count(shape)), 0.0f);
  model->run(zeros.data(), shape);  // checks the shapes; a first pass warms the caches
  const rt::Value& logits = model->output(0);
  const size_t classes = size_t(rt::element_count(logits.shape));
  if (options.settings.class_names) check_class_names(*options.settings.class_names, classes);
  auto read_input = [&](size_t i) {
    try {
      return rt::preprocess_image(encoded[i], p);
    } catch (const Error& err) {
      throw UsageError("cannot read image " + options.images[i] + ": " + err.what());
    }
  };
  auto forward = [&](const std::vector<float>& input) {
    model->run(input.data(), shape);
    const rt::Value& out = model->output(0);
    return std::vector<float>(out.floats(), out.floats() + classes);
  };
  const char* profile = std::getenv("BM_RUN_PROFILE");
  model->set_profiling(profile && std::string(profile) == "1");
  std::vector<Prediction> predictions = classify(options, read_input, forward);
  if (profile && std::string(profile) == "1") std::fputs(model->profile_report().c_str(), stderr);
  if (options.json) print_json(options, predictions);
  else print_text(options, classes, std::string("runtime, ") + binary_models::isa_name(binary_models::active_isa()) + " kernels",
                  predictions);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP's idle threads spin (libgomp: 300,000 turns) before they sleep. Spinning that long holds a core its
  // partner may need on a machine shared with other work (a second thread many times slower than one);
  // sleeping at once costs a wake-up at each of the graph's few hundred barriers (a second thread that helps
  // less). bm-run spins briefly, GOMP_SPINCOUNT=1000, libgomp's own count for oversubscribed machines
  // (docs/runtime.md, Threads). libgomp reads it when it loads, before main, so bm-run sets it and starts
  // again, unless the caller chose a policy (OMP_WAIT_POLICY, GOMP_SPINCOUNT) or it is the second start.
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) {
    setenv("GOMP_SPINCOUNT", "1000", 1);
    execv("/proc/self/exe", argv);  // only returns when it fails: then run as we are
  }
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
  } catch (const std::exception& err) {
    std::string line = err.what();
    for (char& c : line) c = static_cast<unsigned char>(c) < 0x20 ? '?' : c;  // one line, whatever a file held
    std::fprintf(stderr, "error: %s\n", line.c_str());
  }
  return 2;
}
