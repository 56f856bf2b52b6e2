#include "run_file.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "error.h"
#include "io.h"

namespace deploy {

namespace {

bool positive_integer(const nlohmann::json& value) {
  return value.is_number() && value.get<double>() >= 1 && value.get<double>() == std::floor(value.get<double>()) &&
         value.get<double>() <= 1e6;
}

std::vector<double> numbers(const nlohmann::json& value, const std::string& name) {
  if (value.is_number()) return {value.get<double>()};
  std::vector<double> out;
  if (value.is_array())
    for (const nlohmann::json& v : value)
      if (v.is_number()) out.push_back(v.get<double>());
  if (out.empty() || (value.is_array() && out.size() != value.size()))
    throw Error("preprocessing." + name + " must be a number or a list of numbers");
  return out;
}

Preprocessing preprocessing_from_json(const nlohmann::json& object, Preprocessing base) {
  if (!object.is_object()) throw Error("preprocessing must be an object");
  if (object.contains("input_size")) {
    if (!positive_integer(object["input_size"])) throw Error("preprocessing.input_size must be a positive integer");
    base.input_size = object["input_size"].get<int>();
  }
  if (object.contains("crop_ratio")) {
    const nlohmann::json& v = object["crop_ratio"];
    if (v.is_null()) base.crop_ratio = 0;
    else if (v.is_number() && v.get<double>() > 0) base.crop_ratio = v.get<double>();
    else throw Error("preprocessing.crop_ratio must be a positive number or null");
  }
  if (object.contains("grayscale")) {
    if (!object["grayscale"].is_boolean()) throw Error("preprocessing.grayscale must be true or false");
    base.grayscale = object["grayscale"].get<bool>();
  }
  if (object.contains("mean")) base.mean = numbers(object["mean"], "mean");
  if (object.contains("std")) base.std = numbers(object["std"], "std");
  return base;
}

}  // namespace

RunSettings read_run_file(const std::string& path, RunSettings base) {
  try {
    nlohmann::json run = parse_json(read_file(path, "run file"));
    if (!run.is_object()) throw Error("it is not a JSON object");
    if (run.contains("input_size")) {
      if (!positive_integer(run["input_size"])) throw Error("input_size must be a positive integer");
      base.preprocessing.input_size = run["input_size"].get<int>();
    }
    if (run.contains("preprocessing"))
      base.preprocessing = preprocessing_from_json(run["preprocessing"], base.preprocessing);
    if (run.contains("class_names")) {
      ClassNames names{{}, "run file " + path + ": class_names"};
      const nlohmann::json& list = run["class_names"];
      if (!list.is_array()) throw Error("class_names must be a list of strings");
      for (const nlohmann::json& name : list) {
        if (!name.is_string()) throw Error("class_names must be a list of strings");
        names.names.push_back(name.get<std::string>());
      }
      base.class_names = names;
    }
  } catch (const Error& err) {
    throw Error("run file " + path + ": " + err.what());
  }
  return base;
}

void check_class_names(const ClassNames& names, size_t classes) {
  if (names.names.size() != classes)
    throw Error(names.source + " has " + std::to_string(names.names.size()) + " names, the model has " +
                std::to_string(classes) + " classes");
}

}  // namespace deploy
