#include "cli.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <set>

#include "io.h"

namespace deploy {

const char kCommonUsage[] =
    "  --input-size N      square input side (default: PREFIX-run.json's, else 224)\n"
    "  --crop-ratio R      resize the shorter side to round(N / R), centre crop N x N (default: the run\n"
    "                      file's, else 0.875); 0: stretch to N x N without cropping\n"
    "  --mean A,B,C        per-channel mean of the normalisation (default: the run file's, else ImageNet's)\n"
    "  --std A,B,C         per-channel standard deviation (default: the run file's, else ImageNet's)\n"
    "  --grayscale         decode as grayscale and repeat it over 3 channels (digits models)\n"
    "  --labels FILE       class names, one line per class of the model (default: the run file's\n"
    "                      class_names, else indices)\n"
    "  --top K             classes printed per image (default 5)\n"
    "  --repeat N          forward passes per image; the latency is their median (default 1)\n";

namespace {

double parse_number(const std::string& text, const std::string& flag) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value)) throw UsageError(flag + " expects a number, got '" + text + "'");
  return value;
}

int parse_positive_int(const std::string& text, const std::string& flag) {
  double value = parse_number(text, flag);
  if (value < 1 || value != std::floor(value) || value > 1e6)
    throw UsageError(flag + " expects a positive integer, got '" + text + "'");
  return static_cast<int>(value);
}

std::vector<double> parse_list(const std::string& text, const std::string& flag) {
  std::vector<double> values;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    values.push_back(parse_number(text.substr(start, comma - start), flag));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (values.size() != 1 && values.size() != 3) throw UsageError(flag + " expects 1 or 3 comma-separated numbers");
  return values;
}

}  // namespace

std::vector<std::string> read_lines(const std::string& path, const std::string& what) {
  std::string text = read_file(path, what);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

Options parse_options(int argc, char** argv, const char* usage, const std::vector<std::string>& valued_flags) {
  Options options;
  std::vector<std::pair<std::string, std::string>> flags;  // applied after the run file
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(usage, stdout);
      std::fputs(kCommonUsage, stdout);
      std::fputs("  --json              print JSON instead of text\n", stdout);
      std::exit(0);
    } else if (arg == "--json" || arg == "--grayscale") {
      flags.emplace_back(arg, "");
    } else if (arg.rfind("--", 0) == 0) {
      const std::set<std::string> valued(valued_flags.begin(), valued_flags.end());
      std::string value;
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      } else if (valued.count(arg) && i + 1 < argc) {
        value = argv[++i];
      } else if (valued.count(arg)) {
        throw UsageError(arg + " expects a value");
      }
      if (!valued.count(arg)) throw UsageError("unknown option " + arg + " (--help lists them)");
      flags.emplace_back(arg, value);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 2) throw UsageError("expected PREFIX and at least one IMAGE (--help for usage)");
  options.prefix = positional[0];
  options.images.assign(positional.begin() + 1, positional.end());
  const std::string run_path = options.prefix + "-run.json";
  if (is_file(run_path)) options.settings = read_run_file(run_path, options.settings);
  Preprocessing& p = options.settings.preprocessing;
  for (const auto& flag : flags) {
    const std::string& name = flag.first;
    const std::string& value = flag.second;
    if (name == "--json") options.json = true;
    else if (name == "--grayscale") p.grayscale = true;
    else if (name == "--library") options.library = value;
    else if (name == "--input-size") p.input_size = parse_positive_int(value, name);
    else if (name == "--crop-ratio") {
      p.crop_ratio = parse_number(value, name);
      if (p.crop_ratio < 0) throw UsageError("--crop-ratio must be positive (or 0: no crop)");
    } else if (name == "--mean") p.mean = parse_list(value, name);
    else if (name == "--std") p.std = parse_list(value, name);
    else if (name == "--labels")
      options.settings.class_names = ClassNames{read_lines(value, "--labels file"), "--labels file " + value};
    else if (name == "--top") options.top = parse_positive_int(value, name);
    else if (name == "--repeat") options.repeat = parse_positive_int(value, name);
    else if (name == "--threads") {
      options.threads = parse_positive_int(value, name);
      if (options.threads > kMaxThreads) throw UsageError("--threads must be from 1 to " + std::to_string(kMaxThreads));
    }
  }
  for (double s : p.std)
    if (s <= 0) throw UsageError("the normalisation's std must be positive");
  size_t channels = p.grayscale ? 1 : 3;
  if ((p.mean.size() != 1 && p.mean.size() != channels) || (p.std.size() != 1 && p.std.size() != channels))
    throw UsageError("--mean and --std need " + std::to_string(channels) + " values (or 1) for this model's input");
  return options;
}

