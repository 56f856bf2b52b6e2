#include "model.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "../io.h"
#include "../pair_record.h"

namespace binary_models::runtime {

using deploy::Error;

namespace {

std::string joined(const std::set<std::string>& names, size_t at_most = 8) {
  std::string text;
  size_t n = 0;
  for (const std::string& name : names) {
    if (n++ == at_most) return text + ", ...";
    text += (text.empty() ? "" : ", ") + name;
  }
  return text;
}

// A JSON value that must be an integer in [low, high].
int index_in(const nlohmann::json& value, int low, int high, const char* what) {
  if (!value.is_number_integer() || value.get<int64_t>() < low || value.get<int64_t>() > high)
    throw Error(std::string(what) + " " + deploy::quoted(value) + " is not an index from " + std::to_string(low) +
                " to " + std::to_string(high));
  return int(value.get<int64_t>());
}

constexpr int64_t kMaxTensorBytes = int64_t(1) << 34;  // 16 GiB: beyond it a shape is taken as hostile

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& prefix) {
  const std::string symbol = prefix + "-symbol.json", params = prefix + "-0000.params";
  deploy::PairRecord record = deploy::finish_commit(prefix + ".pair.json");
  for (const std::string& path : {symbol, params})
    if (!deploy::is_file(path)) throw Error("no packed model at " + prefix + ": " + path + " is missing");
  std::string symbol_json = deploy::read_file(symbol, "model file");
  std::string params_bytes = deploy::read_file(params, "model file");
  for (const auto* file : {&symbol_json, &params_bytes})
    if (file->empty()) throw Error("packed model " + prefix + ": " + (file == &symbol_json ? symbol : params) + " is empty");
  std::unique_ptr<Model> model(new Model());
  model->parse(symbol_json, symbol);
  std::map<std::string, Parameter> arrays;
  try {
    arrays = read_params(params_bytes);
  } catch (const Error& err) {
    throw Error("packed model " + prefix + ": " + params + " is not a parameter file, or it is truncated (" + err.what() + ")");
  }
  // Where binary_models' load_packed checks it: after reading both files, before binding them.
  deploy::check_pair(record, {{symbol, symbol_json}, {params, params_bytes}}, "packed model " + prefix);
  model->bind(std::move(arrays), symbol, params);
  return model;
}

std::unique_ptr<Model> Model::from_memory(std::string_view symbol_json, std::string_view params, const std::string& name) {
  std::unique_ptr<Model> model(new Model());
  model->parse(symbol_json, name + "'s symbol");
  std::map<std::string, Parameter> arrays;
  try {
    arrays = read_params(params);
  } catch (const Error& err) {
    throw Error(name + "'s parameters are not a parameter file, or they are truncated (" + err.what() + ")");
  }
  model->bind(std::move(arrays), name + "'s symbol", name + "'s parameters");
  return model;
}

void Model::parse(std::string_view symbol_json, const std::string& name) {
  std::set<std::string> missing_ops;
  try {
    nlohmann::json graph = deploy::parse_json(std::string(symbol_json));
    if (!graph.is_object() || !graph.contains("nodes") || !graph["nodes"].is_array() || !graph.contains("heads") ||
        !graph["heads"].is_array() || graph["heads"].empty())
      throw Error("it is not a graph: it needs a \"nodes\" list and a \"heads\" list");
    const nlohmann::json& nodes = graph["nodes"];
    for (size_t i = 0; i < nodes.size(); ++i) {
      const nlohmann::json& n = nodes[i];
      const std::string where = "node " + std::to_string(i);
      if (!n.is_object() || !n.contains("op") || !n["op"].is_string() || !n.contains("name") || !n["name"].is_string())
        throw Error(where + " has no \"op\" or \"name\"");
      Node node;
      node.op = n["op"].get<std::string>();
      node.name = n["name"].get<std::string>();
      Attrs attrs;
      for (const char* key : {"attrs", "attr", "param"}) {
        if (!n.contains(key)) continue;
        if (!n[key].is_object()) throw Error(where + " (" + node.name + "): \"" + key + "\" is not an object");
        for (const auto& [k, v] : n[key].items()) {
          if (!v.is_string()) throw Error(where + " (" + node.name + "): attribute " + k + " is not a string");
          attrs[k] = v.get<std::string>();
        }
      }
      if (n.contains("inputs")) {
        if (!n["inputs"].is_array()) throw Error(where + " (" + node.name + "): \"inputs\" is not a list");
        for (const nlohmann::json& input : n["inputs"]) {
          if (!input.is_array() || input.size() < 2 || input.size() > 3)
            throw Error(where + " (" + node.name + "): an input is not [node, output, version]");
          // Nodes come in topological order: an input is an earlier node.
          node.inputs.push_back(index_in(input[0], 0, int(i) - 1, (where + "'s input").c_str()));
          if (index_in(input[1], 0, 1 << 16, "an output index") != 0)
            throw Error(where + " (" + node.name + ") uses output " + deploy::quoted(input[1]) + " of node " +
                        deploy::quoted(input[0]) + ": only first outputs are supported");
        }
      }
      if (node.op == "null") {
        if (!node.inputs.empty()) throw Error(where + " (" + node.name + ") is a variable with inputs");
        if (node.name == "data") {
          if (data_node_ >= 0) throw Error("two variables are named data");
          data_node_ = int(i);
        }
      } else {
        try {
          node.impl = make_op(node.op, attrs);
        } catch (const Error& err) {
          throw Error(where + " (" + node.name + ", " + node.op + "): " + err.what());
        }
        if (!node.impl) missing_ops.insert(node.op);
        operators_.insert(node.op);
      }
      nodes_.push_back(std::move(node));
    }
    for (const nlohmann::json& head : graph["heads"]) {
      if (!head.is_array() || head.size() < 2) throw Error("a head is not [node, output, version]");
      heads_.push_back(index_in(head[0], 0, int(nodes_.size()) - 1, "a head"));
      if (index_in(head[1], 0, 1 << 16, "a head's output") != 0) throw Error("a head is not a node's first output");
    }
  } catch (const Unsupported&) {
    throw;
  } catch (const Error& err) {
    throw Error("corrupt model file " + name + ": " + err.what());
  }
  if (!missing_ops.empty())
    throw Unsupported(name + " uses operators the runtime does not have: " + joined(missing_ops, 100));
  if (data_node_ < 0) throw Error("corrupt model file " + name + ": it has no input named data");
}

void Model::bind(std::map<std::string, Parameter> params, const std::string& symbol_name, const std::string& params_name) {
  params_ = std::move(params);
  values_.assign(nodes_.size(), Value());
  std::set<std::string> used, missing;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& node = nodes_[i];
    if (node.impl) {
      auto [low, high] = node.impl->arity();
      if (node.inputs.size() < low || node.inputs.size() > high)
        throw Error("corrupt model file " + symbol_name + ": node " + node.name + " (" + node.op + ") has " +
                    std::to_string(node.inputs.size()) + " inputs, it takes " + std::to_string(low) +
                    (high != low ? ".." + std::to_string(high) : ""));
      for (size_t k = 0; k < node.inputs.size(); ++k) {
        const Node& input = nodes_[node.inputs[k]];
        bool is_param = !input.impl && int(node.inputs[k]) != data_node_;
        DType have = is_param && params_.count(input.name) ? params_.at(input.name).dtype : DType::kFloat32;
        if (is_param && !params_.count(input.name)) continue;  // reported below
        if (have != node.impl->input_dtype(k))
          throw Error("model file " + params_name + " does not match " + symbol_name + ": " + node.name + " (" +
                      node.op + ") takes " + dtype_name(node.impl->input_dtype(k)) + " as input " + std::to_string(k) +
                      ", " + (is_param ? input.name + " is " + dtype_name(have) : "an activation is float32"));
      }
      continue;
    }
    if (int(i) == data_node_) continue;
    auto it = params_.find(node.name);
    if (it == params_.end()) {
      missing.insert(node.name);
      continue;
    }
    used.insert(node.name);
    values_[i] = Value{it->second.shape, it->second.dtype, it->second.data.data()};
  }
  if (!missing.empty())
    throw Error("model file " + params_name + " does not match " + symbol_name + ": it lacks " +
                std::to_string(missing.size()) + " parameters (" + joined(missing, 3) + ")");
  std::set<std::string> extra;
  for (const auto& [name, p] : params_)
    if (!used.count(name)) extra.insert(name);
  if (!extra.empty())
    throw Error("model file " + params_name + " does not match " + symbol_name + ": it has " +
                std::to_string(extra.size()) + " parameters the graph does not use (" + joined(extra, 3) + ")");
  for (int head : heads_)
    if (!nodes_[head].impl) throw Error("corrupt model file " + symbol_name + ": an output is a variable");
}

