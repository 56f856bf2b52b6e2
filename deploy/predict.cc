// bm-predict: classify images with a packed binary model from C++, without Python.
//
//   bm-predict [options] PREFIX IMAGE [IMAGE...]
//
// Loads the native operator library (MXLoadLib), then the packed model PREFIX-symbol.json +
// PREFIX-0000.params (binary_models.convert.save_packed) with MXNet's C predict API, preprocesses each image
// as train_imagenet.py's validation does (settings from PREFIX-run.json when it is there, which
// `python -m binary_models.convert` writes; flags override them), and prints the top classes with their
// softmax probabilities and the latency. Bad input exits with status 2 and one "error: ..." line.
#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cli.h"
#include "io.h"
#include "mxnet_api.h"
#include "packed_model.h"
#include "pair_record.h"
#include "preprocess.h"
#include "run_file.h"

namespace deploy {
namespace {

const char kUsage[] =
    "usage: bm-predict [options] PREFIX IMAGE [IMAGE...]\n"
    "Classify images with a packed model (PREFIX-symbol.json + PREFIX-0000.params).\n"
    "  --library PATH      native operator library (default: $BINARY_MODELS_NATIVE_LIB, else\n"
    "                      native/build/libbinary_models_native.so of this checkout)\n";

// The directory of this executable (to find the checkout's native library next to deploy/build/).
std::string executable_dir() {
  std::vector<char> buffer(4096);
  ssize_t n = readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
  if (n <= 0) return ".";
  std::string path(buffer.data(), static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

std::string default_library() {
  if (const char* env = std::getenv("BINARY_MODELS_NATIVE_LIB"))
    if (*env) return env;
  std::string path = executable_dir() + "/../../native/build/libbinary_models_native.so";
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) ? std::string(resolved) : path;
}

// Loads the library; returns why it could not be loaded ("" when it was). An explicit --library that
// fails is an error; the default one only matters when the model needs it.
std::string load_native_library(const Options& options, std::string* path) {
  *path = options.library.empty() ? default_library() : options.library;
  if (!is_file(*path)) {
    if (!options.library.empty()) throw UsageError("--library not found: " + *path);
    return "the native library " + *path + " does not exist (build it with `make native`, or give --library)";
  }
  try {
    load_library(*path);
  } catch (const Error& err) {
    if (!options.library.empty()) throw;
    return err.what();
  }
  return "";
}

int run(int argc, char** argv) {
  Options options = parse_options(argc, argv, kUsage, {"--library", "--input-size", "--crop-ratio", "--mean", "--std",
                                                        "--labels", "--top", "--repeat"});
  ModelFiles files = model_files(options.prefix);
  finish_commit(files.pair_record);  // a first save killed after its commit point has no model files yet
  for (const std::string& path : {files.symbol, files.params})
    if (!is_file(path)) throw UsageError("model file not found: " + path);
  std::vector<std::string> encoded;
  for (const std::string& image : options.images) encoded.push_back(read_file(image, "image"));

  std::string library;
  std::string library_problem = load_native_library(options, &library);
  const Preprocessing& p = options.settings.preprocessing;
  PackedModel model(options.prefix, p.input_size, library_problem);
  if (options.settings.class_names) check_class_names(*options.settings.class_names, model.num_outputs());
  std::vector<float> zeros(3 * static_cast<size_t>(p.input_size) * p.input_size, 0.0f);
  model.forward(zeros);  // the first pass creates oneDNN's primitives: keep it out of the latency

  auto read_input = [&](size_t i) {
    try {
      return preprocess(encoded[i], p);
    } catch (const Error& err) {
      throw UsageError("cannot read image " + options.images[i] + ": " + err.what());
    }
  };
  std::vector<Prediction> predictions =
      classify(options, read_input, [&](const std::vector<float>& input) { return model.forward(input); });
  if (options.json) print_json(options, predictions);
  else print_text(options, model.num_outputs(), library_problem.empty() ? "native library " + library : "no native library",
                  predictions);
  return 0;
}

}  // namespace
}  // namespace deploy

namespace {

// libmxnet.so reads OMP_NUM_THREADS while it loads, before main: it aborts on a value that is not an int
// (dmlc::ParamError) and hangs on a huge one. The executable's .preinit_array runs before the initializers
// of every shared library, so the variable is checked there (from envp: getenv may not be set up yet).
void check_omp_num_threads(int, char**, char** envp) {
  const char* value = nullptr;
  for (char** entry = envp; entry && *entry && !value; ++entry)  // the first, as getenv finds it
    if (std::strncmp(*entry, "OMP_NUM_THREADS=", 16) == 0) value = *entry + 16;
  if (!deploy::omp_num_threads_ok(value)) _exit(2);
}

__attribute__((section(".preinit_array"), used)) void (*const preinit_check_omp_num_threads)(int, char**, char**) =
    check_omp_num_threads;

// When OMP_NUM_THREADS is not set (or empty), set it to every core (what `import binary_models` does; the
// pip wheel would use one thread per physical core) and start again. MXNET_SUBGRAPH_BACKEND=NONE (read
// when the model is bound) keeps oneDNN from fusing operators, so the outputs are those of Python's
// load_packed; set it to MKLDNN for the fused graph.
void set_mxnet_environment(char** argv) {
  setenv("MXNET_SUBGRAPH_BACKEND", "NONE", 0);
  const char* threads = std::getenv("OMP_NUM_THREADS");
  if (threads && *threads) return;
  setenv("OMP_NUM_THREADS", std::to_string(std::max(1u, std::thread::hardware_concurrency())).c_str(), 1);
  execv("/proc/self/exe", argv);  // returns only when it failed: then run with MXNet's default
}

}  // namespace

int main(int argc, char** argv) {
  set_mxnet_environment(argv);
  try {
    return deploy::run(argc, argv);
  } catch (const std::exception& err) {
    std::fprintf(stderr, "error: %s\n", err.what());
    return 2;
  }
}
