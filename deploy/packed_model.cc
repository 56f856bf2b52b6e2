#include "packed_model.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "io.h"
#include "mxnet_api.h"
#include "pair_record.h"

namespace deploy {

namespace {

std::string joined(const std::set<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

// The parameters of an MXNet .params file by name (without "arg:"/"aux:") -> dtype.
std::map<std::string, int> parameter_types(const std::string& params_bytes) {
  std::map<std::string, int> types;
  for (const auto& named : load_arrays(params_bytes)) {
    const std::string& name = named.first;
    if (name.rfind("arg:", 0) == 0 || name.rfind("aux:", 0) == 0) types[name.substr(4)] = named.second.dtype();
  }
  return types;
}

// The names of a symbol file's inputs (its variable nodes), "data" excepted.
// (Called after operators_of, which checks the nodes.)
std::set<std::string> parameter_names(const nlohmann::json& symbol) {
  std::set<std::string> names;
  for (const nlohmann::json& node : symbol["nodes"]) {
    auto name = node.find("name");
    if (node["op"] == "null" && name != node.end() && name->is_string() && *name != "data")
      names.insert(name->get<std::string>());
  }
  return names;
}

// Silences file descriptor 2 while it lives: binding a graph makes MXNet log an INFO line about its subgraph
// backend to stderr, which is no business of this program's users (errors come from MXGetLastError).
class QuietStderr {
 public:
  QuietStderr() : saved_(dup(2)) {
    int null = open("/dev/null", O_WRONLY);
    if (saved_ >= 0 && null >= 0) dup2(null, 2);
    if (null >= 0) close(null);
  }
  ~QuietStderr() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      dup2(saved_, 2);
      close(saved_);
    }
  }
  QuietStderr(const QuietStderr&) = delete;
  QuietStderr& operator=(const QuietStderr&) = delete;

 private:
  int saved_;
};

}  // namespace

ModelFiles model_files(const std::string& prefix) {
  return {prefix + "-symbol.json", prefix + "-0000.params", prefix + "-run.json", prefix + ".pair.json"};
}

std::set<std::string> operators_of(const nlohmann::json& symbol) {
  if (!symbol.is_object() || !symbol.contains("nodes") || !symbol["nodes"].is_array())
    throw Error("it has no \"nodes\" list");
  std::set<std::string> ops;
  for (const nlohmann::json& node : symbol["nodes"]) {
    if (!node.is_object() || !node.contains("op") || !node["op"].is_string()) throw Error("a node has no \"op\"");
    if (node["op"] != "null") ops.insert(node["op"].get<std::string>());
  }
  return ops;
}

PackedModel::PackedModel(const std::string& prefix, int input_size, const std::string& library_problem) {
  ModelFiles files = model_files(prefix);
  PairRecord record = finish_commit(files.pair_record);
  std::string symbol_json = read_file(files.symbol, "model file");
  std::string params = read_file(files.params, "model file");
  std::set<std::string> needed;
  try {
    nlohmann::json symbol = parse_json(symbol_json);
    operators_ = operators_of(symbol);
    needed = parameter_names(symbol);
  } catch (const Error& err) {
    throw Error("corrupt model file " + files.symbol + ": " + err.what());
  }
  std::set<std::string> known = registered_operators(), unknown;
  for (const std::string& op : operators_)
    if (!known.count(op)) unknown.insert(op);
  if (!unknown.empty()) {
    if (!library_problem.empty())
      throw Error("the model " + prefix + " uses " + joined(unknown) + " from the native library, which is not " +
                  "loaded: " + library_problem);
    throw Error("the model " + prefix + " uses operators that neither MXNet nor the loaded native library " +
                "provides: " + joined(unknown));
  }
  std::map<std::string, int> types;
  try {
    types = parameter_types(params);
  } catch (const Error& err) {
    throw Error("corrupt model file " + files.params + ": " + err.what());
  }
  // Where binary_models' load_packed checks it: after reading both files, before binding them.
  check_pair(record, {{files.symbol, symbol_json}, {files.params, params}}, "packed model " + prefix);
  std::set<std::string> missing;
  for (const std::string& name : needed)
    if (!types.count(name)) missing.insert(name);
  if (!missing.empty())
    throw Error("model file " + files.params + " does not match " + files.symbol + ": it lacks " +
                std::to_string(missing.size()) + " parameters (" + *missing.begin() + ", ...)");
  // The packed weights are int64: without their types MXPredCreate would allocate them as float32 and cast
  // the packed bits.
  std::vector<const char*> typed_names;
  std::vector<int> typed_dtypes;
  for (const auto& t : types) {
    if (t.second == kFloat32 || !needed.count(t.first)) continue;
    typed_names.push_back(t.first.c_str());
    typed_dtypes.push_back(t.second);
  }
  const char* input_keys[1] = {"data"};
  const uint32_t shape_indptr[2] = {0, 4};
  const uint32_t shape[4] = {1, 3, static_cast<uint32_t>(input_size), static_cast<uint32_t>(input_size)};
  int status;
  {
    QuietStderr quiet;
    status = MXPredCreateEx(symbol_json.c_str(), params.data(), static_cast<int>(params.size()), /*cpu*/ 1, 0, 1,
                            input_keys, shape_indptr, shape, static_cast<uint32_t>(typed_names.size()),
                            typed_names.data(), typed_dtypes.data(), &predictor_);
  }
  check(status, "cannot load the model " + prefix);
  input_size_ = 3 * static_cast<size_t>(input_size) * input_size;
  uint32_t* out_shape = nullptr;
  uint32_t out_ndim = 0;
  check(MXPredGetOutputShape(predictor_, 0, &out_shape, &out_ndim), "the model's output");
  output_size_ = 1;
  for (uint32_t i = 0; i < out_ndim; ++i) output_size_ *= out_shape[i];
}

PackedModel::~PackedModel() {
  if (predictor_) MXPredFree(predictor_);
}

std::vector<float> PackedModel::forward(const std::vector<float>& input) {
  if (input.size() != input_size_) throw Error("internal: input of the wrong size");
  check(MXPredSetInput(predictor_, "data", input.data(), static_cast<uint32_t>(input.size())), "setting the input");
  check(MXPredForward(predictor_), "running the model");
  std::vector<float> output(output_size_);
  check(MXPredGetOutput(predictor_, 0, output.data(), static_cast<uint32_t>(output.size())), "reading the output");
  return output;
}

}  // namespace deploy