void Model::set_threads(int threads) {
  if (threads < 0 || threads > 4096) throw BadArgument("threads must be from 1 to 4096 (0: the default), got " + std::to_string(threads));
  threads_ = threads;
}

void Model::prepare(const Shape& input_shape) {
  if (input_shape == planned_ && !buffers_.empty()) return;
  if (input_shape.size() != 4) throw BadArgument("the input must be 4-D NCHW, got shape " + shape_text(input_shape));
  for (int64_t d : input_shape)
    if (d < 1 || d > (1 << 20)) throw BadArgument("input shape " + shape_text(input_shape) + " is not supported");
  if (element_count(input_shape) * 4 > kMaxTensorBytes) throw BadArgument("input shape " + shape_text(input_shape) + " is too large");
  planned_.clear();
  buffers_.clear();
  values_[data_node_] = Value{input_shape, DType::kFloat32, nullptr};
  // The last node reading each node's output; heads are read after the end.
  std::vector<size_t> last_use(nodes_.size(), 0);
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (int input : nodes_[i].inputs) last_use[input] = i;
  for (int head : heads_) last_use[head] = nodes_.size();
  std::vector<size_t> sizes;       // bytes of each planned buffer
  std::vector<int> free_buffers;  // buffers whose value is read by no later node
  size_t workspace = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& node = nodes_[i];
    if (!node.impl) continue;
    std::vector<Value> inputs;
    for (int input : node.inputs) inputs.push_back(values_[input]);
    Shape shape;
    try {
      shape = node.impl->infer(inputs);
      workspace = std::max(workspace, node.impl->workspace(inputs));
    } catch (const Error& err) {
      throw BadArgument("for input shape " + shape_text(input_shape) + ", node " + node.name + " (" + node.op +
                        "): " + err.what());
    }
    const int64_t count = element_count(shape);
    if (count < 0 || count * 4 > kMaxTensorBytes)
      throw BadArgument("node " + node.name + "'s output " + shape_text(shape) + " is too large");
    const size_t bytes = size_t(count) * sizeof(float);
    // The smallest free buffer that holds it, else the largest free one grown, else a new one.
    auto better = [&](int a, int b) {  // whether buffer a suits better than b
      bool a_fits = sizes[a] >= bytes, b_fits = sizes[b] >= bytes;
      if (a_fits != b_fits) return a_fits;
      return a_fits ? sizes[a] < sizes[b] : sizes[a] > sizes[b];
    };
    int best = -1;
    for (int b : free_buffers)
      if (best < 0 || better(b, best)) best = b;
    if (best < 0) {
      best = int(sizes.size());
      sizes.push_back(0);
    } else {
      free_buffers.erase(std::find(free_buffers.begin(), free_buffers.end(), best));
    }
    sizes[best] = std::max(sizes[best], bytes);
    node.buffer = best;
    values_[i] = Value{shape, DType::kFloat32, nullptr};
    for (int input : node.inputs)
      if (last_use[input] == i && nodes_[input].impl &&
          std::find(free_buffers.begin(), free_buffers.end(), nodes_[input].buffer) == free_buffers.end())
        free_buffers.push_back(nodes_[input].buffer);
  }
  for (size_t bytes : sizes) buffers_.emplace_back(bytes);
  workspace_ = Buffer(workspace);
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].impl) values_[i].data = buffers_[nodes_[i].buffer].data();
  planned_ = input_shape;
}