// Softmax in double precision, then the k most probable classes (ties: the lower index first).
std::vector<std::pair<int, double>> top_classes(const std::vector<float>& logits, int k) {
  double largest = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += p[i] = std::exp(double(logits[i]) - largest);
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  size_t n = std::min(order.size(), static_cast<size_t>(k));
  std::partial_sort(order.begin(), order.begin() + n, order.end(),
                    [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  std::vector<std::pair<int, double>> top;
  for (size_t i = 0; i < n; ++i) top.emplace_back(order[i], p[order[i]] / sum);
  return top;
}

static double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

static std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
      out += buffer;
    } else out += static_cast<char>(c);
  }
  return out + "\"";
}

static std::string class_name(const Options& options, int index) {
  const auto& names = options.settings.class_names;
  return names ? names->names.at(index) : std::to_string(index);
}

void print_text(const Options& options, size_t classes, const std::string& how, const std::vector<Prediction>& predictions) {
  const Preprocessing& p = options.settings.preprocessing;
  std::string steps = p.grayscale ? "grayscale" : p.crop_ratio > 0 ? "crop ratio " + decimal(p.crop_ratio) : "no crop";
  std::printf("%s: %zu classes, input 3x%dx%d, %s preprocessing, %s\n", options.prefix.c_str(), classes, p.input_size,
              p.input_size, steps.c_str(), how.c_str());
  for (size_t i = 0; i < predictions.size(); ++i) {
    const Prediction& p = predictions[i];
    std::printf("%s: forward %.2f ms, preprocessing %.2f ms\n", options.images[i].c_str(), p.forward_ms,
                p.preprocessing_ms);
    for (size_t rank = 0; rank < p.top.size(); ++rank)
      std::printf("  %zu. %-24s %.4f\n", rank + 1, class_name(options, p.top[rank].first).c_str(), p.top[rank].second);
  }
}

void print_json(const Options& options, const std::vector<Prediction>& predictions) {
  std::printf("[\n");
  for (size_t i = 0; i < predictions.size(); ++i) {
    const Prediction& p = predictions[i];
    std::printf("  {\"image\": %s, \"latency_ms\": {\"forward\": %.4f, \"preprocessing\": %.4f}, \"top\": [",
                json_string(options.images[i]).c_str(), p.forward_ms, p.preprocessing_ms);
    for (size_t j = 0; j < p.top.size(); ++j)
      std::printf("%s{\"class\": %d, \"name\": %s, \"probability\": %.9g}", j ? ", " : "", p.top[j].first,
                  json_string(class_name(options, p.top[j].first)).c_str(), p.top[j].second);
    std::printf("]}%s\n", i + 1 < predictions.size() ? "," : "");
  }
  std::printf("]\n");
}

std::vector<Prediction> classify(const Options& options, const std::function<std::vector<float>(size_t)>& read_input,
                                 const std::function<std::vector<float>(const std::vector<float>&)>& forward) {
  read_input(0);  // a first call may set things up: keep it out of the latency
  std::vector<Prediction> predictions;
  for (size_t i = 0; i < options.images.size(); ++i) {
    Prediction prediction;
    auto start = std::chrono::steady_clock::now();
    std::vector<float> input = read_input(i);
    prediction.preprocessing_ms = milliseconds_since(start);
    std::vector<double> times;
    std::vector<float> logits;
    for (int r = 0; r < options.repeat; ++r) {
      start = std::chrono::steady_clock::now();
      logits = forward(input);
      times.push_back(milliseconds_since(start));
    }
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    prediction.forward_ms = times[times.size() / 2];
    prediction.top = top_classes(logits, options.top);
    predictions.push_back(prediction);
  }
  return predictions;
}

bool omp_num_threads_ok(const char* value) {
  if (!value || !*value) return true;
  long threads = 0;
  const char* c = value;
  for (; *c >= '0' && *c <= '9' && threads <= kMaxThreads; ++c) threads = threads * 10 + (*c - '0');
  if (!*c && threads >= 1 && threads <= kMaxThreads) return true;
  std::fprintf(stderr, "error: OMP_NUM_THREADS must be a whole number of threads from 1 to %ld, got '", kMaxThreads);
  for (c = value; *c; ++c) std::fputc(static_cast<unsigned char>(*c) < 0x20 ? '?' : *c, stderr);  // one line
  std::fputs("'\n", stderr);
  return false;
}

}  // namespace deploy
