// A packed model (binary_models.convert.save_packed: PREFIX-symbol.json + PREFIX-0000.params) run with
// MXNet's C predict API (mxnet/c_predict_api.h). The model may use any operator MXNet knows when it is
// created, built in or from a library loaded before (MXLoadLib), so it does not depend on which native
// operators the converter put into it.
#pragma once

#include <cstdint>  // c_predict_api.h uses uint32_t without including it

#include <mxnet/c_predict_api.h>

#include <nlohmann/json_fwd.hpp>
#include <set>
#include <string>
#include <vector>

namespace deploy {

struct ModelFiles {
  // PREFIX-symbol.json, PREFIX-0000.params, PREFIX-run.json, PREFIX.pair.json
  std::string symbol, params, run, pair_record;
};
ModelFiles model_files(const std::string& prefix);

// The operators a symbol file's graph calls (its nodes' "op", without the "null" of inputs).
std::set<std::string> operators_of(const nlohmann::json& symbol);

class PackedModel {
 public:
  // Reads the model's files and binds it for a (1, 3, input_size, input_size) input. First finishes a save
  // killed after its commit point (pair_record.h); then throws Error for a missing or corrupt file, files
  // that are not the ones the pair record lists with their SHA-256 (the very bytes MXNet then gets), or
  // operators MXNet does not know (library_problem, when not empty, says why the native library is not
  // loaded and becomes part of that message).
  PackedModel(const std::string& prefix, int input_size, const std::string& library_problem);
  ~PackedModel();
  PackedModel(const PackedModel&) = delete;
  PackedModel& operator=(const PackedModel&) = delete;

  // The model's first output (the logits) for one float32 (3, input_size, input_size) input.
  std::vector<float> forward(const std::vector<float>& input);
  size_t num_outputs() const { return output_size_; }
  const std::set<std::string>& operators() const { return operators_; }

 private:
  PredictorHandle predictor_ = nullptr;
  size_t input_size_ = 0, output_size_ = 0;
  std::set<std::string> operators_;
};

}  // namespace deploy
