// What the two command lines (bm-predict through MXNet, bm-run through the runtime) share: their flags,
// the classification loop, the text and JSON output, the OMP_NUM_THREADS check. No MXNet here.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "error.h"
#include "run_file.h"

namespace deploy {

class UsageError : public Error {
 public:
  using Error::Error;
};

struct Options {
  std::string prefix, library;
  std::vector<std::string> images;
  int top = 5, repeat = 1, threads = 0;  // threads 0: OMP_NUM_THREADS, else every core
  bool json = false;
  RunSettings settings;  // the run file's, with the flags applied
};

// The image and output flags both programs take, for their --help (after their own first lines).
extern const char kCommonUsage[];

// The flags (`valued` lists the options that take a value), then PREFIX-run.json's settings under them.
// Exits 0 after printing `usage` for --help; throws UsageError for anything it refuses.
Options parse_options(int argc, char** argv, const char* usage, const std::vector<std::string>& valued);

struct Prediction {
  std::vector<std::pair<int, double>> top;  // (class, probability), best first
  double forward_ms = 0, preprocessing_ms = 0;
};

// Preprocesses each image (`read_input(i)`, timed), runs `forward` --repeat times on it (the latency is the
// median) and keeps the top classes of the softmax. The first image is preprocessed once untimed first.
std::vector<Prediction> classify(const Options& options, const std::function<std::vector<float>(size_t)>& read_input,
                                 const std::function<std::vector<float>(const std::vector<float>&)>& forward);

// Softmax in double precision, then the k most probable classes (ties: the lower index first).
std::vector<std::pair<int, double>> top_classes(const std::vector<float>& logits, int k);

// "PREFIX: 10 classes, input 3x32x32, crop ratio 0.875 preprocessing, <how>", then each image's classes.
void print_text(const Options& options, size_t classes, const std::string& how, const std::vector<Prediction>& predictions);
void print_json(const Options& options, const std::vector<Prediction>& predictions);

// The lines of a text file (a trailing \r removed), for --labels.
std::vector<std::string> read_lines(const std::string& path, const std::string& what);

// Whether OMP_NUM_THREADS's value is a whole number from 1 to kMaxThreads; else prints the one error line.
constexpr long kMaxThreads = 4096;
bool omp_num_threads_ok(const char* value);

}  // namespace deploy
