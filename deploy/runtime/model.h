// A packed model (binary_models.convert.save_packed: PREFIX-symbol.json + PREFIX-0000.params) loaded and
// run without MXNet: the graph's nodes in file order, each an Op (ops.h) on float32 NCHW tensors. Loading
// makes the Python reader's checks (the pair record's SHA-256, JSON, operator names, every parameter the
// graph needs and no other, dtypes); shapes are checked when an input shape is first planned.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "../error.h"
#include "ops.h"
#include "params_file.h"

namespace binary_models::runtime {

// A model that uses operators the runtime lacks (e.g. an SSD's box decoding): refused with their names.
class Unsupported : public deploy::Error {
 public:
  using deploy::Error::Error;
};

// A wrong input (shape, thread count): the caller's problem, not the model's.
class BadArgument : public deploy::Error {
 public:
  using deploy::Error::Error;
};

class Model {
 public:
  // PREFIX-symbol.json + PREFIX-0000.params, after finishing a save killed after its commit point and
  // checking both against the pair record PREFIX.pair.json (when there is one).
  static std::unique_ptr<Model> load(const std::string& prefix);
  // The two files' contents; `name` appears in error messages.
  static std::unique_ptr<Model> from_memory(std::string_view symbol_json, std::string_view params,
                                            const std::string& name = "the model");

  // Threads of the OpenMP team every operator shares (0: OpenMP's default, every core or OMP_NUM_THREADS).
  void set_threads(int threads);
  int threads() const { return threads_; }

  // Checks the shapes for this input shape and allocates the activations (done by run() when it changes).
  void prepare(const Shape& input_shape);
  // Runs the graph on `input` (float32, input_shape, NCHW); the outputs stay valid until the next run.
  void run(const float* input, const Shape& input_shape);
  size_t num_outputs() const { return heads_.size(); }
  const Value& output(size_t index) const;  // after run()

  // Per-operator timing (bm-run's BM_RUN_PROFILE=1): run() then records each node's milliseconds.
  void set_profiling(bool on) { profiling_ = on; }
  // One line per operator node in graph order (the median of its milliseconds over the runs so far, its
  // operator, name and output shape), then the total per operator type.
  std::string profile_report() const;

  const std::set<std::string>& operators() const { return operators_; }
  size_t parameter_bytes() const;
  size_t activation_bytes() const;  // of the prepared shape: the planned buffers and the workspace

 private:
  struct Node {
    std::string op, name;
    std::unique_ptr<Op> impl;  // null for variables
    std::vector<int> inputs;
    int buffer = -1;  // planned output buffer
  };
  Model() = default;
  void parse(std::string_view symbol_json, const std::string& name);
  void bind(std::map<std::string, Parameter> params, const std::string& symbol_name, const std::string& params_name);

  std::vector<Node> nodes_;
  std::vector<int> heads_;
  int data_node_ = -1;
  std::map<std::string, Parameter> params_;
  std::vector<Value> values_;  // per node: its parameter, the input, or its output
  std::set<std::string> operators_;
  Shape planned_;
  std::vector<Buffer> buffers_;
  Buffer workspace_;
  int threads_ = 0;
  bool profiling_ = false;
  std::vector<std::vector<double>> node_ms_;  // per node, per run (profiling only)
};

}  // namespace binary_models::runtime