void Model::run(const float* input, const Shape& input_shape) {
  if (!input) throw BadArgument("the input is null");
  prepare(input_shape);
  values_[data_node_].data = input;
  if (threads_ > 0) omp_set_num_threads(threads_);
  RunContext context{workspace_.data()};
  std::vector<Value> inputs;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& node = nodes_[i];
    if (!node.impl) continue;
    inputs.clear();
    for (int in : node.inputs) inputs.push_back(values_[in]);
    const auto start = std::chrono::steady_clock::now();
    node.impl->run(inputs, static_cast<float*>(buffers_[node.buffer].data()), context);
    if (profiling_) {
      node_ms_.resize(nodes_.size());
      node_ms_[i].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
  }
}

std::string Model::profile_report() const {
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  std::string report;
  std::map<std::string, double> per_op;
  double total = 0;
  char line[256];
  for (size_t i = 0; i < node_ms_.size(); ++i) {
    if (node_ms_[i].empty()) continue;
    const double ms = median(node_ms_[i]);
    per_op[nodes_[i].op] += ms;
    total += ms;
    std::snprintf(line, sizeof line, "%9.3f ms  %-20s %-40s %s\n", ms, nodes_[i].op.c_str(), nodes_[i].name.c_str(),
                  shape_text(values_[i].shape).c_str());
    report += line;
  }
  for (const auto& [op, ms] : per_op) {
    std::snprintf(line, sizeof line, "%9.3f ms  %5.1f%%  %s\n", ms, 100 * ms / std::max(total, 1e-9), op.c_str());
    report += line;
  }
  std::snprintf(line, sizeof line, "%9.3f ms  total (medians of %zu runs)\n", total,
                node_ms_.empty() ? size_t(0) : node_ms_.back().size());
  return report + line;
}

const Value& Model::output(size_t index) const {
  if (index >= heads_.size()) throw BadArgument("the model has " + std::to_string(heads_.size()) + " outputs, not " + std::to_string(index + 1));
  if (planned_.empty()) throw BadArgument("the model has not run yet");
  return values_[heads_[index]];
}

size_t Model::parameter_bytes() const {
  size_t total = 0;
  for (const auto& [name, p] : params_) total += p.data.size();
  return total;
}

size_t Model::activation_bytes() const {
  size_t total = workspace_.size();
  for (const Buffer& b : buffers_) total += b.size();
  return total;
}

}  // namespace binary_models::runtime
